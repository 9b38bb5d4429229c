// Package auth holds BYOC's accounts: signup (an org and its first admin),
// login with email and password, logout, the per-request session check and
// the bearer tokens (HS256 JWTs) that API clients use.
//
// Revocation works through the user's session version: logout increments
// it, and every session cookie and every token issued by this package carry
// the version they were issued under, so both stop working at once. Tokens
// from another issuer that shares JWT_SECRET (Supabase style) carry no
// version, so logout cannot revoke them: they are accepted only with an iat
// at most MaxUnversionedTokenAge ago, whatever their exp says.
//
// The org role (admin or member) is never taken from a token: it is read
// from org_members on every request, so a role change or a removed
// membership takes effect immediately.
//
// Errors: refused input is EValidation with a message per field, a signup
// with an email that has an account EEmailTaken, a wrong email or password
// EInvalidCredentials, a session or token that is no longer good (revoked,
// expired, membership gone) EUnauthorized, and a failure of the store or of
// signing EInternal, its cause kept for the log.
package auth

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"byoc/app"
	"byoc/app/mail"
)

// Store is what the service needs from the database (db.DB implements it).
type Store interface {
	// CreateOrgWithAdmin creates an org, its first user and the admin
	// membership in one transaction; EEmailTaken when the email exists.
	CreateOrgWithAdmin(ctx context.Context, orgName, email, passwordHash string) (orgID, userID string, err error)
	// FindUserByEmail finds a user by email in any letter case, in their
	// first org; ENotFound when there is none.
	FindUserByEmail(ctx context.Context, email string) (p app.Principal, orgName, passwordHash string, sessionVersion int, err error)
	// LoadSession returns the user's email, the org's name, the user's role
	// in it and the current session version; ENotFound when the user is not
	// a member of the org.
	LoadSession(ctx context.Context, userID, orgID string) (email, orgName string, role app.Role, sessionVersion int, err error)
	// BumpSessionVersion revokes every session and token of the user.
	BumpSessionVersion(ctx context.Context, userID string) error

	// InviteByToken returns a pending invitation and its org's name;
	// ENotFound when there is none.
	InviteByToken(ctx context.Context, tokenHash string) (app.Invite, string, error)
	// JoinByInvite uses an invitation: the invitee's account with
	// passwordHash and their membership; ENotFound, EEmailTaken.
	JoinByInvite(ctx context.Context, tokenHash, passwordHash string) (orgID, userID string, err error)
	// CreatePasswordReset stores a reset link for the member with email;
	// ENotFound when there is none.
	CreatePasswordReset(ctx context.Context, email, tokenHash string, expiresAt time.Time) (app.Principal, error)
	// PasswordResetAccount returns whose a pending reset link is;
	// ENotFound when it is unknown, used or expired.
	PasswordResetAccount(ctx context.Context, tokenHash string) (app.Principal, error)
	// ResetPassword uses a reset link: the new password hash, every
	// session ended; it returns the new session version.
	ResetPassword(ctx context.Context, tokenHash, passwordHash string) (userID, orgID string, sessionVersion int, err error)
	// ChangePassword sets the user's new password hash and ends every
	// session; it returns the new session version.
	ChangePassword(ctx context.Context, p app.Principal, passwordHash string) (int, error)
}

// Account is a signed-in user as the front doors see them: the principal
// (user, org, email, role), the org's display name and the session version
// the sign-in belongs to.
type Account struct {
	Principal      app.Principal
	OrgName        string
	SessionVersion int
}

// Token is a bearer token and the moment it expires.
type Token struct {
	Value     string
	ExpiresAt time.Time
}

