package google_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/providers"
	"byoc/app/providers/google"
	"byoc/app/sandbox"
)

// reconnectMessage is what Google's refusal of a stored authorization reads
// as, with app.ReasonReconnect.
const reconnectMessage = "Google refused the stored authorization (invalid_grant). Connect Google Calendar again."

func TestAuthCodeURL(t *testing.T) {
	h := newHarness(t)
	verifier := oauth2.GenerateVerifier()
	u, err := url.Parse(h.oauth.AuthCodeURL("the-state", verifier))
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Scheme + "://" + u.Host + u.Path; got != h.urls.Auth {
		t.Errorf("endpoint %s, want %s", got, h.urls.Auth)
	}
	p := u.Query()
	sum := sha256.Sum256([]byte(verifier))
	for k, want := range map[string]string{
		"client_id": sandbox.GoogleSandboxClientID, "redirect_uri": callbackURL, "response_type": "code",
		"access_type": "offline", "prompt": "consent", "code_challenge_method": "S256",
		"code_challenge": base64.RawURLEncoding.EncodeToString(sum[:]), "state": "the-state",
		"scope": "https://www.googleapis.com/auth/calendar.events openid email",
	} {
		if got := p.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if p.Has("code_verifier") || strings.Contains(u.String(), verifier) {
		t.Error("the authorization URL carries the PKCE verifier")
	}
}

func TestExchange(t *testing.T) {
	ctx := context.Background()

	t.Run("grants tokens, scopes and the account", func(t *testing.T) {
		h := newHarness(t)
		tok := h.grant(sandbox.GoogleConsentChoice{Email: "owner@example.com"})
		if tok.AccessToken.IsZero() || tok.RefreshToken.IsZero() || tok.IDToken == "" {
			t.Fatalf("token %+v: want an access, a refresh and an id token", tok)
		}
		if !slices.Contains(tok.Scopes, google.ScopeEvents) || !google.HasCalendarScope(tok.Scopes) {
			t.Errorf("scopes %v, want the calendar events scope", tok.Scopes)
		}
		if d := tok.Expiry.Sub(h.clock.Now()); d < 59*time.Minute || d > time.Hour {
			t.Errorf("expiry in %v by the given clock, want about an hour", d)
		}
		email, err := h.oauth.EmailFromIDToken(tok.IDToken)
		if h.note(err) != nil || email != "owner@example.com" {
			t.Errorf("EmailFromIDToken = %q, %v", email, err)
		}
		h.tap.add(tok.AccessToken.Reveal(), tok.RefreshToken.Reveal(), tok.IDToken)
	})

	// consent returns an authorization code and its verifier.
	consent := func(h *harness) (code, verifier string) {
		t.Helper()
		verifier = oauth2.GenerateVerifier()
		loc, err := sandbox.GoogleConsent(ctx, nil, h.oauth.AuthCodeURL("state", verifier), sandbox.GoogleConsentChoice{})
		if err != nil {
			t.Fatal(err)
		}
		return loc.Query().Get("code"), verifier
	}
	tests := []struct {
		name     string
		exchange func(h *harness) error
		wantCode string
		wantMsg  string
	}{
		{"wrong PKCE verifier", func(h *harness) error {
			code, _ := consent(h)
			_, err := h.oauth.Exchange(ctx, code, strings.Repeat("w", 43), h.clock.Now())
			return err
		}, app.EVerificationFailed, "Google did not accept the sign-in (invalid_grant). Click Connect to start again."},
		{"code used twice", func(h *harness) error {
			code, verifier := consent(h)
			if _, err := h.oauth.Exchange(ctx, code, verifier, h.clock.Now()); h.note(err) != nil {
				t.Fatal(err)
			}
			_, err := h.oauth.Exchange(ctx, code, verifier, h.clock.Now())
			return err
		}, app.EVerificationFailed, "Google did not accept the sign-in (invalid_grant)"},
		{"code made up", func(h *harness) error {
			_, err := h.oauth.Exchange(ctx, "4/0made-up-code", oauth2.GenerateVerifier(), h.clock.Now())
			return err
		}, app.EVerificationFailed, "Google did not accept the sign-in (invalid_grant)"},
		{"another redirect URL", func(h *harness) error {
			code, verifier := consent(h)
			cfg := h.oauthConfig()
			cfg.RedirectURL = "https://elsewhere.example.test/callback"
			_, err := google.NewOAuth(cfg).Exchange(ctx, code, verifier, h.clock.Now())
			return err
		}, app.EVerificationFailed, "Google did not accept the sign-in (redirect_uri_mismatch)"},
		{"wrong client secret", func(h *harness) error {
			code, verifier := consent(h)
			cfg := h.oauthConfig()
			cfg.ClientSecret = app.NewSecret("not-the-client-secret")
			_, err := google.NewOAuth(cfg).Exchange(ctx, code, verifier, h.clock.Now())
			return err
		}, app.EUnavailable, "Google refused this server's OAuth client (invalid_client)"},
		{"token endpoint unreachable", func(h *harness) error {
			code, verifier := consent(h)
			cfg := h.oauthConfig()
			cfg.TokenURL = apptest.ClosedURL(t) + "/token"
			_, err := google.NewOAuth(cfg).Exchange(ctx, code, verifier, h.clock.Now())
			return err
		}, app.EProviderUnavailable, "Google could not be reached (connection refused)"},
		{"server without a client", func(h *harness) error {
			code, verifier := consent(h)
			cfg := h.oauthConfig()
			cfg.ClientID, cfg.ClientSecret = "", app.Secret{}
			_, err := google.NewOAuth(cfg).Exchange(ctx, code, verifier, h.clock.Now())
			return err
		}, app.ENotConfigured, "Google Calendar is not set up on this server."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			err := h.note(tt.exchange(h))
			wantCode(t, err, tt.wantCode, tt.wantMsg)
			if app.ErrorReason(err) != "" {
				t.Errorf("reason %q; a refused sign-in asks for no reconnect", app.ErrorReason(err))
			}
		})
	}
}

