package web

import (
	"net/http"

	"github.com/gofiber/fiber/v2"

	"byoc/app"
	"byoc/app/attempts"
	"byoc/app/auth"
	"byoc/app/paths"
	"byoc/views"
)

// Accounts beyond signup and sign-in: joining an org by invitation
// (GET/POST /invite/:token, POST /api/auth/accept-invite), password reset
// by e-mail (GET/POST /password-reset, POST /api/auth/password-reset,
// GET/POST /reset/:token), the signed-in user's settings (GET
// /settings/account, POST /api/account/password) and the development
// outbox (GET /dev/outbox).

// Kinds of the password reset counts (attempts.Rule.Kind).
const (
	kindResetIP    = "reset_ip"
	kindResetEmail = "reset_email"
)

// linkInput is the body of the invitation and reset forms and of POST
// /api/auth/accept-invite.
type linkInput struct {
	Token    string `json:"token" form:"token"`
	Password string `json:"password" form:"password"`
}

// linkToken is the token of the request: the route's parameter on the
// browser pages, the body's field on the API.
func linkToken(c *fiber.Ctx, in linkInput) string {
	if t := c.Params(paths.TokenParam); t != "" {
		return t
	}
	return in.Token
}

// joinPage shows an invitation: who is invited to which org, and the
// password form; a link that no longer works gets 404 and says so.
func (s *Server) joinPage(c *fiber.Ctx) error {
	token := c.Params(paths.TokenParam)
	inv, err := s.deps.Accounts.Invitation(c.UserContext(), token)
	if err != nil {
		return s.linkRefused(c, err, "Invitation not valid")
	}
	f := views.JoinForm{CSRFToken: s.csrfToken(c), Token: token, Email: inv.Email, OrgName: inv.OrgName, Role: string(inv.Role)}
	return s.reply(c, http.StatusOK, answer{
		Data: map[string]any{"email": inv.Email, "orgName": inv.OrgName, "role": inv.Role, "expiresAt": inv.ExpiresAt.UTC()},
		view: view{Title: "Join " + inv.OrgName, Page: views.JoinPage(f), Fragment: views.JoinFormFragment(f)}})
}

// acceptInvite joins the invitee to the org with the chosen password (201).
// The API route answers like signup, with a bearer token; the page starts
// a session and sends the browser to the dashboard.
func (s *Server) acceptInvite(c *fiber.Ctx) error {
	var in linkInput
	if err := bind(c, &in); err != nil {
		return err
	}
	token := linkToken(c, in)
	a, err := s.deps.Accounts.AcceptInvite(c.UserContext(), token, in.Password)
	if err != nil {
		return s.joinRefused(c, token, err)
	}
	if tokenRoute(c) {
		return s.sendToken(c, http.StatusCreated, a)
	}
	s.startSession(c, a)
	s.flash(c, views.FlashSuccess, "Welcome to "+a.OrgName+"!")
	return s.reply(c, http.StatusCreated, answer{Data: newAccountData(a), Location: defaultLanding})
}

// joinRefused answers a refused invitation: the form again with the
// message (bad password, address taken) for HTML on the page, the link
// problem page for a link that no longer works, the error otherwise.
func (s *Server) joinRefused(c *fiber.Ctx, token string, err error) error {
	code := app.ErrorCode(err)
	if tokenRoute(c) || negotiate(c) == formatJSON {
		return err
	}
	if code == app.ENotFound {
		return s.linkRefused(c, err, "Invitation not valid")
	}
	if code != app.EValidation && code != app.EEmailTaken {
		return err
	}
	inv, ierr := s.deps.Accounts.Invitation(c.UserContext(), token)
	if ierr != nil {
		return s.linkRefused(c, ierr, "Invitation not valid")
	}
	f := views.JoinForm{CSRFToken: s.csrfToken(c), Token: token, Email: inv.Email, OrgName: inv.OrgName, Role: string(inv.Role),
		Message: app.ErrorMessage(err), Errors: app.ErrorFields(err)}
	return s.reply(c, statusOf(code), answer{view: view{Title: "Join " + inv.OrgName, Page: views.JoinPage(f), Fragment: views.JoinFormFragment(f)}})
}

