package web_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"byoc/app"
	"byoc/app/web"
)

type pinger func(context.Context) error

func (p pinger) Ping(ctx context.Context) error { return p(ctx) }

func withDB(p web.Pinger) envOption {
	return func(s *envSetup) { s.ready = p }
}

func TestHealthAndReadiness(t *testing.T) {
	e := newEnv(t)
	res := e.do(request(http.MethodGet, "/healthz", nil))
	if res.StatusCode != http.StatusOK || res.json(t)["status"] != "ok" {
		t.Fatalf("/healthz: %d %s", res.StatusCode, res.body)
	}
	res = e.do(request(http.MethodGet, "/readyz", nil))
	if body := res.json(t); res.StatusCode != http.StatusOK || body["status"] != "ok" || body["database"] != "up" {
		t.Fatalf("/readyz: %d %s, want 200 ok with the database up", res.StatusCode, res.body)
	}
}

// The database is shared by every instance: while it does not answer, an
// instance stays ready (a load balancer keeps sending it the webhooks its
// caches verify) and says the database is down. The ping's error never
// reaches the answer; the log says it once, not on every probe.
func TestReadinessWithTheDatabaseDown(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	down := newEnv(t, withDB(pinger(func(context.Context) error {
		if fail.Load() {
			return errors.New("connect to 10.9.8.7: connection refused (password=Hunter2-secret)")
		}
		return nil
	})))
	for range 3 {
		res := down.do(request(http.MethodGet, "/readyz", nil))
		if body := res.json(t); res.StatusCode != http.StatusOK || body["status"] != "degraded" || body["database"] != "down" {
			t.Fatalf("/readyz with the database down: %d %s, want 200 degraded with the database down", res.StatusCode, res.body)
		}
		if strings.Contains(res.body, "Hunter2") || strings.Contains(res.body, "10.9.8.7") {
			t.Fatalf("the ping's error reached the answer: %s", res.body)
		}
	}
	if res := down.do(request(http.MethodGet, "/healthz", nil)); res.StatusCode != http.StatusOK {
		t.Fatalf("/healthz with the database down: %d, want 200", res.StatusCode)
	}
	if n := strings.Count(down.log.String(), "the database does not answer"); n != 1 {
		t.Fatalf("the database going down was logged %d times over 3 probes, want once:\n%s", n, down.log)
	}

	fail.Store(false)
	for range 2 {
		res := down.do(request(http.MethodGet, "/readyz", nil))
		if body := res.json(t); res.StatusCode != http.StatusOK || body["status"] != "ok" || body["database"] != "up" {
			t.Fatalf("/readyz once the database is back: %d %s, want 200 ok", res.StatusCode, res.body)
		}
	}
	if n := strings.Count(down.log.String(), "the database answers again"); n != 1 {
		t.Fatalf("the database coming back was logged %d times over 2 probes, want once", n)
	}
}

// A database that does not answer at all (a lost network path: the ping
// hangs) reads as down once the ping's own short timeout ends, well within
// the request's deadline: the load balancer's check gets an answer rather
// than timing out and taking the instance out.
func TestReadinessWithADatabaseThatHangs(t *testing.T) {
	hangs := pinger(func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("the ping has no deadline")
		}
		<-ctx.Done()
		return ctx.Err()
	})
	e := newEnv(t, withDB(hangs), withWeb(func(o *web.Options) { o.RequestTimeout = time.Minute }))
	res := e.do(request(http.MethodGet, "/readyz", nil))
	if body := res.json(t); res.StatusCode != http.StatusOK || body["database"] != "down" {
		t.Fatalf("/readyz with a database that hangs: %d %s, want 200 with the database down", res.StatusCode, res.body)
	}
}

