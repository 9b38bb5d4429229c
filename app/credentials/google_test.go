package credentials_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
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

const googleCallbackURL = "https://byoc.example.test/api/auth/google-calendar/callback"

// refusedGrant is what the card shows once Google refused the stored
// authorization with invalid_grant.
const refusedGrant = "Google refused the stored authorization (invalid_grant). Connect Google Calendar again."

// googleTap sits in front of the Google stand-in. It remembers every secret
// that crosses it (the client secret, codes, PKCE verifiers, access,
// refresh and id tokens), and it can hold token requests, answer them with
// an error, or answer every Calendar API call 401.
type googleTap struct {
	next http.Handler

	mu      sync.Mutex
	secrets map[string]bool
	// arrived, when set, hears of each token request, which then waits
	// until hold is closed.
	arrived chan struct{}
	hold    chan struct{}
	// tokenStatus, when set, answers token requests with this status and
	// Google's error JSON for it.
	tokenStatus int
	// unauthorized answers every Calendar API call 401, whatever its token.
	unauthorized bool
}

func (tp *googleTap) add(vs ...string) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for _, v := range vs {
		if len(v) >= 8 {
			tp.secrets[v] = true
		}
	}
}

func (tp *googleTap) all() []string {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	out := make([]string, 0, len(tp.secrets))
	for v := range tp.secrets {
		out = append(out, v)
	}
	return out
}

func (tp *googleTap) set(f func(tp *googleTap)) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	f(tp)
}

type teeWriter struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (w *teeWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	return w.ResponseWriter.Write(p)
}

