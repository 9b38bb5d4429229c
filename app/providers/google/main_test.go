package google_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/credentials"
	"byoc/app/keyring"
	"byoc/app/providers/google"
	"byoc/app/sandbox"
	"byoc/db"
	"byoc/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

const callbackURL = "https://byoc.example.test/api/auth/google-calendar/callback"

// secretTap sits in front of the stand-in and remembers every secret that
// crosses it: the client secret, authorization codes, PKCE verifiers,
// access, refresh and id tokens.
type secretTap struct {
	mu      sync.Mutex
	secrets map[string]bool
}

func (s *secretTap) add(vs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range vs {
		if len(v) >= 8 {
			s.secrets[v] = true
		}
	}
}

func (s *secretTap) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for v := range s.secrets {
		out = append(out, v)
	}
	return out
}

type teeWriter struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (w *teeWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	return w.ResponseWriter.Write(p)
}

func (s *secretTap) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			v, _ := url.ParseQuery(string(body))
			s.add(v.Get("code"), v.Get("code_verifier"), v.Get("refresh_token"), v.Get("token"), v.Get("client_secret"))
		}
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			s.add(tok)
		}
		tw := &teeWriter{ResponseWriter: w}
		h.ServeHTTP(tw, r)
		var body map[string]any
		if json.Unmarshal(tw.buf.Bytes(), &body) == nil {
			for _, k := range []string{"access_token", "refresh_token", "id_token"} {
				if v, ok := body[k].(string); ok {
					s.add(v)
				}
			}
		}
		if loc, err := url.Parse(w.Header().Get("Location")); err == nil {
			s.add(loc.Query().Get("code"))
		}
	})
}

// harness is one org with an admin, a credential service, a Google
// stand-in and the service under test.
type harness struct {
	t       *testing.T
	db      *db.DB
	kr      *keyring.Keyring
	g       *sandbox.Google
	urls    sandbox.GoogleURLs
	tap     *secretTap
	logs    *apptest.LogBuffer
	clock   *apptest.Clock
	creds   *credentials.Service
	svc     *google.Service
	org     string
	admin   app.Principal
	binding string
	errs    []error
	// lastOrg is the org of the latest callback.
	lastOrg string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	d := dbtest.DB(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	kr, err := keyring.New(key)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t: t, db: d, kr: kr, tap: &secretTap{secrets: map[string]bool{}}, logs: &apptest.LogBuffer{},
		clock: apptest.NewClock(time.Now().UTC()), binding: "csrf-" + apptest.RandomHex(16),
	}
	h.tap.add(sandbox.GoogleSandboxClientSecret)
	h.g = sandbox.NewGoogle(sandbox.GoogleOptions{RedirectURIs: []string{callbackURL}})
	srv := httptest.NewServer(h.tap.wrap(h.g))
	t.Cleanup(srv.Close)
	h.urls = h.g.URLs(srv.URL)

	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.creds = credentials.New(d, kr, credentials.Options{Logger: logger})
	h.svc = h.newService(h.oauthConfig())
	h.org, h.admin = h.seedOrg(app.RoleAdmin)
	t.Cleanup(h.assertNoSecrets)
	return h
}

func (h *harness) oauthConfig() google.OAuthConfig {
	return google.OAuthConfig{
		ClientID: sandbox.GoogleSandboxClientID, ClientSecret: app.NewSecret(sandbox.GoogleSandboxClientSecret),
		RedirectURL: callbackURL, AuthURL: h.urls.Auth, TokenURL: h.urls.Token, RevokeURL: h.urls.Revoke,
		CalendarBaseURL: h.urls.Calendar, Timeout: 5 * time.Second,
	}
}

// newService builds a service on the harness's store, clock and logs with
// the given OAuth client configuration.
func (h *harness) newService(cfg google.OAuthConfig) *google.Service {
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return google.NewService(google.Deps{
		OAuth: google.NewOAuth(cfg), Credentials: h.creds, States: h.db, Audit: h.db, Sealer: h.kr, Locker: h.db,
	}, google.Options{Logger: logger, Now: h.clock.Now})
}

// seedOrg creates an org with one user of the given role.
func (h *harness) seedOrg(role app.Role) (string, app.Principal) {
	h.t.Helper()
	org := dbtest.SeedOrg(h.t, "google test")
	user := h.addUser(org, role).UserID
	return org, app.Principal{UserID: user, OrgID: org, Role: role}
}

