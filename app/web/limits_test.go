package web_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"byoc/app/web"
)

// The attempt limits as they hold in the shared PostgreSQL table: failed
// sign-ins per address and per (e-mail, address), the per-e-mail ceiling
// that slows instead of refusing, the counts shared between instances, and
// the provider-call limits. ratelimit_test.go has the per-route basics.

// behindProxy makes the test server's peer (0.0.0.0) a trusted proxy, so a
// request names its client in X-Forwarded-For.
func behindProxy(s *envSetup) { s.cfg.TrustedProxies = []string{"0.0.0.0"} }

// withProviderCalls sets the provider-call limits per org and per address.
func withProviderCalls(perOrg, perIP int) envOption {
	return func(s *envSetup) { s.cfg.Limits.ProviderCallsPerOrg, s.cfg.Limits.ProviderCallsPerIP = perOrg, perIP }
}

// signIn asks for a token for email with pw from the client address addr.
func (e *env) signIn(email, pw, addr string) response {
	e.t.Helper()
	return e.do(request(http.MethodPost, "/api/auth/token", map[string]string{"email": email, "password": pw},
		"X-Forwarded-For", addr))
}

const wrongPassword = "not the password!!"

// failSignIns makes n failed sign-ins for email from addr and fails the
// test unless each is answered 401.
func (e *env) failSignIns(n int, email, addr string) {
	e.t.Helper()
	for i := range n {
		if res := e.signIn(email, wrongPassword, addr); res.StatusCode != http.StatusUnauthorized {
			e.t.Fatalf("failed sign-in %d from %s: status %d, want 401\n%s", i+1, addr, res.StatusCode, res.body)
		}
	}
}

// An attacker elsewhere cannot lock the owner out: the lockout counts per
// (e-mail, address).
func TestSignInLockoutIsPerAddress(t *testing.T) {
	e := newEnv(t, withAttempts(1000, 10), behindProxy)
	victim := e.browser().signup(password)
	const attacker, owner = "198.51.100.66", "203.0.113.5"

	e.failSignIns(10, victim, attacker)
	assertRateLimited(t, e.signIn(victim, wrongPassword, attacker))
	// From the attacker's address even the right password is refused.
	assertRateLimited(t, e.signIn(victim, password, attacker))

	if res := e.signIn(victim, password, owner); res.StatusCode != http.StatusOK {
		t.Fatalf("the owner from their own address: status %d, want 200\n%s", res.StatusCode, res.body)
	}
	b := e.browser()
	csrf := b.csrf("/login")
	res := b.do(request(http.MethodPost, "/login", url.Values{"_csrf": {csrf}, "email": {victim}, "password": {password}},
		"X-Forwarded-For", owner))
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the owner through the login form: status %d, want 303\n%s", res.StatusCode, res.body)
	}
	// The owner's own mistakes still count for the owner's address.
	e.failSignIns(10, victim, owner)
	assertRateLimited(t, e.signIn(victim, password, owner))
}

// A successful sign-in clears the failures of its (e-mail, address) and is
// itself not counted: a client that signs in often is never refused for it.
func TestSuccessfulSignInClearsFailures(t *testing.T) {
	e := newEnv(t, withAttempts(5, 10), behindProxy)
	email := e.browser().signup(password)
	const addr = "203.0.113.5"

	e.failSignIns(4, email, addr)
	for i := range 20 {
		if res := e.signIn(email, password, addr); res.StatusCode != http.StatusOK {
			t.Fatalf("sign-in %d: status %d, want 200\n%s", i+1, res.StatusCode, res.body)
		}
	}
	// 4 failures before the successes and 1 now: within the address's 5.
	e.failSignIns(1, email, addr)

	t.Run("the pair starts afresh", func(t *testing.T) {
		e := newEnv(t, withAttempts(1000, 10), behindProxy)
		email := e.browser().signup(password)
		e.failSignIns(9, email, addr)
		if res := e.signIn(email, password, addr); res.StatusCode != http.StatusOK {
			t.Fatalf("sign-in after 9 failures: status %d\n%s", res.StatusCode, res.body)
		}
		e.failSignIns(10, email, addr)
		assertRateLimited(t, e.signIn(email, wrongPassword, addr))
	})
}