func (tp *googleTap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		v, _ := url.ParseQuery(string(body))
		tp.add(v.Get("code"), v.Get("code_verifier"), v.Get("refresh_token"), v.Get("token"), v.Get("client_secret"))
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		tp.add(tok)
	}
	tp.mu.Lock()
	arrived, hold, status, unauthorized := tp.arrived, tp.hold, tp.tokenStatus, tp.unauthorized
	tp.mu.Unlock()
	switch {
	case r.URL.Path == sandbox.GoogleTokenPath && arrived != nil:
		arrived <- struct{}{}
		<-hold
	case r.URL.Path == sandbox.GoogleTokenPath && status != 0:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error": "backend_error", "error_description": "%s"}`, http.StatusText(status))
		return
	case strings.HasPrefix(r.URL.Path, sandbox.GoogleCalendarPath) && unauthorized:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error": {"code": 401, "message": "Request had invalid authentication credentials.",
			"errors": [{"reason": "authError"}], "status": "UNAUTHENTICATED"}}`)
		return
	}
	tw := &teeWriter{ResponseWriter: w}
	tp.next.ServeHTTP(tw, r)
	var body map[string]any
	if json.Unmarshal(tw.buf.Bytes(), &body) == nil {
		for _, k := range []string{"access_token", "refresh_token", "id_token"} {
			if v, ok := body[k].(string); ok {
				tp.add(v)
			}
		}
	}
	if loc, err := url.Parse(w.Header().Get("Location")); err == nil {
		tp.add(loc.Query().Get("code"))
	}
}

// googleHarness is one org, the Google stand-in behind a tap, the real
// OAuth client and a credential service wired as the server wires it.
type googleHarness struct {
	t        *testing.T
	d        *db.DB
	kr       *keyring.Keyring
	g        *sandbox.Google
	tap      *googleTap
	urls     sandbox.GoogleURLs
	logs     *apptest.LogBuffer
	clock    *apptest.Clock
	oauth    *google.OAuth
	creds    *credentials.Service
	calendar *google.Calendar
	org      string
	errs     []error
}

func newGoogleHarness(t *testing.T) *googleHarness {
	t.Helper()
	h := &googleHarness{t: t, d: dbtest.DB(t), kr: newKeyring(t, newKey(t)), logs: &apptest.LogBuffer{},
		clock: apptest.NewClock(time.Now().UTC())}
	h.g = sandbox.NewGoogle(sandbox.GoogleOptions{RedirectURIs: []string{googleCallbackURL}})
	h.tap = &googleTap{next: h.g, secrets: map[string]bool{}}
	h.tap.add(sandbox.GoogleSandboxClientSecret)
	srv := httptest.NewServer(h.tap)
	t.Cleanup(srv.Close)
	h.urls = h.g.URLs(srv.URL)
	h.oauth = google.NewOAuth(h.oauthConfig())
	h.creds = h.service(h.oauth, h.d)
	h.calendar = google.NewCalendar(h.oauth, h.creds, h.logger())
	h.org = dbtest.SeedOrg(t, "google token test")
	t.Cleanup(h.assertNoSecrets)
	return h
}

func (h *googleHarness) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (h *googleHarness) oauthConfig() google.OAuthConfig {
	return google.OAuthConfig{
		ClientID: sandbox.GoogleSandboxClientID, ClientSecret: app.NewSecret(sandbox.GoogleSandboxClientSecret),
		RedirectURL: googleCallbackURL, AuthURL: h.urls.Auth, TokenURL: h.urls.Token, RevokeURL: h.urls.Revoke,
		CalendarBaseURL: h.urls.Calendar, Timeout: 5 * time.Second,
	}
}

// service is a credential service (another instance, when called again) on
// the harness's database, keyring, clock and logs, refreshing with oauth
// and locking with locker (nil: in-process only).
func (h *googleHarness) service(oauth *google.OAuth, locker credentials.OrgLocker) *credentials.Service {
	opts := credentials.Options{Logger: h.logger(), Now: h.clock.Now, Google: oauth}
	if locker != nil {
		opts.Locker = locker
	}
	return credentials.New(h.d, h.kr, opts)
}

// note keeps err for the final secret check and returns it.
func (h *googleHarness) note(err error) error {
	if err != nil {
		h.errs = append(h.errs, err)
	}
	return err
}

// now is the harness clock as a stored time.
func (h *googleHarness) now() time.Time { return h.clock.Now().UTC().Truncate(time.Microsecond) }

// connect signs in to the stand-in as email and saves the grant the code
// exchange gives, as the connect flow does, and returns what was stored.
func (h *googleHarness) connect(email string) app.GoogleCalendarConfig {
	h.t.Helper()
	ctx := context.Background()
	verifier, state := "verifier-"+apptest.RandomHex(24), apptest.RandomHex(16)
	loc, err := sandbox.GoogleConsent(ctx, nil, h.oauth.AuthCodeURL(state, verifier), sandbox.GoogleConsentChoice{Email: email})
	if err != nil {
		h.t.Fatalf("consent: %v", err)
	}
	q := loc.Query()
	if q.Get("state") != state || q.Get("code") == "" {
		h.t.Fatalf("consent answered %v", q)
	}
	tok, err := h.oauth.Exchange(ctx, q.Get("code"), verifier, h.clock.Now())
	if h.note(err) != nil {
		h.t.Fatalf("exchange: %v", err)
	}
	if got, err := h.oauth.EmailFromIDToken(tok.IDToken); h.note(err) != nil || got != email {
		h.t.Fatalf("signed in as %q, %v; want %q", got, err, email)
	}
	cfg := app.GoogleCalendarConfig{RefreshToken: tok.RefreshToken, AccessToken: tok.AccessToken, Expiry: tok.Expiry,
		Email: email, Scopes: tok.Scopes}
	if _, err := h.creds.Save(ctx, app.Connection{OrgID: h.org, Config: cfg, VerifiedAt: h.now()}); h.note(err) != nil {
		h.t.Fatal(err)
	}
	return h.stored()
}

// stored returns the org's Google grant as a fresh instance reads it from
// the database, failing the test when there is none.
func (h *googleHarness) stored() app.GoogleCalendarConfig {
	h.t.Helper()
	cfg, err := h.service(nil, nil).GoogleCalendar(context.Background(), h.org)
	if err != nil {
		h.t.Fatalf("stored config: %v", err)
	}
	h.tap.add(cfg.AccessToken.Reveal(), cfg.RefreshToken.Reveal())
	return cfg
}

// status returns the org's Google Calendar status as a fresh instance
// reads it.
func (h *googleHarness) status() app.Status {
	h.t.Helper()
	all, err := h.service(nil, nil).Statuses(context.Background(), h.org)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, st := range all {
		if st.Provider == app.GoogleCalendar {
			raw, _ := json.Marshal(st)
			h.logs.Write(append(raw, '\n')) // checked for secrets with the log
			return st
		}
	}
	h.t.Fatal("no Google Calendar status")
	return app.Status{}
}

// assertNoSecrets checks every log line and noted error of the test for
// every secret that crossed the stand-in.
func (h *googleHarness) assertNoSecrets() {
	texts := []string{h.logs.String()}
	for _, err := range h.errs {
		texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), app.ErrorMessage(err))
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

// assertLogged fails the test unless the log has line, so that the secret
// check at the end looks at something.
func (h *googleHarness) assertLogged(line string) {
	h.t.Helper()
	if !strings.Contains(h.logs.String(), line) {
		h.t.Fatalf("the log lacks %q:\n%s", line, h.logs.String())
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

// wantReconnect fails the test unless err says that the account must be
// connected again, with the message msg.
func wantReconnect(t *testing.T, err error, msg string) {
	t.Helper()
	if app.ErrorCode(err) != app.EVerificationFailed || app.ErrorReason(err) != app.ReasonReconnect || app.ErrorMessage(err) != msg {
		t.Fatalf("got %v (reason %q); want %s with reason %s and the message %q",
			err, app.ErrorReason(err), app.EVerificationFailed, app.ReasonReconnect, msg)
	}
}

// wantReconnectRecorded fails the test unless the org's status shows the
// refusal msg with the reconnect code, recorded at the harness's now.
func (h *googleHarness) wantReconnectRecorded(msg string) {
	h.t.Helper()
	st := h.status()
	if !st.Connected || !st.NeedsAttention || st.VerificationError != msg || st.VerificationCode != app.ReasonReconnect ||
		!st.ReconnectNeeded() || st.LastChecked == nil || !st.LastChecked.Equal(h.now()) {
		h.t.Fatalf("status %+v; want connected, needing attention, with %q and the reconnect code, checked now", st, msg)
	}
	rec, err := h.d.GetCredential(context.Background(), h.org, app.GoogleCalendar)
	if err != nil || rec.VerificationCode != app.ReasonReconnect || rec.VerificationError != msg {
		h.t.Fatalf("stored row %+v, %v", rec, err)
	}
}

func googleBooking(start time.Time) app.Booking {
	start = start.Add(24 * time.Hour).Truncate(time.Hour)
	return app.Booking{Start: start, End: start.Add(30 * time.Minute), Summary: "Consultation"}
}

func TestGoogleAccessTokenReusesAValidToken(t *testing.T) {
	h := newGoogleHarness(t)
	const email = "owner@example.com"
	cfg := h.connect(email)
	for range 3 {
		tok, err := h.creds.GoogleAccessToken(context.Background(), h.org, "")
		if h.note(err) != nil || tok != cfg.AccessToken.Reveal() {
			t.Fatalf("GoogleAccessToken = %v; want the stored access token", err)
		}
	}
	if n := h.g.Refreshes(email); n != 0 {
		t.Fatalf("%d refreshes for a valid token", n)
	}
}

func TestGoogleExpiredTokenRefreshedOnceUnderConcurrency(t *testing.T) {
	for _, tt := range []struct {
		name   string
		locker bool
	}{{"within this process", false}, {"with the cross-instance lock", true}} {
		t.Run(tt.name, func(t *testing.T) {
			h := newGoogleHarness(t)
			if !tt.locker {
				h.creds = h.service(h.oauth, nil)
			}
			ctx := context.Background()
			const email = "owner@example.com"
			old := h.connect(email)
			// A failed check in the past, which a granted refresh clears.
			if _, err := h.creds.RecordVerification(ctx, h.org, app.GoogleCalendar, h.now(),
				app.Errorf(app.EVerificationFailed, "Google Calendar refused access (403 Forbidden).")); err != nil {
				t.Fatal(err)
			}
			h.clock.Advance(2 * time.Hour) // the stored access token has expired

			const callers = 20
			var wg sync.WaitGroup
			start := make(chan struct{})
			toks := make([]string, callers)
			errs := make([]error, callers)
			for i := range callers {
				wg.Go(func() {
					<-start
					toks[i], errs[i] = h.creds.GoogleAccessToken(ctx, h.org, "")
				})
			}
			close(start)
			wg.Wait()

			for i, err := range errs {
				if h.note(err) != nil {
					t.Fatalf("caller %d: %v", i, err)
				}
			}
			if n := h.g.Refreshes(email); n != 1 {
				t.Fatalf("%d refreshes under %d concurrent callers, want exactly 1", n, callers)
			}
			fresh := toks[0]
			if fresh == "" || fresh == old.AccessToken.Reveal() {
				t.Fatal("the expired token was returned")
			}
			for i, tok := range toks {
				if tok != fresh {
					t.Fatalf("caller %d got another token than caller 0", i)
				}
			}

			// Persisted, sealed, through the credential service.
			stored := h.stored()
			if stored.AccessToken.Reveal() != fresh || stored.RefreshToken.Reveal() != old.RefreshToken.Reveal() ||
				stored.Email != email || len(stored.Scopes) == 0 {
				t.Fatalf("stored after the refresh: access token persisted %v, refresh token kept %v, email %q, scopes %v",
					stored.AccessToken.Reveal() == fresh, stored.RefreshToken.Reveal() == old.RefreshToken.Reveal(),
					stored.Email, stored.Scopes)
			}
			raw := ciphertext(t, h.org, app.GoogleCalendar)
			for _, secret := range []string{fresh, old.RefreshToken.Reveal(), email} {
				if bytes.Contains(raw, []byte(secret)) {
					t.Fatal("the stored row holds the grant in the clear")
				}
			}
			if d := stored.Expiry.Sub(h.clock.Now()); d < 59*time.Minute || d > time.Hour {
				t.Errorf("new expiry in %v, want about an hour", d)
			}
			st := h.status()
			if !st.Connected || st.NeedsAttention || st.VerificationError != "" || st.VerificationCode != "" ||
				st.LastVerified == nil || !st.LastVerified.Equal(h.now()) {
				t.Errorf("status after the refresh %+v; want verified now, the past error cleared", st)
			}

			// Another instance uses the persisted token as it is.
			tok, err := h.service(h.oauth, h.d).GoogleAccessToken(ctx, h.org, "")
			if h.note(err) != nil || tok != fresh || h.g.Refreshes(email) != 1 {
				t.Fatalf("another instance: same token %v, %v, %d refreshes", tok == fresh, err, h.g.Refreshes(email))
			}
			h.assertLogged("google access token refreshed")
		})
	}
}

// Two instances on one database refresh an org's token once between them:
// the cross-instance lock alone guarantees it, whether or not an instance
// has heard of the other's write yet (the database's notification arrives
// when it arrives), so neither listens here.
func TestGoogleExpiredTokenRefreshedOnceAcrossInstances(t *testing.T) {
	h := newGoogleHarness(t)
	bg := context.Background()
	const email = "owner@example.com"
	old := h.connect(email)
	instances := []*credentials.Service{h.creds, h.service(h.oauth, h.d)}
	// Both have used the grant lately, so both hold it in their cache.
	for _, s := range instances {
		if tok, err := s.GoogleAccessToken(bg, h.org, ""); h.note(err) != nil || tok != old.AccessToken.Reveal() {
			t.Fatalf("before expiry: %v", err)
		}
	}
	h.clock.Advance(2 * time.Hour)

	const perInstance = 10
	var wg sync.WaitGroup
	start := make(chan struct{})
	toks := make([]string, 2*perInstance)
	errs := make([]error, 2*perInstance)
	for i := range toks {
		s := instances[i%2]
		wg.Go(func() {
			<-start
			toks[i], errs[i] = s.GoogleAccessToken(bg, h.org, "")
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if h.note(err) != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	if n := h.g.Refreshes(email); n != 1 {
		t.Fatalf("%d refreshes by two instances, want exactly 1", n)
	}
	for i, tok := range toks {
		if tok != toks[0] || tok == old.AccessToken.Reveal() {
			t.Fatalf("caller %d got another token than caller 0, or the expired one", i)
		}
	}
	if h.stored().AccessToken.Reveal() != toks[0] {
		t.Fatal("the shared token was not persisted")
	}
}

// A token Google answered 401 to is refreshed before its announced expiry.
func TestGoogleRejectedTokenIsRefreshed(t *testing.T) {
	h := newGoogleHarness(t)
	ctx := context.Background()
	const email = "owner@example.com"
	old := h.connect(email)

	tok, err := h.creds.GoogleAccessToken(ctx, h.org, old.AccessToken.Reveal())
	if h.note(err) != nil || tok == "" || tok == old.AccessToken.Reveal() {
		t.Fatalf("GoogleAccessToken with the stored token rejected: new token %v, %v", tok != old.AccessToken.Reveal(), err)
	}
	if n := h.g.Refreshes(email); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
	if h.stored().AccessToken.Reveal() != tok {
		t.Fatal("the refreshed token was not persisted")
	}
	// A caller that still names the old token gets the new one as it is.
	again, err := h.creds.GoogleAccessToken(ctx, h.org, old.AccessToken.Reveal())
	if h.note(err) != nil || again != tok || h.g.Refreshes(email) != 1 {
		t.Fatalf("second caller: same token %v, %v, %d refreshes", again == tok, err, h.g.Refreshes(email))
	}

	t.Run("through the calendar", func(t *testing.T) {
		before := h.stored().AccessToken.Reveal()
		h.g.ExpireAccessTokens(email) // Google drops it before its announced expiry
		if _, err := h.calendar.FreeBusy(ctx, h.org, time.Now(), time.Now().Add(time.Hour)); h.note(err) != nil {
			t.Fatal(err)
		}
		if n := h.g.Refreshes(email); n != 2 {
			t.Fatalf("%d refreshes, want 2", n)
		}
		if h.stored().AccessToken.Reveal() == before {
			t.Fatal("the refreshed token was not persisted")
		}
	})

	t.Run("a check that a refresh cures passes", func(t *testing.T) {
		h.g.ExpireAccessTokens(email)
		if _, err := h.calendar.Check(ctx, h.org); h.note(err) != nil {
			t.Fatal(err)
		}
		if st := h.status(); st.NeedsAttention || h.g.Refreshes(email) != 3 {
			t.Fatalf("status %+v, %d refreshes", st, h.g.Refreshes(email))
		}
	})
}

// Google refusing the stored authorization (invalid_grant) is recorded as
// a verification error with the reconnect code, and every use of the grant
// says so.
func TestGoogleInvalidGrantNeedsReconnect(t *testing.T) {
	ctx := context.Background()
	const email = "owner@example.com"

	t.Run("an expired token", func(t *testing.T) {
		h := newGoogleHarness(t)
		h.connect(email)
		h.g.RevokeGrants(email) // the user removed the app's access at Google
		h.clock.Advance(2 * time.Hour)

		_, err := h.creds.GoogleAccessToken(ctx, h.org, "")
		wantReconnect(t, h.note(err), refusedGrant)
		h.wantReconnectRecorded(refusedGrant)

		_, err = h.calendar.FreeBusy(ctx, h.org, time.Now(), time.Now().Add(time.Hour))
		wantReconnect(t, h.note(err), refusedGrant)
		_, _, err = h.calendar.Book(ctx, h.org, googleBooking(time.Now()))
		wantReconnect(t, h.note(err), refusedGrant)
		h.wantReconnectRecorded(refusedGrant)
		h.assertLogged("google refused the stored authorization")
	})

	t.Run("a token answered 401", func(t *testing.T) {
		h := newGoogleHarness(t)
		h.connect(email)
		h.g.RevokeGrants(email) // access token now answered 401, refresh invalid_grant
		h.clock.Advance(time.Minute)
		_, err := h.calendar.Check(ctx, h.org)
		wantReconnect(t, h.note(err), refusedGrant)
		h.wantReconnectRecorded(refusedGrant)
	})

	t.Run("no refresh token stored", func(t *testing.T) {
		h := newGoogleHarness(t)
		cfg := app.GoogleCalendarConfig{AccessToken: app.NewSecret("ya29.stored-without-refresh-" + apptest.RandomHex(8)),
			Expiry: h.clock.Now().Add(-time.Hour), Email: email}
		h.tap.add(cfg.AccessToken.Reveal())
		if _, err := h.creds.Save(ctx, app.Connection{OrgID: h.org, Config: cfg, VerifiedAt: h.now()}); err != nil {
			t.Fatal(err)
		}
		const msg = "The stored Google authorization has no refresh token. Connect Google Calendar again."
		_, err := h.creds.GoogleAccessToken(ctx, h.org, "")
		wantReconnect(t, h.note(err), msg)
		h.wantReconnectRecorded(msg)
		if n := h.g.Refreshes(email); n != 0 {
			t.Fatalf("%d refreshes without a refresh token", n)
		}
	})
}

// A refusal met while the grant is in use (401 to a token just refreshed)
// reaches the credential service through GoogleRefused and is recorded.
func TestGoogleRefusedInUseIsRecorded(t *testing.T) {
	h := newGoogleHarness(t)
	ctx := context.Background()
	const email = "owner@example.com"
	h.connect(email)
	h.tap.set(func(tp *googleTap) { tp.unauthorized = true })

	_, err := h.calendar.FreeBusy(ctx, h.org, time.Now(), time.Now().Add(time.Hour))
	h.note(err)
	if app.ErrorCode(err) != app.EVerificationFailed || app.ErrorReason(err) != app.ReasonReconnect ||
		!strings.Contains(app.ErrorMessage(err), "Connect Google Calendar again.") {
		t.Fatalf("got %v; want a refusal that needs a reconnect", err)
	}
	if n := h.g.Refreshes(email); n != 1 {
		t.Fatalf("%d refreshes, want the one after the first 401", n)
	}
	h.wantReconnectRecorded(app.ErrorMessage(err))

	// GoogleRefused on its own records what it is given.
	h.clock.Advance(time.Minute)
	refused := &app.Error{Code: app.EVerificationFailed, Reason: app.ReasonReconnect, Message: refusedGrant}
	h.creds.GoogleRefused(ctx, h.org, refused)
	h.wantReconnectRecorded(refusedGrant)
}

// Failures that say nothing about the org's grant (Google unreachable or
// unavailable, the server's own client refused) are returned and not
// recorded.
func TestGoogleFailuresThatAreNotTheGrantsRecordNothing(t *testing.T) {
	ctx := context.Background()
	const email = "owner@example.com"
	tests := []struct {
		name  string
		setup func(h *googleHarness) *credentials.Service
		code  string
		msg   string
	}{
		{"Google unreachable", func(h *googleHarness) *credentials.Service {
			// Closed after the stand-in started, so that no server of
			// this test can be listening at its address.
			closed := httptest.NewServer(nil)
			closed.Close()
			cfg := h.oauthConfig()
			cfg.TokenURL = closed.URL + sandbox.GoogleTokenPath
			return h.service(google.NewOAuth(cfg), h.d)
		}, app.EProviderUnavailable, "could not be reached"},
		{"Google unavailable", func(h *googleHarness) *credentials.Service {
			h.tap.set(func(tp *googleTap) { tp.tokenStatus = http.StatusServiceUnavailable })
			return h.creds
		}, app.EProviderUnavailable, "not available right now (503"},
		{"the server's client refused", func(h *googleHarness) *credentials.Service {
			cfg := h.oauthConfig()
			cfg.ClientSecret = app.NewSecret("wrong-client-secret-" + apptest.RandomHex(8))
			h.tap.add(cfg.ClientSecret.Reveal())
			return h.service(google.NewOAuth(cfg), h.d)
		}, app.EUnavailable, "refused this server's OAuth client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newGoogleHarness(t)
			h.connect(email)
			before := h.status()
			h.clock.Advance(2 * time.Hour)
			_, err := tt.setup(h).GoogleAccessToken(ctx, h.org, "")
			wantCode(t, h.note(err), tt.code, tt.msg)
			after := h.status()
			if after.NeedsAttention || after.VerificationCode != "" || !after.LastVerified.Equal(*before.LastVerified) {
				t.Fatalf("status changed: %+v -> %+v", before, after)
			}
			h.assertLogged("google token refresh failed")
		})
	}
}

func TestGoogleAccessTokenRefusals(t *testing.T) {
	ctx := context.Background()
	h := newGoogleHarness(t)
	h.connect("owner@example.com")

	t.Run("no Google client on the server", func(t *testing.T) {
		for name, s := range map[string]*credentials.Service{
			"none":           credentials.New(h.d, h.kr, credentials.Options{}),
			"not configured": h.service(google.NewOAuth(google.OAuthConfig{TokenURL: h.urls.Token}), nil),
		} {
			_, err := s.GoogleAccessToken(ctx, h.org, "")
			if app.ErrorCode(err) != app.ENotConfigured || app.ErrorMessage(err) != "Google Calendar is not set up on this server." {
				t.Errorf("%s: %v", name, err)
			}
		}
	})

	t.Run("nothing stored", func(t *testing.T) {
		_, err := h.creds.GoogleAccessToken(ctx, dbtest.SeedOrg(t, "google token test"), "")
		wantCode(t, h.note(err), app.ENotConfigured, "No Google Calendar credentials")
	})

	t.Run("stored grant unreadable", func(t *testing.T) {
		_, err := h.service(h.oauth, nil).GoogleAccessToken(ctx, h.org, "") // sanity: readable
		if h.note(err) != nil {
			t.Fatal(err)
		}
		other := credentials.New(h.d, newKeyring(t, newKey(t)), credentials.Options{Google: h.oauth})
		_, err = other.GoogleAccessToken(ctx, h.org, "")
		wantCode(t, h.note(err), app.ENotConfigured, "can no longer be decrypted")
	})
}

// A caller waiting for another caller's refresh gives up when its context
// ends; the refresh itself completes.
func TestGoogleRefreshWaitEndsWithTheContext(t *testing.T) {
	h := newGoogleHarness(t)
	bg := context.Background()
	const email = "owner@example.com"
	h.connect(email)
	h.clock.Advance(2 * time.Hour)
	arrived, hold := make(chan struct{}, 1), make(chan struct{})
	h.tap.set(func(tp *googleTap) { tp.arrived, tp.hold = arrived, hold })

	type result struct {
		tok string
		err error
	}
	first := make(chan result, 1)
	go func() {
		tok, err := h.creds.GoogleAccessToken(bg, h.org, "")
		first <- result{tok, err}
	}()
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the refresh never reached Google")
	}
	ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel()
	_, err := h.creds.GoogleAccessToken(ctx, h.org, "")
	wantCode(t, h.note(err), app.EProviderUnavailable, "could not be reached (timed out)")

	close(hold)
	r := <-first
	if h.note(r.err) != nil || r.tok == "" {
		t.Fatalf("the refresh that was held: %v", r.err)
	}
	if n := h.g.Refreshes(email); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
}