// What belongs to this instance alone still makes it unready: draining
// before a shutdown, and not having started (its invalidation listener has
// not listened yet), whatever the database's state.
func TestReadinessOfTheInstanceItself(t *testing.T) {
	for _, dbUp := range []bool{true, false} {
		ping := pinger(func(context.Context) error {
			if dbUp {
				return nil
			}
			return errors.New("connection refused")
		})
		starting := newEnv(t, withDB(ping), func(s *envSetup) { s.starting = true })
		res := starting.do(request(http.MethodGet, "/readyz", nil))
		if res.StatusCode != http.StatusServiceUnavailable || res.json(t)["status"] != "starting" {
			t.Fatalf("database up %v, not started: /readyz %d %s, want 503 starting", dbUp, res.StatusCode, res.body)
		}
		starting.srv.Started()
		if res := starting.do(request(http.MethodGet, "/readyz", nil)); res.StatusCode != http.StatusOK {
			t.Fatalf("database up %v, started: /readyz %d %s, want 200", dbUp, res.StatusCode, res.body)
		}
		starting.srv.Drain()
		res = starting.do(request(http.MethodGet, "/readyz", nil))
		if res.StatusCode != http.StatusServiceUnavailable || res.json(t)["status"] != "draining" {
			t.Fatalf("database up %v, draining: /readyz %d %s, want 503 draining", dbUp, res.StatusCode, res.body)
		}
	}
}

