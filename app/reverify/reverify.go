// Package reverify checks every stored connection again with its provider
// in the background, once per interval, so that credentials revoked or
// expired at the provider are noticed before the org's next call needs
// them. The database decides which instance checks what: a scheduler
// claims due connections there (see ClaimChecks of package db), so any number of
// instances on one database check each connection once per interval, with
// no scheduler of their own to elect. Each check is the one an admin's
// Test connection makes, recorded, counted and audited alike
// (integrations.Service.Recheck); only the statuses' caches of that org
// are dropped, never its credentials, webhook secrets or mappings.
package reverify

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"byoc/app"
	"byoc/app/integrations"
)

// Claimer hands out the connections that are due, claiming them for an
// interval plus jitter; *db.DB implements it.
type Claimer interface {
	ClaimChecks(ctx context.Context, now time.Time, interval, jitter time.Duration, limit int) ([]app.CheckClaim, error)
}

// Checker re-checks one org's stored connection;
// *integrations.Service implements it.
type Checker interface {
	Recheck(ctx context.Context, orgID string, provider app.Provider) (integrations.VerifyResult, error)
}

// Defaults of Options.
const (
	// DefaultBatch is how many connections are checked at a time.
	DefaultBatch = 4
	// DefaultPoll is the longest wait between two looks for due
	// connections.
	DefaultPoll = time.Minute
	// JitterFraction is the share of the interval by which each claim's
	// next check is spread later at random, so that connections stored
	// together are not checked together for ever.
	JitterFraction = 0.1
)

// checkTimeout bounds one check, whatever the provider's own time limit.
const checkTimeout = 2 * time.Minute

// Options tunes New.
type Options struct {
	// Interval is how often each connection is checked; 0 or less turns
	// the scheduler off (Run returns at once).
	Interval time.Duration
	// Batch is how many connections are claimed and checked at a time
	// (default DefaultBatch).
	Batch int
	// Poll is the longest wait between two looks for due connections
	// (default: DefaultPoll, or the interval when that is shorter).
	Poll time.Duration
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Scheduler runs the re-checks. It is safe for concurrent use, and any
// number of schedulers may share one database.
type Scheduler struct {
	claims  Claimer
	checker Checker
	opts    Options
	log     *slog.Logger
}

// New returns a Scheduler that claims from claims and checks with checker.
func New(claims Claimer, checker Checker, opts Options) *Scheduler {
	if opts.Batch < 1 {
		opts.Batch = DefaultBatch
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultPoll
		if opts.Interval > 0 && opts.Interval < opts.Poll {
			opts.Poll = opts.Interval
		}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{claims: claims, checker: checker, opts: opts, log: log.With("component", "reverify")}
}

// Jitter is the most by which a claim's next check is put later than one
// interval from the claim.
func (s *Scheduler) Jitter() time.Duration {
	return time.Duration(float64(s.opts.Interval) * JitterFraction)
}

// Run checks due connections until ctx ends: it looks for them every Poll,
// and while there are more than a batch it goes on at once with the next.
// It returns at once when the interval is 0 (off).
func (s *Scheduler) Run(ctx context.Context) {
	if s.opts.Interval <= 0 {
		s.log.Info("re-verification is off")
		return
	}
	s.log.Info("re-verification is on", "interval", s.opts.Interval.String(), "batch", s.opts.Batch)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.RunOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("re-verification: claiming due connections failed", "code", app.ErrorCode(err), "err", err.Error())
		}
		t.Reset(s.opts.Poll)
	}
}

// RunOnce checks every connection that is due now, a batch at a time, and
// returns how many it checked (whatever the outcome). It stops claiming at
// the first claim that fails, or when ctx ends; the checks of a batch
// under way are not cut short by ctx (a shutdown is not the provider's
// failure: each has checkTimeout), and RunOnce returns when they are done.
func (s *Scheduler) RunOnce(ctx context.Context) (int, error) {
	if s.opts.Interval <= 0 {
		return 0, nil
	}
	checked := 0
	for ctx.Err() == nil {
		claims, err := s.claims.ClaimChecks(ctx, s.opts.Now(), s.opts.Interval, s.Jitter(), s.opts.Batch)
		if err != nil {
			return checked, err
		}
		var wg sync.WaitGroup
		for _, c := range claims {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkTimeout)
				defer cancel()
				s.check(cctx, c)
			}()
		}
		wg.Wait()
		checked += len(claims)
		if len(claims) < s.opts.Batch {
			break
		}
	}
	return checked, ctx.Err()
}

// check re-checks one claimed connection. Its outcome is recorded and
// audited by the checker; here it is only logged.
func (s *Scheduler) check(ctx context.Context, c app.CheckClaim) {
	_, err := s.checker.Recheck(ctx, c.OrgID, c.Provider)
	switch app.ErrorCode(err) {
	case "":
		s.log.Debug("re-verification passed", "org_id", c.OrgID, "provider", c.Provider)
	case app.EVerificationFailed:
		s.log.Info("re-verification failed", "org_id", c.OrgID, "provider", c.Provider, "reason", app.ErrorMessage(err))
	default:
		s.log.Info("re-verification could not check", "org_id", c.OrgID, "provider", c.Provider, "code", app.ErrorCode(err))
	}
}
