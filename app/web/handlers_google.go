package web

import (
	"net/http"

	"github.com/gofiber/fiber/v2"

	"byoc/app"
	"byoc/app/providers/google"
	"byoc/views"
)

// Google Calendar connects through Google's sign-in (OAuth 2.0 for web
// server apps): the connect route sends the browser to Google's consent
// page and Google sends it back to the callback route. Both are top-level
// browser navigations, so they answer with redirects and flash messages on
// the dashboard rather than with the JSON their /api/ paths would
// otherwise get. The flow's state is bound to the browser session through
// the session's CSRF token, so it has to start and end in the same browser.
//
// The connection test and the disconnect are the integrations routes
// (verifyIntegration, disconnectIntegration), like every provider's.

var _ Google = (*google.Service)(nil)

// errGoogleNotSetUp answers the Google Calendar routes when the server has
// no Google client (or no Google service).
var errGoogleNotSetUp = app.Errorf(app.ENotConfigured, "Google Calendar is not set up on this server.")

// googleReady reports whether the server can run the Google sign-in flow:
// the one answer behind both the card's Connect button and the connect
// route.
func (s *Server) googleReady() bool {
	return s.opts.GoogleConfigured && s.deps.Google != nil
}

// connectData is the JSON answer of the connect route.
type connectData struct {
	AuthURL string `json:"authUrl"`
}

// googleConnect starts Google's sign-in for the signed-in admin (GET
// /api/integrations/google_calendar/connect): a 302 to Google's consent
// page for a browser, an HX-Redirect to it for htmx (which cannot follow a
// redirect to another origin), or {"authUrl": ...} for a JSON client
// (Accept: application/json). A flow started with a session cookie is bound
// to that browser session; one started with a bearer token is bound to the
// user, who opens authUrl in a browser where they are signed in.
//
// A browser that is not signed in goes to the login page, which comes back
// here afterwards. A refusal (not an admin, not set up) is a flash on the
// dashboard for a browser and the error for the others.
func (s *Server) googleConnect(c *fiber.Ctx) error {
	a, ok := account(c)
	if !ok {
		if isHTMX(c) || prefersJSON(c) {
			return app.Errorf(app.EUnauthorized, "Please sign in.")
		}
		return c.Redirect(loginURL(c.OriginalURL()), fiber.StatusFound)
	}
	var authURL string
	var err error = errGoogleNotSetUp
	if kind, _ := c.Locals(localAuthKind).(authKind); kind == authBearer && s.googleReady() {
		authURL, err = s.deps.Google.APIConnectURL(c.UserContext(), a.Principal)
	} else if s.googleReady() {
		authURL, err = s.deps.Google.ConnectURL(c.UserContext(), a.Principal, s.csrfToken(c))
	}
	switch {
	case err != nil && (isHTMX(c) || prefersJSON(c)):
		return err
	case err != nil:
		return s.googleFailed(c, err)
	case isHTMX(c):
		c.Set("HX-Redirect", authURL)
		return c.SendStatus(fiber.StatusOK)
	case prefersJSON(c):
		return sendJSON(c, http.StatusOK, connectData{AuthURL: authURL})
	}
	return c.Redirect(authURL, fiber.StatusFound)
}

// googleCallback finishes Google's sign-in (GET
// /api/auth/google-calendar/callback, where Google sends the browser back
// with state and code, or with error=access_denied): it hands the answer to
// the Google service with the session's binding and returns to the
// dashboard with a flash, "Google Calendar connected as <email>." or the
// reason it was refused. A browser that is not signed in goes to the login
// page (the pending state stays unused and expires).
func (s *Server) googleCallback(c *fiber.Ctx) error {
	a, ok := account(c)
	if !ok {
		s.flash(c, views.FlashInfo, "Please sign in, then connect Google Calendar again.")
		return c.Redirect("/login", fiber.StatusSeeOther)
	}
	if kind, _ := c.Locals(localAuthKind).(authKind); kind == authBearer {
		// Google sends a browser back here, never an API client.
		return app.Errorf(app.EValidation, "Open the Google sign-in link in a browser where you are signed in.")
	}
	if s.deps.Google == nil {
		return s.googleFailed(c, errGoogleNotSetUp)
	}
	var q google.CallbackQuery
	if err := c.QueryParser(&q); err != nil {
		return s.googleFailed(c, &app.Error{Code: app.EValidation,
			Message: "The answer from Google could not be read. Click Connect to start again.", Cause: err})
	}
	email, err := s.deps.Google.Callback(c.UserContext(), a.Principal, s.csrfToken(c), q)
	if err != nil {
		return s.googleFailed(c, err)
	}
	s.flash(c, views.FlashSuccess, "Google Calendar connected as "+email+".")
	return c.Redirect(defaultLanding, fiber.StatusSeeOther)
}

// googleFailed ends a browser step of the sign-in that failed: back to the
// dashboard with the reason as an error flash. Server errors are logged
// with their cause, as the error handler does; the flash shows the generic
// message.
func (s *Server) googleFailed(c *fiber.Ctx, err error) error {
	if app.ErrorCode(err) == app.EInternal {
		id, _ := c.Locals(localRequestID).(string)
		s.log.Error("request failed", "request_id", id, "method", c.Method(), "path", c.Path(),
			"code", app.EInternal, "err", err.Error())
	}
	s.flash(c, views.FlashError, app.ErrorMessage(err))
	return c.Redirect(defaultLanding, fiber.StatusSeeOther)
}

// prefersJSON reports whether the request's Accept header prefers JSON to
// HTML. Unlike negotiate it ignores the /api/ prefix: it tells a JSON
// client from a browser navigating to an /api/ address.
func prefersJSON(c *fiber.Ctx) bool {
	return c.Get(fiber.HeaderAccept) != "" &&
		c.Accepts(fiber.MIMETextHTML, fiber.MIMEApplicationJSON) == fiber.MIMEApplicationJSON
}
