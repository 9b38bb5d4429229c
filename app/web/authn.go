package web

import (
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"byoc/app"
	"byoc/app/auth"
	"byoc/app/paths"
	"byoc/views"
)

// authKind says how a request proved who it is.
type authKind int

const (
	authNone authKind = iota
	authCookie
	authBearer
)

// authenticate identifies the request's user, by a bearer token in the
// Authorization header or else by the session cookie, and puts the
// principal into the request context (app.WithPrincipal). A request with
// neither goes on anonymous. A present but unacceptable bearer token is
// refused (EUnauthorized); a session cookie that was revoked (logout,
// removed membership) is replaced by a new anonymous session.
func (s *Server) authenticate(c *fiber.Ctx) error {
	ctx := c.UserContext()
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		token, ok := bearerToken(h)
		if !ok {
			return app.Errorf(app.EUnauthorized, "Send the access token as: Authorization: Bearer <token>.")
		}
		a, err := s.deps.Accounts.ResolveToken(ctx, token)
		if err != nil {
			return err
		}
		s.signIn(c, a, authBearer)
		return c.Next()
	}
	sess := s.session(c)
	if sess.UserID != "" {
		a, err := s.deps.Accounts.ResolveSession(ctx, sess.UserID, sess.OrgID, sess.Version)
		switch {
		case app.ErrorCode(err) == app.EUnauthorized:
			s.endSession(c, views.Flash{Kind: views.FlashInfo, Message: app.ErrorMessage(err)})
		case err != nil:
			return err
		default:
			s.signIn(c, a, authCookie)
		}
	}
	return c.Next()
}

// signIn records a as the request's account.
func (s *Server) signIn(c *fiber.Ctx, a auth.Account, kind authKind) {
	c.Locals(localAccount, a)
	c.Locals(localAuthKind, kind)
	c.SetUserContext(app.WithPrincipal(c.UserContext(), a.Principal))
}

// bearerToken extracts the token of an "Authorization: Bearer <token>" header.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// requireUser lets only signed-in requests through. Others get 401 as JSON,
// an HX-Redirect to the login page for htmx, or a redirect to the login page
// that comes back here afterwards.
func (s *Server) requireUser(c *fiber.Ctx) error {
	if _, ok := account(c); ok {
		return c.Next()
	}
	if isHTMX(c) {
		// A page that was open when its session ended: the sign-in page
		// says why (one message, in place of the ended session's own)
		// and brings the user back afterwards (see handleError).
		sess := s.session(c)
		sess.Flashes = []views.Flash{{Kind: views.FlashInfo, Message: sessionExpired}}
		s.saveSession(c)
		return app.Errorf(app.EUnauthorized, "Please sign in.")
	}
	if negotiate(c) == formatJSON {
		return app.Errorf(app.EUnauthorized, "Please sign in.")
	}
	next := c.OriginalURL()
	if c.Method() != fiber.MethodGet {
		next = ""
	}
	return c.Redirect(loginURL(next), fiber.StatusFound)
}

// sessionExpired is what the sign-in page says to a user whose page sent
// an htmx request after the session ended (expired, signed out elsewhere,
// removed from the org).
const sessionExpired = "Your session expired. Please sign in again."

// htmxReturnPath is where an htmx request that met an ended session comes
// back to after signing in: the page a boosted GET asked for, else the page
// the request was sent from (HX-Current-URL, a full URL: only its path and
// query are kept, and only when safeNext accepts them), else the dashboard.
func htmxReturnPath(c *fiber.Ctx) string {
	hx := htmxOf(c)
	if hx.Boosted && c.Method() == fiber.MethodGet {
		if next := safeNext(c.OriginalURL()); next != "" {
			return next
		}
	}
	if u, err := url.Parse(c.Get(hxCurrentURL)); err == nil && u.Path != "" {
		next := u.EscapedPath()
		if u.RawQuery != "" {
			next += "?" + u.RawQuery
		}
		if next = safeNext(next); next != "" {
			return next
		}
	}
	return defaultLanding
}

// loginURL is the login page, coming back to next (when it is local) after
// signing in.
func loginURL(next string) string {
	if next = safeNext(next); next == "" {
		return paths.Login
	}
	return paths.Login + "?next=" + url.QueryEscape(next)
}

// defaultLanding is where a signed-in user goes by default.
const defaultLanding = paths.Dashboard

// safeNext returns next when it is a path on this site, and "" otherwise,
// so the login page cannot be used to send users elsewhere. It refuses
// what a browser or a proxy could read as another host: a scheme, "//",
// backslashes, control characters and white space, dot segments, and the
// same hidden behind percent-encoding (decoded repeatedly, so "%2F%2F",
// "%5C" and "%252F" are refused too).
func safeNext(next string) string {
	if next == "" || len(next) > 512 || !strings.HasPrefix(next, "/") {
		return ""
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return ""
	}
	path := u.EscapedPath()
	for range 4 {
		if !plainPath(path) {
			return ""
		}
		decoded, err := url.PathUnescape(path)
		if err != nil {
			return ""
		}
		if decoded == path {
			return next
		}
		path = decoded
	}
	return ""
}

// plainPath reports whether path starts with exactly one slash and holds
// no backslash, control character, space, empty segment or dot segment.
func plainPath(path string) bool {
	if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") {
		return false
	}
	for _, r := range path {
		if r == '\\' || r <= ' ' || r == 0x7f {
			return false
		}
	}
	for _, seg := range strings.Split(path[1:], "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return !strings.Contains(path, "//")
}
