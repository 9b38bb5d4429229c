// Package elevenlabs is BYOC's client for ElevenLabs' API: it verifies an
// org's API key, telling a full key from one without the User: Read
// permission.
//
// Errors: a config without a key is EValidation (ElevenLabs is not called);
// a key ElevenLabs refuses (a 401 other than missing_permissions, or a 403)
// is EVerificationFailed; ElevenLabs not reachable, timing out or failing is
// EProviderUnavailable.
package elevenlabs

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"byoc/app"
	"byoc/app/providers"
)

// Verification details of a valid key of limited scope.
const (
	// NoUserReadDetail: the key lacks User: Read but lists voices.
	NoUserReadDetail = "key without the User: Read permission: can list voices but not read the account"
	// NoVoicesReadDetail: the key lacks User: Read and Voices: Read.
	NoVoicesReadDetail = "key without the User: Read and Voices: Read permissions: " +
		"ElevenLabs knows the key, but it can neither read the account nor list voices"
)

// Client talks to ElevenLabs' API. It is safe for concurrent use.
type Client struct {
	base string
	call providers.Caller
}

// New returns a client for the given base URL (such as
// https://api.elevenlabs.io). Every call is bounded by timeout
// (providers.DefaultTimeout when not positive); hc nil means a plain
// http.Client.
func New(baseURL string, hc *http.Client, timeout time.Duration) *Client {
	return &Client{base: baseURL, call: providers.NewCaller("ElevenLabs", hc, timeout)}
}

// Verify checks the org's key with GET /v1/user. When ElevenLabs answers 401
// missing_permissions, the key is known but lacks User: Read: GET /v1/voices
// then confirms it, and the key is valid with Limited set (NoUserReadDetail,
// or NoVoicesReadDetail when voices are not readable either).
func (c *Client) Verify(ctx context.Context, cfg app.ElevenLabsConfig) (app.Verification, error) {
	key := strings.TrimSpace(cfg.APIKey.Reveal())
	if key == "" {
		return app.Verification{}, app.Errorf(app.EValidation, "Enter your ElevenLabs API key.")
	}
	resp, err := c.get(ctx, key, "/v1/user")
	if err != nil {
		return app.Verification{}, err
	}
	if resp.StatusCode == http.StatusOK {
		// The body also holds the key itself (xi_api_key): only the tier is read.
		var user struct {
			Subscription struct {
				Tier string `json:"tier"`
			} `json:"subscription"`
		}
		if err := c.call.DecodeJSON(resp, &user); err != nil {
			return app.Verification{}, err
		}
		if tier := strings.TrimSuffix(providers.CleanReason(user.Subscription.Tier, cfg), "."); tier != "" {
			return app.Verification{Detail: fmt.Sprintf("full key on the %s plan", tier)}, nil
		}
		return app.Verification{Detail: "full key"}, nil
	}
	if !missingPermissions(resp) {
		return app.Verification{}, c.refusal(resp)
	}

	resp, err = c.get(ctx, key, "/v1/voices")
	if err != nil {
		return app.Verification{}, err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		var voices struct {
			Voices []json.RawMessage `json:"voices"`
		}
		if err := c.call.DecodeJSON(resp, &voices); err != nil {
			return app.Verification{}, err
		}
		return app.Verification{Limited: true, Detail: NoUserReadDetail}, nil
	case missingPermissions(resp):
		return app.Verification{Limited: true, Detail: NoVoicesReadDetail}, nil
	}
	return app.Verification{}, c.refusal(resp)
}

func (c *Client) get(ctx context.Context, key, path string) (*providers.Response, error) {
	h := http.Header{}
	h.Set("xi-api-key", key)
	return c.call.Do(ctx, providers.Request{Method: http.MethodGet, URL: providers.JoinURL(c.base, path), Header: h})
}

// errorStatus reads the status of ElevenLabs' error body {"detail":
// {"status", "message"}}; "" when there is none (detail may also be a plain
// string).
func errorStatus(resp *providers.Response) string {
	var e struct {
		Detail struct {
			Status string `json:"status"`
		} `json:"detail"`
	}
	_ = json.Unmarshal(resp.Body, &e)
	return e.Detail.Status
}

func missingPermissions(resp *providers.Response) bool {
	status := errorStatus(resp)
	return resp.StatusCode == http.StatusUnauthorized && status == "missing_permissions"
}

// refusal turns an answer other than 200 and missing_permissions into an
// app error.
func (c *Client) refusal(resp *providers.Response) error {
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
		return c.call.Unexpected(resp)
	}
	status := errorStatus(resp)
	msg := fmt.Sprintf("ElevenLabs rejected the API key (%s).", resp.Status())
	if reason := refusalReasons[status]; reason != "" {
		msg = fmt.Sprintf("ElevenLabs rejected the API key (%s): %s.", resp.Status(), reason)
	}
	return &app.Error{Code: app.EVerificationFailed, Message: msg}
}

// refusalReasons say in BYOC's words what ElevenLabs' error statuses mean;
// ElevenLabs' own message is never shown, as a provider's text may repeat
// the key.
var refusalReasons = map[string]string{
	"invalid_api_key":     "the key is not valid",
	"needs_authorization": "no key was received",
}
