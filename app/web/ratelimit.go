package web

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"byoc/app"
	"byoc/app/paths"
)

// Brute-force protection of the routes that check a password or create an
// account: every attempt counts, successful or not, in a sliding window per
// client address (all four routes together) and, for the sign-in routes,
// per email address. An attempt over either limit is answered 429
// rate_limited with Retry-After, without reaching the accounts service.
//
// The counts live in this instance's memory: behind a load balancer that
// spreads requests over n instances a client gets up to n times the limit,
// and a restart forgets them. A shared limit needs a shared store (a
// counter table in PostgreSQL, or Redis) behind attemptWindow's allow.
//
// The counts take bounded memory: at most maxAttemptBuckets keys per
// window (per-address and per-email counts apart). When the table is full,
// the keys whose counts no longer matter are dropped (at most once a
// second); if it is still full, an attempt under a new key is refused
// (rate_limited) rather than the table grown, until old keys expire. So a
// flood from that many addresses, or of that many emails, can hold new
// clients out for up to two windows, while the clients already counted
// keep their limits; the alternative is running out of memory.
//
// A per-email limit also lets anyone who keeps guessing at an address hold
// its owner out of the password sign-in for as long as they keep going;
// that is the usual price of stopping a distributed guess at one account.

// Defaults for Options.AttemptsPerIP, AttemptsPerEmail and AttemptWindow.
const (
	DefaultAttemptsPerIP    = 30
	DefaultAttemptsPerEmail = 10
	DefaultAttemptWindow    = time.Minute
)

// maxAttemptBuckets caps the keys an attemptWindow holds, and
// fullSweepInterval is how often at most a full window looks for expired
// keys outside its usual sweep once a window.
const (
	maxAttemptBuckets = 100_000
	fullSweepInterval = time.Second
)

// attemptsMessage is what a client over a limit is told.
const attemptsMessage = "Too many attempts. Please wait a minute and try again."

// limitAttempts returns middleware that counts the request under key(c)
// in w and refuses it over the limit. An empty key counts nothing.
func (s *Server) limitAttempts(w *attemptWindow, key func(*fiber.Ctx) string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		k := key(c)
		if k == "" {
			return c.Next()
		}
		if ok, retry := w.allow(k); !ok {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(retry.Seconds()))))
			return s.tooManyAttempts(c)
		}
		return c.Next()
	}
}

// ipKey is the per-address key of a request (see addrKey).
func (s *Server) ipKey(c *fiber.Ctx) string {
	a, name := s.clientAddr(c)
	if !a.IsValid() {
		return "ip:" + name
	}
	return "ip:" + addrKey(a)
}

// emailKey is the per-email key of a sign-in request: a hash, so the counts
// hold no addresses and a key has a fixed size however long the submitted
// email is. Requests without a readable email are refused by the handler
// anyway; they count per address only.
func emailKey(c *fiber.Ctx) string {
	email := attemptEmail(c)
	if email == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(email))
	return "email:" + hex.EncodeToString(sum[:16])
}

// attemptWindow counts attempts per key and allows at most limit of them
// in any span-long window, estimated the usual way: the count of the
// current fixed window plus the previous window's count weighted by how
// much of it the sliding window still covers.
type attemptWindow struct {
	limit      int
	span       time.Duration
	now        func() time.Time
	maxBuckets int

	mu        sync.Mutex
	buckets   map[string]*attemptBucket
	lastSweep time.Time
}

// attemptBucket is one key's counts: start opens the current window.
type attemptBucket struct {
	start      time.Time
	curr, prev int
}

func newAttemptWindow(limit int, span time.Duration, now func() time.Time) *attemptWindow {
	return &attemptWindow{limit: limit, span: span, now: now, maxBuckets: maxAttemptBuckets,
		buckets: map[string]*attemptBucket{}, lastSweep: now()}
}

// allow counts one attempt under key and reports whether it is within the
// limit; when it is not, retry says how long until the current window
// ends. Refused attempts count too, so a client that keeps trying stays
// refused. A new key is refused while the window holds maxBuckets keys.
func (w *attemptWindow) allow(key string) (ok bool, retry time.Duration) {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.Sub(w.lastSweep) >= w.span {
		w.sweep(now)
	}
	b := w.buckets[key]
	if b == nil {
		if len(w.buckets) >= w.maxBuckets && now.Sub(w.lastSweep) >= fullSweepInterval {
			w.sweep(now)
		}
		if len(w.buckets) >= w.maxBuckets {
			return false, w.span
		}
		b = &attemptBucket{start: now}
		w.buckets[key] = b
	}
	switch elapsed := now.Sub(b.start); {
	case elapsed >= 2*w.span:
		*b = attemptBucket{start: now}
	case elapsed >= w.span:
		*b = attemptBucket{start: b.start.Add(w.span), prev: b.curr}
	}
	b.curr++
	into := now.Sub(b.start)
	rate := float64(b.prev)*float64(w.span-into)/float64(w.span) + float64(b.curr)
	if rate <= float64(w.limit) {
		return true, 0
	}
	return false, max(b.start.Add(w.span).Sub(now), time.Second)
}

