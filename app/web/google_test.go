package web_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"byoc/app"
	"byoc/app/sandbox"
	"byoc/app/system/systemtest"
)

const (
	connectPath = "/api/integrations/google_calendar/connect"
	// browserAccept is what Chromium sends when it navigates.
	browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
)

// startGoogle asks the server for Google's consent page as a browser
// following the Connect link does, and returns its URL.
func (b *browser) startGoogle() string {
	t := b.e.t
	t.Helper()
	res := b.get(connectPath, "Accept", browserAccept)
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusFound || !strings.HasPrefix(loc, b.e.googleURLs.Auth+"?") {
		t.Fatalf("connect: %d to %q\n%s", res.StatusCode, loc, res.body)
	}
	return loc
}

// consent plays the person on the stand-in's consent page and returns the
// path and query of the callback Google sends the browser back to.
func (b *browser) consent(authURL string, c sandbox.GoogleConsentChoice) string {
	t := b.e.t
	t.Helper()
	back, err := sandbox.GoogleConsent(context.Background(), nil, authURL, c)
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := url.Parse(systemtest.GoogleCallbackURL); back.Host != u.Host || back.Path != u.Path {
		t.Fatalf("Google sent the browser to %s", back)
	}
	return back.RequestURI()
}

// callback follows Google's redirect back to the server and returns the
// flash messages of the dashboard it lands on, with that page.
func (b *browser) callback(target string) (flashes map[string]string, page response) {
	t := b.e.t
	t.Helper()
	res := b.get(target, "Accept", browserAccept)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/dashboard/integrations" {
		t.Fatalf("callback: %d to %q\n%s", res.StatusCode, res.Header.Get("Location"), res.body)
	}
	return b.dashboardFlashes()
}

// dashboardFlashes loads the dashboard and returns its flash messages by
// kind, with the page.
func (b *browser) dashboardFlashes() (map[string]string, response) {
	b.e.t.Helper()
	page := b.get("/dashboard/integrations")
	if page.StatusCode != http.StatusOK {
		b.e.t.Fatalf("dashboard: %d", page.StatusCode)
	}
	flashes := map[string]string{}
	d := page.doc(b.e.t)
	for _, kind := range []string{"success", "info", "error"} {
		flashes[kind] = strings.TrimSpace(testid(d, "flash-"+kind).Text())
	}
	return flashes, page
}

// connectGoogle runs the whole sign-in as the browser's user, allowing
// access as the stand-in's default account.
func (b *browser) connectGoogle() {
	b.e.t.Helper()
	flashes, _ := b.callback(b.consent(b.startGoogle(), sandbox.GoogleConsentChoice{}))
	if !strings.Contains(flashes["success"], "Google Calendar connected as "+sandbox.GoogleDefaultEmail) {
		b.e.t.Fatalf("flashes after connecting: %v", flashes)
	}
}

// storedGoogle returns the org's stored Google grant; ok is false when
// nothing is stored.
func (e *env) storedGoogle(orgID string) (cfg app.GoogleCalendarConfig, ok bool) {
	e.t.Helper()
	cfg, err := e.creds.GoogleCalendar(context.Background(), orgID)
	switch app.ErrorCode(err) {
	case "":
		return cfg, true
	case app.ENotConfigured:
		return cfg, false
	}
	e.t.Fatal(err)
	return cfg, false
}