// Over the ceiling of failures for one e-mail across all addresses, every
// sign-in to it waits before its password is checked: guessing slows down,
// the owner still gets in.
func TestEmailCeilingSlowsRatherThanRefuses(t *testing.T) {
	const delay = time.Second
	e := newEnv(t, withAttempts(1000, 2), behindProxy, withWeb(func(o *web.Options) { o.AttemptDelay = delay }))
	victim := e.browser().signup(password)
	other := e.browser().signup(password)

	timed := func(email, pw, addr string) (response, time.Duration) {
		t.Helper()
		began := time.Now()
		res := e.signIn(email, pw, addr)
		return res, time.Since(began)
	}
	// Two failures from each of four addresses: the ceiling is 3 * 2 = 6.
	n := 0
	for _, addr := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"} {
		for range 2 {
			n++
			res, took := timed(victim, wrongPassword, addr)
			if res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("failure %d from %s: status %d, want 401 (the ceiling never refuses)\n%s", n, addr, res.StatusCode, res.body)
			}
			if slowed := took >= delay; slowed != (n > 6) {
				t.Fatalf("failure %d took %v: slowed %v, want %v", n, took, slowed, n > 6)
			}
		}
	}
	res, took := timed(victim, password, "203.0.113.5")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("the owner: status %d, want 200\n%s", res.StatusCode, res.body)
	}
	if took < delay {
		t.Fatalf("the owner's sign-in took %v, want it slowed by %v like any other", took, delay)
	}
	if res, took := timed(other, password, "198.51.100.1"); res.StatusCode != http.StatusOK || took >= delay {
		t.Fatalf("another e-mail from an attacking address: status %d after %v, want 200 without delay", res.StatusCode, took)
	}
}

// Two instances on one database share every count: n instances do not give
// n times the limit.
func TestLimitsHoldAcrossInstances(t *testing.T) {
	first := newEnv(t, withAttempts(6, 3), withProviderCalls(3, 1000), behindProxy)
	second := first.instance()
	instances := []*env{first, second}
	victim := first.browser().signup(password)

	t.Run("failed sign-ins per e-mail and address", func(t *testing.T) {
		for i := range 3 {
			instances[i%2].failSignIns(1, victim, "203.0.113.5")
		}
		for _, e := range instances {
			assertRateLimited(t, e.signIn(victim, password, "203.0.113.5"))
		}
	})
	t.Run("failed sign-ins per address", func(t *testing.T) {
		for i := range 6 {
			instances[i%2].failSignIns(1, uniqueEmail(), "198.51.100.7")
		}
		for _, e := range instances {
			assertRateLimited(t, e.signIn(uniqueEmail(), password, "198.51.100.7"))
		}
	})
	t.Run("a success on one instance clears the count on the other", func(t *testing.T) {
		first.failSignIns(2, victim, "203.0.113.6")
		if res := second.signIn(victim, password, "203.0.113.6"); res.StatusCode != http.StatusOK {
			t.Fatalf("status %d\n%s", res.StatusCode, res.body)
		}
		first.failSignIns(3, victim, "203.0.113.6")
		assertRateLimited(t, second.signIn(victim, wrongPassword, "203.0.113.6"))
	})
	t.Run("signups per address", func(t *testing.T) {
		signup := func(e *env) response {
			return e.do(request(http.MethodPost, "/api/auth/signup", map[string]string{
				"orgName": "Clinic", "email": uniqueEmail(), "password": password}, "X-Forwarded-For", "192.0.2.10"))
		}
		for i := range 6 {
			if res := signup(instances[i%2]); res.StatusCode != http.StatusCreated {
				t.Fatalf("signup %d: status %d\n%s", i+1, res.StatusCode, res.body)
			}
		}
		for _, e := range instances {
			assertRateLimited(t, signup(e))
		}
	})
	t.Run("provider calls per org", func(t *testing.T) {
		b, csrf, _ := first.admin()
		for i := range 3 {
			b.e = instances[i%2]
			if res := b.api(http.MethodPost, "/api/integrations/resend/verify", nil, csrf); res.StatusCode == http.StatusTooManyRequests {
				t.Fatalf("call %d refused\n%s", i+1, res.body)
			}
		}
		for _, e := range instances {
			b.e = e
			assertProviderLimited(t, b.api(http.MethodPost, "/api/integrations/resend/verify", nil, csrf))
		}
	})
}

