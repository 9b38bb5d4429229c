package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/gofiber/fiber/v2"
)

func TestClientAddress(t *testing.T) {
	// app.Test's peer is 0.0.0.0; 10.0.0.0/8 are further proxies.
	proxies, err := parseProxies([]string{"0.0.0.0", "10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{proxies: proxies}
	app := fiber.New()
	app.Get("/", func(c *fiber.Ctx) error { return c.SendString(s.clientIP(c) + " " + s.addrSubject(c)) })
	tests := []struct {
		name  string
		lines []string // X-Forwarded-For header lines, in order
		ip    string
		key   string // what the limits count the client as
	}{
		{"no header: the proxy itself", nil, "0.0.0.0", "0.0.0.0"},
		{"one entry", []string{"203.0.113.7"}, "203.0.113.7", "203.0.113.7"},
		{"client entries on the left", []string{"198.51.100.1, 203.0.113.7"}, "203.0.113.7", "203.0.113.7"},
		{"trusted proxies skipped", []string{"198.51.100.1, 203.0.113.7, 10.1.2.3"}, "203.0.113.7", "203.0.113.7"},
		{"the client's own line first", []string{"198.51.100.1", "203.0.113.7"}, "203.0.113.7", "203.0.113.7"},
		{"lines and commas", []string{"198.51.100.1, 198.51.100.2", "203.0.113.7, 10.0.0.1"}, "203.0.113.7", "203.0.113.7"},
		{"port", []string{"203.0.113.7:5678"}, "203.0.113.7", "203.0.113.7"},
		{"proxy with port", []string{"203.0.113.7, 10.0.0.1:443"}, "203.0.113.7", "203.0.113.7"},
		{"brackets", []string{"[2001:db8::1]"}, "2001:db8::1", "2001:db8::/64"},
		{"brackets and port", []string{"[2001:db8::1]:8080"}, "2001:db8::1", "2001:db8::/64"},
		{"IPv4-mapped", []string{"::ffff:203.0.113.7"}, "203.0.113.7", "203.0.113.7"},
		{"garbage", []string{"garbage"}, unparsableForwardedFor, unparsableForwardedFor},
		{"garbage after a proxy", []string{"203.0.113.7, garbage, 10.0.0.1"}, unparsableForwardedFor, unparsableForwardedFor},
		{"garbage the client adds", []string{"garbage, 203.0.113.7"}, "203.0.113.7", "203.0.113.7"},
		{"empty entry", []string{"203.0.113.7,"}, unparsableForwardedFor, unparsableForwardedFor},
		{"IPv6 by /64", []string{"2001:db8:1:2:aaaa::1"}, "2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"same /64", []string{"2001:db8:1:2:bbbb::9"}, "2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"},
		{"another /64", []string{"2001:db8:1:3::1"}, "2001:db8:1:3::1", "2001:db8:1:3::/64"},
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
