package web

import (
	"net/http"

	"github.com/gofiber/fiber/v2"

	"byoc/app"
	"byoc/app/integrations"
	"byoc/app/paths"
	"byoc/views"
)

// Google Calendar connects through Google's sign-in (OAuth 2.0 for web
// server apps): the connect route sends the browser to Google's consent
// page and Google sends it back to the callback route. Both are top-level
// browser navigations, so a browser that is refused is sent back to the
// dashboard with the reason as a flash (the error handler does that for
// routes that set an error landing) rather than answered with the JSON
// their /api/ paths would otherwise get. The flow's state is bound to the
// browser session through the session's CSRF token, so it has to start and
// end in the same browser.
//
// The connection test and the disconnect are the integrations routes
// (verifyIntegration, disconnectIntegration), like every provider's.

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
// here afterwards. A start counts as a provider call (ratelimit.go). A
// refusal (not an admin, not set up, too many calls) is a flash on the
// dashboard for a browser and the error for the others.
func (s *Server) googleConnect(c *fiber.Ctx) error {
	browser := !isHTMX(c) && !prefersJSON(c)
	a, ok := account(c)
	if !ok {
		if !browser {
			return app.Errorf(app.EUnauthorized, "Please sign in.")
		}
		return c.Redirect(loginURL(c.OriginalURL()), fiber.StatusFound)
	}
	if browser {
		landOnErrorAt(c, defaultLanding)
	}
	if err := s.countProviderCall(c); err != nil {
		return err
	}
	var authURL string
	var err error
	if kind, _ := c.Locals(localAuthKind).(authKind); kind == authBearer {
		authURL, err = s.deps.Integrations.APIConnectURL(c.UserContext(), a.Principal)
	} else {
		authURL, err = s.deps.Integrations.ConnectURL(c.UserContext(), a.Principal, s.csrfToken(c))
	}
	switch {
	case err != nil:
		return err
	case isHTMX(c):
		htmxResponse{Redirect: authURL}.set(c)
		return c.SendStatus(fiber.StatusOK)
	case prefersJSON(c):
		return sendJSON(c, http.StatusOK, connectData{AuthURL: authURL})
	}
	return c.Redirect(authURL, fiber.StatusFound)
}

// googleCallback finishes Google's sign-in (GET
// /api/auth/google-calendar/callback, where Google sends the browser back
// with state and code, or with error=access_denied): it hands the answer to
// the integrations service with the session's binding and returns to the
// dashboard with a flash, "Google Calendar connected as <email>." or the
// reason it was refused. A browser that is not signed in goes to the login
// page (the pending state stays unused and expires).
func (s *Server) googleCallback(c *fiber.Ctx) error {
	a, ok := account(c)
	if !ok {
		s.flash(c, views.FlashInfo, "Please sign in, then connect Google Calendar again.")
		return c.Redirect(paths.Login, fiber.StatusSeeOther)
	}
	if kind, _ := c.Locals(localAuthKind).(authKind); kind == authBearer {
		// Google sends a browser back here, never an API client.
		return app.Errorf(app.EValidation, "Open the Google sign-in link in a browser where you are signed in.")
	}
	landOnErrorAt(c, defaultLanding)
	var q integrations.CallbackQuery
	if err := c.QueryParser(&q); err != nil {
		return &app.Error{Code: app.EValidation,
			Message: "The answer from Google could not be read. Click Connect to start again.", Cause: err}
	}
	email, err := s.deps.Integrations.Callback(c.UserContext(), a.Principal, s.csrfToken(c), q)
	if err != nil {
		return err
	}
	s.flash(c, views.FlashSuccess, "Google Calendar connected as "+email+".")
	return c.Redirect(defaultLanding, fiber.StatusSeeOther)
}

// prefersJSON reports whether the request's Accept header prefers JSON to
// HTML. Unlike negotiate it ignores the /api/ prefix: it tells a JSON
// client from a browser navigating to an /api/ address.
func prefersJSON(c *fiber.Ctx) bool {
	return c.Get(fiber.HeaderAccept) != "" &&
		c.Accepts(fiber.MIMETextHTML, fiber.MIMEApplicationJSON) == fiber.MIMEApplicationJSON
}
