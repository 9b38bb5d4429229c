// Package resend is BYOC's client for Resend's API: it verifies an org's API
// key, telling a full-access key from a sending-only one.
//
// Errors: a config without a key is EValidation (Resend is not called); a
// key Resend refuses (400, 401 or 403, such as validation_error,
// invalid_api_key or missing_api_key, said in BYOC's words) is
// EVerificationFailed; Resend not reachable, timing out or failing is
// EProviderUnavailable.
package resend

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

// SendingOnlyDetail is the Verification detail of a valid sending-only key.
const SendingOnlyDetail = "sending-only key: can send e-mail but not manage domains"

// refusalReasons say in BYOC's words what Resend's error names mean; Resend's
// own message is never shown, as a provider's text may repeat the key.
var refusalReasons = map[string]string{
	"invalid_api_key":  "the key is not valid",
	"validation_error": "the key is not valid",
	"missing_api_key":  "no key was received",
}

// Client talks to Resend's API. It is safe for concurrent use.
type Client struct {
	base string
	call providers.Caller
}

// New returns a client for the given base URL (such as
// https://api.resend.com). Every call is bounded by timeout
// (providers.DefaultTimeout when not positive); hc nil means a plain
// http.Client.
func New(baseURL string, hc *http.Client, timeout time.Duration) *Client {
	return &Client{base: baseURL, call: providers.NewCaller("Resend", hc, timeout)}
}

// Verify checks the org's key with GET /domains. A full-access key gives a
// Verification naming how many domains are verified; a sending-only key
// (Resend answers 401 restricted_api_key) is valid with Limited set and
// SendingOnlyDetail.
func (c *Client) Verify(ctx context.Context, cfg app.ResendConfig) (app.Verification, error) {
	key := strings.TrimSpace(cfg.APIKey.Reveal())
	if key == "" {
		return app.Verification{}, app.Errorf(app.EValidation, "Enter your Resend API key.")
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+key)
	resp, err := c.call.Do(ctx, providers.Request{Method: http.MethodGet, URL: providers.JoinURL(c.base, "/domains"), Header: h})
	if err != nil {
		return app.Verification{}, err
	}
	if resp.StatusCode == http.StatusOK {
		var list struct {
			Data []struct {
				Status string `json:"status"`
			} `json:"data"`
		}
		if err := c.call.DecodeJSON(resp, &list); err != nil {
			return app.Verification{}, err
		}
		verified := 0
		for _, d := range list.Data {
			if d.Status == "verified" {
				verified++
			}
		}
		return app.Verification{Detail: fmt.Sprintf(
			"full-access key: %d of %d domains verified", verified, len(list.Data))}, nil
	}

	var e struct {
		Name    string `json:"name"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(resp.Body, &e)
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusBadRequest, http.StatusForbidden:
		if resp.StatusCode == http.StatusUnauthorized && e.Name == "restricted_api_key" {
			return app.Verification{Limited: true, Detail: SendingOnlyDetail}, nil
		}
		msg := fmt.Sprintf("Resend rejected the API key (%s).", resp.Status())
		if reason := refusalReasons[e.Name]; reason != "" {
			msg = fmt.Sprintf("Resend rejected the API key (%s): %s.", resp.Status(), reason)
		}
		return app.Verification{}, &app.Error{Code: app.EVerificationFailed, Message: msg}
	}
	return app.Verification{}, c.call.Unexpected(resp)
}

// Email is one message to send through Resend's POST /emails: the sender
// (an address on a domain verified in the key's account), one recipient,
// the subject and a plain-text body.
type Email struct {
	From    string
	To      string
	Subject string
	Text    string
	// IdempotencyKey, when set, is sent as the Idempotency-Key header (at
	// most 256 characters): Resend sends a message once per key within 24
	// hours, answering a repeated request with the first one's id.
	IdempotencyKey string
}

// MaxIdempotencyKey is the longest Idempotency-Key Resend accepts.
const MaxIdempotencyKey = 256

// sendReasons say in BYOC's words why Resend refused to send.
var sendReasons = map[string]string{
	"invalid_api_key":            "the key is not valid",
	"validation_error":           "the message or its sender was refused (is the sender's domain verified?)",
	"missing_api_key":            "no key was received",
	"missing_required_field":     "a required field was missing",
	"invalid_from_address":       "the sender address is not valid",
	"restricted_api_key":         "the key may not send e-mail",
	"invalid_idempotent_request": "the message differs from the one first sent with its idempotency key",
}

// Send sends m with key through POST /emails and returns the id Resend
// gives the message. A refusal (4xx) is EVerificationFailed in BYOC's
// words, never with Resend's text; Resend not reachable, limiting or
// failing is EProviderUnavailable, and so is a 409
// concurrent_idempotent_requests (a request with the same idempotency key
// is still under way: asking again later is answered).
func (c *Client) Send(ctx context.Context, key app.Secret, m Email) (string, error) {
	if len(m.IdempotencyKey) > MaxIdempotencyKey {
		return "", app.Internal(fmt.Errorf("resend: idempotency key of %d characters", len(m.IdempotencyKey)))
	}
	body, err := json.Marshal(map[string]any{"from": m.From, "to": []string{m.To}, "subject": m.Subject, "text": m.Text})
	if err != nil {
		return "", app.Internal(err)
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+strings.TrimSpace(key.Reveal()))
	h.Set("Content-Type", "application/json")
	if m.IdempotencyKey != "" {
		h.Set("Idempotency-Key", m.IdempotencyKey)
	}
	resp, err := c.call.Do(ctx, providers.Request{Method: http.MethodPost, URL: providers.JoinURL(c.base, "/emails"), Header: h, Body: body})
	if err != nil {
		return "", err
	}
	if resp.StatusCode == http.StatusOK {
		var out struct {
			ID string `json:"id"`
		}
		if err := c.call.DecodeJSON(resp, &out); err != nil {
			return "", err
		}
		return out.ID, nil
	}
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
		var e struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(resp.Body, &e)
		if resp.StatusCode == http.StatusConflict && e.Name == "concurrent_idempotent_requests" {
			return "", c.call.Unexpected(resp)
		}
		msg := fmt.Sprintf("Resend refused to send the e-mail (%s).", resp.Status())
		if reason := sendReasons[e.Name]; reason != "" {
			msg = fmt.Sprintf("Resend refused to send the e-mail (%s): %s.", resp.Status(), reason)
		}
		return "", &app.Error{Code: app.EVerificationFailed, Message: msg}
	}
	return "", c.call.Unexpected(resp)
}