// Options tunes NewService. The zero value gives production settings.
type Options struct {
	// BcryptCost is the bcrypt work factor for new password hashes
	// (0: DefaultBcryptCost). Tests lower it to bcrypt.MinCost.
	BcryptCost int
	// Mailer sends the password reset links (nil: none can be sent).
	Mailer mail.Mailer
	// PublicURL is where the links in e-mails point.
	PublicURL string
	// Logger receives what goes wrong with a reset e-mail (nil:
	// slog.Default()).
	Logger *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Service is the accounts service. It is safe for concurrent use.
type Service struct {
	store     Store
	tokens    *Tokens
	passwords *passwords
	mailer    mail.Mailer
	publicURL string
	log       *slog.Logger
	now       func() time.Time
	sending   sync.WaitGroup // reset e-mails on their way
}

// NewService returns the accounts service over store, issuing and checking
// bearer tokens with tokens.
func NewService(store Store, tokens *Tokens, opts Options) *Service {
	if opts.Mailer == nil {
		opts.Mailer = mail.New(mail.Options{})
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{store: store, tokens: tokens, passwords: newPasswords(opts.BcryptCost),
		mailer: opts.Mailer, publicURL: opts.PublicURL, log: opts.Logger, now: opts.Now}
}

// SignupInput is what a new customer enters: the org's name, the admin's
// email and password.
type SignupInput struct {
	OrgName  string
	Email    string
	Password string
}

// Signup validates in (fields "orgName", "email" and "password"), creates
// the org and its admin user and returns the signed-in account.
func (s *Service) Signup(ctx context.Context, in SignupInput) (Account, error) {
	orgName, email, err := validateSignup(in)
	if err != nil {
		return Account{}, err
	}
	hash, err := s.passwords.hash(in.Password)
	if err != nil {
		return Account{}, app.Internal(err)
	}
	orgID, userID, err := s.store.CreateOrgWithAdmin(ctx, orgName, email, hash)
	if err != nil {
		return Account{}, err
	}
	return s.load(ctx, userID, orgID)
}

// Login checks an email and password and returns the account in the user's
// first org. Unknown emails and wrong passwords give the same
// EInvalidCredentials error and take the same time, so neither tells which
// emails have an account.
func (s *Service) Login(ctx context.Context, email, password string) (Account, error) {
	email = normalizeEmail(email)
	if err := app.ValidationError(requireLogin(email, password)); err != nil {
		return Account{}, err
	}
	if len(email) > maxEmailBytes || len(password) > maxPasswordBytes {
		s.passwords.burn(password)
		return Account{}, errInvalidCredentials()
	}
	p, orgName, hash, version, err := s.store.FindUserByEmail(ctx, email)
	if app.ErrorCode(err) == app.ENotFound {
		s.passwords.burn(password)
		return Account{}, errInvalidCredentials()
	}
	if err != nil {
		return Account{}, err
	}
	if !s.passwords.check(hash, password) {
		return Account{}, errInvalidCredentials()
	}
	p.OrgName = orgName
	return Account{Principal: p, OrgName: orgName, SessionVersion: version}, nil
}

// Logout revokes every session cookie and token of the user: the ones in
// other browsers and copies of the current cookie included. An unknown user
// is ENotFound.
func (s *Service) Logout(ctx context.Context, userID string) error {
	return s.store.BumpSessionVersion(ctx, userID)
}

// ResolveSession checks a session cookie's values against the database and
// returns the current account (fresh email, org name and role). The session
// has ended when the user is no longer a member of the org or its version
// is not the current one (revoked).
func (s *Service) ResolveSession(ctx context.Context, userID, orgID string, version int) (Account, error) {
	a, err := s.load(ctx, userID, orgID)
	if err != nil {
		return Account{}, err
	}
	if a.SessionVersion != version {
		return Account{}, errSessionEnded()
	}
	return a, nil
}

// IssueToken returns a bearer token for the account, bound to its session
// version.
func (s *Service) IssueToken(a Account) (Token, error) {
	return s.tokens.Issue(a.Principal, a.SessionVersion)
}

// ResolveToken checks a bearer token (signature, algorithm, expiry, audience,
// issuer) and then the membership and session version it names, and returns
// the current account.
func (s *Service) ResolveToken(ctx context.Context, token string) (Account, error) {
	c, err := s.tokens.Parse(token)
	if err != nil {
		return Account{}, err
	}
	a, err := s.load(ctx, c.UserID, c.OrgID)
	if err != nil {
		return Account{}, err
	}
	if c.SessionVersion != 0 && c.SessionVersion != a.SessionVersion {
		return Account{}, errSessionEnded()
	}
	return a, nil
}

// load reads the account of userID in orgID; a missing membership is
// EUnauthorized, because every caller is checking a sign-in.
func (s *Service) load(ctx context.Context, userID, orgID string) (Account, error) {
	email, orgName, role, version, err := s.store.LoadSession(ctx, userID, orgID)
	if app.ErrorCode(err) == app.ENotFound {
		return Account{}, errSessionEnded()
	}
	if err != nil {
		return Account{}, err
	}
	return Account{
		Principal:      app.Principal{UserID: userID, OrgID: orgID, OrgName: orgName, Email: email, Role: role},
		OrgName:        orgName,
		SessionVersion: version,
	}, nil
}

func errInvalidCredentials() error {
	return app.Errorf(app.EInvalidCredentials, "The email or password is incorrect.")
}

func errSessionEnded() error {
	return app.Errorf(app.EUnauthorized, "Your session has ended. Please sign in again.")
}
