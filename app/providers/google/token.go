package google

import (
	"context"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"byoc/app"
)

// expiryMargin is how long before its stored expiry an access token is
// refreshed, so that it does not expire on the way to Google.
const expiryMargin = time.Minute

// refreshLockName names the cross-instance lock of an org's refresh.
const refreshLockName = "google-token-refresh"

// Token returns a usable access token for the org's calendar. A stored token
// that is still valid (for more than a minute) is returned as is; otherwise
// it is refreshed with the stored refresh token, and the new token is
// persisted (encrypted, through the credential service, marked verified
// now) before it is returned. At most one refresh per org is in flight in
// this process (and across instances when the service has a Locker);
// concurrent callers wait for it and get its result.
//
// When Google refuses the refresh with invalid_grant (access revoked, the
// token expired after six months unused or seven days in a "Testing" app,
// too many tokens issued) the refusal is recorded as the connection's
// verification error, so the card says "Reconnect needed: ...", and
// EVerificationFailed is returned. Other errors: ENotConfigured (nothing
// stored, or no Google client on the server), EProviderUnavailable,
// EUnavailable and EInternal.
func (s *Service) Token(ctx context.Context, orgID string) (*oauth2.Token, error) {
	return s.token(ctx, orgID, "")
}

// token is Token that also refreshes when the stored access token is
// rejected (Google answered 401 to it).
func (s *Service) token(ctx context.Context, orgID, rejected string) (*oauth2.Token, error) {
	if !s.oauth.Configured() {
		return nil, errNotSetUp()
	}
	cfg, err := s.creds.GoogleCalendar(ctx, orgID)
	if err != nil {
		return nil, err
	}
	if s.usable(cfg, rejected) {
		return tokenOf(cfg), nil
	}
	release, err := s.locks.lock(ctx, orgID)
	if err != nil {
		return nil, &app.Error{Code: app.EProviderUnavailable, Cause: err,
			Message: "Google Calendar could not be reached (timed out). Try again."}
	}
	defer release()

	var out *oauth2.Token
	refresh := func(ctx context.Context) error {
		// Another caller may have refreshed while this one waited.
		cfg, err := s.creds.GoogleCalendar(ctx, orgID)
		if err != nil {
			return err
		}
		if s.usable(cfg, rejected) {
			out = tokenOf(cfg)
			return nil
		}
		out, err = s.refresh(ctx, orgID, cfg)
		return err
	}
	if s.locker != nil {
		err = s.locker.WithOrgLock(ctx, orgID, refreshLockName, refresh)
	} else {
		err = refresh(ctx)
	}
	if err != nil {
		return nil, app.AsError(err)
	}
	return out, nil
}

// usable reports whether cfg's access token can be used as it is.
func (s *Service) usable(cfg app.GoogleCalendarConfig, rejected string) bool {
	at := cfg.AccessToken.Reveal()
	if at == "" || at == rejected {
		return false
	}
	return cfg.Expiry.IsZero() || s.now().Add(expiryMargin).Before(cfg.Expiry)
}

// refresh gets a new access token for the org and persists it.
func (s *Service) refresh(ctx context.Context, orgID string, cfg app.GoogleCalendarConfig) (*oauth2.Token, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	if cfg.RefreshToken.IsZero() {
		err := app.Errorf(app.EVerificationFailed,
			"Reconnect needed: the stored Google authorization has no refresh token. Connect Google Calendar again.")
		s.record(ctx, orgID, now, err)
		return nil, err
	}
	tok, err := s.oauth.refresh(ctx, cfg.RefreshToken.Reveal())
	if err != nil {
		if app.ErrorCode(err) == app.EVerificationFailed {
			s.log.WarnContext(ctx, "google refused the stored authorization", "org_id", orgID, "reason", app.ErrorMessage(err))
			s.record(ctx, orgID, now, err)
		} else {
			s.log.WarnContext(ctx, "google token refresh failed", "org_id", orgID, "code", app.ErrorCode(err),
				"reason", app.ErrorMessage(err))
		}
		return nil, err
	}
	next := cfg
	next.AccessToken = app.NewSecret(tok.AccessToken)
	next.Expiry = expiryOf(tok, now)
	if tok.RefreshToken != "" {
		next.RefreshToken = app.NewSecret(tok.RefreshToken)
	}
	if scopes := scopesOf(tok); len(scopes) > 0 {
		next.Scopes = scopes
	}
	// A refresh Google granted proves the stored authorization works: the
	// connection counts as verified now (and a past error is cleared).
	if err := s.creds.Save(ctx, orgID, next, now); err != nil {
		// The token works; the next caller refreshes again.
		s.log.ErrorContext(ctx, "persisting the refreshed google token failed", "org_id", orgID,
			"code", app.ErrorCode(err), "err", err)
	} else {
		s.log.InfoContext(ctx, "google access token refreshed", "org_id", orgID, "expiry", next.Expiry)
	}
	return tokenOf(next), nil
}

func tokenOf(cfg app.GoogleCalendarConfig) *oauth2.Token {
	return &oauth2.Token{
		AccessToken:  cfg.AccessToken.Reveal(),
		TokenType:    "Bearer",
		RefreshToken: cfg.RefreshToken.Reveal(),
		Expiry:       cfg.Expiry,
	}
}

// orgLocks is one mutex per org that waits with a context. An org's entry
// lives only while someone holds or waits for it.
type orgLocks struct {
	mu sync.Mutex
	m  map[string]*orgLock
}

type orgLock struct {
	ch   chan struct{}
	refs int
}

func newOrgLocks() *orgLocks { return &orgLocks{m: map[string]*orgLock{}} }

// lock waits for the org's lock and returns its release, or ctx's error
// when ctx ends first.
func (l *orgLocks) lock(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	e := l.m[key]
	if e == nil {
		e = &orgLock{ch: make(chan struct{}, 1)}
		l.m[key] = e
	}
	e.refs++
	l.mu.Unlock()
	select {
	case e.ch <- struct{}{}:
		return func() {
			<-e.ch
			l.unref(key, e)
		}, nil
	case <-ctx.Done():
		l.unref(key, e)
		return nil, ctx.Err()
	}
}

func (l *orgLocks) unref(key string, e *orgLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.refs--; e.refs == 0 {
		delete(l.m, key)
	}
}
