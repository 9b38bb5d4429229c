package web

import (
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"byoc/app"
	"byoc/app/auth"
	"byoc/app/paths"
	"byoc/views"
)

// Signing up and signing in: one handler each for the browser forms
// (/signup, /login) and the token routes of the JSON API (/api/auth/signup,
// /api/auth/token). Both check the same input through the same service;
// they differ in what a success hands out. The token routes answer a bearer
// token as JSON and never touch the session cookie; the form routes start a
// session and answer in the negotiated format. A refused attempt re-renders
// the form for HTML answers of the form routes, with the entered values
// (never the password) and the error's status.

// signupInput is the signup form and JSON body.
type signupInput struct {
	OrgName  string `json:"orgName" form:"orgName"`
	Email    string `json:"email" form:"email"`
	Password string `json:"password" form:"password"`
}

// loginInput is the login form and the token request's JSON body.
type loginInput struct {
	Email    string `json:"email" form:"email"`
	Password string `json:"password" form:"password"`
	Next     string `json:"next" form:"next"`
}

// accountData is the JSON answer of the form routes' signup and login.
type accountData struct {
	OrgID  string `json:"orgId"`
	UserID string `json:"userId"`
	Email  string `json:"email"`
}

func newAccountData(a auth.Account) accountData {
	return accountData{OrgID: a.Principal.OrgID, UserID: a.Principal.UserID, Email: a.Principal.Email}
}