// sweep drops the buckets whose counts no longer matter.
func (w *attemptWindow) sweep(now time.Time) {
	for k, b := range w.buckets {
		if now.Sub(b.start) >= 2*w.span {
			delete(w.buckets, k)
		}
	}
	w.lastSweep = now
}

// attemptEmail returns the email of a sign-in request, normalised as the
// accounts service stores it, or "" when the body has none.
func attemptEmail(c *fiber.Ctx) string {
	var in struct {
		Email string `json:"email" form:"email"`
	}
	if err := bind(c, &in); err != nil {
		return ""
	}
	return strings.ToLower(strings.TrimSpace(in.Email))
}

// tooManyAttempts answers an attempt over a limit (Retry-After is set) as
// the route's handler answers a refusal: the browser forms are shown again
// with the message and the entered values, everything else gets the
// ERateLimited error.
func (s *Server) tooManyAttempts(c *fiber.Ctx) error {
	err := &app.Error{Code: app.ERateLimited, Message: attemptsMessage}
	if negotiate(c) == formatJSON {
		return err
	}
	switch c.Route().Path {
	case paths.Login:
		var in loginInput
		_ = bind(c, &in)
		return s.loginRefused(c, in, err)
	case paths.Signup:
		var in signupInput
		_ = bind(c, &in)
		return s.signupRefused(c, in, err)
	}
	return err
}

// parseProxies parses Options.TrustedProxies: addresses and CIDR ranges.
func parseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("web: trusted proxy %q is neither an address nor a CIDR range", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// trustedProxy reports whether a is one of Options.TrustedProxies.
func (s *Server) trustedProxy(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// unparsableForwardedFor names every client whose X-Forwarded-For entry,
// the right-most one a trusted proxy did not add, is not an address. They
// share one count: never the proxy's, which would let one client lock out
// everyone behind it.
const unparsableForwardedFor = "unparsable-forwarded-for"

// clientIP returns the client's address (or unparsableForwardedFor); see
// clientAddr.
func (s *Server) clientIP(c *fiber.Ctx) string {
	a, name := s.clientAddr(c)
	if !a.IsValid() {
		return name
	}
	return a.String()
}

// clientAddr returns the client's address: the peer's, or, when the peer is
// a trusted proxy, the right-most entry of X-Forwarded-For that is not a
// trusted proxy. Proxies append to the header, so the entries a client
// writes itself are on the left and never chosen (Fiber's c.IP returns the
// header as sent, which a client could vary at will). Every line of the
// header counts, in order: a proxy may add a line of its own after the one
// the client sent. Entries may carry a port or brackets ("1.2.3.4:80",
// "[::1]", "[::1]:80"). When the entry chosen is not an address, the
// address is invalid and name says what to call the client instead.
func (s *Server) clientAddr(c *fiber.Ctx) (addr netip.Addr, name string) {
	ip := c.Context().RemoteIP()
	peer, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, ip.String()
	}
	peer = peer.Unmap()
	if !s.trustedProxy(peer) {
		return peer, ""
	}
	var entries []string
	for _, line := range c.Request().Header.PeekAll(fiber.HeaderXForwardedFor) {
		entries = append(entries, strings.Split(string(line), ",")...)
	}
	client := peer // a request the proxy makes itself
	for i := len(entries) - 1; i >= 0; i-- {
		a, ok := parseForwarded(entries[i])
		if !ok {
			return netip.Addr{}, unparsableForwardedFor
		}
		client = a
		if !s.trustedProxy(a) {
			break
		}
	}
	return client, ""
}

// parseForwarded parses one X-Forwarded-For entry: an address, with or
// without a port and brackets. The address comes back unmapped and without
// a zone.
func parseForwarded(e string) (netip.Addr, bool) {
	e = strings.TrimSpace(e)
	a, err := netip.ParseAddr(e)
	if err != nil {
		if ap, perr := netip.ParseAddrPort(e); perr == nil {
			a, err = ap.Addr(), nil
		} else if len(e) > 2 && e[0] == '[' && e[len(e)-1] == ']' {
			a, err = netip.ParseAddr(e[1 : len(e)-1])
		}
	}
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// addrKey is the rate-limit key of a client address: an IPv4 address
// counts alone, an IPv6 address by its /64, the block a single site (so a
// single attacker) is usually given whole.
func addrKey(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}