func TestRefresh(t *testing.T) {
	ctx := context.Background()

	t.Run("a new access token", func(t *testing.T) {
		h := newHarness(t)
		old := h.connect("owner@example.com")
		h.clock.Advance(2 * time.Hour)
		tok, err := h.oauth.Refresh(ctx, old.RefreshToken.Reveal(), h.clock.Now())
		if h.note(err) != nil {
			t.Fatal(err)
		}
		h.tap.add(tok.AccessToken.Reveal())
		if tok.AccessToken.IsZero() || tok.AccessToken.Reveal() == old.AccessToken.Reveal() {
			t.Error("no new access token")
		}
		// Google sent no new refresh token: the one given is the one to keep.
		if !tok.RefreshToken.IsZero() && tok.RefreshToken.Reveal() != old.RefreshToken.Reveal() {
			t.Error("another refresh token came back although Google sent none")
		}
		if d := tok.Expiry.Sub(h.clock.Now()); d < 59*time.Minute || d > time.Hour {
			t.Errorf("expiry in %v by the given clock, want about an hour", d)
		}
		if n := h.g.Refreshes("owner@example.com"); n != 1 {
			t.Errorf("%d refreshes, want 1", n)
		}
	})

	t.Run("a revoked grant needs a reconnect", func(t *testing.T) {
		h := newHarness(t)
		old := h.connect("owner@example.com")
		h.g.RevokeGrants("owner@example.com")
		_, err := h.oauth.Refresh(ctx, old.RefreshToken.Reveal(), h.clock.Now())
		wantCode(t, h.note(err), app.EVerificationFailed, reconnectMessage)
		if app.ErrorReason(err) != app.ReasonReconnect {
			t.Errorf("reason %q, want %q", app.ErrorReason(err), app.ReasonReconnect)
		}
	})

	t.Run("an unknown refresh token needs a reconnect", func(t *testing.T) {
		h := newHarness(t)
		_, err := h.oauth.Refresh(ctx, "1//0unknown-refresh-token", h.clock.Now())
		wantCode(t, h.note(err), app.EVerificationFailed, reconnectMessage)
		if app.ErrorReason(err) != app.ReasonReconnect {
			t.Errorf("reason %q, want %q", app.ErrorReason(err), app.ReasonReconnect)
		}
	})

	t.Run("server without a client", func(t *testing.T) {
		h := newHarness(t)
		cfg := h.oauthConfig()
		cfg.ClientID, cfg.ClientSecret = "", app.Secret{}
		o := google.NewOAuth(cfg)
		if o.Configured() {
			t.Fatal("Configured() = true without a client")
		}
		if !h.oauth.Configured() {
			t.Fatal("Configured() = false with a client")
		}
		_, err := o.Refresh(ctx, "1//0some-refresh-token", h.clock.Now())
		wantCode(t, h.note(err), app.ENotConfigured, "Google Calendar is not set up on this server.")
		if n := h.g.Refreshes(sandbox.GoogleDefaultEmail); n != 0 {
			t.Errorf("%d refreshes reached Google", n)
		}
	})
}

