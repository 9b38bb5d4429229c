// Package mail sends BYOC's own e-mail (invitations, password resets,
// alerts about broken connections): through Resend's API with the
// platform's key and sender address, never an org's credentials; in
// development without them, into an in-memory outbox that the development
// page /dev/outbox shows; and otherwise not at all, which the features that
// need mail tell their users.
package mail

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"byoc/app"
	"byoc/app/providers/resend"
)

// Message is one e-mail: one recipient, a subject and a plain-text body.
type Message struct {
	To      string
	Subject string
	Text    string
	// At is when it was handed over for sending.
	At time.Time
	// IdempotencyKey, when set, names the message for the mail service, so
	// that sending it again (a retry after an answer that was lost) does
	// not deliver it twice; Resend honours it for 24 hours.
	IdempotencyKey string
}

// Mailer sends messages. Send returns EUnavailable when the server cannot
// send e-mail at all (Enabled is false), and the sender's refusal
// (EVerificationFailed) or failure (EProviderUnavailable) otherwise.
type Mailer interface {
	Send(ctx context.Context, m Message) error
	// Enabled reports whether messages go anywhere.
	Enabled() bool
}

// Options chooses and configures a Mailer (see New).
type Options struct {
	// APIKey and From are the platform's Resend key and sender address;
	// both set, mail goes through Resend.
	APIKey app.Secret
	From   string
	// Client sends to Resend (its base URL comes from RESEND_BASE_URL).
	Client *resend.Client
	// Outbox allows the development outbox when no key is configured.
	Outbox bool
	Logger *slog.Logger
	Now    func() time.Time
}

// New returns the Mailer the options call for: Resend with the platform's
// key and sender, else (development) an Outbox, else one that sends
// nothing and says so.
func New(o Options) Mailer {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch {
	case !o.APIKey.IsZero() && o.From != "" && o.Client != nil:
		return &viaResend{key: o.APIKey, from: o.From, client: o.Client, log: o.Logger, now: o.Now}
	case o.Outbox:
		return NewOutbox(o.Now)
	}
	return disabled{}
}

// viaResend sends through Resend with the platform's key.
type viaResend struct {
	key    app.Secret
	from   string
	client *resend.Client
	log    *slog.Logger
	now    func() time.Time
}

func (r *viaResend) Enabled() bool { return true }

func (r *viaResend) Send(ctx context.Context, m Message) error {
	id, err := r.client.Send(ctx, r.key, resend.Email{From: r.from, To: m.To, Subject: m.Subject, Text: m.Text,
		IdempotencyKey: m.IdempotencyKey})
	if err != nil {
		r.log.Warn("platform mail not sent", "provider", "resend", "subject", m.Subject, "err", app.ErrorMessage(err))
		return err
	}
	r.log.Info("platform mail sent", "provider", "resend", "subject", m.Subject, "id", id)
	return nil
}

// disabled is the Mailer of a server that cannot send e-mail.
type disabled struct{}

func (disabled) Enabled() bool { return false }

func (disabled) Send(context.Context, Message) error { return ErrNotConfigured() }

// ErrNotConfigured is the EUnavailable error of a server without mail.
func ErrNotConfigured() error {
	return app.Errorf(app.EUnavailable, "This server is not set up to send e-mail.")
}

// OutboxSize is how many messages an Outbox keeps.
const OutboxSize = 50

// Outbox keeps the last OutboxSize messages in memory instead of sending
// them, for development. It is safe for concurrent use.
type Outbox struct {
	mu   sync.Mutex
	msgs []Message
	now  func() time.Time
}

// NewOutbox returns an empty outbox (now nil: time.Now).
func NewOutbox(now func() time.Time) *Outbox {
	if now == nil {
		now = time.Now
	}
	return &Outbox{now: now}
}

func (o *Outbox) Enabled() bool { return true }

// Send keeps m, dropping the oldest message beyond OutboxSize.
func (o *Outbox) Send(_ context.Context, m Message) error {
	m.At = o.now()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.msgs = append(o.msgs, m)
	if len(o.msgs) > OutboxSize {
		o.msgs = append([]Message(nil), o.msgs[len(o.msgs)-OutboxSize:]...)
	}
	return nil
}

// Messages returns the kept messages, newest first.
func (o *Outbox) Messages() []Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]Message, len(o.msgs))
	for i, m := range o.msgs {
		out[len(o.msgs)-1-i] = m
	}
	return out
}
