package integrations_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/config"
	"byoc/app/integrations"
	"byoc/app/keyring"
	"byoc/app/providers/google"
	"byoc/app/sandbox"
	"byoc/app/system/systemtest"
)

// connectGoogle runs Google's sign-in for admin through the service,
// allowing access as the stand-in's default account, and returns the
// stored grant. The env must be made withGoogle.
func (e *env) connectGoogle(t *testing.T, admin app.Principal) app.GoogleCalendarConfig {
	t.Helper()
	ctx := context.Background()
	binding := "csrf-" + apptest.RandomHex(8)
	authURL, err := e.svc.ConnectURL(ctx, admin, binding)
	if err != nil {
		t.Fatal(err)
	}
	back, err := sandbox.GoogleConsent(ctx, nil, authURL, sandbox.GoogleConsentChoice{})
	if err != nil {
		t.Fatal(err)
	}
	q := back.Query()
	if _, err := e.svc.Callback(ctx, admin, binding, integrations.CallbackQuery{
		State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error")}); err != nil {
		t.Fatal(err)
	}
	cfg, err := e.creds.GoogleCalendar(ctx, admin.OrgID)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// gHarness is an env withGoogle, one org with an admin, and the admin's
// browser session binding. At cleanup it checks that no secret that crossed
// the Google stand-in appears in a log line, a noted error or an audit
// entry.
type gHarness struct {
	t       *testing.T
	e       *env
	org     string
	admin   app.Principal
	binding string
	errs    []error
	// lastOrg is the org of the latest callback.
	lastOrg string
}

func newGoogleHarness(t *testing.T, opts ...func(*envConfig)) *gHarness {
	t.Helper()
	e := newEnv(t, append([]func(*envConfig){withGoogle}, opts...)...)
	admin, _ := seedOrg(t, "Google Dental")
	h := &gHarness{t: t, e: e, org: admin.OrgID, admin: admin, binding: "csrf-" + apptest.RandomHex(16)}
	t.Cleanup(h.assertNoSecrets)
	return h
}

// withTokenAnswer rewrites the Google stand-in's successful token answers.
func withTokenAnswer(f func(grantType string, body map[string]any)) func(*envConfig) {
	return func(c *envConfig) { c.tokenAnswer = f }
}

// rebuild returns another integrations service on the harness's database,
// keys, clock and logs, from the configuration as change leaves it.
func (h *gHarness) rebuild(change func(*config.Config)) *integrations.Service {
	h.t.Helper()
	return h.e.build(h.t, change).Integrations
}

// note keeps err for the final secret check and returns it.
func (h *gHarness) note(err error) error {
	if err != nil {
		h.errs = append(h.errs, err)
	}
	return err
}

// start runs ConnectURL and the consent page and returns the callback
// query Google sends back.
func (h *gHarness) start(p app.Principal, c sandbox.GoogleConsentChoice) (authURL string, q url.Values) {
	h.t.Helper()
	authURL, err := h.e.svc.ConnectURL(context.Background(), p, h.binding)
	if h.note(err) != nil {
		h.t.Fatalf("ConnectURL: %v", err)
	}
	loc, err := sandbox.GoogleConsent(context.Background(), nil, authURL, c)
	if err != nil {
		h.t.Fatalf("consent: %v", err)
	}
	return authURL, loc.Query()
}

// callback calls Callback with Google's answer q.
func (h *gHarness) callback(p app.Principal, binding string, q url.Values) (string, error) {
	return h.callbackOf(h.e.svc, p, binding, q)
}

// callbackOf calls svc's Callback with Google's answer q.
func (h *gHarness) callbackOf(svc *integrations.Service, p app.Principal, binding string, q url.Values) (string, error) {
	h.lastOrg = p.OrgID
	email, err := svc.Callback(context.Background(), p, binding, integrations.CallbackQuery{
		State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error"),
	})
	return email, h.note(err)
}

// connect runs the whole flow for the admin as email and fails the test
// unless it succeeds.
func (h *gHarness) connect(email string) app.GoogleCalendarConfig {
	h.t.Helper()
	_, q := h.start(h.admin, sandbox.GoogleConsentChoice{Email: email})
	got, err := h.callback(h.admin, h.binding, q)
	if err != nil || got != email {
		h.t.Fatalf("Callback = %q, %v; want %q", got, err, email)
	}
	return h.stored()
}

// stored returns the org's stored Google config, failing the test when
// there is none.
func (h *gHarness) stored() app.GoogleCalendarConfig {
	h.t.Helper()
	cfg, err := h.e.creds.GoogleCalendar(context.Background(), h.org)
	if err != nil {
		h.t.Fatalf("stored config: %v", err)
	}
	h.e.tap.add(cfg.AccessToken.Reveal(), cfg.RefreshToken.Reveal())
	return cfg
}

// assertNothingStored fails the test when the org has Google credentials.
func (h *gHarness) assertNothingStored() {
	h.t.Helper()
	var n int
	if err := h.e.db.Pool.QueryRow(context.Background(),
		`select count(*) from org_credentials where org_id = $1 and provider = 'google_calendar'`, h.org).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	if n != 0 {
		h.t.Fatalf("%d Google credential rows stored, want none", n)
	}
}

// status returns the org's Google Calendar card state.
func (h *gHarness) status() app.Status {
	h.t.Helper()
	return h.e.statusOf(h.t, h.admin, app.GoogleCalendar)
}

// audits returns the org's newest audit entries, newest first.
func (h *gHarness) audits(org string, n int) []app.AuditEntry {
	h.t.Helper()
	entries, err := h.e.db.AuditLog(context.Background(), org, n)
	if err != nil {
		h.t.Fatal(err)
	}
	return entries
}

// lastAudit returns the org's newest audit entry.
func (h *gHarness) lastAudit() app.AuditEntry {
	h.t.Helper()
	return h.e.lastAudit(h.t, h.org)
}

func (h *gHarness) countStates(org string) int {
	h.t.Helper()
	var n int
	if err := h.e.db.Pool.QueryRow(context.Background(), `select count(*) from oauth_states where org_id = $1`, org).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// assertNoSecrets checks every log line, noted error and audit entry of
// the test for every secret that crossed the stand-in.
func (h *gHarness) assertNoSecrets() {
	var texts []string
	texts = append(texts, h.e.logs.String())
	for _, err := range h.errs {
		texts = append(texts, err.Error(), app.ErrorMessage(err))
	}
	for _, org := range []string{h.org, h.lastOrg} {
		if org == "" {
			continue
		}
		if entries, err := h.e.db.AuditLog(context.Background(), org, 1000); err == nil {
			for _, e := range entries {
				texts = append(texts, e.Detail)
			}
		}
	}
	secrets := h.e.tap.all()
	for _, text := range texts {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				h.t.Errorf("a secret (%d characters, starting %.4q) appears in:\n%s", len(s), s, text)
			}
		}
	}
}

// wantError fails the test unless err has the code and its message
// contains msg.
func wantError(t *testing.T, err error, code, msg string) {
	t.Helper()
	if app.ErrorCode(err) != code || !strings.Contains(app.ErrorMessage(err), msg) {
		t.Fatalf("got %v; want %s containing %q", err, code, msg)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// deadURL is a root URL nothing answers at.
func deadURL(t *testing.T) string { return apptest.ClosedURL(t) }

// reconnectMessage is what Google's refusal of the stored authorization
// reads as, stored with app.ReasonReconnect.
const reconnectMessage = "Google refused the stored authorization (invalid_grant). Connect Google Calendar again."

func TestGoogleConnectFlow(t *testing.T) {
	h := newGoogleHarness(t)
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
			"client_id": sandbox.GoogleSandboxClientID, "redirect_uri": systemtest.GoogleCallbackURL, "response_type": "code",
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
		err := h.e.db.Pool.QueryRow(ctx, `select state_hash, session_binding, user_id::text, code_verifier, created_at, expires_at
			from oauth_states where org_id = $1`, h.org).Scan(&stateHash, &binding, &user, &sealed, &created, &expires)
		if err != nil {
			t.Fatal(err)
		}
		if stateHash != sha256Hex(state) || binding != sha256Hex(h.binding) || user != h.admin.UserID {
			t.Errorf("row: hash %s binding %s user %s", stateHash, binding, user)
		}
		if got := expires.Sub(created); got != integrations.StateTTL {
			t.Errorf("valid for %v, want %v", got, integrations.StateTTL)
		}
		verifier, err := h.e.sys.Keyring.Open(sealed, keyring.AAD{Table: integrations.StatesTable, OrgID: h.org,
			Provider: "google_calendar/" + stateHash})
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
		if d := cfg.Expiry.Sub(h.e.clock.Now()); d < 59*time.Minute || d > time.Hour {
			t.Errorf("expiry in %v, want about an hour", d)
		}
		var ct []byte
		if err := h.e.db.Pool.QueryRow(ctx, `select encrypted_config from org_credentials where org_id = $1 and provider = 'google_calendar'`,
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
		if n := h.countStates(h.org); n != 0 {
			t.Fatalf("%d states left, want 0", n)
		}
		e := h.lastAudit()
		if e.Action != integrations.ActionSave || e.Provider != app.GoogleCalendar || e.Outcome != app.OutcomeSuccess ||
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

// A token answer that does not say which scopes were granted is taken as
// granting what was asked.
func TestGoogleConnectWithoutReportedScopes(t *testing.T) {
	h := newGoogleHarness(t, withTokenAnswer(func(_ string, body map[string]any) { delete(body, "scope") }))
	cfg := h.connect("owner@example.com")
	if !slices.Equal(cfg.Scopes, google.Scopes) {
		t.Fatalf("stored scopes %v, want the requested %v", cfg.Scopes, google.Scopes)
	}
}

// TestGoogleCallbackRefusals: every refused callback stores nothing, says
// why in plain words and is audited; a grant Google gave is revoked again.
func TestGoogleCallbackRefusals(t *testing.T) {
	withoutRefreshToken := withTokenAnswer(func(grantType string, body map[string]any) {
		if grantType == "authorization_code" {
			delete(body, "refresh_token")
		}
	})
	tests := []struct {
		name     string
		opts     []func(*envConfig)
		run      func(h *gHarness) error
		wantCode string
		wantMsg  string
	}{
		{
			name: "consent denied",
			run: func(h *gHarness) error {
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
			name: "another error from Google",
			run: func(h *gHarness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				q.Del("code")
				q.Set("error", "server_error")
				_, err := h.callback(h.admin, h.binding, q)
				return err
			},
			wantCode: app.EVerificationFailed, wantMsg: "Google did not grant access (server_error). Click Connect to start again.",
		},
		{
			name: "an error from Google that is not a code",
			run: func(h *gHarness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				q.Del("code")
				q.Set("error", "<b>Oops</b>")
				_, err := h.callback(h.admin, h.binding, q)
				if strings.Contains(app.ErrorMessage(err), "Oops") {
					h.t.Errorf("message %q quotes the error", app.ErrorMessage(err))
				}
				return err
			},
			wantCode: app.EVerificationFailed, wantMsg: "Google did not grant access (unknown_error).",
		},
		{
			name: "state reused",
			run: func(h *gHarness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				if _, err := h.callback(h.admin, h.binding, q); err != nil {
					h.t.Fatal(err)
				}
				if err := h.e.creds.Delete(context.Background(), h.org, app.GoogleCalendar); err != nil {
					h.t.Fatal(err)
				}
				_, err := h.callback(h.admin, h.binding, q)
				return err
			},
			wantCode: app.EValidation, wantMsg: "already used",
		},
		{
			name: "state from another browser session",
			run: func(h *gHarness) error {
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
			run: func(h *gHarness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				_, err := h.callback(h.admin, "", q)
				return err
			},
			wantCode: app.EForbidden, wantMsg: "another browser session",
		},
		{
			name: "another admin of the org",
			run: func(h *gHarness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				_, err := h.callback(addUser(h.t, h.org, "Google Dental", app.RoleAdmin), h.binding, q)
				return err
			},
			wantCode: app.EForbidden, wantMsg: "another user",
		},
		{
			name: "another org",
			run: func(h *gHarness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				other, _ := seedOrg(h.t, "Other Google Dental")
				_, err := h.callback(other, h.binding, q)
				if n := h.countStates(h.org); n != 1 {
					h.t.Errorf("another org's callback removed the state (%d left)", n)
				}
				if rows := h.e.credentialRows(h.t, other.OrgID); rows != 0 {
					h.t.Errorf("the other org got %d credential rows", rows)
				}
				return err
			},
			wantCode: app.EValidation, wantMsg: "unknown",
		},
		{
			name: "state expired",
			run: func(h *gHarness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				h.e.clock.Advance(integrations.StateTTL + time.Second)
				_, err := h.callback(h.admin, h.binding, q)
				return err
			},
			wantCode: app.EValidation, wantMsg: "expired",
		},
		{
			name: "PKCE verifier wrong",
			run: func(h *gHarness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				hash := sha256Hex(q.Get("state"))
				forged, err := h.e.sys.Keyring.Seal([]byte(strings.Repeat("w", 43)),
					keyring.AAD{Table: integrations.StatesTable, OrgID: h.org, Provider: "google_calendar/" + hash})
				if err != nil {
					h.t.Fatal(err)
				}
				if _, err := h.e.db.Pool.Exec(context.Background(), `update oauth_states set code_verifier = $1 where state_hash = $2`,
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
			run: func(h *gHarness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				q.Del("state")
				_, err := h.callback(h.admin, h.binding, q)
				return err
			},
			wantCode: app.EValidation, wantMsg: "missing its state",
		},
		{
			name: "state made up",
			run: func(h *gHarness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				q.Set("state", "made-up-state")
				_, err := h.callback(h.admin, h.binding, q)
				return err
			},
			wantCode: app.EValidation, wantMsg: "unknown",
		},
		{
			name: "state too long",
			run: func(h *gHarness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				q.Set("state", strings.Repeat("s", 513))
				_, err := h.callback(h.admin, h.binding, q)
				return err
			},
			wantCode: app.EValidation, wantMsg: "unknown",
		},
		{
			name: "code missing",
			run: func(h *gHarness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				q.Del("code")
				_, err := h.callback(h.admin, h.binding, q)
				return err
			},
			wantCode: app.EValidation, wantMsg: "missing its authorization code",
		},
		{
			name: "calendar access unticked",
			run: func(h *gHarness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{Untick: []string{google.ScopeEvents}})
				before := h.e.gsb.RevokeRequests()
				_, err := h.callback(h.admin, h.binding, q)
				if h.e.gsb.RevokeRequests() != before+1 || !h.e.gsb.IsRevoked(h.e.tap.lastToken("refresh_token")) {
					h.t.Errorf("the unusable grant was not given back (revocations %d -> %d)", before, h.e.gsb.RevokeRequests())
				}
				return err
			},
			wantCode: app.EVerificationFailed, wantMsg: "allow access to your calendar events",
		},
		{
			name: "no refresh token",
			opts: []func(*envConfig){withoutRefreshToken},
			run: func(h *gHarness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				before := h.e.gsb.RevokeRequests()
				_, err := h.callback(h.admin, h.binding, q)
				// Without a refresh token the access token is given back.
				if h.e.gsb.RevokeRequests() != before+1 || !h.e.gsb.IsRevoked(h.e.tap.lastToken("access_token")) {
					h.t.Errorf("the unusable grant was not given back (revocations %d -> %d)", before, h.e.gsb.RevokeRequests())
				}
				return err
			},
			wantCode: app.EVerificationFailed, wantMsg: "no refresh token",
		},
		{
			name: "account email not verified",
			run: func(h *gHarness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{Email: "someone-unverified@example.com"})
				before := h.e.gsb.RevokeRequests()
				_, err := h.callback(h.admin, h.binding, q)
				if h.e.gsb.RevokeRequests() != before+1 {
					h.t.Errorf("the unusable grant was not given back (revocations %d -> %d)", before, h.e.gsb.RevokeRequests())
				}
				return err
			},
			wantCode: app.EVerificationFailed, wantMsg: "not verified",
		},
		{
			name: "saving fails after Google granted",
			run: func(h *gHarness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				before := h.e.gsb.RevokeRequests()
				lift := refuseCredentialWrites(h.t, h.org)
				defer lift()
				_, err := h.callback(h.admin, h.binding, q)
				if h.e.gsb.RevokeRequests() != before+1 || !h.e.gsb.IsRevoked(h.e.tap.lastToken("refresh_token")) {
					h.t.Errorf("the grant that was not kept was not given back (revocations %d -> %d)", before, h.e.gsb.RevokeRequests())
				}
				return err
			},
			wantCode: app.EInternal, wantMsg: "",
		},
		{
			name: "member is not an admin",
			run: func(h *gHarness) error {
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
			run: func(h *gHarness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				svc := h.rebuild(func(c *config.Config) { c.URLs.GoogleToken = deadURL(h.t) + "/token" })
				email, err := h.callbackOf(svc, h.admin, h.binding, q)
				if email != "" {
					h.t.Errorf("email %q on failure", email)
				}
				return err
			},
			wantCode: app.EProviderUnavailable, wantMsg: "Google could not be reached (connection refused)",
		},
		{
			name: "server without a Google client",
			run: func(h *gHarness) error {
				_, q := h.start(h.admin, sandbox.GoogleConsentChoice{})
				svc := h.rebuild(func(c *config.Config) { c.Google.ClientID, c.Google.ClientSecret = "", app.Secret{} })
				_, err := h.callbackOf(svc, h.admin, h.binding, q)
				return err
			},
			wantCode: app.ENotConfigured, wantMsg: "Google Calendar is not set up on this server.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newGoogleHarness(t, tt.opts...)
			err := tt.run(h)
			wantError(t, err, tt.wantCode, tt.wantMsg)
			h.assertNothingStored()
			org := h.lastOrg
			if org == "" {
				org = h.org
			}
			found := false
			for _, e := range h.audits(org, 5) {
				found = found || (e.Action == integrations.ActionSave && e.Provider == app.GoogleCalendar &&
					e.Outcome == app.OutcomeFailure && e.Detail == app.ErrorMessage(err))
			}
			if !found {
				t.Errorf("audit %+v; want a failed %s with the message", h.audits(org, 5), integrations.ActionSave)
			}
		})
	}
}

func TestGoogleConnectURLRefusals(t *testing.T) {
	h := newGoogleHarness(t)
	ctx := context.Background()

	member := addUser(t, h.org, "Google Dental", app.RoleMember)
	_, err := h.e.svc.ConnectURL(ctx, member, h.binding)
	wantError(t, h.note(err), app.EForbidden, "Only an admin")

	_, err = h.e.svc.ConnectURL(ctx, app.Principal{}, h.binding)
	wantError(t, h.note(err), app.EUnauthorized, "sign in")

	_, err = h.e.svc.ConnectURL(ctx, h.admin, "")
	wantError(t, h.note(err), app.EInternal, "")

	if n := h.countStates(h.org); n != 0 {
		t.Fatalf("%d states stored by refused starts", n)
	}

	t.Run("server without a Google client", func(t *testing.T) {
		sys := h.e.build(t, func(c *config.Config) { c.Google.ClientID, c.Google.ClientSecret = "", app.Secret{} })
		if sys.Integrations.GoogleReady() {
			t.Fatal("GoogleReady() = true without a client")
		}
		if !h.e.svc.GoogleReady() {
			t.Fatal("GoogleReady() = false with a client")
		}
		_, err := sys.Integrations.ConnectURL(ctx, h.admin, h.binding)
		wantError(t, h.note(err), app.ENotConfigured, "Google Calendar is not set up on this server.")
		_, err = sys.Integrations.APIConnectURL(ctx, h.admin)
		wantError(t, h.note(err), app.ENotConfigured, "Google Calendar is not set up on this server.")
		_, err = sys.Credentials.GoogleAccessToken(ctx, h.org, "")
		wantError(t, h.note(err), app.ENotConfigured, "not set up on this server")
		if n := h.countStates(h.org); n != 0 {
			t.Fatalf("%d states stored by refused starts", n)
		}
	})
}

func TestGoogleConnectStartsAreCappedPerOrg(t *testing.T) {
	// 200 connect starts once left 200 pending states: the org keeps its
	// newest app.MaxPendingOAuthStates, and the newest flow still finishes
	// while the oldest is refused as unknown.
	h := newGoogleHarness(t)
	const starts = 3 * app.MaxPendingOAuthStates
	answers := make([]url.Values, starts)
	for i := range answers {
		_, answers[i] = h.start(h.admin, sandbox.GoogleConsentChoice{Email: "capped@example.com"})
		h.e.clock.Advance(time.Second)
	}
	if n := h.countStates(h.org); n != app.MaxPendingOAuthStates {
		t.Fatalf("%d pending states after %d starts, want %d", n, starts, app.MaxPendingOAuthStates)
	}
	_, err := h.callback(h.admin, h.binding, answers[0])
	wantError(t, err, app.EValidation, "unknown, has expired or was already used")
	h.assertNothingStored()
	if email, err := h.callback(h.admin, h.binding, answers[starts-1]); err != nil || email != "capped@example.com" {
		t.Fatalf("the newest flow: Callback = %q, %v", email, err)
	}
}

// A flow started by an API client is bound to the user, not to a browser
// session: the same admin finishes it in any session; nobody else can.
func TestGoogleAPIConnectFlow(t *testing.T) {
	h := newGoogleHarness(t)
	ctx := context.Background()
	begin := func(p app.Principal) url.Values {
		t.Helper()
		authURL, err := h.e.svc.APIConnectURL(ctx, p)
		if h.note(err) != nil {
			t.Fatalf("APIConnectURL: %v", err)
		}
		loc, err := sandbox.GoogleConsent(ctx, nil, authURL, sandbox.GoogleConsentChoice{Email: "api-owner@example.com"})
		if err != nil {
			t.Fatalf("consent: %v", err)
		}
		return loc.Query()
	}

	t.Run("another user of the org is refused", func(t *testing.T) {
		other := addUser(t, h.org, "Google Dental", app.RoleAdmin)
		_, err := h.callback(other, "any-session", begin(h.admin))
		wantError(t, err, app.EForbidden, "another user")
		h.assertNothingStored()
	})
	t.Run("the same admin in any browser session", func(t *testing.T) {
		email, err := h.callback(h.admin, "a-session-the-flow-never-saw", begin(h.admin))
		if err != nil || email != "api-owner@example.com" {
			t.Fatalf("Callback = %q, %v", email, err)
		}
		if h.stored().Email != "api-owner@example.com" {
			t.Fatal("the connected account was not stored")
		}
	})
	t.Run("members cannot start it", func(t *testing.T) {
		_, err := h.e.svc.APIConnectURL(ctx, addUser(t, h.org, "Google Dental", app.RoleMember))
		wantError(t, h.note(err), app.EForbidden, "")
	})
}

func TestGoogleVerify(t *testing.T) {
	ctx := context.Background()

	t.Run("success records the check", func(t *testing.T) {
		h := newGoogleHarness(t)
		h.connect("owner@example.com")
		h.e.clock.Advance(5 * time.Minute)
		res, err := h.e.svc.Verify(ctx, h.admin, app.GoogleCalendar)
		if h.note(err) != nil {
			t.Fatal(err)
		}
		now := h.e.clock.Now().Truncate(time.Microsecond)
		if !res.VerifiedAt.Equal(now) || res.Status.Details["email"] != "owner@example.com" || res.Detail == "" {
			t.Fatalf("result %+v", res)
		}
		st := h.status()
		if st.NeedsAttention || st.LastVerified == nil || !st.LastVerified.Equal(now) {
			t.Fatalf("status %+v", st)
		}
		if e := h.lastAudit(); e.Action != integrations.ActionVerify || e.Outcome != app.OutcomeSuccess {
			t.Fatalf("audit %+v", e)
		}
	})

	t.Run("401 with the authorization revoked is recorded", func(t *testing.T) {
		h := newGoogleHarness(t)
		h.connect("owner@example.com")
		h.e.gsb.RevokeGrants("owner@example.com") // access token now answered 401, refresh invalid_grant
		_, err := h.e.svc.Verify(ctx, h.admin, app.GoogleCalendar)
		wantError(t, h.note(err), app.EVerificationFailed, reconnectMessage)
		if app.ErrorReason(err) != app.ReasonReconnect {
			t.Errorf("reason %q, want %q", app.ErrorReason(err), app.ReasonReconnect)
		}
		st := h.status()
		if !st.NeedsAttention || st.VerificationError != reconnectMessage || st.VerificationCode != app.ReasonReconnect ||
			!st.ReconnectNeeded() {
			t.Fatalf("status %+v", st)
		}
		if e := h.lastAudit(); e.Action != integrations.ActionVerify || e.Outcome != app.OutcomeFailure || e.Detail != reconnectMessage {
			t.Fatalf("audit %+v", e)
		}
	})

	t.Run("401 that a refresh cures passes", func(t *testing.T) {
		h := newGoogleHarness(t)
		h.connect("owner@example.com")
		h.e.gsb.ExpireAccessTokens("owner@example.com")
		if _, err := h.e.svc.Verify(ctx, h.admin, app.GoogleCalendar); h.note(err) != nil {
			t.Fatal(err)
		}
		if h.status().NeedsAttention || h.e.gsb.Refreshes("owner@example.com") != 1 {
			t.Fatalf("status %+v, %d refreshes", h.status(), h.e.gsb.Refreshes("owner@example.com"))
		}
	})

	t.Run("Google unreachable records nothing", func(t *testing.T) {
		h := newGoogleHarness(t)
		h.connect("owner@example.com")
		before := h.status()
		svc := h.rebuild(func(c *config.Config) { c.URLs.GoogleCalendar = deadURL(t) + "/calendar/v3" })
		h.e.clock.Advance(time.Minute)
		_, err := svc.Verify(ctx, h.admin, app.GoogleCalendar)
		wantError(t, h.note(err), app.EProviderUnavailable, "could not be reached")
		after := h.status()
		if after.NeedsAttention || !after.LastVerified.Equal(*before.LastVerified) {
			t.Fatalf("status changed: %+v -> %+v", before, after)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		h := newGoogleHarness(t)
		_, err := h.e.svc.Verify(ctx, h.admin, app.GoogleCalendar)
		wantError(t, h.note(err), app.ENotConfigured, "No Google Calendar credentials")
		h.connect("owner@example.com")
		_, err = h.e.svc.Verify(ctx, addUser(t, h.org, "Google Dental", app.RoleMember), app.GoogleCalendar)
		wantError(t, h.note(err), app.EForbidden, "Only an admin")
	})
}

func TestGoogleDisconnect(t *testing.T) {
	ctx := context.Background()

	t.Run("revokes at Google, then deletes", func(t *testing.T) {
		h := newGoogleHarness(t)
		cfg := h.connect("owner@example.com")
		if _, err := h.e.svc.Disconnect(ctx, h.admin, app.GoogleCalendar); h.note(err) != nil {
			t.Fatal(err)
		}
		if !h.e.gsb.IsRevoked(cfg.RefreshToken.Reveal()) || h.e.gsb.RevokeRequests() != 1 {
			t.Fatalf("revoked %v after %d revocation requests", h.e.gsb.IsRevoked(cfg.RefreshToken.Reveal()), h.e.gsb.RevokeRequests())
		}
		h.assertNothingStored()
		if e := h.lastAudit(); e.Action != integrations.ActionDisconnect || e.Outcome != app.OutcomeSuccess || e.Detail != "Google Calendar disconnected." {
			t.Fatalf("audit %+v", e)
		}
		_, err := h.e.svc.Disconnect(ctx, h.admin, app.GoogleCalendar)
		wantError(t, h.note(err), app.ENotConfigured, "No Google Calendar credentials")
	})

	t.Run("a failed revocation does not block it", func(t *testing.T) {
		h := newGoogleHarness(t)
		cfg := h.connect("owner@example.com")
		h.e.gsb.FailRevocations(true)
		if _, err := h.e.svc.Disconnect(ctx, h.admin, app.GoogleCalendar); h.note(err) != nil {
			t.Fatal(err)
		}
		if h.e.gsb.RevokeRequests() != 1 || h.e.gsb.IsRevoked(cfg.RefreshToken.Reveal()) {
			t.Fatalf("%d revocation requests", h.e.gsb.RevokeRequests())
		}
		h.assertNothingStored()
		if !strings.Contains(h.e.logs.String(), "google token revocation failed") {
			t.Fatalf("the failed revocation was not logged:\n%s", h.e.logs.String())
		}
		if e := h.lastAudit(); e.Outcome != app.OutcomeSuccess || !strings.Contains(e.Detail, "did not confirm the revocation") {
			t.Fatalf("audit %+v", e)
		}
	})

	t.Run("also when Google cannot be reached", func(t *testing.T) {
		h := newGoogleHarness(t)
		h.connect("owner@example.com")
		svc := h.rebuild(func(c *config.Config) { c.URLs.GoogleRevoke = deadURL(t) + "/revoke" })
		if _, err := svc.Disconnect(ctx, h.admin, app.GoogleCalendar); h.note(err) != nil {
			t.Fatal(err)
		}
		h.assertNothingStored()
	})

	t.Run("an undecryptable row is still deleted", func(t *testing.T) {
		h := newGoogleHarness(t)
		h.connect("owner@example.com")
		if _, err := h.e.db.Pool.Exec(ctx, `update org_credentials set encrypted_config = '\x01'::bytea where org_id = $1`, h.org); err != nil {
			t.Fatal(err)
		}
		h.e.creds.Invalidate(h.org, string(app.GoogleCalendar))
		if _, err := h.e.svc.Disconnect(ctx, h.admin, app.GoogleCalendar); h.note(err) != nil {
			t.Fatal(err)
		}
		h.assertNothingStored()
	})

	t.Run("only an admin", func(t *testing.T) {
		h := newGoogleHarness(t)
		h.connect("owner@example.com")
		_, err := h.e.svc.Disconnect(ctx, addUser(t, h.org, "Google Dental", app.RoleMember), app.GoogleCalendar)
		wantError(t, h.note(err), app.EForbidden, "Only an admin")
		h.stored()
		if h.e.gsb.RevokeRequests() != 0 {
			t.Fatal("a refused disconnect revoked the grant")
		}
	})
}
