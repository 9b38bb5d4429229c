package auth

import (
	"context"
	"strings"
	"time"

	"byoc/app"
	"byoc/app/mail"
	"byoc/app/paths"
)

// Joining by invitation, password reset by e-mail and password change.
// Links carry a random token (app.NewLinkToken); only its digest is
// stored, and the database uses each link once.

// ResetTTL is how long a password reset link works.
const ResetTTL = 30 * time.Minute

// Invitation is what the invitation page shows before the invitee joins.
type Invitation struct {
	Email     string
	OrgName   string
	Role      app.Role
	ExpiresAt time.Time
}

// Invitation returns the pending invitation of a link's token; ENotFound
// when it is unknown, used, revoked or expired.
func (s *Service) Invitation(ctx context.Context, token string) (Invitation, error) {
	if !app.IsLinkToken(token) {
		return Invitation{}, errNoInvitation()
	}
	in, orgName, err := s.store.InviteByToken(ctx, app.LinkTokenHash(token))
	if err != nil {
		return Invitation{}, err
	}
	return Invitation{Email: in.Email, OrgName: orgName, Role: in.Role, ExpiresAt: in.ExpiresAt}, nil
}

// AcceptInvite joins the invitee to the org with password (signup's rules,
// field "password") and returns the signed-in account. ENotFound for a
// link that no longer works, EEmailTaken when the address already has an
// account.
func (s *Service) AcceptInvite(ctx context.Context, token, password string) (Account, error) {
	inv, err := s.Invitation(ctx, token)
	if err != nil {
		return Account{}, err
	}
	if err := s.checkNewPassword("password", password, inv.Email, inv.OrgName); err != nil {
		return Account{}, err
	}
	hash, err := s.passwords.hash(password)
	if err != nil {
		return Account{}, app.Internal(err)
	}
	orgID, userID, err := s.store.JoinByInvite(ctx, app.LinkTokenHash(token), hash)
	if err != nil {
		return Account{}, err
	}
	return s.load(ctx, userID, orgID)
}

// RequestPasswordReset mails a reset link to email when a member has that
// address, and does nothing otherwise: the answer is the same either way,
// so it tells nobody which addresses have an account (a link that could
// not be sent is logged, not reported). An address that is not one is
// EValidation; a server that cannot send e-mail is EUnavailable.
func (s *Service) RequestPasswordReset(ctx context.Context, email string) error {
	email = NormalizeEmail(email)
	if msg := checkEmail(email); msg != "" {
		return app.ValidationError(map[string]string{"email": msg})
	}
	if !s.mailer.Enabled() {
		return app.Errorf(app.EUnavailable,
			"This server is not set up to send e-mail, so a password cannot be reset by e-mail. Ask your organization's admin for help.")
	}
	token := app.NewLinkToken()
	p, err := s.store.CreatePasswordReset(ctx, email, app.LinkTokenHash(token), s.now().Add(ResetTTL))
	if app.ErrorCode(err) == app.ENotFound {
		return nil
	}
	if err != nil {
		return err
	}
	// The mail goes out after the answer: how long the mail service takes
	// must not tell which addresses have an account.
	link := strings.TrimRight(s.publicURL, "/") + paths.Reset(token)
	msg := mail.PasswordResetMessage(p.Email, link, ResetTTL)
	s.sending.Go(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mailTimeout)
		defer cancel()
		if err := s.mailer.Send(ctx, msg); err != nil {
			s.log.Warn("password reset e-mail not sent", "user_id", p.UserID, "err", app.ErrorMessage(err))
		}
	})
	return nil
}

// mailTimeout bounds the sending of one reset e-mail after the answer.
const mailTimeout = time.Minute

// WaitForMail waits until the reset e-mails handed over so far are sent
// (or failed); tests call it before reading the outbox.
func (s *Service) WaitForMail() { s.sending.Wait() }

