package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/db"
)

// An htmx request that meets an ended session sends the whole page to the
// sign-in page, which says the session expired and, after signing in,
// brings the user back to where they were.
func TestHTMXActionWithEndedSessionReturnsToThePage(t *testing.T) {
	e := newEnv(t)

	cases := []struct {
		name    string
		end     func(b *browser)
		headers []string
		want    string
	}{
		{"signed out elsewhere (a copied cookie)", func(b *browser) {
			stolen := *b.cookies["byoc_session"]
			token := b.csrf("/dashboard/integrations")
			b.do(request(http.MethodPost, "/logout", url.Values{"_csrf": {token}}))
			b.cookies[stolen.Name] = &stolen
		}, []string{"HX-Current-URL", "http://example.com/dashboard/integrations"}, "/dashboard/integrations"},
		{"the cookie is gone", func(b *browser) {
			delete(b.cookies, "byoc_session")
		}, []string{"HX-Current-URL", "http://example.com/dashboard/integrations?tab=vapi"}, "/dashboard/integrations?tab=vapi"},
		{"sent from a page that is no safe return", func(b *browser) {
			delete(b.cookies, "byoc_session")
		}, []string{"HX-Current-URL", "http://example.com//evil.example/x"}, "/dashboard/integrations"},
		{"no page named", func(b *browser) {
			delete(b.cookies, "byoc_session")
		}, nil, "/dashboard/integrations"},
		{"a boosted link to another page", func(b *browser) {
			delete(b.cookies, "byoc_session")
		}, []string{"HX-Boosted", "true", "HX-Current-URL", "http://example.com/dashboard/integrations"}, "/settings/team"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			b := e.browser()
			email := b.signup(password)
			token := b.csrf("/dashboard/integrations")
			tt.end(b)

			method, target := http.MethodPost, "/api/integrations/vapi/verify"
			if tt.want == "/settings/team" {
				method, target = http.MethodGet, "/settings/team"
			}
			headers := append([]string{"HX-Request", "true", "X-CSRF-Token", token}, tt.headers...)
			res := b.do(request(method, target, nil, headers...))
			wantLogin := "/login?next=" + url.QueryEscape(tt.want)
			if res.StatusCode != http.StatusOK || res.Header.Get("HX-Redirect") != wantLogin {
				t.Fatalf("%d, HX-Redirect %q, want 200 and %q", res.StatusCode, res.Header.Get("HX-Redirect"), wantLogin)
			}
			if got := res.Header.Get("X-Byoc-Status"); got != "401" {
				t.Fatalf("X-Byoc-Status %q, want 401", got)
			}

			d := b.get(wantLogin).doc(t)
			flashes := testid(d, "flashes").Children()
			if flashes.Length() != 1 || !strings.Contains(flashes.Text(), "Your session expired") {
				t.Fatalf("sign-in page flashes %q, want one saying the session expired", flashes.Text())
			}
			if v, _ := d.Find(`input[name="next"]`).Attr("value"); v != tt.want {
				t.Fatalf("next field %q, want %q", v, tt.want)
			}
			login := b.csrf("/login")
			res = b.do(request(http.MethodPost, "/login", url.Values{"_csrf": {login}, "email": {email}, "password": {password}, "next": {tt.want}}))
			if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != tt.want {
				t.Fatalf("login: %d to %q, want 303 to %q", res.StatusCode, res.Header.Get("Location"), tt.want)
			}
			if d := b.get("/dashboard/integrations").doc(t); strings.Contains(testid(d, "flashes").Text(), "expired") {
				t.Fatal("the expiry message was shown twice")
			}
		})
	}
}

