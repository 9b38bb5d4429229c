package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
)

func TestAttemptWindow(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	w := newAttemptWindow(3, time.Minute, func() time.Time { return now })
	steps := []struct {
		advance time.Duration
		key     string
		ok      bool
	}{
		{0, "a", true},
		{time.Second, "a", true},
		{time.Second, "a", true},
		{time.Second, "a", false}, // the 4th within a minute
		{0, "b", true},            // keys count apart
		{time.Second, "a", false}, // refused attempts count too
		// 66s after a's window opened: the sliding window still covers
		// most of the previous one (5 attempts * 54/60 + 1 > 3).
		{61 * time.Second, "a", false},
		// 2 minutes after the last attempt, a starts afresh.
		{2 * time.Minute, "a", true},
		{0, "a", true},
		{0, "a", true},
		{0, "a", false},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		ok, retry := w.allow(s.key)
		if ok != s.ok {
			t.Fatalf("step %d (%s): allowed %v, want %v", i, s.key, ok, s.ok)
		}
		if !ok && (retry < time.Second || retry > time.Minute) {
			t.Fatalf("step %d: retry after %v", i, retry)
		}
	}
	// The sweep drops keys idle for two windows.
	now = now.Add(3 * time.Minute)
	w.allow("c")
	if _, ok := w.buckets["b"]; ok || len(w.buckets) != 1 {
		t.Fatalf("after the sweep: %d buckets", len(w.buckets))
	}
}

func TestAttemptWindowCap(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	w := newAttemptWindow(3, time.Minute, func() time.Time { return now })
	w.maxBuckets = 3
	steps := []struct {
		advance time.Duration
		key     string
		ok      bool
		buckets int
	}{
		{0, "a", true, 1},
		{0, "b", true, 2},
		{10 * time.Second, "c", true, 3},
		{0, "d", false, 3},                // full: a new key is refused
		{0, "a", true, 3},                 // known keys still count
		{115 * time.Second, "d", true, 2}, // a and b expired and were swept
		{0, "e", true, 3},                 // c is still counted
		{0, "f", false, 3},                // full again, swept just now
		{10 * time.Second, "f", true, 3},  // c expired
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		ok, retry := w.allow(s.key)
		if ok != s.ok || len(w.buckets) != s.buckets {
			t.Fatalf("step %d (%s): allowed %v with %d buckets, want %v with %d", i, s.key, ok, len(w.buckets), s.ok, s.buckets)
		}
		if !ok && (retry < time.Second || retry > time.Minute) {
			t.Fatalf("step %d: retry after %v", i, retry)
		}
	}
}

func TestClientAddress(t *testing.T) {
	// app.Test's peer is 0.0.0.0; 10.0.0.0/8 are further proxies.
	proxies, err := parseProxies([]string{"0.0.0.0", "10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{proxies: proxies}
	app := fiber.New()
	app.Get("/", func(c *fiber.Ctx) error { return c.SendString(s.clientIP(c) + " " + s.ipKey(c)) })
	tests := []struct {
		name  string
		lines []string // X-Forwarded-For header lines, in order
		ip    string
		key   string
	}{
		{"no header: the proxy itself", nil, "0.0.0.0", "ip:0.0.0.0"},
		{"one entry", []string{"203.0.113.7"}, "203.0.113.7", "ip:203.0.113.7"},
		{"client entries on the left", []string{"198.51.100.1, 203.0.113.7"}, "203.0.113.7", "ip:203.0.113.7"},
		{"trusted proxies skipped", []string{"198.51.100.1, 203.0.113.7, 10.1.2.3"}, "203.0.113.7", "ip:203.0.113.7"},
		{"the client's own line first", []string{"198.51.100.1", "203.0.113.7"}, "203.0.113.7", "ip:203.0.113.7"},
		{"lines and commas", []string{"198.51.100.1, 198.51.100.2", "203.0.113.7, 10.0.0.1"}, "203.0.113.7", "ip:203.0.113.7"},
		{"port", []string{"203.0.113.7:5678"}, "203.0.113.7", "ip:203.0.113.7"},
		{"proxy with port", []string{"203.0.113.7, 10.0.0.1:443"}, "203.0.113.7", "ip:203.0.113.7"},
		{"brackets", []string{"[2001:db8::1]"}, "2001:db8::1", "ip:2001:db8::/64"},
		{"brackets and port", []string{"[2001:db8::1]:8080"}, "2001:db8::1", "ip:2001:db8::/64"},
		{"IPv4-mapped", []string{"::ffff:203.0.113.7"}, "203.0.113.7", "ip:203.0.113.7"},
		{"garbage", []string{"garbage"}, unparsableForwardedFor, "ip:" + unparsableForwardedFor},
		{"garbage after a proxy", []string{"203.0.113.7, garbage, 10.0.0.1"}, unparsableForwardedFor, "ip:" + unparsableForwardedFor},
		{"garbage the client adds", []string{"garbage, 203.0.113.7"}, "203.0.113.7", "ip:203.0.113.7"},
		{"empty entry", []string{"203.0.113.7,"}, unparsableForwardedFor, "ip:" + unparsableForwardedFor},
		{"IPv6 by /64", []string{"2001:db8:1:2:aaaa::1"}, "2001:db8:1:2:aaaa::1", "ip:2001:db8:1:2::/64"},
		{"same /64", []string{"2001:db8:1:2:bbbb::9"}, "2001:db8:1:2:bbbb::9", "ip:2001:db8:1:2::/64"},
		{"another /64", []string{"2001:db8:1:3::1"}, "2001:db8:1:3::1", "ip:2001:db8:1:3::/64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			for _, l := range tt.lines {
				req.Header.Add("X-Forwarded-For", l)
			}
			res, err := app.Test(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			if want := tt.ip + " " + tt.key; string(b) != want {
				t.Fatalf("got %q, want %q", b, want)
			}
		})
	}
}

func TestAddrKey(t *testing.T) {
	key := func(s string) string { return addrKey(netip.MustParseAddr(s)) }
	tests := []struct {
		a, b string
		same bool
	}{
		{"2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff", true},
		{"2001:db8::1", "2001:db8:0:1::1", false},
		{"fe80::1%eth0", "fe80::2", true},
		{"203.0.113.7", "203.0.113.8", false},
		{"203.0.113.7", "::ffff:203.0.113.7", true},
	}
	for _, tt := range tests {
		if got := key(tt.a) == key(tt.b); got != tt.same {
			t.Errorf("%s (%s) and %s (%s): same key %v, want %v", tt.a, key(tt.a), tt.b, key(tt.b), got, tt.same)
		}
	}
}
