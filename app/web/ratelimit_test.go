package web_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// withAttempts sets the attempt limits per address and per email.
func withAttempts(perIP, perEmail int) envOption {
	return func(s *envSetup) { s.cfg.Limits.AttemptsPerIP, s.cfg.Limits.AttemptsPerEmail = perIP, perEmail }
}

// assertRateLimited fails unless res is the JSON 429 answer of a limit.
func assertRateLimited(t *testing.T, res response) {
	t.Helper()
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429\n%s", res.StatusCode, res.body)
	}
	er := envelopeError(t, res)
	if er["code"] != "rate_limited" || !strings.Contains(er["message"].(string), "Too many attempts") {
		t.Fatalf("error %v", er)
	}
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Fatalf("Retry-After %q, want 1 to 60 seconds", res.Header.Get("Retry-After"))
	}
}

func TestAttemptsPerEmail(t *testing.T) {
	token := func(e *env, email, pw string) response {
		return e.do(request(http.MethodPost, "/api/auth/token", map[string]string{"email": email, "password": pw}))
	}
	tests := []struct {
		name string
		// attempt makes one failed attempt for email.
		attempt func(e *env, email string) response
	}{
		{"API token", func(e *env, email string) response { return token(e, email, "wrong password!!") }},
		{"login form", func(e *env, email string) response {
			b := e.browser()
			csrf := b.csrf("/login")
			return b.do(request(http.MethodPost, "/login", url.Values{"_csrf": {csrf}, "email": {email}, "password": {"wrong password!!"}}))
		}},
		{"login JSON", func(e *env, email string) response {
			b := e.browser()
			csrf := b.csrf("/login")
			return b.do(request(http.MethodPost, "/login", map[string]string{"email": email, "password": "wrong password!!"},
				"X-CSRF-Token", csrf, "Accept", "application/json"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, withAttempts(1000, 10))
			victim := e.browser().signup(password)
			other := e.browser().signup(password)
			for i := range 10 {
				// The case of the address does not make a new count.
				email := victim
				if i%2 == 1 {
					email = strings.ToUpper(victim)
				}
				if res := tt.attempt(e, email); res.StatusCode != http.StatusUnauthorized {
					t.Fatalf("attempt %d: status %d, want 401\n%s", i+1, res.StatusCode, res.body)
				}
			}
			if res := tt.attempt(e, victim); res.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("11th attempt: status %d, want 429", res.StatusCode)
			}
			// Over the limit, even the right password is refused, on
			// either sign-in route.
			assertRateLimited(t, token(e, victim, password))
			// Another address still signs in.
			if res := token(e, other, password); res.StatusCode != http.StatusOK {
				t.Fatalf("another email: status %d\n%s", res.StatusCode, res.body)
			}
			if res := tt.attempt(e, other); res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("another email, wrong password: status %d, want 401", res.StatusCode)
			}
		})
	}
}