// auditCount returns how many entries the org's audit log holds.
func (e *env) auditCount(orgID string) int {
	e.t.Helper()
	var n int
	if err := e.db.Pool.QueryRow(context.Background(), `select count(*) from audit_log where org_id = $1`, orgID).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestGoogleConnect(t *testing.T) {
	e := newEnv(t, withGoogle)
	b, _, orgID := e.admin()

	t.Run("browser is sent to Google's consent page", func(t *testing.T) {
		for _, accept := range []string{browserAccept, ""} {
			res := b.get(connectPath, "Accept", accept)
			if res.StatusCode != http.StatusFound {
				t.Fatalf("Accept %q: status %d\n%s", accept, res.StatusCode, res.body)
			}
			u, err := url.Parse(res.Header.Get("Location"))
			if err != nil {
				t.Fatal(err)
			}
			if got := u.Scheme + "://" + u.Host + u.Path; got != e.googleURLs.Auth {
				t.Fatalf("sent to %s, want %s", got, e.googleURLs.Auth)
			}
			q := u.Query()
			for k, want := range map[string]string{
				"client_id": sandbox.GoogleSandboxClientID, "redirect_uri": systemtest.GoogleCallbackURL, "response_type": "code",
				"access_type": "offline", "prompt": "consent", "code_challenge_method": "S256",
			} {
				if got := q.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			scopes := strings.Fields(q.Get("scope"))
			for _, want := range []string{"https://www.googleapis.com/auth/calendar.events", "openid", "email"} {
				if !slices.Contains(scopes, want) {
					t.Errorf("scope %q lacks %s", q.Get("scope"), want)
				}
			}
			if len(q.Get("state")) < 43 || len(q.Get("code_challenge")) != 43 {
				t.Errorf("state %q, code_challenge %q", q.Get("state"), q.Get("code_challenge"))
			}
		}
		var n int
		if err := e.db.Pool.QueryRow(context.Background(), `select count(*) from oauth_states where org_id = $1`, orgID).Scan(&n); err != nil || n != 2 {
			t.Errorf("%d pending states (%v), want 2", n, err)
		}
	})

	t.Run("JSON client with a session gets the URL", func(t *testing.T) {
		res := b.get(connectPath, "Accept", "application/json")
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d\n%s", res.StatusCode, res.body)
		}
		if u, _ := envelopeData(t, res)["authUrl"].(string); !strings.HasPrefix(u, e.googleURLs.Auth+"?") || !strings.Contains(u, "state=") {
			t.Fatalf("authUrl %q", u)
		}
	})

	t.Run("htmx is told to leave the site", func(t *testing.T) {
		res := b.get(connectPath, "HX-Request", "true")
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("HX-Redirect"), e.googleURLs.Auth+"?") {
			t.Fatalf("status %d, HX-Redirect %q", res.StatusCode, res.Header.Get("HX-Redirect"))
		}
	})

	t.Run("bearer client gets an authUrl bound to its user", func(t *testing.T) {
		res := e.do(request(http.MethodGet, connectPath, nil, "Authorization", e.bearer(), "Accept", "application/json"))
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", res.StatusCode, res.body)
		}
		if u, _ := envelopeData(t, res)["authUrl"].(string); !strings.HasPrefix(u, e.googleURLs.Auth+"?") {
			t.Fatalf("authUrl %q", u)
		}
	})

	t.Run("member is refused", func(t *testing.T) {
		m, _ := e.member(orgID)
		res := m.get(connectPath, "Accept", "application/json")
		if er := envelopeError(t, res); res.StatusCode != http.StatusForbidden || er["code"] != "forbidden" {
			t.Fatalf("JSON: status %d: %v", res.StatusCode, er)
		}
		res = m.get(connectPath, "Accept", browserAccept)
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/dashboard/integrations" {
			t.Fatalf("browser: %d to %q", res.StatusCode, res.Header.Get("Location"))
		}
		if flashes, _ := m.dashboardFlashes(); !strings.Contains(flashes["error"], "Only an admin") {
			t.Fatalf("flashes %v", flashes)
		}
		d := m.get("/dashboard/integrations").doc(t)
		if testid(d, "card-google_calendar-connect").Length() != 0 {
			t.Error("a member sees the Connect button")
		}
	})

	t.Run("not signed in", func(t *testing.T) {
		anon := e.browser()
		res := anon.get(connectPath, "Accept", browserAccept)
		if want := "/login?next=" + url.QueryEscape(connectPath); res.StatusCode != http.StatusFound || res.Header.Get("Location") != want {
			t.Fatalf("browser: %d to %q, want %q", res.StatusCode, res.Header.Get("Location"), want)
		}
		res = anon.get(connectPath, "Accept", "application/json")
		if er := envelopeError(t, res); res.StatusCode != http.StatusUnauthorized || er["code"] != "unauthorized" {
			t.Fatalf("JSON: status %d: %v", res.StatusCode, er)
		}
	})

	t.Run("server without a Google client", func(t *testing.T) {
		e := newEnv(t)
		b, _, _ := e.admin()
		res := b.get(connectPath, "Accept", "application/json")
		if er := envelopeError(t, res); res.StatusCode != http.StatusNotFound || er["code"] != "not_configured" {
			t.Fatalf("JSON: status %d: %v", res.StatusCode, er)
		}
		res = b.get(connectPath, "Accept", browserAccept)
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("browser: status %d", res.StatusCode)
		}
		flashes, page := b.dashboardFlashes()
		if !strings.Contains(flashes["error"], "not set up on this server") {
			t.Fatalf("flashes %v", flashes)
		}
		if testid(page.doc(t), "card-google_calendar-unavailable").Length() != 1 {
			t.Error("the card does not say Google Calendar is not set up")
		}
	})
}

