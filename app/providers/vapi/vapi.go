// Package vapi is BYOC's client for Vapi's REST API: it verifies an org's
// private API key, creates and updates the org's assistants, and creates
// the HMAC credential the assistants sign their webhooks with. Each call
// uses the key and region of the org it acts for; the region picks the US
// or EU base URL, since a key works only in its own region.
//
// Errors: input refused before Vapi is called, or refused by Vapi's
// validation, is EValidation (with Vapi's reasons, secrets removed); a key
// Vapi refuses is EVerificationFailed; Vapi not reachable, timing out or
// failing is EProviderUnavailable.
package vapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"byoc/app"
	"byoc/app/providers"
)

// MaxNameLength is the longest assistant name Vapi accepts, in characters.
const MaxNameLength = 40

// DefaultModel is the language model CreateAssistant asks for when the spec
// names none.
const DefaultModel = "gpt-4o-mini"

// DefaultServerMessages are the events CreateAssistant asks Vapi to send to
// the assistant's server URL when the spec names none.
var DefaultServerMessages = []string{"status-update", "end-of-call-report", "tool-calls"}

// ErrAssistantNotFound is the cause of the ENotFound error
// UpdateAssistantServer returns when the org's Vapi account has no assistant
// with the id; test it with errors.Is.
var ErrAssistantNotFound = errors.New("vapi: assistant not found")

// ErrCredentialNotFound is the cause of the ENotFound error DeleteCredential
// returns when the org's Vapi account has no credential with the id.
var ErrCredentialNotFound = errors.New("vapi: credential not found")

// The HMAC signing that CreateWebhookCredential asks Vapi for: HMAC-SHA256
// of "{timestamp}.{body}" keyed by the secret, hex-encoded in SignatureHeader,
// with the timestamp in TimestampHeader. This is what BYOC's webhook route
// verifies.
const (
	SigningAlgorithm = "sha256"
	SignatureHeader  = "x-signature"
	TimestampHeader  = "x-timestamp"
	SigningPayload   = "{timestamp}.{body}"
	SigningEncoding  = "hex"
)

// MaxCredentialNameLength is the longest credential name Vapi accepts.
const MaxCredentialNameLength = 40

// Client talks to Vapi's US and EU APIs. It is safe for concurrent use.
type Client struct {
	us, eu string
	call   providers.Caller
}

// New returns a client for the given US and EU base URLs (such as
// https://api.vapi.ai and https://api.eu.vapi.ai). Every call is bounded by
// timeout (providers.DefaultTimeout when not positive); hc nil means a plain
// http.Client.
func New(usBaseURL, euBaseURL string, hc *http.Client, timeout time.Duration) *Client {
	return &Client{us: usBaseURL, eu: euBaseURL, call: providers.NewCaller("Vapi", hc, timeout)}
}

// Assistant is what BYOC needs of a Vapi assistant.
type Assistant struct {
	ID    string
	OrgID string
	Name  string
	// ServerURL is where Vapi sends the assistant's events ("" when unset).
	ServerURL string
}

// Voice picks the voice of an assistant, such as {Provider: "11labs",
// VoiceID: "21m00Tcm4TlvDq8ikWAM"}.
type Voice struct {
	Provider string
	VoiceID  string
}

// AssistantSpec describes an assistant to create.
type AssistantSpec struct {
	// Name is at most MaxNameLength characters.
	Name         string
	FirstMessage string
	// SystemPrompt becomes the model's system message; empty means none.
	SystemPrompt string
	// Model is the OpenAI model; empty means DefaultModel.
	Model string
	// Voice is optional; nil leaves Vapi's default voice.
	Voice *Voice
	// ServerURL receives the assistant's events; ServerSecret, when not
	// empty, is sent by Vapi with each event (X-Vapi-Secret); with
	// ServerCredentialID, Vapi authenticates each event as that credential
	// says (see CreateWebhookCredential).
	ServerURL          string
	ServerSecret       string
	ServerCredentialID string
	// ServerMessages lists the event types sent to ServerURL; nil means
	// DefaultServerMessages.
	ServerMessages []string
}

// Verify checks the org's private key with the cheapest read-only call,
// GET /assistant?limit=1. A config without a key or with an unknown region
// is refused before the call.
func (c *Client) Verify(ctx context.Context, cfg app.VapiConfig) (app.Verification, error) {
	if _, err := c.list(ctx, cfg, "/assistant?limit=1"); err != nil {
		return app.Verification{}, err
	}
	region := "US"
	if cfg.Region == app.VapiEU {
		region = "EU"
	}
	return app.Verification{Detail: fmt.Sprintf("Vapi accepted the API key (%s region).", region)}, nil
}