// A whole system is not ready until its invalidation listener listens, and
// stays ready when that listener loses its connection afterwards (the
// database's state, shared by every instance).
func TestReadinessFollowsTheListenersStart(t *testing.T) {
	e := newEnv(t, func(s *envSetup) { s.starting = true })
	if res := e.do(request(http.MethodGet, "/readyz", nil)); res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("before the listener started: /readyz %d %s, want 503", res.StatusCode, res.body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.sys.ListenInvalidations(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := e.do(request(http.MethodGet, "/readyz", nil))
		if res.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("the listener runs but /readyz still answers %d %s", res.StatusCode, res.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if res := e.do(request(http.MethodGet, "/readyz", nil)); res.StatusCode != http.StatusOK {
		t.Fatalf("after the listener stopped: /readyz %d %s, want 200 (started once)", res.StatusCode, res.body)
	}
}

func TestRequestDeadline(t *testing.T) {
	hasDeadline := make(chan bool, 1)
	slow := pinger(func(ctx context.Context) error {
		_, ok := ctx.Deadline()
		hasDeadline <- ok
		<-ctx.Done()
		return ctx.Err()
	})
	e := newEnv(t, withDB(slow), withWeb(func(o *web.Options) { o.RequestTimeout = 50 * time.Millisecond }))
	start := time.Now()
	res := e.do(request(http.MethodGet, "/readyz", nil))
	if res.StatusCode != http.StatusServiceUnavailable || time.Since(start) > time.Second {
		t.Fatalf("status %d after %v, want 503 soon after the 50ms deadline", res.StatusCode, time.Since(start))
	}
	if !<-hasDeadline {
		t.Fatal("the handler's context has no deadline")
	}
}

func TestPanicBecomes500(t *testing.T) {
	e := newEnv(t, withDB(pinger(func(context.Context) error { panic("boom in a dependency") })))
	for _, accept := range []string{"application/json", "text/html"} {
		res := e.do(request(http.MethodGet, "/readyz", nil, "Accept", accept))
		if res.StatusCode != http.StatusInternalServerError {
			t.Fatalf("status %d, want 500", res.StatusCode)
		}
		if strings.Contains(res.body, "boom") {
			t.Fatalf("the panic value reached the response: %s", res.body)
		}
		if accept == "application/json" && envelopeError(t, res)["code"] != "internal" {
			t.Fatalf("body %s", res.body)
		}
	}
	if res := e.do(request(http.MethodGet, "/healthz", nil)); res.StatusCode != http.StatusOK {
		t.Fatalf("after the panic: /healthz %d", res.StatusCode)
	}
	if logs := e.log.String(); !strings.Contains(logs, "boom in a dependency") || !strings.Contains(logs, `"level":"ERROR"`) {
		t.Fatalf("the panic was not logged as an error:\n%s", logs)
	}
}

func TestErrorAnswers(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		req    *http.Request
		status int
		code   string
	}{
		{"unknown route, JSON", request(http.MethodGet, "/api/nothing-here", nil), 404, "not_found"},
		{"unknown route, Accept JSON", request(http.MethodGet, "/nothing-here", nil, "Accept", "application/json"), 404, "not_found"},
		{"wrong method", request(http.MethodGet, "/api/auth/token", nil), 405, "method_not_allowed"},
		{"malformed JSON", request(http.MethodPost, "/api/auth/signup", `{"orgName": "Acme",`), 400, "validation_failed"},
		{"JSON of the wrong type", request(http.MethodPost, "/api/auth/token", `{"email": 42, "password": "x"}`), 400, "validation_failed"},
		{"JSON array", request(http.MethodPost, "/api/auth/token", `[1,2]`), 400, "validation_failed"},
		{"unsupported content type", request(http.MethodPost, "/api/auth/token", "hello", "Content-Type", "text/plain"), 400, "validation_failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do(tt.req)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d\n%s", res.StatusCode, tt.status, res.body)
			}
			er := envelopeError(t, res)
			if er["code"] != tt.code {
				t.Fatalf("code %v, want %s", er["code"], tt.code)
			}
			if msg, _ := er["message"].(string); msg == "" || strings.Contains(msg, "Cannot") || strings.Contains(msg, "invalid character") {
				t.Fatalf("message %q is empty or raw", msg)
			}
		})
	}

	t.Run("body too large", func(t *testing.T) {
		// fasthttp refuses the body while reading it, before any handler;
		// app.Test reports that as an error, so this goes over a socket.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = e.srv.Serve(ln) }()
		defer func() { _ = e.srv.Shutdown(context.Background()) }()
		// Announce a body over the limit; the server answers from the
		// headers alone.
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = fmt.Fprintf(conn, "POST /api/auth/signup HTTP/1.1\r\nHost: byoc.test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", web.DefaultBodyLimit+1)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413\n%s", res.StatusCode, body)
		}
		if er := envelopeError(t, response{Response: res, body: string(body)}); er["code"] != "payload_too_large" {
			t.Fatalf("code %v", er["code"])
		}
	})

	t.Run("unsafe method on an unknown route", func(t *testing.T) {
		// The CSRF check runs before the router knows there is no route.
		b := e.browser()
		token := b.csrf("/login")
		res := b.do(request(http.MethodDelete, "/api/auth/token", nil, "Accept", "application/json"))
		if res.StatusCode != http.StatusForbidden {
			t.Fatalf("without a CSRF token: %d, want 403", res.StatusCode)
		}
		res = b.do(request(http.MethodDelete, "/api/auth/token", nil, "Accept", "application/json", "X-CSRF-Token", token))
		if res.StatusCode != http.StatusMethodNotAllowed || envelopeError(t, res)["code"] != "method_not_allowed" {
			t.Fatalf("with a CSRF token: %d\n%s", res.StatusCode, res.body)
		}
	})

	t.Run("unknown route, page", func(t *testing.T) {
		res := e.do(request(http.MethodGet, "/nothing-here", nil, "Accept", "text/html"))
		if res.StatusCode != http.StatusNotFound || testid(res.doc(t), "error-page").Length() != 1 {
			t.Fatalf("status %d\n%s", res.StatusCode, res.body)
		}
		if !strings.Contains(res.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("content type %q", res.Header.Get("Content-Type"))
		}
	})
}

