package google_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/keyring"
	"byoc/app/providers/google"
	"byoc/app/sandbox"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestConnectFlow(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	const email = "owner@example.com"

	authURL, q := h.start(h.admin, sandbox.GoogleConsentChoice{Email: email})

	t.Run("authorization request", func(t *testing.T) {
		u, err := url.Parse(authURL)
		if err != nil {
			t.Fatal(err)
		}
		p := u.Query()
		for k, want := range map[string]string{
			"client_id": sandbox.GoogleSandboxClientID, "redirect_uri": callbackURL, "response_type": "code",
			"access_type": "offline", "prompt": "consent", "code_challenge_method": "S256",
			"scope": "https://www.googleapis.com/auth/calendar.events openid email",
		} {
			if got := p.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		if raw, err := base64.RawURLEncoding.DecodeString(p.Get("state")); err != nil || len(raw) != 32 {
			t.Errorf("state %q is not 32 random bytes in base64url", p.Get("state"))
		}
		if q.Get("state") != p.Get("state") {
			t.Errorf("Google returned state %q, sent %q", q.Get("state"), p.Get("state"))
		}
	})

	t.Run("pending state is hashed, bound and sealed", func(t *testing.T) {
		state := q.Get("state")
		var stateHash, binding, user string
		var sealed []byte
		var created, expires time.Time
		err := h.db.Pool.QueryRow(ctx, `select state_hash, session_binding, user_id::text, code_verifier, created_at, expires_at
			from oauth_states where org_id = $1`, h.org).Scan(&stateHash, &binding, &user, &sealed, &created, &expires)
		if err != nil {
			t.Fatal(err)
		}
		if stateHash != sha256Hex(state) || binding != sha256Hex(h.binding) || user != h.admin.UserID {
			t.Errorf("row: hash %s binding %s user %s", stateHash, binding, user)
		}
		if got := expires.Sub(created); got != google.StateTTL {
			t.Errorf("valid for %v, want %v", got, google.StateTTL)
		}
		verifier, err := h.kr.Open(sealed, keyring.AAD{Table: google.StatesTable, OrgID: h.org, Provider: "google_calendar/" + stateHash})
		if err != nil {
			t.Fatalf("stored verifier does not open for its row: %v", err)
		}
		sum := sha256.Sum256(verifier)
		u, _ := url.Parse(authURL)
		if base64.RawURLEncoding.EncodeToString(sum[:]) != u.Query().Get("code_challenge") {
			t.Error("the sealed verifier does not match the challenge sent")
		}
		if strings.Contains(string(sealed), string(verifier)) {
			t.Error("the verifier is stored in the clear")
		}
	})

	got, err := h.callback(h.admin, h.binding, q)
	if err != nil || got != email {
		t.Fatalf("Callback = %q, %v", got, err)
	}

	t.Run("grant stored encrypted with the account", func(t *testing.T) {
		cfg := h.stored()
		if cfg.Email != email || cfg.RefreshToken.IsZero() || cfg.AccessToken.IsZero() ||
			!slices.Contains(cfg.Scopes, google.ScopeEvents) {
			t.Fatalf("stored %+v", cfg)
		}
		if d := cfg.Expiry.Sub(h.clock.Now()); d < 59*time.Minute || d > time.Hour {
			t.Errorf("expiry in %v, want about an hour", d)
		}
		var ct []byte
		if err := h.db.Pool.QueryRow(ctx, `select encrypted_config from org_credentials where org_id = $1 and provider = 'google_calendar'`,
			h.org).Scan(&ct); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(ct), cfg.RefreshToken.Reveal()) || strings.Contains(string(ct), email) {
			t.Error("the stored row holds the grant in the clear")
		}
		st := h.status()
		if !st.Connected || st.NeedsAttention || st.Details["email"] != email || st.LastVerified == nil {
			t.Errorf("status %+v", st)
		}
	})

	t.Run("state used up and audit written", func(t *testing.T) {
		var n int
		if err := h.db.Pool.QueryRow(ctx, `select count(*) from oauth_states where org_id = $1`, h.org).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d states left (%v), want 0", n, err)
		}
		e := h.lastAudit()
		if e.Action != google.ActionSave || e.Provider != app.GoogleCalendar || e.Outcome != app.OutcomeSuccess ||
			e.ActorID != h.admin.UserID || e.Detail != "Google Calendar connected as "+email+"." {
			t.Fatalf("audit %+v", e)
		}
	})

	t.Run("connecting again replaces the grant", func(t *testing.T) {
		old := h.stored()
		cfg := h.connect("second@example.com")
		if cfg.Email != "second@example.com" || cfg.RefreshToken.Reveal() == old.RefreshToken.Reveal() {
			t.Fatalf("after reconnecting: %+v", cfg)
		}
	})
}