func (c *Client) list(ctx context.Context, cfg app.VapiConfig, path string) ([]Assistant, error) {
	resp, err := c.do(ctx, cfg, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, c.refusal(resp, cfg)
	}
	var raw []assistantJSON
	if err := c.call.DecodeJSON(resp, &raw); err != nil {
		return nil, err
	}
	out := make([]Assistant, len(raw))
	for i, a := range raw {
		out[i] = a.assistant()
	}
	return out, nil
}

// CreateAssistant creates an assistant in the org's Vapi account and returns
// it. A name longer than MaxNameLength is refused before the call.
func (c *Client) CreateAssistant(ctx context.Context, cfg app.VapiConfig, spec AssistantSpec) (Assistant, error) {
	if n := utf8.RuneCountInString(spec.Name); n > MaxNameLength {
		return Assistant{}, app.ValidationError(map[string]string{
			"name": fmt.Sprintf("Vapi allows at most %d characters in an assistant name (this one has %d).", MaxNameLength, n),
		})
	}
	body, err := json.Marshal(createBody(spec))
	if err != nil {
		return Assistant{}, app.Internal(err)
	}
	resp, err := c.do(ctx, cfg, http.MethodPost, "/assistant", body)
	if err != nil {
		return Assistant{}, err
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated:
	case http.StatusBadRequest:
		return Assistant{}, badRequest(resp, "Vapi refused the assistant: ", cfg, spec.ServerSecret)
	default:
		return Assistant{}, c.refusal(resp, cfg)
	}
	var raw assistantJSON
	if err := c.call.DecodeJSON(resp, &raw); err != nil {
		return Assistant{}, err
	}
	return raw.assistant(), nil
}

// Server is where Vapi sends an assistant's events.
type Server struct {
	URL string
	// Secret, when not empty, is sent by Vapi with each event; empty means
	// the assistant has no secret.
	Secret string
	// CredentialID, when not empty, names the credential Vapi
	// authenticates each event with (see CreateWebhookCredential).
	CredentialID string
}

// UpdateAssistantServer replaces the server settings of the assistant id of
// the org's Vapi account with server, by PATCH /assistant/{id} with the body
// {"server": {"url", "secret", "credentialId"}}, and returns the updated
// assistant. Every other setting of the assistant is left as it is.
//
// An empty Secret or CredentialID is left out of the body. This relies on Vapi replacing the
// assistant's server object as a whole on PATCH (each top-level property of
// the body replaces the stored one; nested objects are not merged), so a
// server without a secret clears a secret set earlier; the timeout and
// headers of the server object go back to Vapi's defaults too. The GET
// response does not reliably tell whether a secret is set, so callers that
// must be sure of the secret call this rather than compare.
//
// An empty id is refused before the call; an assistant Vapi does not know
// (for this key) is ENotFound wrapping ErrAssistantNotFound.
func (c *Client) UpdateAssistantServer(ctx context.Context, cfg app.VapiConfig, id string, server Server) (Assistant, error) {
	if strings.TrimSpace(id) == "" {
		return Assistant{}, app.ValidationError(map[string]string{"assistantId": "Enter the Vapi assistant id."})
	}
	body, err := json.Marshal(updateJSON{Server: &serverJSON{URL: server.URL, Secret: server.Secret, CredentialID: server.CredentialID}})
	if err != nil {
		return Assistant{}, app.Internal(err)
	}
	resp, err := c.do(ctx, cfg, http.MethodPatch, "/assistant/"+url.PathEscape(id), body)
	if err != nil {
		return Assistant{}, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return Assistant{}, &app.Error{
			Code:    app.ENotFound,
			Message: "Vapi has no assistant with this id in the connected account.",
			Cause:   ErrAssistantNotFound,
		}
	case http.StatusBadRequest:
		return Assistant{}, badRequest(resp, "Vapi refused the assistant's server settings: ", cfg, server.Secret)
	default:
		return Assistant{}, c.refusal(resp, cfg)
	}
	var raw assistantJSON
	if err := c.call.DecodeJSON(resp, &raw); err != nil {
		return Assistant{}, err
	}
	return raw.assistant(), nil
}

