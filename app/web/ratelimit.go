package web

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"byoc/app"
	"byoc/app/attempts"
)

// The attempt limits: what an attacker would repeat is counted in the
// shared limiter (package attempts, one PostgreSQL table for every
// instance), per client address and, for sign-ins, per e-mail.
//
// Sign-in (POST /login and /api/auth/token together). Every attempt is
// counted before the password is checked, under three keys, and a
// successful one is taken back again, so only failures add up:
//   - per client address: over AttemptsPerIP the address is refused;
//   - per (e-mail, address): over AttemptsPerEmail that e-mail is refused
//     from that address only, so a guesser elsewhere cannot lock the owner
//     out; a successful sign-in clears this count;
//   - per e-mail across all addresses: over emailCeilingFactor times
//     AttemptsPerEmail, every sign-in to that e-mail waits AttemptDelay
//     before its password is checked. That slows a guess spread over many
//     addresses without ever refusing the owner, who only waits.
//
// Counting first (and taking a success back) rather than checking first
// and counting failures afterwards keeps the limits exact when a client
// sends its attempts in parallel: every attempt sees the ones before it.
//
// Sign-up (POST /signup and /api/auth/signup together): every attempt
// counts per client address, apart from the sign-in counts, up to
// AttemptsPerIP. There is no per-e-mail limit: an e-mail can sign up once,
// and trying taken ones is what the per-address limit slows.
//
// Provider calls (saving credentials, the connection test and the start of
// Google's sign-in): every call of an admin counts per org and per client
// address within a minute, up to ProviderCallsPerOrg and
// ProviderCallsPerIP, so BYOC is no free key checker.
//
// An attempt over a limit is answered 429 rate_limited with Retry-After,
// without reaching the service behind the route. When the counts cannot be
// written the attempt is refused (503 unavailable).

// Defaults for Options' limits.
const (
	DefaultAttemptsPerIP       = 30
	DefaultAttemptsPerEmail    = 10
	DefaultAttemptWindow       = time.Minute
	DefaultAttemptDelay        = 2 * time.Second
	DefaultProviderCallsPerOrg = 20
	DefaultProviderCallsPerIP  = 60
)

// emailCeilingFactor times AttemptsPerEmail is the number of failed
// sign-ins to one e-mail, from all addresses together, after which every
// further sign-in to it waits AttemptDelay.
const emailCeilingFactor = 3

// providerCallWindow is the window of the provider-call limits.
const providerCallWindow = time.Minute

// Kinds of the counts (attempts.Rule.Kind).
const (
	kindSignInIP    = "signin_ip"
	kindSignInPair  = "signin_email_ip"
	kindSignInEmail = "signin_email"
	kindSignupIP    = "signup_ip"
	kindProviderOrg = "provider_org"
	kindProviderIP  = "provider_ip"
)

// What a client over a limit is told.
const (
	attemptsMessage      = "Too many attempts. Please wait a minute and try again."
	providerCallsMessage = "Too many calls to providers. Please wait a minute and try again."
)

// limitRules are the server's rules, built from Options.
type limitRules struct {
	signInIP, signInPair, signInEmail, signupIP, providerOrg, providerIP attempts.Rule
}

func newLimitRules(o Options) limitRules {
	w := o.AttemptWindow
	return limitRules{
		signInIP:    attempts.Rule{Kind: kindSignInIP, Limit: o.AttemptsPerIP, Window: w},
		signInPair:  attempts.Rule{Kind: kindSignInPair, Limit: o.AttemptsPerEmail, Window: w},
		signInEmail: attempts.Rule{Kind: kindSignInEmail, Limit: emailCeilingFactor * o.AttemptsPerEmail, Window: w},
		signupIP:    attempts.Rule{Kind: kindSignupIP, Limit: o.AttemptsPerIP, Window: w},
		providerOrg: attempts.Rule{Kind: kindProviderOrg, Limit: o.ProviderCallsPerOrg, Window: providerCallWindow},
		providerIP:  attempts.Rule{Kind: kindProviderIP, Limit: o.ProviderCallsPerIP, Window: providerCallWindow},
	}
}

// signInAttempt is a counted sign-in attempt: the keys it counts under.
type signInAttempt struct {
	ip, pair, email attempts.Key
	hasEmail        bool
}

