package web_test

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// listen runs the instance's invalidation listener (as the server's main
// does) until the test ends, and waits until its sign-in cache is in use:
// bearer's sign-in, read twice, is answered from memory.
func (e *env) listen(bearer string) {
	t := e.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.sys.ListenInvalidations(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		before := e.sys.Sessions.Stats().Hits
		for range 2 {
			if res := e.status(bearer); res.StatusCode != http.StatusOK {
				t.Fatalf("status API: %d %s", res.StatusCode, res.body)
			}
		}
		if e.sys.Sessions.Stats().Hits > before {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the sign-in cache was never used: is the listener wired to it?")
}

func (e *env) status(bearer string) response {
	return e.do(request(http.MethodGet, "/api/integrations/status", nil, "Authorization", bearer, "Accept", "application/json"))
}

// A token logged out through one instance stops working there at once, and
// on a second instance, whose cache held the sign-in, as soon as the
// database's announcement reaches it.
func TestSignInCacheLogoutAcrossInstances(t *testing.T) {
	first := newEnv(t)
	second := first.instance()
	res := first.do(request(http.MethodPost, "/api/auth/signup", map[string]string{
		"orgName": "Two Instance Dental", "email": uniqueEmail(), "password": password}))
	if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusOK {
		t.Fatalf("signup: %d %s", res.StatusCode, res.body)
	}
	bearer := "Bearer " + envelopeData(t, res)["token"].(string)
	first.listen(bearer)
	second.listen(bearer)

	if res := first.do(request(http.MethodPost, "/logout", nil, "Authorization", bearer, "Accept", "application/json")); res.StatusCode != http.StatusOK {
		t.Fatalf("logout: %d %s", res.StatusCode, res.body)
	}
	if res := first.status(bearer); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("on the instance that logged out: %d, want 401 at once", res.StatusCode)
	}
	start := time.Now()
	for {
		res := second.status(bearer)
		if res.StatusCode == http.StatusUnauthorized {
			t.Logf("the second instance refused the token %v after the logout answered", time.Since(start))
			return
		}
		if res.StatusCode != http.StatusOK || time.Since(start) > 5*time.Second {
			t.Fatalf("on the second instance %v after the logout: %d", time.Since(start), res.StatusCode)
		}
		time.Sleep(time.Millisecond)
	}
}