func TestNegotiation(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	token := b.csrf("/login")
	form := url.Values{"_csrf": {token}, "email": {"nobody@example.com"}, "password": {"wrong password!!"}}

	tests := []struct {
		name     string
		headers  []string
		fullPage bool
		json     bool
	}{
		{"plain browser", nil, true, false},
		{"htmx", []string{"HX-Request", "true"}, false, false},
		{"boosted", []string{"HX-Request", "true", "HX-Boosted", "true"}, true, false},
		{"history restore", []string{"HX-Request", "true", "HX-History-Restore-Request", "true"}, true, false},
		{"Accept JSON", []string{"Accept", "application/json"}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := b.do(request(http.MethodPost, "/login", form, tt.headers...))
			if htmxStatus(t, res, len(tt.headers) > 0 && tt.headers[0] == "HX-Request") != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", res.StatusCode)
			}
			if vary := res.Header.Values("Vary"); !strings.Contains(strings.Join(vary, ","), "HX-Request") {
				t.Errorf("Vary %v lacks HX-Request", vary)
			}
			if tt.json {
				envelopeError(t, res)
				return
			}
			hasHTML := strings.Contains(res.body, "<html")
			if hasHTML != tt.fullPage {
				t.Fatalf("full page %v, want %v\n%s", hasHTML, tt.fullPage, res.body)
			}
			if testid(res.doc(t), "login-form").Length() != 1 {
				t.Fatalf("no login form\n%s", res.body)
			}
		})
	}

	t.Run("htmx error fragment goes to the flash region", func(t *testing.T) {
		res := e.do(request(http.MethodGet, "/nothing-here", nil, "HX-Request", "true"))
		if htmxStatus(t, res, true) != http.StatusNotFound || res.Header.Get("HX-Retarget") != "#flashes" {
			t.Fatalf("status %d retarget %q", res.StatusCode, res.Header.Get("HX-Retarget"))
		}
		if strings.Contains(res.body, "<html") || testid(res.doc(t), "error-alert").Length() != 1 {
			t.Fatalf("body %s", res.body)
		}
	})
	t.Run("signed out", func(t *testing.T) {
		cases := []struct {
			headers  []string
			status   int
			location string
			hx       string
		}{
			{nil, http.StatusFound, "/login?next=%2Fdashboard%2Fintegrations", ""},
			{[]string{"HX-Request", "true"}, http.StatusUnauthorized, "", "/login?next=%2Fdashboard%2Fintegrations"},
			{[]string{"Accept", "application/json"}, http.StatusUnauthorized, "", ""},
		}
		for _, c := range cases {
			res := e.do(request(http.MethodGet, "/dashboard/integrations", nil, c.headers...))
			if htmxStatus(t, res, len(c.headers) > 0 && c.headers[0] == "HX-Request") != c.status || res.Header.Get("Location") != c.location || res.Header.Get("HX-Redirect") != c.hx {
				t.Errorf("%v: %d Location %q HX-Redirect %q", c.headers, res.StatusCode, res.Header.Get("Location"), res.Header.Get("HX-Redirect"))
			}
		}
		if res := e.do(request(http.MethodGet, "/", nil)); res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/login" {
			t.Errorf("GET /: %d to %q", res.StatusCode, res.Header.Get("Location"))
		}
	})
	// Routes match paths in any case, and so does the JSON of /api/.
	t.Run("API path in another case", func(t *testing.T) {
		bearer := e.bearer()
		cases := []struct {
			path    string
			headers []string
			status  int
		}{
			{"/API/integrations/status", nil, http.StatusUnauthorized},
			{"/Api/Integrations/Status", []string{"Authorization", bearer}, http.StatusOK},
			{"/API/nothing-here", []string{"Authorization", bearer}, http.StatusNotFound},
		}
		for _, c := range cases {
			res := e.do(request(http.MethodGet, c.path, nil, c.headers...))
			if res.StatusCode != c.status || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
				t.Errorf("%s: %d %s, want %d JSON\n%.200s", c.path, res.StatusCode, res.Header.Get("Content-Type"), c.status, res.body)
			}
		}
	})
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	res := e.do(request(http.MethodGet, "/login", nil))
	want := map[string]string{
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "same-origin",
		"Cache-Control":          "no-store",
	}
	for k, v := range want {
		if got := res.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, part := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, part) {
			t.Errorf("CSP %q lacks %q", csp, part)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP allows inline code: %q", csp)
	}
	if len(res.Header.Get("X-Request-ID")) < 8 {
		t.Errorf("X-Request-ID %q", res.Header.Get("X-Request-ID"))
	}
	// The page has no inline script or style: everything is a file.
	d := res.doc(t)
	d.Find("script").Each(func(_ int, s *goquery.Selection) {
		if src, _ := s.Attr("src"); src == "" || strings.TrimSpace(s.Text()) != "" {
			t.Errorf("inline script: %s", s.Text())
		}
	})
	if d.Find("style").Length() != 0 || d.Find("[style]").Length() != 0 {
		t.Error("inline style on the page")
	}
	if res := e.do(request(http.MethodGet, "/healthz", nil, "X-Request-ID", "abc-123-def")); res.Header.Get("X-Request-ID") != "abc-123-def" {
		t.Errorf("incoming request id not kept: %q", res.Header.Get("X-Request-ID"))
	}
}