// The sign-in page follows only same-site paths: whatever a browser could
// read as another host, plainly or percent-encoded, lands on the dashboard.
func TestLoginRefusesUnsafeReturnPaths(t *testing.T) {
	e := newEnv(t)
	email := e.browser().signup(password)

	tests := []struct{ next, want string }{
		{"/settings/team", "/settings/team"},
		{"/dashboard/integrations?next=%2F%2Fevil.example", "/dashboard/integrations?next=%2F%2Fevil.example"},
		{"https://evil.example/", "/dashboard/integrations"},
		{"//evil.example", "/dashboard/integrations"},
		{"///evil.example", "/dashboard/integrations"},
		{"/\\evil.example", "/dashboard/integrations"},
		{"\\\\evil.example", "/dashboard/integrations"},
		{"/%2F%2Fevil.example", "/dashboard/integrations"},
		{"/%2f/evil.example", "/dashboard/integrations"},
		{"/%5Cevil.example", "/dashboard/integrations"},
		{"/%5cevil.example", "/dashboard/integrations"},
		{"/%252F%252Fevil.example", "/dashboard/integrations"},
		{"/%25252F%25252Fevil.example", "/dashboard/integrations"},
		{"/%09/evil.example", "/dashboard/integrations"},
		{"/%0d%0aLocation:%20https://evil.example", "/dashboard/integrations"},
		{"/ /evil.example", "/dashboard/integrations"},
		{"/./evil.example", "/dashboard/integrations"},
		{"/.//evil.example", "/dashboard/integrations"},
		{"/../evil.example", "/dashboard/integrations"},
		{"/%2e%2e/%2f/evil.example", "/dashboard/integrations"},
		{"javascript:alert(1)", "/dashboard/integrations"},
		{"/@evil.example", "/@evil.example"},
		{"https:/evil.example", "/dashboard/integrations"},
		{"/" + strings.Repeat("a", 600), "/dashboard/integrations"},
	}
	for _, tt := range tests {
		t.Run(tt.next, func(t *testing.T) {
			b := e.browser()
			token := b.csrf("/login")
			res := b.do(request(http.MethodPost, "/login", url.Values{"_csrf": {token}, "email": {email}, "password": {password}, "next": {tt.next}}))
			if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != tt.want {
				t.Fatalf("%d to %q, want 303 to %q", res.StatusCode, res.Header.Get("Location"), tt.want)
			}
			d := e.browser().get("/login?next=" + url.QueryEscape(tt.next)).doc(t)
			v, ok := d.Find(`input[name="next"]`).Attr("value")
			if tt.want == "/dashboard/integrations" && ok && v != "" {
				t.Fatalf("the login page kept %q", v)
			}
		})
	}
}

// withProviderTimeout lets each provider call last up to d.
func withProviderTimeout(d time.Duration) envOption {
	return func(s *envSetup) { s.cfg.ProviderTimeout = d }
}

// startSlowSave starts b's htmx save of Resend credentials that the
// stand-in holds up (a "slow" key), named attempt, on e's server; the
// channel receives its answer (nil when it failed to run).
func startSlowSave(t *testing.T, e *env, b *browser, token, attempt string) <-chan *http.Response {
	t.Helper()
	save := request(http.MethodPost, "/api/integrations/resend",
		url.Values{"apiKey": {resendKey("slow")}, "fromEmail": {"team@example.com"}},
		"HX-Request", "true", "X-CSRF-Token", token, "X-Byoc-Attempt", attempt)
	save.AddCookie(&http.Cookie{Name: "byoc_session", Value: b.cookies["byoc_session"].Value})
	done := make(chan *http.Response, 1)
	go func() {
		res, err := e.srv.Test(save)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	return done
}

// A save held up by a slow provider is cancelled by its own browser: the
// save answers that nothing was saved, and nothing was. Nobody else can
// cancel it.
func TestCancelARunningSave(t *testing.T) {
	// The provider call may last far longer than the test: only the cancel
	// can end it early.
	e := newEnv(t, withProviderTimeout(time.Minute))
	b, token, orgID := e.admin()
	attempt := "a1b2c3d4-e5f6-4789-9abc-def012345678"
	cancelPath := "/api/integrations/attempts/" + attempt + "/cancel"

	other, otherToken, _ := e.admin()
	if res := other.hx(http.MethodPost, cancelPath, nil, otherToken); res.Header.Get("X-Byoc-Status") != "404" {
		t.Fatalf("cancel of nothing: %d %q, want 404", res.StatusCode, res.Header.Get("X-Byoc-Status"))
	}

	done := startSlowSave(t, e, b, token, attempt)

	// Another user and a request without the CSRF token cannot cancel it.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if res := other.hx(http.MethodPost, cancelPath, nil, otherToken); res.Header.Get("X-Byoc-Status") != "404" {
			t.Fatalf("another org's admin: %d %q, want 404", res.StatusCode, res.Header.Get("X-Byoc-Status"))
		}
		if res := b.do(request(http.MethodPost, cancelPath, nil, "HX-Request", "true")); res.Header.Get("X-Byoc-Status") != "403" {
			t.Fatalf("without the CSRF token: %d %q, want 403", res.StatusCode, res.Header.Get("X-Byoc-Status"))
		}
		res := b.hx(http.MethodPost, cancelPath, nil, token)
		if res.StatusCode == http.StatusAccepted {
			break
		}
		if res.Header.Get("X-Byoc-Status") != "404" || time.Now().After(deadline) {
			t.Fatalf("cancel: %d %q\n%s", res.StatusCode, res.Header.Get("X-Byoc-Status"), res.body)
		}
		time.Sleep(20 * time.Millisecond)
	}

	res := <-done
	if res == nil {
		t.FailNow()
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if got := res.Header.Get("X-Byoc-Status"); got != "409" {
		t.Fatalf("the cancelled save answered %q, want 409\n%s", got, body)
	}
	if !strings.Contains(string(body), "Cancelled: nothing was saved") || strings.Contains(string(body), "could not be reached") {
		t.Fatalf("the cancelled save says\n%s", body)
	}
	if _, err := e.creds.Get(context.Background(), orgID, app.Resend); app.ErrorCode(err) != app.ENotConfigured {
		t.Fatalf("after the cancel: %v, want nothing stored", err)
	}
	if res := b.hx(http.MethodPost, cancelPath, nil, token); res.Header.Get("X-Byoc-Status") != "404" {
		t.Fatalf("a second cancel: %q, want 404", res.Header.Get("X-Byoc-Status"))
	}
	if strings.Contains(e.log.String(), "provider unavailable") {
		t.Fatal("the cancel was logged as the provider's failure")
	}
}