// addUser adds a user with role to org.
func (h *harness) addUser(org string, role app.Role) app.Principal {
	h.t.Helper()
	ctx := context.Background()
	var user string
	email := "user-" + apptest.RandomHex(6) + "@example.test"
	if err := h.db.Pool.QueryRow(ctx, `insert into users (email, password_hash) values ($1, 'x') returning id::text`, email).Scan(&user); err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.db.Pool.Exec(ctx, `insert into org_members (org_id, user_id, role) values ($1, $2, $3)`, org, user, string(role)); err != nil {
		h.t.Fatal(err)
	}
	return app.Principal{UserID: user, OrgID: org, Role: role, Email: email}
}

// note keeps err for the final secret check and returns it.
func (h *harness) note(err error) error {
	if err != nil {
		h.errs = append(h.errs, err)
	}
	return err
}

// start runs ConnectURL and the consent page and returns the callback
// query Google sends back.
func (h *harness) start(p app.Principal, c sandbox.GoogleConsentChoice) (authURL string, q url.Values) {
	h.t.Helper()
	authURL, err := h.svc.ConnectURL(context.Background(), p, h.binding)
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
func (h *harness) callback(p app.Principal, binding string, q url.Values) (string, error) {
	h.lastOrg = p.OrgID
	email, err := h.svc.Callback(context.Background(), p, binding, google.CallbackQuery{
		State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error"),
	})
	return email, h.note(err)
}

// connect runs the whole flow for the admin as email and fails the test
// unless it succeeds.
func (h *harness) connect(email string) app.GoogleCalendarConfig {
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
func (h *harness) stored() app.GoogleCalendarConfig {
	h.t.Helper()
	cfg, err := h.creds.GoogleCalendar(context.Background(), h.org)
	if err != nil {
		h.t.Fatalf("stored config: %v", err)
	}
	h.tap.add(cfg.AccessToken.Reveal(), cfg.RefreshToken.Reveal())
	return cfg
}

// assertNothingStored fails the test when the org has Google credentials.
func (h *harness) assertNothingStored() {
	h.t.Helper()
	var n int
	if err := h.db.Pool.QueryRow(context.Background(),
		`select count(*) from org_credentials where org_id = $1 and provider = 'google_calendar'`, h.org).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	if n != 0 {
		h.t.Fatalf("%d Google credential rows stored, want none", n)
	}
}

// status returns the org's Google Calendar card state.
func (h *harness) status() app.Status {
	h.t.Helper()
	all, err := h.creds.Statuses(context.Background(), h.org)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, st := range all {
		if st.Provider == app.GoogleCalendar {
			return st
		}
	}
	h.t.Fatal("no Google Calendar status")
	return app.Status{}
}

// audits returns the org's newest audit entries, newest first.
func (h *harness) audits(org string, n int) []app.AuditEntry {
	h.t.Helper()
	entries, err := h.db.AuditLog(context.Background(), org, n)
	if err != nil {
		h.t.Fatal(err)
	}
	return entries
}

// lastAudit returns the org's newest audit entry.
func (h *harness) lastAudit() app.AuditEntry {
	h.t.Helper()
	entries, err := h.db.AuditLog(context.Background(), h.org, 1)
	if err != nil || len(entries) == 0 {
		h.t.Fatalf("audit log: %v, %d entries", err, len(entries))
	}
	return entries[0]
}

// assertNoSecrets checks every log line, noted error and audit entry of
// the test for every secret that crossed the stand-in.
func (h *harness) assertNoSecrets() {
	var texts []string
	texts = append(texts, h.logs.String())
	for _, err := range h.errs {
		texts = append(texts, err.Error(), app.ErrorMessage(err))
	}
	if entries, err := h.db.AuditLog(context.Background(), h.org, 1000); err == nil {
		for _, e := range entries {
			texts = append(texts, e.Detail)
		}
	}
	secrets := h.tap.all()
	for _, text := range texts {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				h.t.Errorf("a secret (%d characters, starting %.4q) appears in:\n%s", len(s), s, text)
			}
		}
	}
}

// wantCode fails the test unless err has the code and its message contains
// msg.
func wantCode(t *testing.T, err error, code, msg string) {
	t.Helper()
	if app.ErrorCode(err) != code || !strings.Contains(app.ErrorMessage(err), msg) {
		t.Fatalf("got %v; want %s containing %q", err, code, msg)
	}
}