func TestStaticFiles(t *testing.T) {
	e := newEnv(t)
	d := e.do(request(http.MethodGet, "/login", nil)).doc(t)
	src, _ := d.Find(`script[src*="app.js"]`).Attr("src")
	if !strings.HasPrefix(src, "/static/js/app.js?v=") {
		t.Fatalf("app.js URL %q", src)
	}
	res := e.do(request(http.MethodGet, src, nil))
	if res.StatusCode != http.StatusOK || !strings.Contains(res.body, "X-CSRF-Token") {
		t.Fatalf("GET %s: %d", src, res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("content type %q", ct)
	}
	if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Errorf("versioned file: Cache-Control %q", cc)
	}
	res = e.do(request(http.MethodGet, "/static/js/app.js", nil))
	if cc := res.Header.Get("Cache-Control"); strings.Contains(cc, "immutable") {
		t.Errorf("unversioned file: Cache-Control %q", cc)
	}
	etag := res.Header.Get("ETag")
	if res := e.do(request(http.MethodGet, "/static/js/app.js", nil, "If-None-Match", etag)); res.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", res.StatusCode)
	}
	for _, p := range []string{"/static/css/.gitkeep", "/static/nothing.js", "/static/../static.go", "/static/img/favicon.svg/.."} {
		if res := e.do(request(http.MethodGet, p, nil)); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, res.StatusCode)
		}
	}
	if res := e.do(request(http.MethodGet, "/static/img/favicon.svg", nil)); res.Header.Get("Content-Type") != "image/svg+xml" {
		t.Errorf("favicon content type %q", res.Header.Get("Content-Type"))
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.do(request(http.MethodGet, "/healthz", nil))
	e.do(request(http.MethodGet, "/nothing/1", nil))
	e.do(request(http.MethodGet, "/nothing/2", nil))
	res := e.do(request(http.MethodGet, "/metrics", nil))
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", res.StatusCode)
	}
	for _, want := range []string{
		`byoc_http_requests_total{method="GET",route="/healthz",status="200"} 1`,
		`byoc_http_requests_total{method="GET",route="unmatched",status="404"} 2`,
		`byoc_http_request_duration_seconds_bucket{method="GET",route="/healthz",status="200"`,
		`go_goroutines`,
	} {
		if !strings.Contains(res.body, want) {
			t.Errorf("/metrics lacks %s\n%s", want, grepLines(res.body, "byoc_http_requests_total"))
		}
	}
	if strings.Contains(res.body, "/nothing/1") {
		t.Error("raw paths became metric labels")
	}
}

// TestNoPasswordInLogsOrResponses runs every flow that handles a password,
// including the failing ones, and looks for the password everywhere.
func TestNoPasswordInLogsOrResponses(t *testing.T) {
	e := newEnv(t)
	const secret = "Canary-Password-7f3a9c"
	b := e.browser()
	email := b.signup(secret)
	token := b.csrf("/dashboard/integrations")
	b.do(request(http.MethodPost, "/logout", url.Values{"_csrf": {token}}))

	token = b.csrf("/login")
	b.do(request(http.MethodPost, "/login", url.Values{"_csrf": {token}, "email": {email}, "password": {secret + "x"}}))
	b.do(request(http.MethodPost, "/login", url.Values{"_csrf": {token}, "email": {email}, "password": {secret}}))
	b.do(request(http.MethodPost, "/signup", url.Values{"_csrf": {token}, "orgName": {""}, "email": {email}, "password": {secret}}))
	b.do(request(http.MethodPost, "/login?password="+secret, url.Values{"email": {email}, "password": {secret}})) // no CSRF token: 403
	e.do(request(http.MethodPost, "/api/auth/signup", map[string]string{"orgName": "", "email": "x", "password": secret}))
	e.do(request(http.MethodPost, "/api/auth/signup", `{"password": "`+secret+`", "email": `))
	e.do(request(http.MethodPost, "/api/auth/token", map[string]string{"email": email, "password": secret}))
	e.do(request(http.MethodPost, "/api/auth/token", map[string]string{"email": email, "password": secret + "x"}))

	logs := e.log.String()
	if !strings.Contains(logs, `"msg":"request"`) {
		t.Fatalf("no access log captured:\n%s", logs)
	}
	if strings.Contains(logs, secret) {
		t.Fatalf("the password is in the log:\n%s", logs)
	}
	if strings.Contains(e.bodies.String(), secret) {
		t.Fatal("the password is in a response body")
	}
	for _, leak := range []string{"byoc_session=", "Bearer ", "eyJ"} {
		if strings.Contains(logs, leak) {
			t.Errorf("the log contains %q", leak)
		}
	}
}