// assertProviderLimited fails unless res is the JSON 429 answer of a
// provider-call limit.
func assertProviderLimited(t *testing.T, res response) {
	t.Helper()
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429\n%s", res.StatusCode, res.body)
	}
	er := envelopeError(t, res)
	if er["code"] != "rate_limited" || !strings.Contains(er["message"].(string), "Too many calls to providers") {
		t.Fatalf("error %v", er)
	}
	assertRetryAfter(t, res)
}

func assertRetryAfter(t *testing.T, res response) {
	t.Helper()
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Fatalf("Retry-After %q, want 1 to 60 seconds", res.Header.Get("Retry-After"))
	}
}

// Saving credentials, testing them and starting Google's sign-in call a
// provider: they are limited per org and per address, in every answer
// format, before anything reaches the provider.
func TestProviderCallLimitsPerOrg(t *testing.T) {
	e := newEnv(t, withProviderCalls(3, 1000), behindProxy)
	bA, csrfA, orgA := e.admin()
	bB, csrfB, _ := e.admin()
	from := func(addr string) []string { return []string{"X-Forwarded-For", addr} }

	// One call of each kind.
	calls := []*http.Request{
		request(http.MethodPost, "/api/integrations/resend", map[string]string{"apiKey": resendKey(), "fromEmail": "team@example.com"},
			append(from("203.0.113.30"), "X-CSRF-Token", csrfA)...),
		request(http.MethodPost, "/api/integrations/resend/verify", nil, append(from("203.0.113.31"), "X-CSRF-Token", csrfA)...),
		request(http.MethodGet, "/api/integrations/google_calendar/connect", nil, append(from("203.0.113.32"), "Accept", "application/json")...),
	}
	for i, req := range calls {
		if res := bA.do(req); res.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("call %d refused\n%s", i+1, res.body)
		}
	}
	auditA := auditCount(t, e, orgA)

	t.Run("JSON", func(t *testing.T) {
		assertProviderLimited(t, bA.api(http.MethodPost, "/api/integrations/resend/verify", nil, csrfA))
		assertProviderLimited(t, bA.api(http.MethodPost, "/api/integrations/resend",
			map[string]string{"apiKey": resendKey(), "fromEmail": "team@example.com"}, csrfA))
	})
	t.Run("htmx fragment", func(t *testing.T) {
		res := bA.hx(http.MethodPost, "/api/integrations/resend/verify", nil, csrfA)
		if res.StatusCode != http.StatusOK || res.Header.Get("X-Byoc-Status") != "429" ||
			!strings.Contains(res.body, "Too many calls to providers") {
			t.Fatalf("status %d (X-Byoc-Status %q)\n%s", res.StatusCode, res.Header.Get("X-Byoc-Status"), res.body)
		}
		assertRetryAfter(t, res)
	})
	t.Run("page", func(t *testing.T) {
		res := bA.hx(http.MethodPost, "/api/integrations/resend", url.Values{"apiKey": {resendKey()}, "fromEmail": {"team@example.com"}},
			csrfA, "HX-Boosted", "true")
		if res.StatusCode != http.StatusOK || res.Header.Get("X-Byoc-Status") != "429" ||
			!strings.Contains(testid(res.doc(t), "error-message").Text(), "Too many calls to providers") {
			t.Fatalf("boosted save: status %d (X-Byoc-Status %q)\n%s", res.StatusCode, res.Header.Get("X-Byoc-Status"), res.body)
		}
		assertRetryAfter(t, res)
		// The start of Google's sign-in is a top-level navigation: it goes
		// back to the dashboard with the reason, as its other refusals do.
		res = bA.get("/api/integrations/google_calendar/connect", "Accept", "text/html")
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/dashboard/integrations" {
			t.Fatalf("connect: status %d to %q\n%s", res.StatusCode, res.Header.Get("Location"), res.body)
		}
		assertRetryAfter(t, res)
		if msg := testid(bA.get("/dashboard/integrations").doc(t), "flashes").Text(); !strings.Contains(msg, "Too many calls to providers") {
			t.Fatalf("dashboard flash %q", msg)
		}
	})
	t.Run("nothing refused reached the service", func(t *testing.T) {
		if n := auditCount(t, e, orgA); n != auditA {
			t.Fatalf("%d audit entries after the refusals, want %d", n, auditA)
		}
	})
	t.Run("another org is not limited", func(t *testing.T) {
		if res := bB.api(http.MethodPost, "/api/integrations/resend/verify", nil, csrfB); res.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("org B refused\n%s", res.body)
		}
	})
	t.Run("other routes are not limited", func(t *testing.T) {
		if res := bA.get("/api/integrations/status"); res.StatusCode != http.StatusOK {
			t.Fatalf("status route: %d\n%s", res.StatusCode, res.body)
		}
		if res := bA.api(http.MethodDelete, "/api/integrations/resend", nil, csrfA); res.StatusCode != http.StatusOK {
			t.Fatalf("disconnect: %d\n%s", res.StatusCode, res.body)
		}
	})
	t.Run("members are not counted", func(t *testing.T) {
		m, csrfM := e.member(orgA)
		for range 5 {
			res := m.api(http.MethodPost, "/api/integrations/resend/verify", nil, csrfM)
			if res.StatusCode != http.StatusForbidden {
				t.Fatalf("member: status %d, want 403\n%s", res.StatusCode, res.body)
			}
		}
	})
}

