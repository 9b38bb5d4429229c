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

	"golang.org/x/oauth2"

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

// The credential service hands the Calendar client its grants.
var _ google.Grants = (*credentials.Service)(nil)

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

// harness is one org, a Google stand-in, the OAuth client pointed at it,
// the credential service keeping the org's grant and the Calendar client
// under test.
type harness struct {
	t     *testing.T
	db    *db.DB
	kr    *keyring.Keyring
	g     *sandbox.Google
	urls  sandbox.GoogleURLs
	tap   *secretTap
	logs  *apptest.LogBuffer
	clock *apptest.Clock
	oauth *google.OAuth
	creds *credentials.Service
	cal   *google.Calendar
	org   string
	errs  []error
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
		clock: apptest.NewClock(time.Now().UTC()),
	}
	h.tap.add(sandbox.GoogleSandboxClientSecret)
	h.g = sandbox.NewGoogle(sandbox.GoogleOptions{RedirectURIs: []string{callbackURL}})
	srv := httptest.NewServer(h.tap.wrap(h.g))
	t.Cleanup(srv.Close)
	h.urls = h.g.URLs(srv.URL)
	h.oauth = google.NewOAuth(h.oauthConfig())
	h.creds = credentials.New(d, kr, credentials.Options{Logger: h.logger(), Now: h.clock.Now, Google: h.oauth, Locker: d})
	h.cal = google.NewCalendar(h.oauth, h.creds, h.logger())
	h.org = dbtest.SeedOrg(t, "google test")
	t.Cleanup(h.assertNoSecrets)
	return h
}

func (h *harness) logger() *slog.Logger { return newLogger(h.logs) }

// newLogger logs everything to w as text.
func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (h *harness) oauthConfig() google.OAuthConfig {
	return google.OAuthConfig{
		ClientID: sandbox.GoogleSandboxClientID, ClientSecret: app.NewSecret(sandbox.GoogleSandboxClientSecret),
		RedirectURL: callbackURL, AuthURL: h.urls.Auth, TokenURL: h.urls.Token, RevokeURL: h.urls.Revoke,
		CalendarBaseURL: h.urls.Calendar, Timeout: 5 * time.Second,
	}
}

// newCalendar returns a Calendar client that calls Google as cfg says,
// with the harness's grants.
func (h *harness) newCalendar(cfg google.OAuthConfig) *google.Calendar {
	return google.NewCalendar(google.NewOAuth(cfg), h.creds, h.logger())
}

// note keeps err for the final secret check and returns it.
func (h *harness) note(err error) error {
	if err != nil {
		h.errs = append(h.errs, err)
	}
	return err
}

// grant runs Google's sign-in with the OAuth client, as email, and returns
// what Google granted.
func (h *harness) grant(c sandbox.GoogleConsentChoice) app.OAuthToken {
	h.t.Helper()
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()
	loc, err := sandbox.GoogleConsent(ctx, nil, h.oauth.AuthCodeURL("state-"+apptest.RandomHex(8), verifier), c)
	if err != nil {
		h.t.Fatalf("consent: %v", err)
	}
	tok, err := h.oauth.Exchange(ctx, loc.Query().Get("code"), verifier, h.clock.Now())
	if h.note(err) != nil {
		h.t.Fatalf("Exchange: %v", err)
	}
	return tok
}

// connect signs in as email and stores the grant as the org's Google
// Calendar connection, as the connect flow does.
func (h *harness) connect(email string) app.GoogleCalendarConfig {
	h.t.Helper()
	tok := h.grant(sandbox.GoogleConsentChoice{Email: email})
	got, err := h.oauth.EmailFromIDToken(tok.IDToken)
	if h.note(err) != nil || got != email {
		h.t.Fatalf("EmailFromIDToken = %q, %v; want %q", got, err, email)
	}
	h.store(h.org, app.GoogleCalendarConfig{RefreshToken: tok.RefreshToken, AccessToken: tok.AccessToken,
		Expiry: tok.Expiry, Email: got, Scopes: tok.Scopes})
	return h.stored()
}

// store saves cfg as org's Google Calendar connection, verified now.
func (h *harness) store(org string, cfg app.GoogleCalendarConfig) {
	h.t.Helper()
	if _, err := h.creds.Save(context.Background(), app.Connection{OrgID: org, Config: cfg, VerifiedAt: h.clock.Now()}); err != nil {
		h.t.Fatal(err)
	}
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

// assertNoSecrets checks every log line and noted error of the test for
// every secret that crossed the stand-in.
func (h *harness) assertNoSecrets() {
	texts := []string{h.logs.String()}
	for _, err := range h.errs {
		texts = append(texts, err.Error(), app.ErrorMessage(err))
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