// PasswordResetEmail returns the address a pending reset link is for;
// ENotFound when the link no longer works.
func (s *Service) PasswordResetEmail(ctx context.Context, token string) (string, error) {
	if !app.IsLinkToken(token) {
		return "", errNoReset()
	}
	p, err := s.store.PasswordResetAccount(ctx, app.LinkTokenHash(token))
	if err != nil {
		return "", err
	}
	return p.Email, nil
}

// ResetPassword sets a new password (signup's rules, field "password")
// through a reset link, ends every session and token of the user and
// returns the account signed in anew. ENotFound when the link no longer
// works.
func (s *Service) ResetPassword(ctx context.Context, token, password string) (Account, error) {
	if !app.IsLinkToken(token) {
		return Account{}, errNoReset()
	}
	p, err := s.store.PasswordResetAccount(ctx, app.LinkTokenHash(token))
	if err != nil {
		return Account{}, err
	}
	if err := s.checkNewPassword("password", password, p.Email, p.OrgName); err != nil {
		return Account{}, err
	}
	hash, err := s.passwords.hash(password)
	if err != nil {
		return Account{}, app.Internal(err)
	}
	userID, orgID, _, err := s.store.ResetPassword(ctx, app.LinkTokenHash(token), hash)
	if err != nil {
		return Account{}, err
	}
	return s.load(ctx, userID, orgID)
}

// ChangePassword checks the signed-in user's current password (field
// "currentPassword") and sets the new one (signup's rules, field
// "newPassword"), ending every session and token of the user. It returns
// the account under its new session version, for the client that asked.
func (s *Service) ChangePassword(ctx context.Context, a Account, current, next string) (Account, error) {
	fields := map[string]string{}
	if current == "" {
		fields["currentPassword"] = "Enter your current password."
	}
	if next == "" {
		fields["newPassword"] = "Choose a new password."
	}
	if err := app.ValidationError(fields); err != nil {
		return Account{}, err
	}
	_, _, hash, _, err := s.store.FindUserByEmail(ctx, a.Principal.Email)
	if err != nil {
		return Account{}, err
	}
	if len(current) > maxPasswordBytes || !s.passwords.check(hash, current) {
		return Account{}, &app.Error{Code: app.EValidation, Message: "Please correct the highlighted fields.",
			Fields: map[string]string{"currentPassword": "This is not your current password."}}
	}
	if err := s.checkNewPassword("newPassword", next, a.Principal.Email, a.OrgName); err != nil {
		return Account{}, err
	}
	newHash, err := s.passwords.hash(next)
	if err != nil {
		return Account{}, app.Internal(err)
	}
	version, err := s.store.ChangePassword(ctx, a.Principal, newHash)
	if err != nil {
		return Account{}, err
	}
	a.SessionVersion = version
	return a, nil
}

// checkNewPassword returns EValidation with the message for field when
// password may not be chosen (see checkPassword).
func (s *Service) checkNewPassword(field, password, email, orgName string) error {
	msg, err := checkPassword(password, email, orgName)
	if err != nil {
		return err
	}
	if msg != "" {
		return app.ValidationError(map[string]string{field: msg})
	}
	return nil
}

// NormalizeEmail trims and lower-cases an email address, the form accounts
// and invitations are stored and looked up in.
func NormalizeEmail(s string) string { return normalizeEmail(s) }

// ParseEmail returns the normalised address, or EValidation for the field
// "email" when it is not a plain address like name@example.com.
func ParseEmail(s string) (string, error) {
	email := normalizeEmail(s)
	if msg := checkEmail(email); msg != "" {
		return "", app.ValidationError(map[string]string{"email": msg})
	}
	return email, nil
}

func errNoInvitation() error {
	return app.Errorf(app.ENotFound, "This invitation is not valid: it was used, revoked or has expired. Ask an admin for a new one.")
}

func errNoReset() error {
	return app.Errorf(app.ENotFound, "This password reset link is not valid: it was used or has expired. Ask for a new one.")
}