func TestTamperedCookieIsIgnored(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signup(password)
	c := b.cookies["byoc_session"]
	c.Value = c.Value[:len(c.Value)-2] + "xx"
	res := b.get("/dashboard/integrations")
	if res.StatusCode != http.StatusFound {
		t.Fatalf("tampered cookie: %d, want a redirect to login", res.StatusCode)
	}

	// A cookie made with another secret is just as useless.
	other := newEnv(t, func(s *envSetup) { s.cfg.SessionSecret = app.NewSecret("another-session-secret-0123456789abcdef") })
	b2 := other.browser()
	b2.signup(password)
	b.cookies["byoc_session"] = b2.cookies["byoc_session"]
	if res := b.get("/dashboard/integrations"); res.StatusCode != http.StatusFound {
		t.Fatalf("cookie of another secret: %d, want a redirect to login", res.StatusCode)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	e := newEnv(t)
	d, integ := e.db, e.sys.Integrations
	deps := web.Deps{Accounts: e.sys.Accounts, DB: d, Integrations: integ, Webhooks: e.sys.Webhooks, Credentials: e.sys.Credentials,
		Limiter: e.sys.Limiter, Team: e.sys.Team}
	if _, err := web.New(web.Options{SessionSecret: []byte("too short a secret")}, deps); err == nil {
		t.Error("New accepted a session secret of 18 bytes")
	}
	if _, err := web.New(web.Options{SessionSecret: sessionSecret}, web.Deps{DB: d, Integrations: integ}); err == nil {
		t.Error("New accepted missing accounts")
	}
	if _, err := web.New(web.Options{SessionSecret: sessionSecret}, web.Deps{Accounts: deps.Accounts, DB: d}); err == nil {
		t.Error("New accepted missing integrations")
	}
	noHooks := deps
	noHooks.Webhooks = nil
	if _, err := web.New(web.Options{SessionSecret: sessionSecret}, noHooks); err == nil {
		t.Error("New accepted missing webhooks")
	}
	noLimiter := deps
	noLimiter.Limiter = nil
	if _, err := web.New(web.Options{SessionSecret: sessionSecret}, noLimiter); err == nil {
		t.Error("New accepted a missing limiter")
	}
	if _, err := web.New(web.Options{SessionSecret: sessionSecret}, deps); err != nil {
		t.Errorf("New refused good options: %v", err)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// htmxStatus returns the status an answer stands for. HTML answers to htmx
// requests are sent as 200 with the real status in X-Byoc-Status; for those
// it checks that form and returns the header's status.
func htmxStatus(t *testing.T, res response, htmx bool) int {
	t.Helper()
	if !htmx || !strings.Contains(res.Header.Get("Content-Type"), "text/html") {
		return res.StatusCode
	}
	if res.StatusCode != http.StatusOK {
		t.Errorf("an htmx HTML answer has status %d, want 200", res.StatusCode)
	}
	st, err := strconv.Atoi(res.Header.Get("X-Byoc-Status"))
	if err != nil {
		t.Errorf("an htmx HTML answer lacks X-Byoc-Status")
	}
	return st
}