func TestGoogleCallback(t *testing.T) {
	t.Run("allowed: connected, with the account on the card", func(t *testing.T) {
		e := newEnv(t, withGoogle)
		b, token, orgID := e.admin()
		back := b.consent(b.startGoogle(), sandbox.GoogleConsentChoice{})
		flashes, page := b.callback(back)
		if want := "Google Calendar connected as " + sandbox.GoogleDefaultEmail + "."; flashes["success"] != want {
			t.Fatalf("flashes %v, want success %q", flashes, want)
		}
		d := page.doc(t)
		if label, state := cardState(t, d, "google_calendar"); label != "Connected" || state != "connected" {
			t.Errorf("card %q (%s)", label, state)
		}
		if got := testid(d, "card-google_calendar-details").Text(); !strings.Contains(got, sandbox.GoogleDefaultEmail) {
			t.Errorf("card details %q", got)
		}
		if got := strings.TrimSpace(testid(d, "card-google_calendar-connect").Text()); got != "Reconnect" {
			t.Errorf("connect button %q", got)
		}
		if testid(d, "card-google_calendar-verify").Length() != 1 || testid(d, "card-google_calendar-disconnect").Length() != 1 {
			t.Error("a connected Google card lacks Test connection or Disconnect")
		}
		if again, _ := b.dashboardFlashes(); again["success"] != "" {
			t.Errorf("the flash shows twice: %v", again)
		}
		g := entry(t, b.status(token), "googleCalendar")
		if g["connected"] != true || g["email"] != sandbox.GoogleDefaultEmail {
			t.Errorf("status %v", g)
		}
		cfg, ok := e.storedGoogle(orgID)
		if !ok || cfg.Email != sandbox.GoogleDefaultEmail || cfg.RefreshToken.IsZero() {
			t.Fatalf("stored %v %+v", ok, cfg)
		}

		t.Run("the same answer again is refused", func(t *testing.T) {
			flashes, _ := b.callback(back)
			if !strings.Contains(flashes["error"], "already used") || flashes["success"] != "" {
				t.Fatalf("flashes %v", flashes)
			}
			if now, _ := e.storedGoogle(orgID); now.RefreshToken.Reveal() != cfg.RefreshToken.Reveal() {
				t.Error("the reused state changed the stored grant")
			}
		})
		assertNoSecrets(t, e, cfg.RefreshToken.Reveal(), cfg.AccessToken.Reveal())
	})

	t.Run("denied: the message, nothing stored", func(t *testing.T) {
		e := newEnv(t, withGoogle)
		b, _, orgID := e.admin()
		back := b.consent(b.startGoogle(), sandbox.GoogleConsentChoice{Deny: true})
		if !strings.Contains(back, "error=access_denied") {
			t.Fatalf("callback %s", back)
		}
		flashes, page := b.callback(back)
		if flashes["error"] != "Google Calendar access was not granted." || flashes["success"] != "" {
			t.Fatalf("flashes %v", flashes)
		}
		if label, _ := cardState(t, page.doc(t), "google_calendar"); label != "Not configured" {
			t.Errorf("card %q", label)
		}
		if _, ok := e.storedGoogle(orgID); ok {
			t.Error("a denied consent stored a grant")
		}
	})

	t.Run("another browser session is refused", func(t *testing.T) {
		e := newEnv(t, withGoogle)
		b := e.browser()
		email := b.signup(password)
		back := b.consent(b.startGoogle(), sandbox.GoogleConsentChoice{})

		// The same user, signed in in another browser, brings Google's answer.
		other := e.browser()
		token := other.csrf("/login")
		if res := other.do(request(http.MethodPost, "/login", url.Values{"_csrf": {token}, "email": {email}, "password": {password}})); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("login: %d", res.StatusCode)
		}
		flashes, _ := other.callback(back)
		if !strings.Contains(flashes["error"], "another browser session") {
			t.Fatalf("flashes %v", flashes)
		}
		// The attempt used the state up: the first browser cannot use it either.
		flashes, page := b.callback(back)
		if !strings.Contains(flashes["error"], "already used") {
			t.Fatalf("first browser: flashes %v", flashes)
		}
		if label, _ := cardState(t, page.doc(t), "google_calendar"); label != "Not configured" {
			t.Errorf("card %q", label)
		}
		var orgID string
		if err := e.db.Pool.QueryRow(context.Background(), `
			select m.org_id::text from org_members m join users u on u.id = m.user_id
			where lower(u.email) = lower($1)`, email).Scan(&orgID); err != nil {
			t.Fatal(err)
		}
		if _, ok := e.storedGoogle(orgID); ok {
			t.Error("a callback from another session stored a grant")
		}
	})

	t.Run("not signed in: to the login page", func(t *testing.T) {
		e := newEnv(t, withGoogle)
		b, _, _ := e.admin()
		back := b.consent(b.startGoogle(), sandbox.GoogleConsentChoice{})
		anon := e.browser()
		res := anon.get(back, "Accept", browserAccept)
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login" {
			t.Fatalf("%d to %q", res.StatusCode, res.Header.Get("Location"))
		}
		if got := testid(anon.get("/login").doc(t), "flash-info").Text(); !strings.Contains(got, "connect Google Calendar again") {
			t.Errorf("login page flash %q", got)
		}
	})
}

