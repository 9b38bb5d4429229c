// Package attempts is the shared attempt limiter: it counts what an
// attacker would repeat (failed sign-ins, sign-ups, calls to providers) per
// subject (a client address, an e-mail, an org) in PostgreSQL, so that every
// instance on the database sees the same counts and n instances never give n
// times the limit.
//
// Windows. A count lives in fixed windows of its rule's length and keeps
// the previous window's count too; the number of attempts "in the last
// window" is estimated the usual sliding way: the current window's count
// plus the previous one's, weighted by how much of the previous window the
// sliding one still covers. So a burst at a window's edge does not get twice
// the limit, and nothing has to be stored per attempt.
//
// Cost. Counting an attempt under any number of keys is one statement (an
// upsert by primary key); taking attempts back after a success is one more.
// Expired counts are deleted by Sweep in bounded batches through an index,
// never by a scan; each instance runs it periodically (Run).
//
// Privacy. Subjects are never stored: the key of a count is an HMAC of the
// rule's kind and the subject under a key derived from a secret every
// instance shares, so the table holds no e-mail or address, and one cannot
// be found by hashing guesses without that secret.
//
// Clocks. Windows are measured by the instance's clock (Options.Now); the
// instances' clocks are expected to agree to within a second or so, which
// only shifts a window's edges by that much.
package attempts

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"byoc/app"
)

// Store keeps the counts (*db.DB implements it).
type Store interface {
	// CountAttempts counts one attempt under each key at now and returns
	// each key's counts afterwards.
	CountAttempts(ctx context.Context, now time.Time, keys []app.AttemptKey) ([]app.AttemptCount, error)
	// SettleAttempts takes one attempt back from each key in undo and
	// clears each key in clear.
	SettleAttempts(ctx context.Context, now time.Time, undo, clear []app.AttemptKey) error
	// SweepAttempts deletes at most limit counts that expired before now.
	SweepAttempts(ctx context.Context, now time.Time, limit int) (int, error)
}

// Rule is one limit: at most Limit attempts of Kind per subject within any
// Window-long span (estimated, see the package documentation). Kind is a
// short lowercase name (letters and underscores) unique to the rule.
type Rule struct {
	Kind   string
	Limit  int
	Window time.Duration
}

// For is the rule applied to one subject (an address, an e-mail, an org id).
func (r Rule) For(subject string) Key { return Key{Rule: r, Subject: subject} }

// Key is a rule applied to one subject.
type Key struct {
	Rule    Rule
	Subject string
}

// Verdict is what counting an attempt under one key found: whether the
// attempts within the window are now over the rule's limit, and, when they
// are, how long the client should wait before trying again.
type Verdict struct {
	Over       bool
	RetryAfter time.Duration
}

// Defaults of Options and of Run.
const (
	// SweepBatch is the most expired counts one delete removes.
	SweepBatch = 1000
	// maxSweepBatches bounds the deletes of one Sweep; what is left waits
	// for the next one.
	maxSweepBatches = 100
	// DefaultSweepInterval is how often Run sweeps.
	DefaultSweepInterval = 30 * time.Second
)

// Options tunes New. The zero value gives production settings.
type Options struct {
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger receives the sweeps' failures (nil: slog.Default()).
	Logger *slog.Logger
}

// Limiter counts attempts in a Store. It is safe for concurrent use.
type Limiter struct {
	store Store
	key   []byte
	now   func() time.Time
	log   *slog.Logger
}