func TestAttemptsPerIP(t *testing.T) {
	// The test server's peer is 0.0.0.0; as a trusted proxy it names the
	// client in X-Forwarded-For.
	e := newEnv(t, withAttempts(5, 1000), behindProxy)
	signup := func(xff string) response {
		return e.do(request(http.MethodPost, "/api/auth/signup", map[string]string{
			"orgName": "Clinic", "email": uniqueEmail(), "password": password}, "X-Forwarded-For", xff))
	}
	for i := range 5 {
		if res := signup("203.0.113.7"); res.StatusCode != http.StatusCreated {
			t.Fatalf("signup %d: status %d\n%s", i+1, res.StatusCode, res.body)
		}
	}
	assertRateLimited(t, signup("203.0.113.7"))

	t.Run("signups count apart from sign-ins", func(t *testing.T) {
		res := e.do(request(http.MethodPost, "/api/auth/token", map[string]string{"email": uniqueEmail(), "password": password},
			"X-Forwarded-For", "203.0.113.7"))
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a sign-in from an address over its signups: status %d, want 401\n%s", res.StatusCode, res.body)
		}
	})
	t.Run("entries the client adds do not make a new address", func(t *testing.T) {
		assertRateLimited(t, signup("198.51.100.1, 203.0.113.7"))
		assertRateLimited(t, signup("garbage, 203.0.113.7"))
	})
	t.Run("a header line the client sends before the proxy's is not read", func(t *testing.T) {
		req := request(http.MethodPost, "/api/auth/signup", map[string]string{
			"orgName": "Clinic", "email": uniqueEmail(), "password": password})
		req.Header["X-Forwarded-For"] = []string{"198.51.100.2", "203.0.113.7"}
		assertRateLimited(t, e.do(req))
	})
	t.Run("unparsable entries do not count against the proxy", func(t *testing.T) {
		for _, xff := range []string{"garbage", "0.0.0.0, garbage"} {
			if res := signup(xff); res.StatusCode != http.StatusCreated {
				t.Fatalf("%q: status %d\n%s", xff, res.StatusCode, res.body)
			}
		}
		for range 4 {
			signup("203.0.113.7, [bad")
		}
		assertRateLimited(t, signup("not an address"))
		// The proxy's own requests still count apart.
		res := e.do(request(http.MethodPost, "/api/auth/signup", map[string]string{
			"orgName": "Clinic", "email": uniqueEmail(), "password": password}))
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("the proxy: status %d\n%s", res.StatusCode, res.body)
		}
	})
	t.Run("another address is not limited", func(t *testing.T) {
		if res := signup("203.0.113.8"); res.StatusCode != http.StatusCreated {
			t.Fatalf("status %d\n%s", res.StatusCode, res.body)
		}
	})
	t.Run("the browser forms show the message", func(t *testing.T) {
		// The signup form counts with the API's signups.
		b := e.browser()
		csrf := b.csrf("/signup")
		form := url.Values{"_csrf": {csrf}, "orgName": {"Clinic"}, "email": {"someone@example.com"}, "password": {password}}
		res := b.do(request(http.MethodPost, "/signup", form, "X-Forwarded-For", "203.0.113.7"))
		if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
			t.Fatalf("status %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
		}
		d := res.doc(t)
		if msg := testid(d, "form-error").Text(); !strings.Contains(msg, "Too many attempts") {
			t.Fatalf("form error %q\n%s", msg, res.body)
		}
		if v, _ := testid(d, "email-input").Attr("value"); v != "someone@example.com" {
			t.Errorf("email value %q, want it kept", v)
		}
		// An address over its failed sign-ins gets the login form again.
		for range 5 {
			e.do(request(http.MethodPost, "/api/auth/token", map[string]string{"email": uniqueEmail(), "password": password},
				"X-Forwarded-For", "203.0.113.9"))
		}
		res = b.do(request(http.MethodPost, "/login", url.Values{"_csrf": {csrf}, "email": {"someone@example.com"}, "password": {password}},
			"X-Forwarded-For", "203.0.113.9", "HX-Request", "true"))
		if res.StatusCode != http.StatusOK || res.Header.Get("X-Byoc-Status") != "429" ||
			!strings.Contains(testid(res.doc(t), "form-error").Text(), "Too many attempts") {
			t.Fatalf("htmx login: %d (X-Byoc-Status %q)\n%s", res.StatusCode, res.Header.Get("X-Byoc-Status"), res.body)
		}
	})
	t.Run("other routes are not limited", func(t *testing.T) {
		if res := e.do(request(http.MethodGet, "/login", nil, "X-Forwarded-For", "203.0.113.7")); res.StatusCode != http.StatusOK {
			t.Fatalf("GET /login: %d", res.StatusCode)
		}
	})
	t.Run("the access log names the client", func(t *testing.T) {
		if !strings.Contains(e.log.String(), `"ip":"203.0.113.7"`) || strings.Contains(e.log.String(), `"ip":"198.51.100.1`) {
			t.Fatal("the access log does not name the right-most untrusted address")
		}
	})
}