// linkRefused answers an invitation or reset link that does not work:
// JSON clients get the error, HTML the link problem page with its status.
func (s *Server) linkRefused(c *fiber.Ctx, err error, title string) error {
	if negotiate(c) == formatJSON || app.ErrorCode(err) != app.ENotFound {
		return err
	}
	p := views.LinkProblem{Title: title, Message: app.ErrorMessage(err)}
	return s.reply(c, http.StatusNotFound, answer{view: view{Title: title, Page: views.LinkProblemPage(p)}})
}

// forgotPage asks for the address to send a reset link to.
func (s *Server) forgotPage(c *fiber.Ctx) error {
	f := views.ForgotForm{CSRFToken: s.csrfToken(c)}
	return s.reply(c, http.StatusOK, answer{view: view{Title: "Reset your password", Page: views.ForgotPage(f), Fragment: views.ForgotFormFragment(f)}})
}

// resetInput is the body of a reset link request.
type resetInput struct {
	Email string `json:"email" form:"email"`
}

// requestReset mails a reset link when the address has an account and
// answers 202 whether or not it has, so the answer names no account.
// Requests count per client address like sign-ins (over the limit: 429);
// per e-mail, requests over the limit are answered the same 202 but send
// nothing, so nobody can flood an inbox.
func (s *Server) requestReset(c *fiber.Ctx) error {
	var in resetInput
	err := bind(c, &in)
	send := false
	if err == nil {
		send, err = s.countReset(c, in.Email)
	}
	if err == nil && send {
		err = s.deps.Accounts.RequestPasswordReset(c.UserContext(), in.Email)
	}
	if err != nil {
		code := app.ErrorCode(err)
		if negotiate(c) == formatJSON || (code != app.EValidation && code != app.ERateLimited && code != app.EUnavailable) {
			return err
		}
		f := views.ForgotForm{CSRFToken: s.csrfToken(c), Email: in.Email, Message: app.ErrorMessage(err), Errors: app.ErrorFields(err)}
		return s.reply(c, statusOf(code), answer{view: view{Title: "Reset your password", Page: views.ForgotPage(f), Fragment: views.ForgotFormFragment(f)}})
	}
	f := views.ForgotForm{CSRFToken: s.csrfToken(c), Email: auth.NormalizeEmail(in.Email), Sent: true}
	return s.reply(c, http.StatusAccepted, answer{Data: map[string]bool{"accepted": true},
		view: view{Title: "Reset your password", Page: views.ForgotPage(f), Fragment: views.ForgotFormFragment(f)}})
}

// countReset counts a reset request per client address (ERateLimited over
// AttemptsPerIP) and per e-mail; send is false over the per-e-mail limit,
// which requestReset answers as if the link were sent.
func (s *Server) countReset(c *fiber.Ctx, email string) (send bool, err error) {
	addr := s.addrSubject(c)
	ip := attempts.Rule{Kind: kindResetIP, Limit: s.opts.AttemptsPerIP, Window: s.opts.AttemptWindow}
	keys := []attempts.Key{ip.For(addr)}
	email = auth.NormalizeEmail(email)
	if email != "" {
		per := attempts.Rule{Kind: kindResetEmail, Limit: s.opts.AttemptsPerEmail, Window: s.opts.AttemptWindow}
		keys = append(keys, per.For(email))
	}
	v, err := s.deps.Limiter.Count(c.UserContext(), keys...)
	if err != nil {
		return false, err
	}
	if err := refuseOver(c, attemptsMessage, v[0]); err != nil {
		return false, err
	}
	return len(v) == 1 || !v[1].Over, nil
}

// resetPage shows the new password form of a reset link; a link that no
// longer works gets 404 and says so.
func (s *Server) resetPage(c *fiber.Ctx) error {
	token := c.Params(paths.TokenParam)
	email, err := s.deps.Accounts.PasswordResetEmail(c.UserContext(), token)
	if err != nil {
		return s.linkRefused(c, err, "Link not valid")
	}
	f := views.ResetForm{CSRFToken: s.csrfToken(c), Token: token, Email: email}
	return s.reply(c, http.StatusOK, answer{Data: map[string]string{"email": email},
		view: view{Title: "Choose a new password", Page: views.ResetPage(f), Fragment: views.ResetFormFragment(f)}})
}

