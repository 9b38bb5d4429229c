package google

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"byoc/app"
	"byoc/app/keyring"
)

// Audit actions written by the service; the same names the integrations
// service uses for the other providers.
const (
	ActionSave       = "credentials.save"
	ActionVerify     = "credentials.verify"
	ActionDisconnect = "credentials.disconnect"
)

// StateTTL is how long a connect flow may take from ConnectURL to Callback.
const StateTTL = 10 * time.Minute

// StatesTable is the table name bound into each sealed PKCE verifier's
// additional data.
const StatesTable = "oauth_states"

// Credentials is what the service needs of the credential service;
// *credentials.Service implements it.
type Credentials interface {
	Save(ctx context.Context, orgID string, cfg app.Config, verifiedAt time.Time) error
	GoogleCalendar(ctx context.Context, orgID string) (app.GoogleCalendarConfig, error)
	Disconnect(ctx context.Context, orgID string, p app.Provider) error
	RecordVerification(ctx context.Context, orgID string, p app.Provider, at time.Time, verificationErr error) error
}

// StateStore keeps pending connect flows; *db.DB implements it.
// TakeOAuthState must remove and return the state in one atomic step and
// answer ENotFound when it is absent or expired.
type StateStore interface {
	SaveOAuthState(ctx context.Context, st app.OAuthState) error
	TakeOAuthState(ctx context.Context, orgID, stateHash string) (app.OAuthState, error)
}

// AuditStore appends to the org's audit log; *db.DB implements it.
type AuditStore interface {
	AppendAudit(ctx context.Context, e app.AuditEntry) error
}

// Sealer encrypts the PKCE verifier kept with a pending state;
// *keyring.Keyring implements it.
type Sealer interface {
	Seal(plaintext []byte, aad keyring.AAD) ([]byte, error)
	Open(ciphertext []byte, aad keyring.AAD) ([]byte, error)
}

// OrgLocker runs fn while no other instance runs work of the same name for
// the same org; *db.DB implements it.
type OrgLocker interface {
	WithOrgLock(ctx context.Context, orgID, name string, fn func(context.Context) error) error
}

// Deps are the service's collaborators. All are required except Locker:
// without it at most one refresh per org runs in this process, with it at
// most one across all instances.
type Deps struct {
	OAuth       *OAuth
	Credentials Credentials
	States      StateStore
	Audit       AuditStore
	Sealer      Sealer
	Locker      OrgLocker
}