// Credential is what BYOC needs of a credential in an org's Vapi account.
type Credential struct {
	ID   string
	Name string
}

// CreateWebhookCredential creates, by POST /credential, a webhook
// credential named name in the org's Vapi account whose authentication plan
// makes Vapi sign every request of a server that uses it (server.credentialId)
// with an HMAC of secret: HMAC-SHA256 over "{timestamp}.{body}", hex, in
// the x-signature header, the timestamp in x-timestamp (see the Signing
// constants). An empty secret, and a name longer than
// MaxCredentialNameLength, are refused before the call.
func (c *Client) CreateWebhookCredential(ctx context.Context, cfg app.VapiConfig, name, secret string) (Credential, error) {
	if secret == "" {
		return Credential{}, app.ValidationError(map[string]string{"secret": "A signing credential needs a secret."})
	}
	if n := utf8.RuneCountInString(name); n == 0 || n > MaxCredentialNameLength {
		return Credential{}, app.ValidationError(map[string]string{
			"name": fmt.Sprintf("Vapi needs a credential name of 1 to %d characters (this one has %d).", MaxCredentialNameLength, n),
		})
	}
	body, err := json.Marshal(credentialJSON{Provider: "webhook", Name: name, AuthenticationPlan: hmacPlanJSON{
		Type: "hmac", SecretKey: secret, Algorithm: SigningAlgorithm, SignatureHeader: SignatureHeader,
		TimestampHeader: TimestampHeader, IncludeTimestamp: true, PayloadFormat: SigningPayload, SignatureEncoding: SigningEncoding,
	}})
	if err != nil {
		return Credential{}, app.Internal(err)
	}
	resp, err := c.do(ctx, cfg, http.MethodPost, "/credential", body)
	if err != nil {
		return Credential{}, err
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated:
	case http.StatusBadRequest:
		return Credential{}, badRequest(resp, "Vapi refused the webhook signing credential: ", cfg, secret)
	default:
		return Credential{}, c.refusal(resp, cfg)
	}
	var raw struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := c.call.DecodeJSON(resp, &raw); err != nil {
		return Credential{}, err
	}
	return Credential{ID: raw.ID, Name: raw.Name}, nil
}

// DeleteCredential deletes the credential id of the org's Vapi account by
// DELETE /credential/{id}. An empty id is refused before the call; a
// credential Vapi does not know (for this key) is ENotFound wrapping
// ErrCredentialNotFound.
func (c *Client) DeleteCredential(ctx context.Context, cfg app.VapiConfig, id string) error {
	if strings.TrimSpace(id) == "" {
		return app.ValidationError(map[string]string{"credentialId": "Name the Vapi credential to delete."})
	}
	resp, err := c.do(ctx, cfg, http.MethodDelete, "/credential/"+url.PathEscape(id), nil)
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
		return nil
	case http.StatusNotFound:
		return &app.Error{Code: app.ENotFound, Message: "Vapi has no credential with this id in the connected account.",
			Cause: ErrCredentialNotFound}
	}
	return c.refusal(resp, cfg)
}

// badRequest turns Vapi's 400 answer into an EValidation error whose message
// is prefix followed by Vapi's reasons, without anything that may repeat
// cfg or secret (see providers.CleanReason).
func badRequest(resp *providers.Response, prefix string, cfg app.VapiConfig, secret string) error {
	var e errorJSON
	_ = json.Unmarshal(resp.Body, &e)
	reason := providers.CleanReason(strings.Join(e.messages(), "; "), cfg, secret)
	if reason == "" {
		reason = "no reason given."
	}
	return &app.Error{Code: app.EValidation, Message: prefix + reason}
}

// do sends one request with the org's key to the base URL of its region.
func (c *Client) do(ctx context.Context, cfg app.VapiConfig, method, path string, body []byte) (*providers.Response, error) {
	var base string
	switch cfg.Region {
	case app.VapiUS, "":
		base = c.us
	case app.VapiEU:
		base = c.eu
	default:
		return nil, app.ValidationError(map[string]string{"region": "Choose the US or EU region."})
	}
	if strings.TrimSpace(cfg.APIKey.Reveal()) == "" {
		return nil, app.Errorf(app.EValidation, "Enter your Vapi private API key.")
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+cfg.APIKey.Reveal())
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	return c.call.Do(ctx, providers.Request{Method: method, URL: providers.JoinURL(base, path), Header: h, Body: body})
}