// resetPassword sets the new password of a reset link, ends every other
// session and token of the user and signs this browser in.
func (s *Server) resetPassword(c *fiber.Ctx) error {
	var in linkInput
	if err := bind(c, &in); err != nil {
		return err
	}
	token := c.Params(paths.TokenParam)
	a, err := s.deps.Accounts.ResetPassword(c.UserContext(), token, in.Password)
	if err != nil {
		code := app.ErrorCode(err)
		if negotiate(c) == formatJSON || code != app.EValidation {
			return s.linkRefused(c, err, "Link not valid")
		}
		email, eerr := s.deps.Accounts.PasswordResetEmail(c.UserContext(), token)
		if eerr != nil {
			return s.linkRefused(c, eerr, "Link not valid")
		}
		f := views.ResetForm{CSRFToken: s.csrfToken(c), Token: token, Email: email, Message: app.ErrorMessage(err), Errors: app.ErrorFields(err)}
		return s.reply(c, statusOf(code), answer{view: view{Title: "Choose a new password", Page: views.ResetPage(f), Fragment: views.ResetFormFragment(f)}})
	}
	s.startSession(c, a)
	s.flash(c, views.FlashSuccess, "Your password is changed. Every other session and API token of your account has ended.")
	return s.reply(c, http.StatusOK, answer{Data: newAccountData(a), Location: defaultLanding})
}

// accountPage shows the signed-in user's settings.
func (s *Server) accountPage(c *fiber.Ctx) error {
	a, _ := account(c)
	v := views.AccountView{CSRFToken: s.csrfToken(c), Email: a.Principal.Email, Admin: a.Principal.IsAdmin(),
		Password: views.PasswordForm{CSRFToken: s.csrfToken(c)}}
	return s.reply(c, http.StatusOK, answer{Data: newAccountData(a), view: view{Title: "Your account", Page: views.AccountPage(v)}})
}

// passwordInput is the body of POST /api/account/password.
type passwordInput struct {
	CurrentPassword string `json:"currentPassword" form:"currentPassword"`
	NewPassword     string `json:"newPassword" form:"newPassword"`
}

// changePassword checks the current password (counted like a sign-in, so
// a stolen session cannot guess it) and sets the new one, ending every
// session and token of the user. This client stays signed in: a browser
// gets a new session cookie (and is sent to the account page, whose new
// CSRF token it needs), a bearer client a new token in the answer.
func (s *Server) changePassword(c *fiber.Ctx) error {
	a, _ := account(c)
	var in passwordInput
	if err := bind(c, &in); err != nil {
		return err
	}
	attempt, err := s.countSignIn(c, a.Principal.Email)
	var na auth.Account
	if err == nil {
		na, err = s.deps.Accounts.ChangePassword(c.UserContext(), a, in.CurrentPassword, in.NewPassword)
	}
	if err != nil {
		code := app.ErrorCode(err)
		if negotiate(c) != formatFragment || (code != app.EValidation && code != app.ERateLimited) {
			return err
		}
		f := views.PasswordForm{CSRFToken: s.csrfToken(c), Message: app.ErrorMessage(err), Errors: app.ErrorFields(err)}
		return renderHTML(c, statusOf(code), views.PasswordFormFragment(f))
	}
	s.signedIn(c, attempt)
	data := map[string]any{"passwordChanged": true}
	if kind, _ := c.Locals(localAuthKind).(authKind); kind == authBearer {
		t, err := s.deps.Accounts.IssueToken(na)
		if err != nil {
			return err
		}
		data["token"], data["expiresAt"] = t.Value, t.ExpiresAt.UTC()
		return sendJSON(c, http.StatusOK, data)
	}
	s.startSession(c, na)
	if negotiate(c) == formatJSON {
		return sendJSON(c, http.StatusOK, data)
	}
	s.flash(c, views.FlashSuccess, "Your password is changed. Every other session and API token of your account has ended.")
	return redirect(c, paths.Account)
}

// outbox shows the development outbox: the last e-mails kept instead of
// sent. It exists only in development without a mail key.
func (s *Server) outbox(c *fiber.Ctx) error {
	var msgs []views.OutboxMessage
	for _, m := range s.deps.Outbox.Messages() {
		msgs = append(msgs, views.OutboxMessage{To: m.To, Subject: m.Subject, Text: m.Text, At: m.At})
	}
	type item struct {
		To      string `json:"to"`
		Subject string `json:"subject"`
		Text    string `json:"text"`
	}
	data := []item{}
	for _, m := range msgs {
		data = append(data, item{To: m.To, Subject: m.Subject, Text: m.Text})
	}
	return s.reply(c, http.StatusOK, answer{Data: data, view: view{Title: "Outbox", Page: views.OutboxPage(msgs)}})
}
