// Package alerts tells an org's admins when one of its connections breaks:
// each admin gets one e-mail naming the provider and the reason, through
// the platform's mailer, and does get it even when a send fails or the
// process stops.
//
// That it is once per break is decided by the credential store, which
// queues one notice per admin in the database in the transaction that
// records the break (see db.DB.RecordCheck): a decision is never taken
// without its notices. The Sender here delivers what is queued: any number
// of senders (one per instance) share one database, each claiming due
// notices with FOR UPDATE SKIP LOCKED, so two instances never send one
// notice at once. A send that fails and may succeed later (the mail service
// unreachable, timing out, failing or limiting) is retried with exponential
// backoff and jitter, until GiveUpAfter has passed since it was queued; a
// refusal (such as an address the mail service will not send to) is final.
// Either way the notice keeps why it was not sent.
//
// Delivery is at least once: a process that stops after the mail service
// accepted a notice and before the notice is marked sent leaves it
// claimed, and once the claim's lease is over another sender sends it
// again (once: that send is the one that is marked). Every send of a
// notice carries the same idempotency key, with which Resend delivers it
// once within 24 hours, so even that send is collapsed there.
//
// No message ever carries a credential: the reason is the user-facing
// message the dashboard shows.
package alerts

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"byoc/app"
	"byoc/app/mail"
	"byoc/app/paths"
)

// Queue holds the queued notices; *db.DB implements it.
type Queue interface {
	// ClaimMail claims at most limit notices due at now for lease.
	ClaimMail(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]app.QueuedMail, error)
	// SettleMail records what became of one claim of a notice; false when
	// the claim no longer holds it.
	SettleMail(ctx context.Context, id string, attempt int, s app.MailSettlement) (bool, error)
	// PurgeMail deletes at most limit notices settled before before.
	PurgeMail(ctx context.Context, before time.Time, limit int) (int64, error)
}

// Metrics counts what becomes of the queued notices; *metrics.Metrics
// implements it.
type Metrics interface {
	// QueuedMail counts one attempt at a queued notice by outcome (one of
	// Outcomes).
	QueuedMail(outcome string)
}

// Outcomes of one attempt at a queued notice, as Metrics counts them.
const (
	// OutcomeSent: the mailer took it (Resend accepted it, or the
	// development outbox kept it).
	OutcomeSent = "sent"
	// OutcomeRetried: it failed in a way that may pass later, and is due
	// again after a backoff.
	OutcomeRetried = "retried"
	// OutcomeFailed: it was refused, or failed for longer than
	// GiveUpAfter; it is not tried again.
	OutcomeFailed = "failed"
	// OutcomeDropped: this server sends no e-mail (production without
	// MAIL_*); the notice is closed at once, and the log says so.
	OutcomeDropped = "dropped"
)

// Outcomes lists every outcome, in a fixed order.
var Outcomes = []string{OutcomeSent, OutcomeRetried, OutcomeFailed, OutcomeDropped}

// Defaults of Options.
const (
	// DefaultBatch is how many notices are claimed and sent at a time.
	DefaultBatch = 8
	// DefaultPoll is the longest wait between two looks for due notices.
	DefaultPoll = 30 * time.Second
	// DefaultGiveUpAfter is how long a failing notice is tried: the time
	// Resend keeps an idempotency key.
	DefaultGiveUpAfter = 24 * time.Hour
	// DefaultFirstRetry is the wait after a first failure.
	DefaultFirstRetry = 30 * time.Second
	// DefaultMaxRetry is the longest wait between two attempts.
	DefaultMaxRetry = time.Hour
	// DefaultSendTimeout bounds one send, whatever the mailer's own limit.
	DefaultSendTimeout = time.Minute
	// DefaultKeepFor is how long a settled notice is kept.
	DefaultKeepFor = 30 * 24 * time.Hour
)

// purgeEvery is how often Run deletes old settled notices, and purgeBatch
// how many at most each time.
const (
	purgeEvery = time.Hour
	purgeBatch = 1000
)

// Options tunes New.
type Options struct {
	// PublicURL is the server's address; the message links the dashboard.
	PublicURL string
	// Batch is how many notices are claimed and sent at a time (default
	// DefaultBatch).
	Batch int
	// Poll is the longest wait between two looks for due notices (default
	// DefaultPoll); a break found on this instance wakes the sender at once.
	Poll time.Duration
	// GiveUpAfter is how long after it was queued a notice that keeps
	// failing is still tried (default DefaultGiveUpAfter, the time Resend
	// keeps an idempotency key).
	GiveUpAfter time.Duration
	// FirstRetry is the wait after a first failure; each further failure
	// doubles it, up to MaxRetry (defaults DefaultFirstRetry and
	// DefaultMaxRetry). Each wait is drawn at random between half of it
	// and all of it, so notices that failed together are not retried
	// together.
	FirstRetry, MaxRetry time.Duration
	// SendTimeout bounds one send (default DefaultSendTimeout). A claim is
	// held for twice as long, so that no other sender takes a notice
	// whose send is still under way.
	SendTimeout time.Duration
	// KeepFor is how long a sent or failed notice is kept before Run
	// deletes it (default DefaultKeepFor).
	KeepFor time.Duration
	// Now is the clock (default time.Now); Rand draws the jitter in [0, 1)
	// (default math/rand/v2).
	Now  func() time.Time
	Rand func() float64
	// Metrics counts the outcomes (nil: they are not counted).
	Metrics Metrics
	// Logger receives a line per notice (never a secret; nil discards).
	Logger *slog.Logger
}

