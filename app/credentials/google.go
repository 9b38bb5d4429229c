package credentials

import (
	"context"
	"fmt"
	"sync"
	"time"

	"byoc/app"
)

// TokenRefresher asks Google for a new access token with a refresh token;
// *google.OAuth implements it. Configured reports whether the server has a
// Google OAuth client at all.
type TokenRefresher interface {
	Configured() bool
	Refresh(ctx context.Context, refreshToken string, now time.Time) (app.OAuthToken, error)
}

// OrgLocker runs fn while no other instance runs work of the same name for
// the same org; *db.DB implements it.
type OrgLocker interface {
	WithOrgLock(ctx context.Context, orgID, name string, fn func(context.Context) error) error
}

// expiryMargin is how long before its stored expiry an access token is
// refreshed, so that it does not expire on the way to Google.
const expiryMargin = time.Minute

// refreshLockName names the cross-instance lock of an org's refresh.
const refreshLockName = "google-token-refresh"

// GoogleAccessToken returns a usable access token for the org's Google
// Calendar. A stored token that is still valid (for more than a minute) and
// is not rejected (the token Google just answered 401 to, or "") is returned
// as is; otherwise it is refreshed with the stored refresh token, and the
// new grant is saved (marked verified now, a past error cleared) before it
// is returned. At most one refresh per org is in flight in this process, and
// across instances with Options.Locker; callers that waited get its result.
//
// When Google refuses the refresh (invalid_grant: access revoked, the token
// expired after six months unused, ...) the refusal is recorded as the
// connection's verification error with app.ReasonReconnect, and
// EVerificationFailed is returned. Other errors: ENotConfigured (nothing
// stored, or no Google client on the server), EProviderUnavailable,
// EUnavailable and EInternal.
func (s *Service) GoogleAccessToken(ctx context.Context, orgID, rejected string) (string, error) {
	if s.google == nil || !s.google.Configured() {
		return "", app.Errorf(app.ENotConfigured, "Google Calendar is not set up on this server.")
	}
	cfg, err := s.GoogleCalendar(ctx, orgID)
	if err != nil {
		return "", err
	}
	if s.usable(cfg, rejected) {
		return cfg.AccessToken.Reveal(), nil
	}
	release, err := s.refreshing.lock(ctx, orgID)
	if err != nil {
		return "", &app.Error{Code: app.EProviderUnavailable, Cause: err,
			Message: "Google Calendar could not be reached (timed out). Try again."}
	}
	defer release()

	var token string
	refresh := func(ctx context.Context) error {
		// Another caller, here or on another instance, may have refreshed
		// while this one waited: read what is stored, not what is cached.
		c, err := s.get(ctx, orgID, app.GoogleCalendar, false)
		if err != nil {
			return err
		}
		cfg, ok := c.(app.GoogleCalendarConfig)
		if !ok {
			return app.Internal(fmt.Errorf("credentials: google config has type %T", c))
		}
		if s.usable(cfg, rejected) {
			token = cfg.AccessToken.Reveal()
			return nil
		}
		token, err = s.refreshGoogle(ctx, orgID, cfg)
		return err
	}
	if s.locker != nil {
		err = s.locker.WithOrgLock(ctx, orgID, refreshLockName, refresh)
	} else {
		err = refresh(ctx)
	}
	if err != nil {
		return "", app.AsError(err)
	}
	return token, nil
}

// usable reports whether cfg's access token can be used as it is.
func (s *Service) usable(cfg app.GoogleCalendarConfig, rejected string) bool {
	at := cfg.AccessToken.Reveal()
	if at == "" || at == rejected {
		return false
	}
	return cfg.Expiry.IsZero() || s.now().Add(expiryMargin).Before(cfg.Expiry)
}

// refreshOutcome is how Metrics counts a refresh that ended with err.
func refreshOutcome(err error) string {
	switch app.ErrorCode(err) {
	case "":
		return RefreshOK
	case app.EVerificationFailed:
		return RefreshRefused
	case app.EProviderUnavailable:
		return RefreshUnavailable
	}
	return RefreshError
}

// refreshGoogle gets a new access token for the org and saves it. Each
// call is one refresh for Metrics.
func (s *Service) refreshGoogle(ctx context.Context, orgID string, cfg app.GoogleCalendarConfig) (string, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	if cfg.RefreshToken.IsZero() {
		err := &app.Error{Code: app.EVerificationFailed, Reason: app.ReasonReconnect,
			Message: "The stored Google authorization has no refresh token. Connect Google Calendar again."}
		s.metrics.GoogleRefresh(RefreshRefused)
		s.GoogleRefused(ctx, orgID, err)
		return "", err
	}
	tok, err := s.google.Refresh(ctx, cfg.RefreshToken.Reveal(), now)
	s.metrics.GoogleRefresh(refreshOutcome(err))
	if err != nil {
		if app.ErrorCode(err) == app.EVerificationFailed {
			s.log.WarnContext(ctx, "google refused the stored authorization", "org_id", orgID, "reason", app.ErrorMessage(err))
			s.GoogleRefused(ctx, orgID, err)
		} else {
			s.log.WarnContext(ctx, "google token refresh failed", "org_id", orgID, "code", app.ErrorCode(err),
				"reason", app.ErrorMessage(err))
		}
		return "", err
	}
	next := cfg
	next.AccessToken = tok.AccessToken
	next.Expiry = tok.Expiry
	if !tok.RefreshToken.IsZero() {
		next.RefreshToken = tok.RefreshToken
	}
	if len(tok.Scopes) > 0 {
		next.Scopes = tok.Scopes
	}
	// A refresh Google granted proves the stored authorization works: the
	// connection counts as verified now (and a past error is cleared).
	if _, err := s.Save(ctx, app.Connection{OrgID: orgID, Config: next, VerifiedAt: now}); err != nil {
		// The token works; the next caller refreshes again.
		s.log.ErrorContext(ctx, "persisting the refreshed google token failed", "org_id", orgID,
			"code", app.ErrorCode(err), "err", err)
	} else {
		s.log.InfoContext(ctx, "google access token refreshed", "org_id", orgID, "expiry", next.Expiry)
	}
	return next.AccessToken.Reveal(), nil
}

// GoogleRefused records a refusal Google gave while the org's grant was in
// use (err, an EVerificationFailed), so the card shows it. A failure to
// record is logged: the refusal itself is what the caller reports.
func (s *Service) GoogleRefused(ctx context.Context, orgID string, err error) {
	at := s.now().UTC().Truncate(time.Microsecond)
	if _, rerr := s.RecordVerification(ctx, orgID, app.GoogleCalendar, at, err); rerr != nil {
		s.log.WarnContext(ctx, "recording the google refusal failed", "org_id", orgID, "code", app.ErrorCode(rerr))
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