func TestRevoke(t *testing.T) {
	ctx := context.Background()

	t.Run("the refresh token revokes the grant", func(t *testing.T) {
		h := newHarness(t)
		cfg := h.connect("owner@example.com")
		if err := h.oauth.Revoke(ctx, cfg.RefreshToken.Reveal()); h.note(err) != nil {
			t.Fatal(err)
		}
		if !h.g.IsRevoked(cfg.RefreshToken.Reveal()) || !h.g.IsRevoked(cfg.AccessToken.Reveal()) {
			t.Fatal("the grant was not revoked")
		}
		_, err := h.oauth.Refresh(ctx, cfg.RefreshToken.Reveal(), h.clock.Now())
		wantCode(t, h.note(err), app.EVerificationFailed, reconnectMessage)
	})

	t.Run("the access token revokes the grant", func(t *testing.T) {
		h := newHarness(t)
		cfg := h.connect("owner@example.com")
		if err := h.oauth.Revoke(ctx, cfg.AccessToken.Reveal()); h.note(err) != nil {
			t.Fatal(err)
		}
		if !h.g.IsRevoked(cfg.RefreshToken.Reveal()) {
			t.Fatal("the grant was not revoked")
		}
	})

	t.Run("without a client", func(t *testing.T) {
		h := newHarness(t)
		cfg := h.connect("owner@example.com")
		oc := h.oauthConfig()
		oc.ClientID, oc.ClientSecret = "", app.Secret{}
		if err := google.NewOAuth(oc).Revoke(ctx, cfg.RefreshToken.Reveal()); h.note(err) != nil {
			t.Fatal(err)
		}
		if !h.g.IsRevoked(cfg.RefreshToken.Reveal()) {
			t.Fatal("the grant was not revoked")
		}
	})

	t.Run("refusals", func(t *testing.T) {
		h := newHarness(t)
		cfg := h.connect("owner@example.com")
		err := h.oauth.Revoke(ctx, "1//0unknown-token")
		wantCode(t, h.note(err), app.EProviderUnavailable, "Google did not revoke the authorization (400 Bad Request).")

		h.g.FailRevocations(true)
		err = h.oauth.Revoke(ctx, cfg.RefreshToken.Reveal())
		wantCode(t, h.note(err), app.EProviderUnavailable, "503 Service Unavailable")

		oc := h.oauthConfig()
		oc.RevokeURL = apptest.ClosedURL(t) + "/revoke"
		err = google.NewOAuth(oc).Revoke(ctx, cfg.RefreshToken.Reveal())
		wantCode(t, h.note(err), app.EProviderUnavailable, "could not be reached (connection refused)")

		if h.g.IsRevoked(cfg.RefreshToken.Reveal()) {
			t.Fatal("a failed revocation revoked the grant")
		}
		if h.g.RevokeRequests() != 2 {
			t.Errorf("%d revocation requests reached Google, want 2", h.g.RevokeRequests())
		}
	})
}