// Sender delivers the queued notices through a mailer. It is safe for
// concurrent use, and any number of senders may share one database.
type Sender struct {
	queue  Queue
	mailer mail.Mailer
	opts   Options
	link   string
	log    *slog.Logger
	wake   chan struct{}
}

// New returns a Sender that claims from queue and sends through mailer.
func New(queue Queue, mailer mail.Mailer, opts Options) *Sender {
	if opts.Batch < 1 {
		opts.Batch = DefaultBatch
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultPoll
	}
	if opts.GiveUpAfter <= 0 {
		opts.GiveUpAfter = DefaultGiveUpAfter
	}
	if opts.FirstRetry <= 0 {
		opts.FirstRetry = DefaultFirstRetry
	}
	if opts.MaxRetry < opts.FirstRetry {
		opts.MaxRetry = max(DefaultMaxRetry, opts.FirstRetry)
	}
	if opts.SendTimeout <= 0 {
		opts.SendTimeout = DefaultSendTimeout
	}
	if opts.KeepFor <= 0 {
		opts.KeepFor = DefaultKeepFor
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	if opts.Metrics == nil {
		opts.Metrics = noMetrics{}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sender{queue: queue, mailer: mailer, opts: opts,
		link: strings.TrimRight(opts.PublicURL, "/") + paths.Dashboard,
		log:  log.With("component", "alerts"), wake: make(chan struct{}, 1)}
}

type noMetrics struct{}

func (noMetrics) QueuedMail(string) {}

// Lease is how long a claim holds a notice: twice the send's time limit.
func (s *Sender) Lease() time.Duration { return 2 * s.opts.SendTimeout }

// ConnectionBroke is told (credentials.BreakNotifier) that a break was
// recorded, with its notices queued in the same transaction; it only
// makes this instance's Run look for them now rather than at its next
// poll.
func (s *Sender) ConnectionBroke(ctx context.Context, orgID string, p app.Provider, _ string) {
	s.log.InfoContext(ctx, "break notice queued", "org_id", orgID, "provider", p)
	s.Wake()
}

// Wake makes Run look for due notices now; it never blocks.
func (s *Sender) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run delivers due notices until ctx ends: it looks for them every Poll
// and whenever woken, and while there are more than a batch it goes on at
// once with the next; every hour it deletes the notices settled more than
// KeepFor ago. It returns when ctx has ended and the sends under way are
// done and recorded.
func (s *Sender) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	var purged time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
		if _, err := s.RunOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("queued mail: claiming due notices failed", "code", app.ErrorCode(err), "err", err.Error())
		}
		if now := s.opts.Now(); ctx.Err() == nil && now.Sub(purged) >= purgeEvery {
			if _, err := s.Purge(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("queued mail: deleting old notices failed", "err", err.Error())
			}
			purged = now
		}
		t.Reset(s.opts.Poll)
	}
}

// Purge deletes the notices settled more than KeepFor ago, a batch at a
// time, and returns how many it deleted.
func (s *Sender) Purge(ctx context.Context) (int64, error) {
	before := s.opts.Now().Add(-s.opts.KeepFor)
	var total int64
	for {
		n, err := s.queue.PurgeMail(ctx, before, purgeBatch)
		total += n
		if err != nil || n < purgeBatch {
			return total, err
		}
	}
}

// RunOnce sends every notice that is due now, a batch at a time, and
// returns how many it attempted. It stops claiming at the first claim that
// fails, or when ctx ends; the sends of a batch under way are not cut short
// by ctx (each has SendTimeout) and are recorded before RunOnce returns, so
// a stopped sender holds no notice it has sent without saying so.
func (s *Sender) RunOnce(ctx context.Context) (int, error) {
	done := 0
	for ctx.Err() == nil {
		claims, err := s.queue.ClaimMail(ctx, s.opts.Now(), s.Lease(), s.opts.Batch)
		if err != nil {
			return done, err
		}
		var wg sync.WaitGroup
		for _, m := range claims {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.deliver(context.WithoutCancel(ctx), m)
			}()
		}
		wg.Wait()
		done += len(claims)
		if len(claims) < s.opts.Batch {
			break
		}
	}
	return done, ctx.Err()
}