// TestCallbackRefusals: every refused callback stores nothing, says why in
// plain words and is audited.
func TestCallbackRefusals(t *testing.T) {
	tests := []struct {
		name     string
		run      func(h *harness) error
		wantCode string
		wantMsg  string
	}{
		{
			name: "consent denied",
			run: func(h *harness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{Deny: true})
				_, err := h.callback(h.admin, h.binding, q)
				// The denial used the state up.
				q.Set("code", "4/0forged")
				q.Del("error")
				if _, again := h.callback(h.admin, h.binding, q); app.ErrorCode(again) != app.EValidation {
					h.t.Errorf("state after a denial: %v, want it used up", again)
				}
				return err
			},
			wantCode: app.EVerificationFailed, wantMsg: "Google Calendar access was not granted.",
		},
		{
			name: "state reused",
			run: func(h *harness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				if _, err := h.callback(h.admin, h.binding, q); err != nil {
					h.t.Fatal(err)
				}
				if err := h.creds.Disconnect(context.Background(), h.org, app.GoogleCalendar); err != nil {
					h.t.Fatal(err)
				}
				_, err := h.callback(h.admin, h.binding, q)
				return err
			},
			wantCode: app.EValidation, wantMsg: "already used",
		},
		{
			name: "state from another browser session",
			run: func(h *harness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				_, err := h.callback(h.admin, "csrf-of-another-session", q)
				// Taken, so the right session cannot use it afterwards either.
				if _, again := h.callback(h.admin, h.binding, q); app.ErrorCode(again) != app.EValidation {
					h.t.Errorf("state after the refusal: %v, want it used up", again)
				}
				return err
			},
			wantCode: app.EForbidden, wantMsg: "another browser session",
		},
		{
			name: "callback without a session binding",
			run: func(h *harness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				_, err := h.callback(h.admin, "", q)
				return err
			},
			wantCode: app.EForbidden, wantMsg: "another browser session",
		},
		{
			name: "another admin of the org",
			run: func(h *harness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				_, err := h.callback(h.addUser(h.org, app.RoleAdmin), h.binding, q)
				return err
			},
			wantCode: app.EForbidden, wantMsg: "another user",
		},
		{
			name: "another org",
			run: func(h *harness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				otherOrg, other := h.seedOrg(app.RoleAdmin)
				_, err := h.callback(other, h.binding, q)
				if n := countStates(h, h.org); n != 1 {
					h.t.Errorf("another org's callback removed the state (%d left)", n)
				}
				var rows int
				_ = h.db.Pool.QueryRow(context.Background(), `select count(*) from org_credentials where org_id = $1`, otherOrg).Scan(&rows)
				if rows != 0 {
					h.t.Errorf("the other org got %d credential rows", rows)
				}
				return err
			},
			wantCode: app.EValidation, wantMsg: "unknown",
		},
		{
			name: "state expired",
			run: func(h *harness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				h.clock.Advance(google.StateTTL + time.Second)
				_, err := h.callback(h.admin, h.binding, q)
				return err
			},
			wantCode: app.EValidation, wantMsg: "expired",
		},
		{
			name: "PKCE verifier wrong",
			run: func(h *harness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				hash := sha256Hex(q.Get("state"))
				forged, err := h.kr.Seal([]byte(strings.Repeat("w", 43)),
					keyring.AAD{Table: google.StatesTable, OrgID: h.org, Provider: "google_calendar/" + hash})
				if err != nil {
					h.t.Fatal(err)
				}
				if _, err := h.db.Pool.Exec(context.Background(), `update oauth_states set code_verifier = $1 where state_hash = $2`,
					forged, hash); err != nil {
					h.t.Fatal(err)
				}
				_, err = h.callback(h.admin, h.binding, q)
				return err
			},
			wantCode: app.EVerificationFailed, wantMsg: "Google did not accept the sign-in (invalid_grant)",
		},
		{
			name: "state missing",
			run: func(h *harness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				q.Del("state")
				_, err := h.callback(h.admin, h.binding, q)
				return err
			},
			wantCode: app.EValidation, wantMsg: "missing its state",
		},
		{
			name: "state made up",
			run: func(h *harness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				q.Set("state", "made-up-state")
				_, err := h.callback(h.admin, h.binding, q)
				return err
			},
			wantCode: app.EValidation, wantMsg: "unknown",
		},
		{
			name: "code missing",
			run: func(h *harness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				q.Del("code")
				_, err := h.callback(h.admin, h.binding, q)
				return err
			},
			wantCode: app.EValidation, wantMsg: "missing its authorization code",
		},
		{
			name: "calendar access unticked",
			run: func(h *harness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{Untick: []string{google.ScopeEvents}})
				before := h.g.RevokeRequests()
				_, err := h.callback(h.admin, h.binding, q)
				if h.g.RevokeRequests() != before+1 {
					h.t.Errorf("the unusable grant was not given back (revocations %d -> %d)", before, h.g.RevokeRequests())
				}
				return err
			},
			wantCode: app.EVerificationFailed, wantMsg: "allow access to your calendar events",
		},
		{
			name: "account email not verified",
			run: func(h *harness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{Email: "someone-unverified@example.com"})
				_, err := h.callback(h.admin, h.binding, q)
				return err
			},
			wantCode: app.EVerificationFailed, wantMsg: "not verified",
		},
		{
			name: "member is not an admin",
			run: func(h *harness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				member := h.admin
				member.Role = app.RoleMember
				_, err := h.callback(member, h.binding, q)
				return err
			},
			wantCode: app.EForbidden, wantMsg: "Only an admin",
		},
		{
			name: "token endpoint unreachable",
			run: func(h *harness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				dead := httptest.NewServer(nil)
				dead.Close()
				cfg := h.oauthConfig()
				cfg.TokenURL = dead.URL + "/token"
				h.lastOrg = h.org
				email, err := h.newService(cfg).Callback(context.Background(), h.admin, h.binding,
					google.CallbackQuery{State: q.Get("state"), Code: q.Get("code")})
				if email != "" {
					h.t.Errorf("email %q on failure", email)
				}
				return h.note(err)
			},
			wantCode: app.EProviderUnavailable, wantMsg: "Google could not be reached (connection refused)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			err := tt.run(h)
			wantCode(t, err, tt.wantCode, tt.wantMsg)
			h.assertNothingStored()
			org := h.lastOrg
			if org == "" {
				org = h.org
			}
			found := false
			for _, e := range h.audits(org, 5) {
				found = found || (e.Action == google.ActionSave && e.Outcome == app.OutcomeFailure && e.Detail == app.ErrorMessage(err))
			}
			if !found {
				t.Errorf("audit %+v; want a failed %s with the message", h.audits(org, 5), google.ActionSave)
			}
		})
	}
}

