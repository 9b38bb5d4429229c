// Package google is BYOC's client of Google: the OAuth 2.0 client for web
// server apps (the authorization URL with PKCE S256, the code exchange, the
// refresh and the revocation of tokens, the e-mail of the signed-in account
// from the id_token) and the Calendar API client that reads and books an
// org's primary calendar with the org's own grant.
//
// It holds no state of its own: the connect flow runs in the integrations
// service and the grants are kept, refreshed and persisted by the credential
// service (Grants). Every call to Google goes to a URL from OAuthConfig, so
// tests and the demo point it at the stand-in in app/sandbox
// (sandbox.NewGoogle).
//
// Errors are *app.Error values: EValidation (bad calendar input, a request
// the calendar refuses), ENotConfigured (the server has no Google client,
// or the org has no calendar connected), EVerificationFailed (Google
// refused: the code or the stored authorization rejected, scopes missing;
// app.ReasonReconnect when the account must be connected again),
// EProviderUnavailable (Google could not be reached, timed out, answered
// 5xx or limited requests), EUnavailable (Google refused this server's own
// OAuth client) and EInternal. No error or log line ever contains a token,
// the client secret or a PKCE verifier.
package google

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"byoc/app"
	"byoc/app/providers"
)

// Scopes the connect flow asks for: read/write access to calendar events
// (enough for events.list and events.insert on the primary calendar), and
// openid plus email to learn which account was connected.
const (
	ScopeEvents = "https://www.googleapis.com/auth/calendar.events"
	ScopeOpenID = "openid"
	ScopeEmail  = "email"
)

// scopeCalendar is the broader calendar scope; a grant holding it instead of
// ScopeEvents works too.
const scopeCalendar = "https://www.googleapis.com/auth/calendar"

// Scopes lists the scopes requested, in order.
var Scopes = []string{ScopeEvents, ScopeOpenID, ScopeEmail}

// OAuthConfig is the server's OAuth client at Google and where Google's
// endpoints are. main fills it from config.Config: ClientID and
// ClientSecret from Google, RedirectURL from Google.CallbackURL and the URLs
// from URLs.GoogleAuth, GoogleToken, GoogleRevoke and GoogleCalendar.
type OAuthConfig struct {
	ClientID     string
	ClientSecret app.Secret
	// RedirectURL is the callback registered with Google
	// (GOOGLE_CALLBACK_URL, normally PUBLIC_URL +
	// "/api/auth/google-calendar/callback").
	RedirectURL string
	// AuthURL, TokenURL and RevokeURL are Google's authorization, token and
	// revocation endpoints; CalendarBaseURL is the Calendar API base
	// (".../calendar/v3").
	AuthURL, TokenURL, RevokeURL, CalendarBaseURL string
	// Timeout bounds each call to Google (default providers.DefaultTimeout).
	Timeout time.Duration
	// HTTPClient sends the calls (default a plain http.Client). Redirects
	// are never followed.
	HTTPClient *http.Client
}

// OAuth is the server's OAuth client at Google together with the endpoints
// it talks to. It is immutable and safe for concurrent use.
type OAuth struct {
	conf         oauth2.Config
	configured   bool
	revokeURL    string
	calendarBase string
	issuers      []string
	hc           *http.Client
	timeout      time.Duration
	calendar     providers.Caller // the Calendar API
	accounts     providers.Caller // the revocation endpoint
}