// Options tunes NewService.
type Options struct {
	// Logger receives a line per failure and per refresh (never a secret);
	// nil discards.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Service runs the Google Calendar connection of every org. It is safe for
// concurrent use.
type Service struct {
	oauth  *OAuth
	creds  Credentials
	states StateStore
	audits AuditStore
	sealer Sealer
	locker OrgLocker
	locks  *orgLocks
	now    func() time.Time
	log    *slog.Logger
}

// NewService returns a Service. It panics when a required dependency is
// nil: that is a wiring bug, found at start-up.
func NewService(deps Deps, opts Options) *Service {
	var missing []string
	if deps.OAuth == nil {
		missing = append(missing, "OAuth")
	}
	for name, v := range map[string]any{"Credentials": deps.Credentials, "States": deps.States,
		"Audit": deps.Audit, "Sealer": deps.Sealer} {
		if v == nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		panic("google: NewService without " + strings.Join(missing, ", "))
	}
	s := &Service{
		oauth: deps.OAuth, creds: deps.Credentials, states: deps.States, audits: deps.Audit,
		sealer: deps.Sealer, locker: deps.Locker, locks: newOrgLocks(), now: opts.Now, log: opts.Logger,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "google")
	return s
}

// Configured reports whether the server has a Google OAuth client. When it
// does not, the dashboard says Google Calendar is not set up on this server
// instead of offering Connect.
func (s *Service) Configured() bool { return s.oauth.Configured() }

// errNotSetUp is the answer to every operation that needs the server's
// OAuth client when there is none.
func errNotSetUp() error {
	return app.Errorf(app.ENotConfigured, "Google Calendar is not set up on this server.")
}

// ConnectURL starts a connect flow for p's org and returns the URL of
// Google's consent page to send the browser to. sessionBinding is a secret
// value tied to the caller's browser session (the web layer passes the
// session's CSRF token); the callback is accepted only with the same value.
//
// The flow's state is 32 random bytes (base64url), stored as its SHA-256
// with the org, the user, the SHA-256 of sessionBinding and the PKCE
// verifier (sealed by the keyring, bound to the org and the state), for
// StateTTL. The URL asks for Scopes with access_type=offline,
// prompt=consent and an S256 code challenge.
//
// It returns EUnauthorized without an org, EForbidden for a non-admin,
// ENotConfigured when the server has no Google client, and EInternal (also
// for an empty sessionBinding, a wiring bug).
func (s *Service) ConnectURL(ctx context.Context, p app.Principal, sessionBinding string) (string, error) {
	if sessionBinding == "" {
		return "", app.Internal(errors.New("google: ConnectURL without a session binding"))
	}
	return s.connectURL(ctx, p, hashHex(sessionBinding))
}

// APIConnectURL starts a connect flow for an API client (a bearer token),
// which has no browser session to bind the flow to. The admin opens the
// returned URL in a browser; the callback is then accepted in any browser
// session of the same user of the same org, and, like every flow, only
// once and within StateTTL. Errors as ConnectURL.
func (s *Service) APIConnectURL(ctx context.Context, p app.Principal) (string, error) {
	return s.connectURL(ctx, p, unboundSession)
}

// unboundSession is the stored binding of a flow started by an API client.
// A hex SHA-256 is never empty, so it cannot match a browser's binding by
// accident.
const unboundSession = ""

func (s *Service) connectURL(ctx context.Context, p app.Principal, bindingHash string) (string, error) {
	switch {
	case p.OrgID == "" || p.UserID == "":
		return "", app.Errorf(app.EUnauthorized, "Please sign in.")
	case !p.IsAdmin():
		return "", errNotAdmin()
	case !s.oauth.Configured():
		return "", errNotSetUp()
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", app.Internal(err)
	}
	state := base64.RawURLEncoding.EncodeToString(raw[:])
	verifier := oauth2.GenerateVerifier()
	stateHash := hashHex(state)
	sealed, err := s.sealer.Seal([]byte(verifier), verifierAAD(p.OrgID, stateHash))
	if err != nil {
		return "", app.Internal(fmt.Errorf("google: seal the PKCE verifier: %w", err))
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	err = s.states.SaveOAuthState(ctx, app.OAuthState{
		StateHash: stateHash, OrgID: p.OrgID, UserID: p.UserID, SessionBinding: bindingHash,
		CodeVerifier: sealed, CreatedAt: now, ExpiresAt: now.Add(StateTTL),
	})
	if err != nil {
		return "", app.AsError(err)
	}
	s.log.InfoContext(ctx, "google connect started", "org_id", p.OrgID, "user_id", p.UserID)
	return s.oauth.authCodeURL(state, verifier), nil
}

// CallbackQuery is what Google sends back to the callback URL.
type CallbackQuery struct {
	State string `query:"state" form:"state"`
	Code  string `query:"code" form:"code"`
	// Error is Google's error code, such as "access_denied" when the user
	// denied consent.
	Error string `query:"error" form:"error"`
}

// Callback finishes a connect flow: it takes (and so uses up) the state
// first, checks that it belongs to p (same org, same user) and to the same
// browser session (sessionBinding as given to ConnectURL; any session of
// the same user for a flow from APIConnectURL) and has not expired, then handles Google's answer. Denied consent returns
// EVerificationFailed "Google Calendar access was not granted.". Otherwise
// it exchanges the code with the PKCE verifier, reads the account's email
// from the id_token (see emailFromIDToken), requires the calendar events
// scope to have been granted and a refresh token, and stores {refresh
// token, access token, expiry, email, scopes} through the credential
// service, verified now. It returns the connected account's email.
//
// Every outcome is audited as credentials.save. On any error nothing is
// stored and the org's previous connection, if any, is untouched. Errors:
// EUnauthorized, EForbidden (not an admin, another user or another browser
// session), EValidation (state missing, unknown, used or expired; code
// missing), EVerificationFailed (denied, code refused, scope missing, no
// usable id_token), ENotConfigured, EProviderUnavailable, EUnavailable and
// EInternal.
func (s *Service) Callback(ctx context.Context, p app.Principal, sessionBinding string, q CallbackQuery) (string, error) {
	if p.OrgID == "" || p.UserID == "" {
		return "", app.Errorf(app.EUnauthorized, "Please sign in.")
	}
	var email string
	err := s.audited(ctx, p, ActionSave, func(ctx context.Context, now time.Time) (string, error) {
		var err error
		email, err = s.callback(ctx, p, sessionBinding, q, now)
		return "Google Calendar connected as " + email + ".", err
	})
	if err != nil {
		return "", err
	}
	return email, nil
}

func (s *Service) callback(ctx context.Context, p app.Principal, sessionBinding string, q CallbackQuery, now time.Time) (string, error) {
	if !p.IsAdmin() {
		return "", errNotAdmin()
	}
	restart := func(format string) error {
		return &app.Error{Code: app.EValidation, Message: format + " Click Connect to start again."}
	}
	if q.State == "" {
		return "", restart("The answer from Google is missing its state.")
	}
	if len(q.State) > 512 {
		return "", restart("This Google sign-in is unknown, has expired or was already used.")
	}
	st, err := s.states.TakeOAuthState(ctx, p.OrgID, hashHex(q.State))
	if app.ErrorCode(err) == app.ENotFound {
		return "", restart("This Google sign-in is unknown, has expired or was already used.")
	}
	if err != nil {
		return "", app.AsError(err)
	}
	sameSession := st.SessionBinding == unboundSession ||
		subtle.ConstantTimeCompare([]byte(st.SessionBinding), []byte(hashHex(sessionBinding))) == 1
	if st.OrgID != p.OrgID || st.UserID != p.UserID || !sameSession {
		return "", &app.Error{Code: app.EForbidden,
			Message: "This Google sign-in was started by another user or in another browser session. Click Connect to start again."}
	}
	if !now.Before(st.ExpiresAt) {
		return "", restart("This Google sign-in has expired.")
	}
	if q.Error != "" {
		if q.Error == "access_denied" {
			return "", app.Errorf(app.EVerificationFailed, "Google Calendar access was not granted.")
		}
		return "", app.Errorf(app.EVerificationFailed, "Google did not grant access (%s). Click Connect to start again.", safeCode(q.Error))
	}
	if q.Code == "" {
		return "", restart("The answer from Google is missing its authorization code.")
	}
	if !s.oauth.Configured() {
		return "", errNotSetUp()
	}
	verifier, err := s.sealer.Open(st.CodeVerifier, verifierAAD(st.OrgID, st.StateHash))
	if err != nil {
		return "", app.Internal(fmt.Errorf("google: open the PKCE verifier: %w", err))
	}
	tok, err := s.oauth.exchange(ctx, q.Code, string(verifier))
	if err != nil {
		return "", err
	}
	cfg, err := s.grantConfig(tok, now)
	if err == nil {
		err = s.creds.Save(ctx, p.OrgID, cfg, now)
	}
	if err != nil {
		// Google granted access that is not kept: give it back.
		s.revokeQuietly(ctx, p.OrgID, tok.RefreshToken, tok.AccessToken)
		return "", app.AsError(err)
	}
	return cfg.Email, nil
}

// grantConfig checks a fresh token response and turns it into the config
// to store.
func (s *Service) grantConfig(tok *oauth2.Token, now time.Time) (app.GoogleCalendarConfig, error) {
	if tok.RefreshToken == "" {
		return app.GoogleCalendarConfig{}, app.Errorf(app.EVerificationFailed,
			"Google did not give lasting access (no refresh token). Remove this app's access in your Google account, then connect again.")
	}
	scopes := scopesOf(tok)
	if len(scopes) == 0 {
		// Google always reports the granted scopes; a server that does not
		// granted what was asked.
		scopes = slices.Clone(Scopes)
	}
	if !hasCalendarScope(scopes) {
		return app.GoogleCalendarConfig{}, app.Errorf(app.EVerificationFailed,
			"Google Calendar access was not granted: allow access to your calendar events when Google asks.")
	}
	idToken, _ := tok.Extra("id_token").(string)
	email, err := s.oauth.emailFromIDToken(idToken)
	if err != nil {
		return app.GoogleCalendarConfig{}, err
	}
	return app.GoogleCalendarConfig{
		RefreshToken: app.NewSecret(tok.RefreshToken),
		AccessToken:  app.NewSecret(tok.AccessToken),
		Expiry:       expiryOf(tok, now),
		Email:        email,
		Scopes:       scopes,
	}, nil
}

// VerifyResult is the outcome of a successful check of an org's stored
// Google Calendar connection.
type VerifyResult struct {
	VerifiedAt time.Time
	Email      string
	Detail     string
}

// Verify checks the org's stored connection with events.list on the primary
// calendar (maxResults=1, which the calendar events scope allows),
// refreshing the access token when needed, and records the outcome like the
// other providers' checks: last_verified_at on success, Google's refusal as
// verification_error (the card then needs attention). It requires an admin
// and is audited as credentials.verify. Errors: EUnauthorized, EForbidden,
// ENotConfigured (nothing stored or no Google client), EVerificationFailed
// (Google refused the stored authorization, after recording it),
// EProviderUnavailable (Google unreachable; nothing is recorded) and
// EInternal.
func (s *Service) Verify(ctx context.Context, p app.Principal) (VerifyResult, error) {
	if p.OrgID == "" {
		return VerifyResult{}, app.Errorf(app.EUnauthorized, "Please sign in.")
	}
	var res VerifyResult
	err := s.audited(ctx, p, ActionVerify, func(ctx context.Context, now time.Time) (string, error) {
		if !p.IsAdmin() {
			return "", errNotAdmin()
		}
		cfg, err := s.creds.GoogleCalendar(ctx, p.OrgID)
		if err != nil {
			return "", err
		}
		_, err = s.CheckConnection(ctx, p.OrgID)
		switch app.ErrorCode(err) {
		case "":
		case app.EVerificationFailed:
			s.record(ctx, p.OrgID, now, err)
			return "", err
		default:
			return "", err
		}
		if err := s.creds.RecordVerification(ctx, p.OrgID, app.GoogleCalendar, now, nil); err != nil {
			return "", err
		}
		res = VerifyResult{VerifiedAt: now, Email: cfg.Email,
			Detail: "Google Calendar accepted the connection of " + cfg.Email + "; its primary calendar is reachable."}
		return res.Detail, nil
	})
	if err != nil {
		return VerifyResult{}, err
	}
	return res, nil
}

// Disconnect revokes the org's Google authorization at Google (the refresh
// token, which revokes the whole grant, or else the access token) and then
// deletes the stored connection. A failed revocation is logged (without the
// token) and does not stop the deletion; nor does a stored row that can no
// longer be decrypted. It requires an admin and is audited as
// credentials.disconnect. Errors: EUnauthorized, EForbidden, ENotConfigured
// (nothing was stored) and EInternal.
func (s *Service) Disconnect(ctx context.Context, p app.Principal) error {
	if p.OrgID == "" {
		return app.Errorf(app.EUnauthorized, "Please sign in.")
	}
	return s.audited(ctx, p, ActionDisconnect, func(ctx context.Context, _ time.Time) (string, error) {
		if !p.IsAdmin() {
			return "", errNotAdmin()
		}
		detail := "Google Calendar disconnected."
		cfg, err := s.creds.GoogleCalendar(ctx, p.OrgID)
		switch app.ErrorCode(err) {
		case "":
			if !s.revokeQuietly(ctx, p.OrgID, cfg.RefreshToken.Reveal(), cfg.AccessToken.Reveal()) {
				detail += " Google did not confirm the revocation; the access can also be removed in the Google account."
			}
		case app.ENotConfigured:
			// Nothing usable to revoke; an undecryptable row is still deleted.
		default:
			return "", err
		}
		if err := s.creds.Disconnect(ctx, p.OrgID, app.GoogleCalendar); err != nil {
			return "", err
		}
		return detail, nil
	})
}

// revokeQuietly revokes the refresh token (or, without one, the access
// token) and reports whether Google confirmed it; a failure is logged
// without the token. It runs even when ctx was cancelled meanwhile.
func (s *Service) revokeQuietly(ctx context.Context, orgID, refreshToken, accessToken string) bool {
	tok := refreshToken
	if tok == "" {
		tok = accessToken
	}
	if tok == "" {
		return false
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.oauth.timeout)
	defer cancel()
	if err := s.oauth.revoke(rctx, tok); err != nil {
		s.log.WarnContext(ctx, "google token revocation failed", "org_id", orgID,
			"code", app.ErrorCode(err), "reason", app.ErrorMessage(err))
		return false
	}
	s.log.InfoContext(ctx, "google token revoked", "org_id", orgID)
	return true
}

// record stores a refusal by Google as the org's verification error. A
// failure to record is logged: the refusal itself is what the caller
// reports.
func (s *Service) record(ctx context.Context, orgID string, at time.Time, verificationErr error) {
	if err := s.creds.RecordVerification(ctx, orgID, app.GoogleCalendar, at, verificationErr); err != nil {
		s.log.WarnContext(ctx, "recording the google verification failed", "org_id", orgID, "code", app.ErrorCode(err))
	}
}

// audited runs one audited operation for p with the time of the change and
// writes fn's detail (on success) or the error's user-facing message to the
// audit log. Non-app errors become EInternal.
func (s *Service) audited(ctx context.Context, p app.Principal, action string,
	fn func(ctx context.Context, now time.Time) (string, error)) error {
	now := s.now().UTC().Truncate(time.Microsecond)
	detail, err := fn(ctx, now)
	if err != nil {
		err = app.AsError(err)
	}
	e := app.AuditEntry{OrgID: p.OrgID, ActorID: p.UserID, Action: action, Provider: app.GoogleCalendar,
		Outcome: app.OutcomeSuccess, Detail: detail}
	if err != nil {
		e.Outcome, e.Detail = app.OutcomeFailure, app.ErrorMessage(err)
	}
	// The entry is written even when the request was cancelled meanwhile.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if aerr := s.audits.AppendAudit(actx, e); aerr != nil {
		s.log.ErrorContext(ctx, "audit log write failed", "org_id", p.OrgID, "user_id", p.UserID,
			"action", action, "outcome", e.Outcome, "err", aerr)
	}
	if err != nil {
		attrs := []any{"org_id", p.OrgID, "user_id", p.UserID, "action", action, "code", app.ErrorCode(err)}
		if app.ErrorCode(err) == app.EInternal {
			s.log.ErrorContext(ctx, "google calendar change failed", append(attrs, "err", err)...)
		} else {
			s.log.InfoContext(ctx, "google calendar change refused", append(attrs, "reason", app.ErrorMessage(err))...)
		}
	}
	return err
}

func errNotAdmin() error {
	return app.Errorf(app.EForbidden, "Only an admin of the organization can change its Google Calendar connection.")
}

// hashHex is the lowercase hex SHA-256 of s.
func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// verifierAAD binds a sealed verifier to its org and state.
func verifierAAD(orgID, stateHash string) keyring.AAD {
	return keyring.AAD{Table: StatesTable, OrgID: orgID, Provider: string(app.GoogleCalendar) + "/" + stateHash}
}