// A save still running when the server stops answers that the server is
// restarting (503 unavailable), never that the provider could not be
// reached, and stores nothing.
func TestShutdownNeverBlamesTheProvider(t *testing.T) {
	e := newEnv(t, withProviderTimeout(time.Minute))
	b, token, orgID := e.admin()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(ln) }()

	req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/api/integrations/twilio",
		strings.NewReader(url.Values{"accountSid": {twilioSID()}, "authToken": {twilioToken("slow")},
			"phoneNumber": {"+14155550100"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-CSRF-Token", token)
	req.AddCookie(&http.Cookie{Name: "byoc_session", Value: b.cookies["byoc_session"].Value})
	answered := make(chan *http.Response, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
		}
		answered <- res
	}()
	// The save is waiting for the provider once the stand-in holds it.
	time.Sleep(500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	_ = e.srv.Shutdown(ctx)

	res := <-answered
	if res == nil {
		t.FailNow()
	}
	defer res.Body.Close()
	var env app.ErrorEnvelope
	if err := json.NewDecoder(res.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusServiceUnavailable || env.Error.Code != app.EUnavailable ||
		!strings.Contains(env.Error.Message, "restarting") || strings.Contains(env.Error.Message, "Twilio") {
		t.Fatalf("%d %+v, want 503 unavailable saying the server is restarting", res.StatusCode, env.Error)
	}
	if _, err := e.creds.Get(context.Background(), orgID, app.Twilio); app.ErrorCode(err) != app.ENotConfigured {
		t.Fatalf("after the stop: %v, want nothing stored", err)
	}
	if strings.Contains(e.log.String(), "provider unavailable") {
		t.Fatal("the stop was logged as the provider's failure")
	}
	<-served
}

// A Test connection held up by a slow provider is cancelled the same way:
// the card says so, and the check records nothing.
func TestCancelARunningTest(t *testing.T) {
	e := newEnv(t, withProviderTimeout(time.Minute))
	b, token, orgID := e.admin()
	e.store(orgID, app.ResendConfig{APIKey: app.NewSecret(resendKey("slow"))})
	before := b.status(token)["resend"]
	attempt := "0123456789abcdef-verify"

	verify := request(http.MethodPost, "/api/integrations/resend/verify", nil,
		"HX-Request", "true", "X-CSRF-Token", token, "X-Byoc-Attempt", attempt)
	verify.AddCookie(&http.Cookie{Name: "byoc_session", Value: b.cookies["byoc_session"].Value})
	done := make(chan *http.Response, 1)
	go func() {
		res, err := e.srv.Test(verify)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	for deadline := time.Now().Add(10 * time.Second); ; {
		res := b.hx(http.MethodPost, "/api/integrations/attempts/"+attempt+"/cancel", nil, token)
		if res.StatusCode == http.StatusAccepted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cancel: %d %q", res.StatusCode, res.Header.Get("X-Byoc-Status"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	res := <-done
	if res == nil {
		t.FailNow()
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.Header.Get("X-Byoc-Status") != "409" || !strings.Contains(string(body), `data-testid="card-resend-result"`) ||
		!strings.Contains(string(body), "Cancelled") || strings.Contains(string(body), "could not be reached") {
		t.Fatalf("the cancelled test answered %q\n%s", res.Header.Get("X-Byoc-Status"), body)
	}
	after := b.status(token)["resend"]
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("the cancelled test changed the status:\nbefore %v\nafter  %v", before, after)
	}
}

// Behind a load balancer the cancel may reach another instance than the
// save: it is passed on through the database, the instance running the
// save stops it and says so, and the cancel answers 202 as it would on
// the save's own instance. A cancel that no instance can act on (nothing
// runs under that id for that user) answers 404.
func TestCancelReachesTheSaveOnAnotherInstance(t *testing.T) {
	e := newEnv(t, withProviderTimeout(time.Minute))
	other := e.instance()
	ctx, stop := context.WithCancel(context.Background())
	for _, inst := range []*env{e, other} {
		go inst.sys.ListenInvalidations(ctx)
	}
	defer stop()
	b, token, orgID := e.admin()
	attempt := "b1b2c3d4-e5f6-4789-9abc-def012345678"
	cancelPath := "/api/integrations/attempts/" + attempt + "/cancel"
	// through sends one of b's requests to the other instance.
	through := func(r *http.Request) *http.Response {
		t.Helper()
		r.AddCookie(&http.Cookie{Name: "byoc_session", Value: b.cookies["byoc_session"].Value})
		res, err := other.srv.Test(r)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := through(request(http.MethodPost, cancelPath, nil, "HX-Request", "true", "X-CSRF-Token", token)); res.Header.Get("X-Byoc-Status") != "404" {
		t.Fatalf("cancel of nothing through the other instance: %d %q, want 404", res.StatusCode, res.Header.Get("X-Byoc-Status"))
	}

	done := startSlowSave(t, e, b, token, attempt)

	// Another admin's cancel of the same id, through the other instance,
	// stops nothing.
	intruder, intruderToken, _ := e.admin()
	r := request(http.MethodPost, cancelPath, nil, "HX-Request", "true", "X-CSRF-Token", intruderToken)
	r.AddCookie(&http.Cookie{Name: "byoc_session", Value: intruder.cookies["byoc_session"].Value})
	if res, err := other.srv.Test(r); err != nil || res.Header.Get("X-Byoc-Status") != "404" {
		t.Fatalf("another admin's cancel through the other instance: %v %v, want 404", err, res.Header.Get("X-Byoc-Status"))
	}

	for deadline := time.Now().Add(20 * time.Second); ; {
		res := through(request(http.MethodPost, cancelPath, nil, "HX-Request", "true", "X-CSRF-Token", token))
		if res.StatusCode == http.StatusAccepted {
			break
		}
		if res.Header.Get("X-Byoc-Status") != "404" || time.Now().After(deadline) {
			t.Fatalf("cancel through the other instance: %d %q", res.StatusCode, res.Header.Get("X-Byoc-Status"))
		}
	}
	var res *http.Response
	select {
	case res = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the save still runs after the cancel was acknowledged")
	}
	if res == nil {
		t.FailNow()
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.Header.Get("X-Byoc-Status") != "409" || !strings.Contains(string(body), "Cancelled: nothing was saved") {
		t.Fatalf("the save cancelled from the other instance answered %q\n%s", res.Header.Get("X-Byoc-Status"), body)
	}
	if _, err := e.creds.Get(context.Background(), orgID, app.Resend); app.ErrorCode(err) != app.ENotConfigured {
		t.Fatalf("after the cancel: %v, want nothing stored", err)
	}
}

// TestMadeUpCancelsAreBounded: a user sending many cancels of made-up ids
// at once gets 404 for each, and only a few of them are passed on to the
// other instances.
func TestMadeUpCancelsAreBounded(t *testing.T) {
	e := newEnv(t)
	b, token, orgID := e.admin()
	var userID string
	if err := e.db.Pool.QueryRow(context.Background(),
		`select user_id::text from org_members where org_id = $1`, orgID).Scan(&userID); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	heard := make(chan string, 64)
	listening := make(chan bool, 4)
	go e.db.Listen(ctx, db.Listeners{Invalidate: func(string, string) {}, Flush: func() {},
		Listening: func(on bool) { listening <- on },
		Cancel: func(user, attempt string) {
			if user == userID {
				heard <- attempt
			}
		}})
	if !<-listening {
		t.Fatal("the listener did not listen")
	}
	const sent = 12
	codes := make(chan string, sent)
	for i := range sent {
		go func() {
			id := fmt.Sprintf("made-up-%016d", i)
			res := b.hx(http.MethodPost, "/api/integrations/attempts/"+id+"/cancel", nil, token)
			codes <- res.Header.Get("X-Byoc-Status")
		}()
	}
	for range sent {
		if code := <-codes; code != "404" {
			t.Fatalf("a made-up cancel answered %q, want 404", code)
		}
	}
	if n := len(heard); n < 1 || n > 4 {
		t.Fatalf("%d of %d made-up cancels were passed on, want between 1 and 4", n, sent)
	}
}