// NewOAuth returns the OAuth client described by cfg. Without a client id
// or secret it still works for revocation, but Configured reports false and
// the connect flow, refreshes and calendar calls answer ENotConfigured.
//
// Client authentication at the token endpoint sends the id and secret in
// the form body (oauth2.AuthStyleInParams), as Google documents it; this
// also avoids the library's probing of two styles.
func NewOAuth(cfg OAuthConfig) *OAuth {
	hc := &http.Client{}
	if cfg.HTTPClient != nil {
		*hc = *cfg.HTTPClient
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = providers.DefaultTimeout
	}
	o := &OAuth{
		conf: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret.Reveal(),
			RedirectURL:  cfg.RedirectURL,
			Scopes:       Scopes,
			Endpoint: oauth2.Endpoint{
				AuthURL: cfg.AuthURL, TokenURL: cfg.TokenURL, AuthStyle: oauth2.AuthStyleInParams,
			},
		},
		configured:   cfg.ClientID != "" && !cfg.ClientSecret.IsZero(),
		revokeURL:    cfg.RevokeURL,
		calendarBase: strings.TrimRight(cfg.CalendarBaseURL, "/"),
		hc:           hc,
		timeout:      timeout,
		calendar:     providers.NewCaller("Google Calendar", hc, timeout),
		accounts:     providers.NewCaller("Google", hc, timeout),
	}
	o.issuers = []string{"https://accounts.google.com", "accounts.google.com"}
	for _, u := range []string{cfg.AuthURL, cfg.TokenURL} {
		if origin := originOf(u); origin != "" {
			o.issuers = append(o.issuers, origin)
		}
	}
	return o
}

// Configured reports whether the server has a Google OAuth client, that is
// whether the Google Calendar card can offer "Connect".
func (o *OAuth) Configured() bool { return o != nil && o.configured }

// String describes the client without its secret.
func (o *OAuth) String() string {
	return fmt.Sprintf("google.OAuth(client %q, configured %v)", o.conf.ClientID, o.configured)
}

// GoString describes the client without its secret, also for %#v.
func (o *OAuth) GoString() string { return o.String() }

// Timeout is the bound of each call to Google.
func (o *OAuth) Timeout() time.Duration { return o.timeout }

// AuthCodeURL is the authorization request for state, asking for Scopes
// with offline access and forced consent (so a refresh token always comes
// back) and PKCE S256 from verifier.
func (o *OAuth) AuthCodeURL(state, verifier string) string {
	return o.conf.AuthCodeURL(state, oauth2.AccessTypeOffline, oauth2.ApprovalForce, oauth2.S256ChallengeOption(verifier))
}

func (o *OAuth) clientContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, o.hc)
}