func TestGoogleVerifyAndDisconnect(t *testing.T) {
	e := newEnv(t, withGoogle)
	b, token, orgID := e.admin()
	b.connectGoogle()
	cfg, _ := e.storedGoogle(orgID)

	t.Run("verify JSON", func(t *testing.T) {
		before := e.auditCount(orgID)
		res := b.api(http.MethodPost, "/api/integrations/google_calendar/verify", nil, token)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d\n%s", res.StatusCode, res.body)
		}
		d := envelopeData(t, res)
		if d["provider"] != "google_calendar" || d["verified"] != true || d["lastVerified"] == nil ||
			!strings.Contains(d["detail"].(string), sandbox.GoogleDefaultEmail) {
			t.Fatalf("data %v", d)
		}
		if n := e.auditCount(orgID) - before; n != 1 {
			t.Errorf("%d audit entries for one test, want 1", n)
		}
	})

	t.Run("verify htmx", func(t *testing.T) {
		res := b.hx(http.MethodPost, "/api/integrations/google_calendar/verify", nil, token)
		if htmxStatus(t, res, true) != http.StatusOK {
			t.Fatalf("status %d\n%s", res.StatusCode, res.body)
		}
		d := res.doc(t)
		if label, _ := cardState(t, d, "google_calendar"); label != "Connected" {
			t.Errorf("card %q", label)
		}
		if got := testid(d, "card-google_calendar-result").Text(); !strings.Contains(got, "Connection verified") {
			t.Errorf("result %q", got)
		}
	})

	t.Run("member cannot verify", func(t *testing.T) {
		m, mtoken := e.member(orgID)
		res := m.api(http.MethodPost, "/api/integrations/google_calendar/verify", nil, mtoken)
		if er := envelopeError(t, res); res.StatusCode != http.StatusForbidden || er["code"] != "forbidden" {
			t.Fatalf("status %d: %v", res.StatusCode, er)
		}
	})

	t.Run("access removed at Google: reconnect needed", func(t *testing.T) {
		e := newEnv(t, withGoogle)
		b, token, _ := e.admin()
		b.connectGoogle()
		e.google.RevokeGrants(sandbox.GoogleDefaultEmail)
		res := b.hx(http.MethodPost, "/api/integrations/google_calendar/verify", nil, token)
		if htmxStatus(t, res, true) != http.StatusUnprocessableEntity {
			t.Fatalf("status %d\n%s", res.StatusCode, res.body)
		}
		d := res.doc(t)
		if label, state := cardState(t, d, "google_calendar"); label != "Needs attention" || state != "needs-attention" {
			t.Errorf("card %q (%s)", label, state)
		}
		if got := strings.TrimSpace(testid(d, "card-google_calendar-error-title").Text()); got != "Reconnect needed" {
			t.Errorf("error title %q", got)
		}
		if got := testid(d, "card-google_calendar-error").Text(); !strings.Contains(got, "invalid_grant") {
			t.Errorf("error %q", got)
		}
		connect := testid(d, "card-google_calendar-connect")
		if href, _ := connect.Attr("href"); href != connectPath || strings.TrimSpace(connect.Text()) != "Reconnect" ||
			!connect.HasClass("btn-primary") {
			t.Errorf("reconnect button %q to %q (class %q)", connect.Text(), href, connect.AttrOr("class", ""))
		}
		g := entry(t, b.status(token), "googleCalendar")
		if msg, _ := g["verificationError"].(string); g["needsAttention"] != true || g["verificationCode"] != app.ReasonReconnect ||
			!strings.Contains(msg, "invalid_grant") || !strings.Contains(msg, "Connect Google Calendar again") || strings.HasPrefix(msg, "Reconnect needed") {
			t.Errorf("status %v", g)
		}
	})

	t.Run("disconnect revokes at Google, then deletes", func(t *testing.T) {
		before, audits := e.google.RevokeRequests(), e.auditCount(orgID)
		res := b.hx(http.MethodDelete, "/api/integrations/google_calendar", nil, token)
		if htmxStatus(t, res, true) != http.StatusOK {
			t.Fatalf("status %d\n%s", res.StatusCode, res.body)
		}
		d := res.doc(t)
		if label, _ := cardState(t, d, "google_calendar"); label != "Not configured" {
			t.Errorf("card %q", label)
		}
		if got := testid(d, "card-google_calendar-result").Text(); !strings.Contains(got, "Google Calendar disconnected") {
			t.Errorf("result %q", got)
		}
		if e.google.RevokeRequests() != before+1 || !e.google.IsRevoked(cfg.RefreshToken.Reveal()) {
			t.Errorf("revocations %d -> %d, revoked %v", before, e.google.RevokeRequests(), e.google.IsRevoked(cfg.RefreshToken.Reveal()))
		}
		if _, ok := e.storedGoogle(orgID); ok {
			t.Error("the grant is still stored")
		}
		if n := e.auditCount(orgID) - audits; n != 1 {
			t.Errorf("%d audit entries for one disconnect, want 1", n)
		}
	})

	t.Run("disconnect JSON with nothing stored", func(t *testing.T) {
		res := b.api(http.MethodDelete, "/api/integrations/google_calendar", nil, token)
		if er := envelopeError(t, res); res.StatusCode != http.StatusNotFound || er["code"] != "not_configured" {
			t.Fatalf("status %d: %v", res.StatusCode, er)
		}
	})

	t.Run("disconnect JSON", func(t *testing.T) {
		b.connectGoogle()
		res := b.api(http.MethodDelete, "/api/integrations/google_calendar", nil, token)
		if d := envelopeData(t, res); res.StatusCode != http.StatusOK || d["provider"] != "google_calendar" || d["connected"] != false {
			t.Fatalf("status %d: %v", res.StatusCode, d)
		}
	})
	assertNoSecrets(t, e, cfg.RefreshToken.Reveal(), cfg.AccessToken.Reveal())
}