// The token endpoint's answers map to errors by what the caller can do
// about them, and no error quotes the answer.
func TestTokenEndpointErrors(t *testing.T) {
	const description = "description-that-must-not-leak"
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		wantCode    string
		// wantExchange and wantRefresh are in the messages of Exchange and
		// Refresh; wantReason is the refresh error's reason.
		wantExchange, wantRefresh string
		wantReason                string
	}{
		{"rate limited", 429, "application/json", `{"error":"rate_limit_exceeded","error_description":"` + description + `"}`,
			app.EProviderUnavailable, "Google is not available right now (429 Too Many Requests). Try again.",
			"Google is not available right now (429 Too Many Requests). Try again.", ""},
		{"server error", 500, "application/json", `{"error":"internal_failure","error_description":"` + description + `"}`,
			app.EProviderUnavailable, "Google is not available right now (500 Internal Server Error).",
			"Google is not available right now (500 Internal Server Error).", ""},
		{"unavailable", 503, "text/html", "<html>" + description + "</html>",
			app.EProviderUnavailable, "Google is not available right now (503 Service Unavailable).",
			"Google is not available right now (503 Service Unavailable).", ""},
		{"invalid client", 401, "application/json", `{"error":"invalid_client","error_description":"` + description + `"}`,
			app.EUnavailable, "Google refused this server's OAuth client (invalid_client)",
			"Google refused this server's OAuth client (invalid_client)", ""},
		{"unauthorized client", 400, "application/json", `{"error":"unauthorized_client","error_description":"` + description + `"}`,
			app.EUnavailable, "Google refused this server's OAuth client (unauthorized_client)",
			"Google refused this server's OAuth client (unauthorized_client)", ""},
		{"invalid grant", 400, "application/json", `{"error":"invalid_grant","error_description":"` + description + `"}`,
			app.EVerificationFailed, "Google did not accept the sign-in (invalid_grant). Click Connect to start again.",
			reconnectMessage, app.ReasonReconnect},
		{"an error code that is not one", 400, "application/json", `{"error":"<b>` + description + `</b>"}`,
			app.EVerificationFailed, "Google did not accept the sign-in (unknown_error).",
			"Google refused the stored authorization (unknown_error).", app.ReasonReconnect},
		{"no error code", 400, "text/plain", description,
			app.EProviderUnavailable, "Google gave an unexpected answer (400 Bad Request). Try again later.",
			"Google gave an unexpected answer (400 Bad Request). Try again later.", ""},
		{"unreadable success", 200, "application/json", `{"access_token": "` + description,
			app.EProviderUnavailable, "Google gave an answer that could not be read. Try again later.",
			"Google gave an answer that could not be read. Try again later.", ""},
		{"success without a token", 200, "application/json", `{"token_type":"Bearer","note":"` + description + `"}`,
			app.EProviderUnavailable, "Google gave an answer that could not be read. Try again later.",
			"Google gave an answer that could not be read. Try again later.", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			t.Cleanup(srv.Close)
			o := google.NewOAuth(google.OAuthConfig{ClientID: "client-1", ClientSecret: app.NewSecret("client-secret-1"),
				RedirectURL: callbackURL, AuthURL: srv.URL + "/auth", TokenURL: srv.URL + "/token", Timeout: 2 * time.Second})
			now := time.Now()
			_, exErr := o.Exchange(context.Background(), "4/0the-code", oauth2.GenerateVerifier(), now)
			_, reErr := o.Refresh(context.Background(), "1//0the-refresh-token", now)
			for _, c := range []struct {
				op, want, reason string
				err              error
			}{{"Exchange", tt.wantExchange, "", exErr}, {"Refresh", tt.wantRefresh, tt.wantReason, reErr}} {
				if app.ErrorCode(c.err) != tt.wantCode || !strings.Contains(app.ErrorMessage(c.err), c.want) {
					t.Errorf("%s: %v; want %s containing %q", c.op, c.err, tt.wantCode, c.want)
				}
				if app.ErrorReason(c.err) != c.reason {
					t.Errorf("%s: reason %q, want %q", c.op, app.ErrorReason(c.err), c.reason)
				}
				if c.err != nil {
					for _, s := range []string{description, "client-secret-1", "the-code", "the-refresh-token"} {
						if strings.Contains(c.err.Error(), s) || strings.Contains(app.ErrorMessage(c.err), s) {
							t.Errorf("%s: the error quotes %q: %v", c.op, s, c.err)
						}
					}
				}
			}
		})
	}
}

func TestOAuthSettings(t *testing.T) {
	if got := google.NewOAuth(google.OAuthConfig{}).Timeout(); got != providers.DefaultTimeout {
		t.Errorf("default timeout %v, want %v", got, providers.DefaultTimeout)
	}
	if got := google.NewOAuth(google.OAuthConfig{Timeout: 3 * time.Second}).Timeout(); got != 3*time.Second {
		t.Errorf("timeout %v, want 3s", got)
	}
	for _, tt := range []struct {
		name string
		cfg  google.OAuthConfig
		want bool
	}{
		{"id and secret", google.OAuthConfig{ClientID: "id", ClientSecret: app.NewSecret("secret")}, true},
		{"no secret", google.OAuthConfig{ClientID: "id"}, false},
		{"no id", google.OAuthConfig{ClientSecret: app.NewSecret("secret")}, false},
		{"nothing", google.OAuthConfig{}, false},
	} {
		if got := google.NewOAuth(tt.cfg).Configured(); got != tt.want {
			t.Errorf("%s: Configured() = %v, want %v", tt.name, got, tt.want)
		}
	}
	var none *google.OAuth
	if none.Configured() {
		t.Error("a nil client is configured")
	}
}

func TestSafeCode(t *testing.T) {
	for code, want := range map[string]string{
		"invalid_grant":         "invalid_grant",
		"access_denied":         "access_denied",
		"":                      "unknown_error",
		"Invalid_Grant":         "unknown_error",
		"<script>":              "unknown_error",
		"invalid grant":         "unknown_error",
		strings.Repeat("a", 40): strings.Repeat("a", 40),
		strings.Repeat("a", 41): "unknown_error",
	} {
		if got := google.SafeCode(code); got != want {
			t.Errorf("SafeCode(%q) = %q, want %q", code, got, want)
		}
	}
}

func TestHasCalendarScope(t *testing.T) {
	for _, tt := range []struct {
		scopes []string
		want   bool
	}{
		{google.Scopes, true},
		{[]string{"https://www.googleapis.com/auth/calendar"}, true},
		{[]string{"https://www.googleapis.com/auth/calendar.readonly", "openid", "email"}, false},
		{[]string{"openid", "email"}, false},
		{nil, false},
	} {
		if got := google.HasCalendarScope(tt.scopes); got != tt.want {
			t.Errorf("HasCalendarScope(%v) = %v, want %v", tt.scopes, got, tt.want)
		}
	}
}