func TestProviderCallLimitsPerAddress(t *testing.T) {
	e := newEnv(t, withProviderCalls(1000, 3), behindProxy)
	bA, csrfA, _ := e.admin()
	bB, csrfB, _ := e.admin()
	verify := func(b *browser, csrf, addr string) response {
		return b.do(request(http.MethodPost, "/api/integrations/resend/verify", nil, "X-CSRF-Token", csrf, "X-Forwarded-For", addr))
	}
	const x, y = "203.0.113.40", "2001:db8:1:2::1"
	for i, c := range []struct {
		b    *browser
		csrf string
	}{{bA, csrfA}, {bA, csrfA}, {bB, csrfB}} {
		if res := verify(c.b, c.csrf, x); res.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("call %d at X refused\n%s", i+1, res.body)
		}
	}
	// Org B has made one call, but its address is over the limit.
	assertProviderLimited(t, verify(bB, csrfB, x))
	if res := verify(bB, csrfB, y); res.StatusCode == http.StatusTooManyRequests {
		t.Fatalf("org B at another address refused\n%s", res.body)
	}
	// An IPv6 client counts by its /64.
	for range 2 {
		verify(bA, csrfA, "2001:db8:1:2::ffff")
	}
	assertProviderLimited(t, verify(bB, csrfB, "2001:db8:1:2:aaaa::1"))
}

func auditCount(t *testing.T, e *env, orgID string) int {
	t.Helper()
	var n int
	if err := e.db.Pool.QueryRow(context.Background(), `select count(*) from audit_log where org_id = $1`, orgID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The shared counts hold neither e-mails nor addresses.
func TestAttemptCountsHoldNoEmailOrAddress(t *testing.T) {
	e := newEnv(t, behindProxy)
	email := e.browser().signup(password)
	const addr = "203.0.113.99"
	e.failSignIns(2, email, addr)
	if res := e.signIn(email, password, addr); res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	e.do(request(http.MethodPost, "/api/auth/signup", map[string]string{"orgName": "Clinic", "email": email, "password": password},
		"X-Forwarded-For", addr))

	rows, err := e.db.Pool.Query(context.Background(), `select kind, key, span::text, window_start::text, expires_at::text from attempt_counts`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	kinds := map[string]bool{}
	for rows.Next() {
		var kind, span, started, expires string
		var key []byte
		if err := rows.Scan(&kind, &key, &span, &started, &expires); err != nil {
			t.Fatal(err)
		}
		kinds[kind] = true
		row := bytes.ToLower([]byte(kind + " " + string(key) + " " + span + " " + started + " " + expires))
		local, _, _ := strings.Cut(email, "@")
		for _, clear := range []string{email, local, addr, "203.0.113"} {
			if bytes.Contains(row, []byte(clear)) {
				t.Errorf("a %s count holds %q", kind, clear)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"signin_ip", "signin_email_ip", "signin_email", "signup_ip"} {
		if !kinds[k] {
			t.Errorf("no %s count written (kinds %v)", k, kinds)
		}
	}
}