// countSignIn counts a sign-in attempt for email from the request's client
// address, before the password is checked. It returns ERateLimited, with
// Retry-After set, when the address or the (e-mail, address) pair is over
// its limit, and waits AttemptDelay first when the e-mail is over its
// ceiling across addresses.
func (s *Server) countSignIn(c *fiber.Ctx, email string) (signInAttempt, error) {
	addr := s.addrSubject(c)
	at := signInAttempt{ip: s.limits.signInIP.For(addr)}
	keys := []attempts.Key{at.ip}
	if email = strings.ToLower(strings.TrimSpace(email)); email != "" {
		at.hasEmail = true
		// The address first: it never holds a NUL, so no e-mail a client
		// makes up can name another pair.
		at.pair = s.limits.signInPair.For(addr + "\x00" + email)
		at.email = s.limits.signInEmail.For(email)
		keys = append(keys, at.pair, at.email)
	}
	v, err := s.deps.Limiter.Count(c.UserContext(), keys...)
	if err != nil {
		return at, err
	}
	if err := refuseOver(c, attemptsMessage, v[:min(len(v), 2)]...); err != nil {
		return at, err
	}
	if at.hasEmail && v[2].Over {
		if err := wait(c.UserContext(), s.opts.AttemptDelay); err != nil {
			return at, err
		}
	}
	return at, nil
}

// signedIn takes a successful sign-in back from the counts and clears the
// failures of its (e-mail, address) pair. A failure to do so is logged: the
// sign-in stands, and the counts only stay higher than they should.
func (s *Server) signedIn(c *fiber.Ctx, at signInAttempt) {
	undo := []attempts.Key{at.ip}
	var clear []attempts.Key
	if at.hasEmail {
		undo = append(undo, at.email)
		clear = append(clear, at.pair)
	}
	if err := s.deps.Limiter.Settle(c.UserContext(), undo, clear); err != nil {
		s.log.Warn("attempt limits: a successful sign-in was not taken back", "err", err.Error())
	}
}

// limitSignups counts every signup attempt per client address and refuses
// it over the limit: the form again with the message for the browser form,
// the error otherwise.
func (s *Server) limitSignups(c *fiber.Ctx) error {
	v, err := s.deps.Limiter.Count(c.UserContext(), s.limits.signupIP.For(s.addrSubject(c)))
	if err == nil {
		err = refuseOver(c, attemptsMessage, v...)
	}
	if err != nil {
		var in signupInput
		_ = bind(c, &in)
		return s.signupRefused(c, in, err)
	}
	return c.Next()
}

// limitProviderCalls counts a provider-calling request (see
// countProviderCall) and refuses it over a limit, through the error handler
// in the negotiated format.
func (s *Server) limitProviderCalls(c *fiber.Ctx) error {
	if err := s.countProviderCall(c); err != nil {
		return err
	}
	return c.Next()
}

// countProviderCall counts a provider-calling request of a signed-in admin
// per org and per client address, and returns ERateLimited (Retry-After
// set) over either limit. Other requests are not counted: their handler
// refuses them without calling a provider.
func (s *Server) countProviderCall(c *fiber.Ctx) error {
	a, ok := account(c)
	if !ok || !a.Principal.IsAdmin() {
		return nil
	}
	v, err := s.deps.Limiter.Count(c.UserContext(),
		s.limits.providerOrg.For(a.Principal.OrgID), s.limits.providerIP.For(s.addrSubject(c)))
	if err != nil {
		return err
	}
	return refuseOver(c, providerCallsMessage, v...)
}

// refuseOver returns ERateLimited with message when any verdict is over its
// limit, and sets Retry-After to the longest wait among them.
func refuseOver(c *fiber.Ctx, message string, verdicts ...attempts.Verdict) error {
	var retry time.Duration
	for _, v := range verdicts {
		if v.Over {
			retry = max(retry, v.RetryAfter)
		}
	}
	if retry == 0 {
		return nil
	}
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(retry/time.Second)))
	return &app.Error{Code: app.ERateLimited, Message: message}
}

// wait sleeps for d, or until ctx ends (its error is returned then).
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// addrSubject is what the limits count a request's client as (see addrKey).
func (s *Server) addrSubject(c *fiber.Ctx) string {
	a, name := s.clientAddr(c)
	if !a.IsValid() {
		return name
	}
	return addrKey(a)
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