func countStates(h *harness, org string) int {
	h.t.Helper()
	var n int
	if err := h.db.Pool.QueryRow(context.Background(), `select count(*) from oauth_states where org_id = $1`, org).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func TestConnectURLRefusals(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()

	member := h.addUser(h.org, app.RoleMember)
	_, err := h.svc.ConnectURL(ctx, member, h.binding)
	wantCode(t, h.note(err), app.EForbidden, "Only an admin")

	_, err = h.svc.ConnectURL(ctx, app.Principal{}, h.binding)
	wantCode(t, h.note(err), app.EUnauthorized, "sign in")

	_, err = h.svc.ConnectURL(ctx, h.admin, "")
	wantCode(t, h.note(err), app.EInternal, "")

	if n := countStates(h, h.org); n != 0 {
		t.Fatalf("%d states stored by refused starts", n)
	}

	t.Run("server without a Google client", func(t *testing.T) {
		cfg := h.oauthConfig()
		cfg.ClientID, cfg.ClientSecret = "", app.Secret{}
		svc := h.newService(cfg)
		if svc.Configured() {
			t.Fatal("Configured() = true without a client")
		}
		if !h.svc.Configured() {
			t.Fatal("Configured() = false with a client")
		}
		_, err := svc.ConnectURL(ctx, h.admin, h.binding)
		wantCode(t, h.note(err), app.ENotConfigured, "Google Calendar is not set up on this server.")
		_, err = svc.Token(ctx, h.org)
		wantCode(t, h.note(err), app.ENotConfigured, "not set up on this server")
	})
}
