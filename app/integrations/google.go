package integrations

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/oauth2"

	"byoc/app"
	"byoc/app/keyring"
	"byoc/app/providers/google"
)

// The connect flow of Google Calendar, which connects through Google's
// sign-in (OAuth 2.0 for web server apps) instead of a form: ConnectURL (or
// APIConnectURL) starts it, Google sends the browser back to Callback. The
// connection test and the disconnect are Verify and Disconnect, like every
// provider's.

// StateTTL is how long a connect flow may take from ConnectURL to Callback.
const StateTTL = 10 * time.Minute

// StatesTable is the table name bound into each sealed PKCE verifier's
// additional data.
const StatesTable = "oauth_states"

// GoogleOAuth is the server's OAuth client at Google; *google.OAuth
// implements it.
type GoogleOAuth interface {
	Configured() bool
	Timeout() time.Duration
	AuthCodeURL(state, verifier string) string
	Exchange(ctx context.Context, code, verifier string, now time.Time) (app.OAuthToken, error)
	EmailFromIDToken(raw string) (string, error)
	Revoke(ctx context.Context, token string) error
}

// StateStore keeps pending connect flows; *db.DB implements it.
// TakeOAuthState must remove and return the state in one atomic step and
// answer ENotFound when it is absent or expired.
type StateStore interface {
	SaveOAuthState(ctx context.Context, st app.OAuthState) error
	TakeOAuthState(ctx context.Context, orgID, stateHash string) (app.OAuthState, error)
}

// Sealer encrypts the PKCE verifier kept with a pending state;
// *keyring.Keyring implements it.
type Sealer interface {
	Seal(plaintext []byte, aad keyring.AAD) ([]byte, error)
	Open(ciphertext []byte, aad keyring.AAD) ([]byte, error)
}

// CallbackQuery is what Google sends back to the callback URL.
type CallbackQuery struct {
	State string `query:"state" form:"state"`
	Code  string `query:"code" form:"code"`
	// Error is Google's error code, such as "access_denied" when the user
	// denied consent.
	Error string `query:"error" form:"error"`
}

// GoogleReady reports whether the server can run Google Calendar's
// sign-in; without it the card says Google Calendar is not set up on this
// server instead of offering Connect.
func (s *Service) GoogleReady() bool { return s.google != nil && s.google.Configured() }

