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

// accountData is the JSON answer of the browser signup and login.
type accountData struct {
	OrgID  string `json:"orgId"`
	UserID string `json:"userId"`
	Email  string `json:"email"`
}

// tokenData is the JSON answer of the token endpoints.
type tokenData struct {
	OrgID     string    `json:"orgId"`
	UserID    string    `json:"userId"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// signupPage shows the signup form (signed-in users go to the dashboard).
func (s *Server) signupPage(c *fiber.Ctx) error {
	if _, ok := account(c); ok {
		return c.Redirect(defaultLanding, fiber.StatusFound)
	}
	f := views.SignupForm{CSRFToken: s.csrfToken(c)}
	return s.respond(c, http.StatusOK, nil, signupView(f))
}

// signup creates an org and its admin, signs them in and sends them to the
// dashboard. A refused signup re-renders the form with the entered values
// (never the password) and a message per field, with the error's status.
func (s *Server) signup(c *fiber.Ctx) error {
	var in signupInput
	if err := bind(c, &in); err != nil {
		return err
	}
	a, err := s.deps.Accounts.Signup(c.UserContext(), auth.SignupInput{OrgName: in.OrgName, Email: in.Email, Password: in.Password})
	if err != nil {
		if code := app.ErrorCode(err); negotiate(c) != formatJSON && (code == app.EValidation || code == app.EEmailTaken) {
			f := views.SignupForm{CSRFToken: s.csrfToken(c), OrgName: in.OrgName, Email: in.Email,
				Message: app.ErrorMessage(err), Errors: app.ErrorFields(err)}
			return s.respond(c, statusOf(code), nil, signupView(f))
		}
		return err
	}
	s.startSession(c, a)
	s.flash(c, views.FlashSuccess, "Welcome! "+a.OrgName+" is ready. Connect your first provider below.")
	return done(c, http.StatusCreated, accountData{OrgID: a.Principal.OrgID, UserID: a.Principal.UserID, Email: a.Principal.Email}, defaultLanding)
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
	return s.respond(c, http.StatusOK, nil, loginView(f))
}

// login checks the email and password, starts a new session and sends the
// user on. A refused login re-renders the form with the email (never the
// password) and the error's status (401 for wrong credentials).
func (s *Server) login(c *fiber.Ctx) error {
	var in loginInput
	if err := bind(c, &in); err != nil {
		return err
	}
	next := safeNext(in.Next)
	a, err := s.deps.Accounts.Login(c.UserContext(), in.Email, in.Password)
	if err != nil {
		if code := app.ErrorCode(err); negotiate(c) != formatJSON && (code == app.EValidation || code == app.EInvalidCredentials) {
			f := views.LoginForm{CSRFToken: s.csrfToken(c), Email: in.Email, Next: next,
				Message: app.ErrorMessage(err), Errors: app.ErrorFields(err)}
			return s.respond(c, statusOf(code), nil, loginView(f))
		}
		return err
	}
	s.startSession(c, a)
	return done(c, http.StatusOK, accountData{OrgID: a.Principal.OrgID, UserID: a.Principal.UserID, Email: a.Principal.Email}, orDefault(next))
}

func loginView(f views.LoginForm) view {
	return view{Title: "Sign in", Page: views.LoginPage(f), Fragment: views.LoginFormFragment(f)}
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
	return done(c, http.StatusOK, map[string]bool{"signedOut": true}, paths.Login)
}

// apiSignup is signup for JSON clients: 201 with the new ids and a bearer
// token. It sets no cookie.
func (s *Server) apiSignup(c *fiber.Ctx) error {
	var in signupInput
	if err := bind(c, &in); err != nil {
		return err
	}
	a, err := s.deps.Accounts.Signup(c.UserContext(), auth.SignupInput{OrgName: in.OrgName, Email: in.Email, Password: in.Password})
	if err != nil {
		return err
	}
	return s.sendToken(c, http.StatusCreated, a)
}

// apiToken exchanges an email and password for a bearer token: 200 with the
// ids and the token. It sets no cookie.
func (s *Server) apiToken(c *fiber.Ctx) error {
	var in loginInput
	if err := bind(c, &in); err != nil {
		return err
	}
	a, err := s.deps.Accounts.Login(c.UserContext(), in.Email, in.Password)
	if err != nil {
		return err
	}
	return s.sendToken(c, http.StatusOK, a)
}

func (s *Server) sendToken(c *fiber.Ctx, status int, a auth.Account) error {
	t, err := s.deps.Accounts.IssueToken(a)
	if err != nil {
		return err
	}
	return sendJSON(c, status, tokenData{OrgID: a.Principal.OrgID, UserID: a.Principal.UserID, Token: t.Value, ExpiresAt: t.ExpiresAt.UTC()})
}