// New returns a limiter over store whose keys are HMACs under a key derived
// from secret. Every instance sharing the store must be given the same
// secret (a new secret starts every count afresh); it must be at least 32
// bytes.
func New(store Store, secret []byte, opts Options) (*Limiter, error) {
	if len(secret) < 32 {
		return nil, errors.New("attempts: the secret must be at least 32 bytes")
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "byoc attempt limits hmac-sha256", 32)
	if err != nil {
		return nil, fmt.Errorf("attempts: derive key: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Limiter{store: store, key: key, now: opts.Now, log: opts.Logger}, nil
}

// Count counts one attempt under every key (keys of different rules) and
// returns a verdict per key, in the order of keys. Attempts that are over a
// limit count too, so a client that keeps trying stays over it. When the
// counts cannot be written, Count returns EUnavailable: what cannot be
// counted is refused.
func (l *Limiter) Count(ctx context.Context, keys ...Key) ([]Verdict, error) {
	now := l.now()
	counts, err := l.store.CountAttempts(ctx, now, l.attemptKeys(keys))
	if err != nil {
		return nil, unavailable(err)
	}
	byKind := make(map[string]app.AttemptCount, len(counts))
	for _, c := range counts {
		byKind[c.Kind] = c
	}
	out := make([]Verdict, len(keys))
	for i, k := range keys {
		c, ok := byKind[k.Rule.Kind]
		if !ok {
			return nil, unavailable(fmt.Errorf("attempts: no count returned for %s", k.Rule.Kind))
		}
		out[i] = verdict(k.Rule, c, now)
	}
	return out, nil
}

// Settle takes one attempt back from every key of undo (an attempt that
// turned out not to be one the limits are about, such as a successful
// sign-in) and clears the counts of every key of clear.
func (l *Limiter) Settle(ctx context.Context, undo, clear []Key) error {
	if err := l.store.SettleAttempts(ctx, l.now(), l.attemptKeys(undo), l.attemptKeys(clear)); err != nil {
		return unavailable(err)
	}
	return nil
}

// Sweep deletes the counts that no longer matter (two windows after their
// window opened), in batches of SweepBatch and at most maxSweepBatches of
// them, and returns how many it deleted.
func (l *Limiter) Sweep(ctx context.Context) (int, error) {
	total := 0
	for range maxSweepBatches {
		n, err := l.store.SweepAttempts(ctx, l.now(), SweepBatch)
		total += n
		if err != nil || n < SweepBatch {
			return total, err
		}
	}
	return total, nil
}

// Run sweeps every interval (0: DefaultSweepInterval) until ctx ends. A
// failed sweep is logged and tried again at the next interval.
func (l *Limiter) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultSweepInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := l.Sweep(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("attempt limits: sweeping expired counts failed", "err", err.Error())
		}
	}
}

// Hash is the stored key of subject under kind: the first 16 bytes of an
// HMAC-SHA-256 of both.
func (l *Limiter) Hash(kind, subject string) []byte {
	m := hmac.New(sha256.New, l.key)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(subject))
	return m.Sum(nil)[:16]
}

func (l *Limiter) attemptKeys(keys []Key) []app.AttemptKey {
	out := make([]app.AttemptKey, len(keys))
	for i, k := range keys {
		out[i] = app.AttemptKey{Kind: k.Rule.Kind, Hash: l.Hash(k.Rule.Kind, k.Subject), Window: k.Rule.Window}
	}
	return out
}

// verdict estimates the attempts within the sliding window ending at now
// and compares them with the rule's limit. An attempt over the limit is
// told to come back when the current fixed window ends (at least a second
// from now).
func verdict(r Rule, c app.AttemptCount, now time.Time) Verdict {
	into := min(max(now.Sub(c.WindowStart), 0), r.Window)
	estimate := float64(c.PreviousHits)*float64(r.Window-into)/float64(r.Window) + float64(c.Hits)
	if estimate <= float64(r.Limit) {
		return Verdict{}
	}
	retry := c.WindowStart.Add(r.Window).Sub(now)
	retry = time.Duration(math.Ceil(max(retry, time.Second).Seconds())) * time.Second
	return Verdict{Over: true, RetryAfter: retry}
}

func unavailable(err error) error {
	return &app.Error{Code: app.EUnavailable,
		Message: "This cannot be done right now. Please try again in a moment.", Cause: err}
}
