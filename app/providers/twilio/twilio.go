// Package twilio is BYOC's client for Twilio's REST API: it verifies an org's
// Account SID and Auth Token and sends SMS and WhatsApp messages from the
// org's own numbers.
//
// Errors: input refused before Twilio is called, or a message Twilio
// refuses (its reason, cleaned by providers.CleanReason, and error code in
// the message), is EValidation; credentials Twilio refuses (by status and
// error code, never Twilio's text), or an account that is not active
// (suspended or closed are named), are EVerificationFailed;
// Twilio not reachable, timing out or failing is EProviderUnavailable.
package twilio

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"byoc/app"
	"byoc/app/providers"
)

// accountSIDPattern is the form of an Account SID: "AC" and 32 hexadecimal
// digits.
var accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)

// Client talks to Twilio's API. It is safe for concurrent use.
type Client struct {
	base string
	call providers.Caller
}

// New returns a client for the given base URL (such as
// https://api.twilio.com). Every call is bounded by timeout
// (providers.DefaultTimeout when not positive); hc nil means a plain
// http.Client.
func New(baseURL string, hc *http.Client, timeout time.Duration) *Client {
	return &Client{base: baseURL, call: providers.NewCaller("Twilio", hc, timeout)}
}

// Verify reads the org's account with its Account SID and Auth Token. A
// malformed SID or an empty token is refused before the call.
func (c *Client) Verify(ctx context.Context, cfg app.TwilioConfig) (app.Verification, error) {
	resp, err := c.do(ctx, cfg, http.MethodGet, "/2010-04-01/Accounts/"+cfg.AccountSID+".json", nil)
	if err != nil {
		return app.Verification{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return app.Verification{}, c.refusal(resp, cfg, "")
	}
	var acct struct {
		Status       string `json:"status"`
		FriendlyName string `json:"friendly_name"`
	}
	if err := c.call.DecodeJSON(resp, &acct); err != nil {
		return app.Verification{}, err
	}
	switch acct.Status {
	case "active":
		name := strings.TrimSuffix(providers.CleanReason(acct.FriendlyName, cfg), ".")
		if name == "" {
			return app.Verification{Detail: "The Twilio account is active."}, nil
		}
		return app.Verification{Detail: fmt.Sprintf("The Twilio account %q is active.", name)}, nil
	case "":
		return app.Verification{}, c.call.Unexpected(resp)
	}
	status := "not active"
	if acct.Status == "suspended" || acct.Status == "closed" {
		status = acct.Status + ", not active"
	}
	return app.Verification{}, &app.Error{
		Code: app.EVerificationFailed,
		Message: fmt.Sprintf("The Twilio account is %s: it cannot send messages until it is "+
			"reactivated in the Twilio Console.", status),
	}
}

// SendMessage sends m with the org's credentials and returns the message SID
// Twilio assigned. A message without a number or a body is refused before
// the call.
func (c *Client) SendMessage(ctx context.Context, cfg app.TwilioConfig, m app.Message) (string, error) {
	if m.Channel == "" {
		m.Channel = app.ChannelSMS
	}
	if m.From == "" {
		m.From = cfg.PhoneNumber
		if m.Channel == app.ChannelWhatsApp {
			m.From = cfg.WhatsAppNumber
		}
	}
	to := strings.TrimPrefix(strings.TrimSpace(m.To), "whatsapp:")
	from := strings.TrimPrefix(strings.TrimSpace(m.From), "whatsapp:")
	fields := map[string]string{}
	if to == "" {
		fields["to"] = "Enter the number to send to."
	}
	if from == "" {
		fields["from"] = "No number to send from: add the org's Twilio number first."
	}
	if strings.TrimSpace(m.Body) == "" {
		fields["body"] = "Enter the message text."
	}
	switch m.Channel {
	case app.ChannelSMS:
	case app.ChannelWhatsApp:
		to, from = "whatsapp:"+to, "whatsapp:"+from
	default:
		fields["channel"] = "Choose SMS or WhatsApp."
	}
	if err := app.ValidationError(fields); err != nil {
		return "", err
	}

	form := url.Values{"To": {to}, "From": {from}, "Body": {m.Body}}
	resp, err := c.do(ctx, cfg, http.MethodPost, "/2010-04-01/Accounts/"+cfg.AccountSID+"/Messages.json", form)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", c.refusal(resp, cfg, "the message")
	}
	var msg struct {
		SID string `json:"sid"`
	}
	if err := c.call.DecodeJSON(resp, &msg); err != nil {
		return "", err
	}
	if msg.SID == "" {
		return "", c.call.Unexpected(resp)
	}
	return msg.SID, nil
}

// do checks the credentials' form and sends one request with Basic auth.
// The Account SID is part of the URL path (not a secret); the Auth Token
// goes into the Authorization header only.
func (c *Client) do(ctx context.Context, cfg app.TwilioConfig, method, path string, form url.Values) (*providers.Response, error) {
	// The SID goes into the URL path: nothing but its documented form may.
	if !accountSIDPattern.MatchString(cfg.AccountSID) || strings.TrimSpace(cfg.AuthToken.Reveal()) == "" {
		return nil, app.Errorf(app.EValidation,
			"The Twilio credentials are incomplete: an Account SID (AC followed by 32 hexadecimal characters) and an Auth Token are needed.")
	}
	h := http.Header{}
	h.Set("Authorization", providers.BasicAuth(cfg.AccountSID, cfg.AuthToken.Reveal()))
	var body []byte
	if form != nil {
		h.Set("Content-Type", "application/x-www-form-urlencoded")
		body = []byte(form.Encode())
	}
	return c.call.Do(ctx, providers.Request{Method: method, URL: providers.JoinURL(c.base, path), Header: h, Body: body})
}

// codeAccountNotActive is Twilio's error code for requests of a suspended
// or closed account.
const codeAccountNotActive = 20005

// refusal turns a 4xx answer into an app error. what names the refused
// thing ("the message") for 400 answers, or is "" during verification.
func (c *Client) refusal(resp *providers.Response, cfg app.TwilioConfig, what string) error {
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(resp.Body, &e)
	ref := ""
	if e.Code != 0 {
		ref = fmt.Sprintf(", error %d", e.Code)
	}
	switch {
	case e.Code == codeAccountNotActive:
		return &app.Error{Code: app.EVerificationFailed, Message: fmt.Sprintf(
			"Twilio refused the request: the account is not active (%s%s).", resp.Status(), ref)}
	case resp.StatusCode == http.StatusUnauthorized:
		return &app.Error{Code: app.EVerificationFailed, Message: fmt.Sprintf(
			"Twilio rejected the Account SID and Auth Token (%s%s).", resp.Status(), ref)}
	case resp.StatusCode == http.StatusForbidden:
		return &app.Error{Code: app.EVerificationFailed, Message: fmt.Sprintf(
			"Twilio refused access to the account (%s%s).", resp.Status(), ref)}
	case resp.StatusCode == http.StatusNotFound:
		return &app.Error{Code: app.EVerificationFailed, Message: fmt.Sprintf(
			"Twilio has no account with this Account SID for these credentials (%s%s).", resp.Status(), ref)}
	case resp.StatusCode == http.StatusBadRequest && what != "":
		reason := providers.CleanReason(e.Message, cfg)
		if reason == "" {
			reason = "no reason given."
		}
		return &app.Error{Code: app.EValidation, Message: fmt.Sprintf(
			"Twilio refused %s (%s%s): %s", what, resp.Status(), ref, reason)}
	}
	return c.call.Unexpected(resp)
}