// refusal turns a 4xx answer other than the ones a method handles itself
// into an app error.
func (c *Client) refusal(resp *providers.Response, cfg app.VapiConfig) error {
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		msg := fmt.Sprintf("Vapi rejected the API key (%s).", resp.Status())
		if cfg.Region == app.VapiEU {
			msg += " Check that it is a private key of your EU organization."
		} else {
			msg += " Check that it is the private key (not the public one) of a US organization."
		}
		return &app.Error{Code: app.EVerificationFailed, Message: msg}
	}
	return c.call.Unexpected(resp)
}

// assistantJSON is the part of Vapi's assistant object BYOC reads.
type assistantJSON struct {
	ID     string `json:"id"`
	OrgID  string `json:"orgId"`
	Name   string `json:"name"`
	Server *struct {
		URL string `json:"url"`
	} `json:"server"`
	ServerURL string `json:"serverUrl"` // legacy
}

func (a assistantJSON) assistant() Assistant {
	out := Assistant{ID: a.ID, OrgID: a.OrgID, Name: a.Name, ServerURL: a.ServerURL}
	if a.Server != nil && a.Server.URL != "" {
		out.ServerURL = a.Server.URL
	}
	return out
}

// errorJSON is Vapi's error body; message is a string or a list of strings.
type errorJSON struct {
	Message json.RawMessage `json:"message"`
}

func (e errorJSON) messages() []string {
	var list []string
	if json.Unmarshal(e.Message, &list) == nil {
		return list
	}
	var one string
	if json.Unmarshal(e.Message, &one) == nil && one != "" {
		return []string{one}
	}
	return nil
}

// createJSON is the body of POST /assistant.
type createJSON struct {
	Name           string      `json:"name,omitempty"`
	FirstMessage   string      `json:"firstMessage,omitempty"`
	Model          modelJSON   `json:"model"`
	Voice          *voiceJSON  `json:"voice,omitempty"`
	Server         *serverJSON `json:"server,omitempty"`
	ServerMessages []string    `json:"serverMessages"`
}

type modelJSON struct {
	Provider string        `json:"provider"`
	Model    string        `json:"model"`
	Messages []messageJSON `json:"messages,omitempty"`
}

type messageJSON struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type voiceJSON struct {
	Provider string `json:"provider"`
	VoiceID  string `json:"voiceId"`
}

// updateJSON is the body of PATCH /assistant/{id}.
type updateJSON struct {
	Server *serverJSON `json:"server,omitempty"`
}

type serverJSON struct {
	URL          string `json:"url"`
	Secret       string `json:"secret,omitempty"`
	CredentialID string `json:"credentialId,omitempty"`
}

// credentialJSON is the body of POST /credential for a webhook credential.
type credentialJSON struct {
	Provider           string       `json:"provider"`
	Name               string       `json:"name"`
	AuthenticationPlan hmacPlanJSON `json:"authenticationPlan"`
}

type hmacPlanJSON struct {
	Type              string `json:"type"`
	SecretKey         string `json:"secretKey"`
	Algorithm         string `json:"algorithm"`
	SignatureHeader   string `json:"signatureHeader"`
	TimestampHeader   string `json:"timestampHeader"`
	IncludeTimestamp  bool   `json:"includeTimestamp"`
	PayloadFormat     string `json:"payloadFormat"`
	SignatureEncoding string `json:"signatureEncoding"`
}

func createBody(spec AssistantSpec) createJSON {
	b := createJSON{
		Name:           spec.Name,
		FirstMessage:   spec.FirstMessage,
		Model:          modelJSON{Provider: "openai", Model: spec.Model},
		ServerMessages: spec.ServerMessages,
	}
	if b.Model.Model == "" {
		b.Model.Model = DefaultModel
	}
	if spec.SystemPrompt != "" {
		b.Model.Messages = []messageJSON{{Role: "system", Content: spec.SystemPrompt}}
	}
	if spec.Voice != nil {
		b.Voice = &voiceJSON{Provider: spec.Voice.Provider, VoiceID: spec.Voice.VoiceID}
	}
	if spec.ServerURL != "" {
		b.Server = &serverJSON{URL: spec.ServerURL, Secret: spec.ServerSecret, CredentialID: spec.ServerCredentialID}
	}
	if b.ServerMessages == nil {
		b.ServerMessages = DefaultServerMessages
	}
	return b
}