// deliver sends one claimed notice and records the outcome.
func (s *Sender) deliver(ctx context.Context, m app.QueuedMail) {
	attrs := []any{"org_id", m.OrgID, "provider", m.Provider, "mail_id", m.ID, "attempt", m.Attempt}
	msg, err := s.render(m)
	if err != nil {
		s.settle(ctx, m, OutcomeFailed, app.MailSettlement{Status: app.MailFailed, At: s.opts.Now(), Error: app.ErrorMessage(err)}, attrs)
		return
	}
	if !s.mailer.Enabled() {
		s.log.WarnContext(ctx, "connection broke; no e-mail sent (this server sends none)", attrs...)
		s.settle(ctx, m, OutcomeDropped, app.MailSettlement{Status: app.MailFailed, At: s.opts.Now(),
			Error: app.ErrorMessage(mail.ErrNotConfigured())}, attrs)
		return
	}
	sctx, cancel := context.WithTimeout(ctx, s.opts.SendTimeout)
	err = s.mailer.Send(sctx, msg)
	cancel()
	now := s.opts.Now()
	switch {
	case err == nil:
		s.settle(ctx, m, OutcomeSent, app.MailSettlement{Status: app.MailSent, At: now}, attrs)
	case !Retryable(err):
		s.settle(ctx, m, OutcomeFailed, app.MailSettlement{Status: app.MailFailed, At: now, Error: app.ErrorMessage(err)},
			append(attrs, "code", app.ErrorCode(err)))
	default:
		next := now.Add(s.Backoff(m.Attempt))
		if next.After(m.CreatedAt.Add(s.opts.GiveUpAfter)) {
			why := "Gave up after " + s.opts.GiveUpAfter.String() + " of failed attempts: " + app.ErrorMessage(err)
			s.settle(ctx, m, OutcomeFailed, app.MailSettlement{Status: app.MailFailed, At: now, Error: why},
				append(attrs, "code", app.ErrorCode(err)))
			return
		}
		s.settle(ctx, m, OutcomeRetried, app.MailSettlement{Status: app.MailPending, At: now, RetryAt: next,
			Error: app.ErrorMessage(err)}, append(attrs, "code", app.ErrorCode(err), "retry_at", next))
	}
}

// settle records st for m, counts outcome and logs it. A claim that no
// longer holds m (its lease ran out and another sender took it) changes
// nothing and is logged.
func (s *Sender) settle(ctx context.Context, m app.QueuedMail, outcome string, st app.MailSettlement, attrs []any) {
	held, err := s.queue.SettleMail(ctx, m.ID, m.Attempt, st)
	switch {
	case err != nil:
		// The notice stays claimed: it is due again when the lease is
		// over (a sent one then goes out again under the same key).
		s.log.ErrorContext(ctx, "queued mail: recording the outcome failed", append(attrs, "outcome", outcome, "err", err.Error())...)
		return
	case !held:
		s.log.WarnContext(ctx, "queued mail: the claim had run out before its outcome was recorded", append(attrs, "outcome", outcome)...)
		return
	}
	s.opts.Metrics.QueuedMail(outcome)
	switch outcome {
	case OutcomeSent:
		s.log.InfoContext(ctx, "break notice sent", attrs...)
	case OutcomeRetried:
		s.log.WarnContext(ctx, "break notice not sent; will retry", append(attrs, "reason", st.Error)...)
	case OutcomeFailed:
		s.log.WarnContext(ctx, "break notice not sent; giving up", append(attrs, "reason", st.Error)...)
	}
}

// render builds the e-mail of a queued notice. A notice of a kind or
// provider this server does not know cannot be rendered (EValidation).
func (s *Sender) render(m app.QueuedMail) (mail.Message, error) {
	if m.Kind != app.MailKindConnectionBroke {
		return mail.Message{}, app.Errorf(app.EValidation, "A queued notice of an unknown kind cannot be sent.")
	}
	spec, err := app.Describe(m.Provider)
	if err != nil {
		return mail.Message{}, app.Errorf(app.EValidation, "A queued notice for an unknown provider cannot be sent.")
	}
	reason := m.Reason
	if strings.TrimSpace(reason) == "" {
		reason = spec.Title + " refused the stored credentials."
	}
	msg := mail.ConnectionBrokeMessage(m.Recipient, spec.Title, reason, s.link)
	msg.IdempotencyKey = IdempotencyKey(m)
	return msg, nil
}

// IdempotencyKey is the key every send of m carries: the same for each
// attempt, another for every notice.
func IdempotencyKey(m app.QueuedMail) string { return "byoc-" + m.Kind + "/" + m.ID }

// Retryable reports whether a send that failed with err may pass later:
// the mail service unreachable, timing out, limiting or failing (or a
// failure of BYOC's own). A refusal (EVerificationFailed), a server that
// sends no mail (EUnavailable) or a notice that cannot be rendered
// (EValidation) is final.
func Retryable(err error) bool {
	switch app.ErrorCode(err) {
	case app.EVerificationFailed, app.EUnavailable, app.EValidation:
		return false
	}
	return true
}

// Backoff is the wait after the attempt-th failed attempt (1 for the
// first): FirstRetry doubled per earlier failure, at most MaxRetry, drawn
// at random between half of that and all of it.
func (s *Sender) Backoff(attempt int) time.Duration {
	d := s.opts.FirstRetry
	for i := 1; i < attempt && d < s.opts.MaxRetry; i++ {
		d *= 2
	}
	d = min(d, s.opts.MaxRetry)
	return d/2 + time.Duration(s.opts.Rand()*float64(d/2))
}