// ConnectURL starts a connect flow for p's org and returns the URL of
// Google's consent page to send the browser to. sessionBinding is a secret
// value tied to the caller's browser session (the web layer passes the
// session's CSRF token); the callback is accepted only with the same value.
//
// The flow's state is 32 random bytes (base64url), stored as its SHA-256
// with the org, the user, the SHA-256 of sessionBinding and the PKCE
// verifier (sealed by the keyring, bound to the org and the state), for
// StateTTL. The URL asks for google.Scopes with access_type=offline,
// prompt=consent and an S256 code challenge.
//
// It returns EUnauthorized without an org, EForbidden for a non-admin,
// ENotConfigured when the server has no Google client, and EInternal (also
// for an empty sessionBinding, a wiring bug).
func (s *Service) ConnectURL(ctx context.Context, p app.Principal, sessionBinding string) (string, error) {
	if sessionBinding == "" {
		return "", app.Internal(errors.New("integrations: ConnectURL without a session binding"))
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
		return "", errNotAdmin(app.GoogleCalendar)
	case !s.GoogleReady():
		return "", errGoogleNotSetUp()
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
		return "", app.Internal(fmt.Errorf("integrations: seal the PKCE verifier: %w", err))
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
	return s.google.AuthCodeURL(state, verifier), nil
}

// Callback finishes a connect flow: it takes (and so uses up) the state
// first, checks that it belongs to p (same org, same user) and to the same
// browser session (sessionBinding as given to ConnectURL; any session of
// the same user for a flow from APIConnectURL) and has not expired, then
// handles Google's answer. Denied consent returns EVerificationFailed
// "Google Calendar access was not granted.". Otherwise it exchanges the code
// with the PKCE verifier, reads the account's email from the id_token,
// requires the calendar events scope to have been granted and a refresh
// token, and saves {refresh token, access token, expiry, email, scopes}
// through the credential service, verified now. It returns the connected
// account's email.
//
// Every outcome is audited as credentials.save (a connection in the save's
// transaction). On any error nothing is stored and the org's previous
// connection, if any, is untouched, and a grant Google gave is revoked
// again. EValidation is a state missing, unknown, used or expired, or a
// code missing.
func (s *Service) Callback(ctx context.Context, p app.Principal, sessionBinding string, q CallbackQuery) (string, error) {
	if p.OrgID == "" || p.UserID == "" {
		return "", app.Errorf(app.EUnauthorized, "Please sign in.")
	}
	var email string
	err := s.mutate(ctx, p, ActionSave, app.GoogleCalendar, nil, func(ctx context.Context, now time.Time, ch *change) error {
		var err error
		email, err = s.callback(ctx, p, sessionBinding, q, now, ch)
		return err
	})
	if err != nil {
		return "", err
	}
	return email, nil
}

func (s *Service) callback(ctx context.Context, p app.Principal, sessionBinding string, q CallbackQuery, now time.Time,
	ch *change) (string, error) {
	restart := func(msg string) error {
		return &app.Error{Code: app.EValidation, Message: msg + " Click Connect to start again."}
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
		return "", app.Errorf(app.EVerificationFailed, "Google did not grant access (%s). Click Connect to start again.", google.SafeCode(q.Error))
	}
	if q.Code == "" {
		return "", restart("The answer from Google is missing its authorization code.")
	}
	if !s.GoogleReady() {
		return "", errGoogleNotSetUp()
	}
	verifier, err := s.sealer.Open(st.CodeVerifier, verifierAAD(st.OrgID, st.StateHash))
	if err != nil {
		return "", app.Internal(fmt.Errorf("integrations: open the PKCE verifier: %w", err))
	}
	tok, err := s.google.Exchange(ctx, q.Code, string(verifier), now)
	if err != nil {
		s.countVerification(app.GoogleCalendar, TriggerSave, app.Verification{}, err)
		return "", err
	}
	cfg, err := s.grantConfig(tok)
	s.countVerification(app.GoogleCalendar, TriggerSave, app.Verification{}, err)
	if err == nil {
		_, err = s.creds.Save(ctx, app.Connection{OrgID: p.OrgID, Config: cfg, VerifiedAt: now},
			ch.entry("Google Calendar connected as "+cfg.Email+"."))
	}
	if err != nil {
		// Google granted access that is not kept: give it back.
		s.revoke(ctx, p.OrgID, tok.RefreshToken.Reveal(), tok.AccessToken.Reveal())
		return "", app.AsError(err)
	}
	ch.stored()
	return cfg.Email, nil
}

// grantConfig checks a fresh grant and turns it into the config to store.
func (s *Service) grantConfig(tok app.OAuthToken) (app.GoogleCalendarConfig, error) {
	if tok.RefreshToken.IsZero() {
		return app.GoogleCalendarConfig{}, app.Errorf(app.EVerificationFailed,
			"Google did not give lasting access (no refresh token). Remove this app's access in your Google account, then connect again.")
	}
	scopes := tok.Scopes
	if len(scopes) == 0 {
		// Google always reports the granted scopes; a server that does not
		// granted what was asked.
		scopes = slices.Clone(google.Scopes)
	}
	if !google.HasCalendarScope(scopes) {
		return app.GoogleCalendarConfig{}, app.Errorf(app.EVerificationFailed,
			"Google Calendar access was not granted: allow access to your calendar events when Google asks.")
	}
	email, err := s.google.EmailFromIDToken(tok.IDToken)
	if err != nil {
		return app.GoogleCalendarConfig{}, err
	}
	return app.GoogleCalendarConfig{RefreshToken: tok.RefreshToken, AccessToken: tok.AccessToken,
		Expiry: tok.Expiry, Email: email, Scopes: scopes}, nil
}

// revokeGrant revokes the org's stored authorization of an OAuth provider
// before it is deleted (the refresh token, which revokes the whole grant,
// or else the access token). It returns a note for the audit detail when
// the provider did not confirm it. A failed revocation does not stop the
// disconnect, nor does a stored row that can no longer be decrypted (there
// is nothing to revoke); any other failure to read the row does.
func (s *Service) revokeGrant(ctx context.Context, orgID string, provider app.Provider) (string, error) {
	cfg, err := s.creds.Get(ctx, orgID, provider)
	switch app.ErrorCode(err) {
	case "":
	case app.ENotConfigured:
		return "", nil
	default:
		return "", err
	}
	g, ok := cfg.(app.GoogleCalendarConfig)
	if !ok || !s.revoke(ctx, orgID, g.RefreshToken.Reveal(), g.AccessToken.Reveal()) {
		return " Google did not confirm the revocation; the access can also be removed in the Google account.", nil
	}
	return "", nil
}

// revoke revokes the refresh token (or, without one, the access token) and
// reports whether Google confirmed it; a failure is logged without the
// token. It runs even when ctx was cancelled meanwhile.
func (s *Service) revoke(ctx context.Context, orgID, refreshToken, accessToken string) bool {
	tok := refreshToken
	if tok == "" {
		tok = accessToken
	}
	if tok == "" || s.google == nil {
		return false
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.google.Timeout())
	defer cancel()
	if err := s.google.Revoke(rctx, tok); err != nil {
		s.log.WarnContext(ctx, "google token revocation failed", "org_id", orgID,
			"code", app.ErrorCode(err), "reason", app.ErrorMessage(err))
		return false
	}
	s.log.InfoContext(ctx, "google token revoked", "org_id", orgID)
	return true
}

func errGoogleNotSetUp() error {
	return app.Errorf(app.ENotConfigured, "Google Calendar is not set up on this server.")
}

func errNotAdmin(p app.Provider) error {
	return app.Errorf(app.EForbidden, "Only an admin of the organization can change its %s connection.", p.Title())
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