// tokenData is the JSON answer of the token routes.
type tokenData struct {
	OrgID     string    `json:"orgId"`
	UserID    string    `json:"userId"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// tokenRoute reports whether the request came in on a token route, where a
// sign-in hands out a bearer token instead of a session.
func tokenRoute(c *fiber.Ctx) bool {
	p := c.Route().Path
	return p == paths.APISignup || p == paths.APIToken || p == paths.APIAcceptInvite
}

// signupPage shows the signup form (signed-in users go to the dashboard).
func (s *Server) signupPage(c *fiber.Ctx) error {
	if _, ok := account(c); ok {
		return c.Redirect(defaultLanding, fiber.StatusFound)
	}
	f := views.SignupForm{CSRFToken: s.csrfToken(c)}
	return s.reply(c, http.StatusOK, answer{view: signupView(f)})
}

// signup creates an org and its admin (201). On the form route it signs
// them in and sends browsers to the dashboard with a welcome.
func (s *Server) signup(c *fiber.Ctx) error {
	var in signupInput
	if err := bind(c, &in); err != nil {
		return err
	}
	a, err := s.deps.Accounts.Signup(c.UserContext(), auth.SignupInput{OrgName: in.OrgName, Email: in.Email, Password: in.Password})
	if err != nil {
		return s.signupRefused(c, in, err)
	}
	if tokenRoute(c) {
		return s.sendToken(c, http.StatusCreated, a)
	}
	s.startSession(c, a)
	s.flash(c, views.FlashSuccess, "Welcome! "+a.OrgName+" is ready. Connect your first provider below.")
	return s.reply(c, http.StatusCreated, answer{Data: newAccountData(a), Location: defaultLanding})
}

// signupRefused answers a refused signup: the form again where that helps
// (see formRefusal), the error otherwise.
func (s *Server) signupRefused(c *fiber.Ctx, in signupInput, err error) error {
	if !s.formRefusal(c, err, app.EEmailTaken) {
		return err
	}
	f := views.SignupForm{CSRFToken: s.csrfToken(c), OrgName: in.OrgName, Email: in.Email,
		Message: app.ErrorMessage(err), Errors: app.ErrorFields(err)}
	return s.reply(c, statusOf(app.ErrorCode(err)), answer{view: signupView(f)})
}

func signupView(f views.SignupForm) view {
	return view{Title: "Create your organization", Page: views.SignupPage(f), Fragment: views.SignupFormFragment(f)}
}

// loginPage shows the sign-in form (signed-in users go on).
func (s *Server) loginPage(c *fiber.Ctx) error {
	next := safeNext(c.Query("next"))
	if _, ok := account(c); ok {
		return c.Redirect(orDefault(next), fiber.StatusFound)
	}
	f := views.LoginForm{CSRFToken: s.csrfToken(c), Next: next}
	return s.reply(c, http.StatusOK, answer{view: loginView(f)})
}

// login checks the email and password, counted by the attempt limits
// first (a success is taken back; see ratelimit.go). On the form route it
// starts a new session and sends browsers on to next (a local path), else
// the dashboard.
func (s *Server) login(c *fiber.Ctx) error {
	var in loginInput
	if err := bind(c, &in); err != nil {
		return err
	}
	attempt, err := s.countSignIn(c, in.Email)
	if err != nil {
		return s.loginRefused(c, in, err)
	}
	a, err := s.deps.Accounts.Login(c.UserContext(), in.Email, in.Password)
	if err != nil {
		return s.loginRefused(c, in, err)
	}
	s.signedIn(c, attempt)
	if tokenRoute(c) {
		return s.sendToken(c, http.StatusOK, a)
	}
	s.startSession(c, a)
	return s.reply(c, http.StatusOK, answer{Data: newAccountData(a), Location: orDefault(safeNext(in.Next))})
}

// loginRefused answers a refused login: the form again where that helps
// (see formRefusal), the error otherwise.
func (s *Server) loginRefused(c *fiber.Ctx, in loginInput, err error) error {
	if !s.formRefusal(c, err, app.EInvalidCredentials) {
		return err
	}
	f := views.LoginForm{CSRFToken: s.csrfToken(c), Email: in.Email, Next: safeNext(in.Next),
		Message: app.ErrorMessage(err), Errors: app.ErrorFields(err)}
	return s.reply(c, statusOf(app.ErrorCode(err)), answer{view: loginView(f)})
}

func loginView(f views.LoginForm) view {
	return view{Title: "Sign in", Page: views.LoginPage(f), Fragment: views.LoginFormFragment(f)}
}

// formRefusal reports whether a refused signup or login is answered with
// its form again: only for an HTML answer on a form route, and only when
// the user can act on the message (invalid input, too many attempts, or
// the route's own refusal code). Anything else goes to the error handler.
func (s *Server) formRefusal(c *fiber.Ctx, err error, code string) bool {
	if tokenRoute(c) || negotiate(c) == formatJSON {
		return false
	}
	switch app.ErrorCode(err) {
	case app.EValidation, app.ERateLimited, code:
		return true
	}
	return false
}

func orDefault(next string) string {
	if next == "" {
		return defaultLanding
	}
	return next
}

// logout revokes every session and token of the user (by bumping the
// session version, so copies of the cookie stop working too), replaces the
// cookie with an anonymous session and sends the browser to the login page.
func (s *Server) logout(c *fiber.Ctx) error {
	if a, ok := account(c); ok {
		if err := s.deps.Accounts.Logout(c.UserContext(), a.Principal.UserID); err != nil {
			return err
		}
	}
	s.endSession(c, views.Flash{Kind: views.FlashInfo, Message: "You have been signed out."})
	return s.reply(c, http.StatusOK, answer{Data: map[string]bool{"signedOut": true}, Location: paths.Login})
}

// sendToken answers a token route's success: the account's ids and a new
// bearer token, as JSON whatever the request asked for (a token is for API
// clients only).
func (s *Server) sendToken(c *fiber.Ctx, status int, a auth.Account) error {
	t, err := s.deps.Accounts.IssueToken(a)
	if err != nil {
		return err
	}
	return sendJSON(c, status, tokenData{OrgID: a.Principal.OrgID, UserID: a.Principal.UserID, Token: t.Value, ExpiresAt: t.ExpiresAt.UTC()})
}