// Exchange redeems an authorization code with its PKCE verifier and returns
// what Google granted, its expiry told by the clock now. ENotConfigured
// without an OAuth client; a refused code is EVerificationFailed.
func (o *OAuth) Exchange(ctx context.Context, code, verifier string, now time.Time) (app.OAuthToken, error) {
	if !o.Configured() {
		return app.OAuthToken{}, errNotSetUp()
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	tok, err := o.conf.Exchange(o.clientContext(ctx), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return app.OAuthToken{}, tokenError(err, "Google did not accept the sign-in (%s). Click Connect to start again.", "")
	}
	return grantOf(tok, now), nil
}

// Refresh asks for a new access token with refreshToken, its expiry told by
// the clock now; the token returned carries refreshToken again when Google
// sends no new one. A refusal (invalid_grant) is EVerificationFailed with
// app.ReasonReconnect.
func (o *OAuth) Refresh(ctx context.Context, refreshToken string, now time.Time) (app.OAuthToken, error) {
	if !o.Configured() {
		return app.OAuthToken{}, errNotSetUp()
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	// An empty access token is never valid, so this always refreshes.
	tok, err := o.conf.TokenSource(o.clientContext(ctx), &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		return app.OAuthToken{}, tokenError(err, reconnectMessage, app.ReasonReconnect)
	}
	return grantOf(tok, now), nil
}

// grantOf is what tok grants, told by the clock now.
func grantOf(tok *oauth2.Token, now time.Time) app.OAuthToken {
	idToken, _ := tok.Extra("id_token").(string)
	return app.OAuthToken{
		AccessToken:  app.NewSecret(tok.AccessToken),
		RefreshToken: app.NewSecret(tok.RefreshToken),
		Expiry:       expiryOf(tok, now),
		Scopes:       scopesOf(tok),
		IDToken:      idToken,
	}
}

// errNotSetUp answers every call that needs the server's OAuth client when
// there is none.
func errNotSetUp() error {
	return app.Errorf(app.ENotConfigured, "Google Calendar is not set up on this server.")
}

// Revoke revokes token (a refresh token revokes the whole grant) at the
// revocation endpoint. Any answer but 200 is an error naming the status.
func (o *OAuth) Revoke(ctx context.Context, token string) error {
	resp, err := o.accounts.Do(ctx, providers.Request{
		Method: http.MethodPost,
		URL:    o.revokeURL,
		Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		Body:   []byte(url.Values{"token": {token}}.Encode()),
	})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &app.Error{Code: app.EProviderUnavailable,
			Message: fmt.Sprintf("Google did not revoke the authorization (%s).", resp.Status())}
	}
	return nil
}

// reconnectMessage is what the card shows when Google refuses the stored
// authorization (with app.ReasonReconnect); %s is Google's error code.
const reconnectMessage = "Google refused the stored authorization (%s). Connect Google Calendar again."

var errorCodeRE = regexp.MustCompile(`^[a-z_]{1,40}$`)

// SafeCode returns Google's error code when it looks like one, else a
// placeholder, so that nothing odd reaches a message.
func SafeCode(code string) string {
	if errorCodeRE.MatchString(code) {
		return code
	}
	return "unknown_error"
}

// tokenError turns a failure of the token endpoint into an app error.
// refusedFormat (with one %s for Google's error code) is the message for
// invalid_grant and other refusals of the request, refusedReason their
// app.Error Reason. The cause keeps only the status and the error code: the
// library's error text may quote the body.
func tokenError(err error, refusedFormat, refusedReason string) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		code := SafeCode(re.ErrorCode)
		cause := fmt.Errorf("google token endpoint: %d %s", status, code)
		switch {
		case status == http.StatusTooManyRequests || status >= 500:
			return &app.Error{Code: app.EProviderUnavailable, Cause: cause,
				Message: fmt.Sprintf("Google is not available right now (%d %s). Try again.", status, http.StatusText(status))}
		case re.ErrorCode == "invalid_client" || re.ErrorCode == "unauthorized_client":
			return &app.Error{Code: app.EUnavailable, Cause: cause,
				Message: "Google refused this server's OAuth client (" + code + "): the server's Google client ID or secret is wrong. Ask the operator to check them."}
		case re.ErrorCode == "":
			return &app.Error{Code: app.EProviderUnavailable, Cause: cause,
				Message: fmt.Sprintf("Google gave an unexpected answer (%d %s). Try again later.", status, http.StatusText(status))}
		}
		return &app.Error{Code: app.EVerificationFailed, Reason: refusedReason, Cause: cause, Message: fmt.Sprintf(refusedFormat, code)}
	}
	if isTransport(err) {
		return &app.Error{Code: app.EProviderUnavailable, Cause: providers.ScrubURLError(err),
			Message: "Google could not be reached (" + providers.TransportReason(err) + "). Try again."}
	}
	return &app.Error{Code: app.EProviderUnavailable, Cause: providers.ScrubURLError(err),
		Message: "Google gave an answer that could not be read. Try again later."}
}

// isTransport reports whether err is a failure to reach Google at all (as
// opposed to an answer that could not be read).
func isTransport(err error) bool {
	var ue *url.Error
	var netErr net.Error
	return errors.As(err, &ue) || errors.As(err, &netErr) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// originOf returns scheme://host of raw, or "".
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// scopesOf returns the scopes Google reports in a token response (its
// "scope" field), or nil when it sent none.
func scopesOf(tok *oauth2.Token) []string {
	s, _ := tok.Extra("scope").(string)
	return strings.Fields(s)
}

// HasCalendarScope reports whether scopes allow reading and writing events.
func HasCalendarScope(scopes []string) bool {
	for _, s := range scopes {
		if s == ScopeEvents || s == scopeCalendar {
			return true
		}
	}
	return false
}

// expiryOf returns when tok expires by the clock now: from expires_in when
// Google sent it, else the library's Expiry (the zero time when unknown).
func expiryOf(tok *oauth2.Token, now time.Time) time.Time {
	if tok.ExpiresIn > 0 {
		return now.Add(time.Duration(tok.ExpiresIn) * time.Second)
	}
	return tok.Expiry
}
