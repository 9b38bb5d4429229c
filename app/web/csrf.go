package web

import (
	"crypto/subtle"
	"strings"

	"github.com/gofiber/fiber/v2"

	"byoc/app"
)

// CSRF protection uses the synchronizer token pattern: a random token lives
// in the (signed and encrypted) session cookie, pages carry it in
// <meta name="csrf-token"> and in a hidden `_csrf` field of every form, and
// static/js/app.js sends it as the X-CSRF-Token header on every htmx
// request. A state-changing request authenticated by its cookie must send
// the token back; requests authenticated by a bearer token need none,
// because browsers never attach that header on their own. Since the token
// lives in the cookie, any instance can check it.

// csrfHeader and csrfField are where a request sends the token back.
const (
	csrfHeader = "X-CSRF-Token"
	csrfField  = "_csrf"
)

// csrf refuses POST, PUT, PATCH and DELETE requests that are not
// bearer-authenticated and do not carry the session's CSRF token (EForbidden).
func (s *Server) csrf(c *fiber.Ctx) error {
	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions, fiber.MethodTrace:
		return c.Next()
	}
	if kind, _ := c.Locals(localAuthKind).(authKind); kind == authBearer {
		return c.Next()
	}
	sent := c.Get(csrfHeader)
	if sent == "" {
		sent = formValue(c, csrfField)
	}
	want := s.session(c).CSRF
	if want == "" || sent == "" || subtle.ConstantTimeCompare([]byte(sent), []byte(want)) != 1 {
		return app.Errorf(app.EForbidden, "This form has expired. Please reload the page and try again.")
	}
	return c.Next()
}

// csrfToken returns the session's CSRF token, creating it (and the session
// cookie) when the session has none yet.
func (s *Server) csrfToken(c *fiber.Ctx) string {
	sess := s.session(c)
	if sess.CSRF == "" {
		sess.CSRF = newToken()
		s.saveSession(c)
	}
	return sess.CSRF
}

// formValue returns a field of an urlencoded or multipart body. Unlike
// c.FormValue it ignores the query string, so a token put into a URL (where
// logs and Referer headers would spread it) is not accepted.
func formValue(c *fiber.Ctx, name string) string {
	ct := string(c.Request().Header.ContentType())
	switch {
	case strings.HasPrefix(ct, fiber.MIMEApplicationForm):
		return string(c.Request().PostArgs().Peek(name))
	case strings.HasPrefix(ct, fiber.MIMEMultipartForm):
		if form, err := c.MultipartForm(); err == nil && len(form.Value[name]) > 0 {
			return form.Value[name][0]
		}
	}
	return ""
}
