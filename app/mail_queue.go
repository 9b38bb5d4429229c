package app

import "time"

// MailKindConnectionBroke is the kind of a queued notice that an org's
// connection to a provider broke (the one kind there is).
const MailKindConnectionBroke = "connection_broke"

// QueuedMail is one message of the platform's own e-mail waiting in the
// database to be delivered, as a sender claimed it: what renders it (org,
// provider, the reason in words, the recipient), never a credential.
// Attempt is the number of this claim (1 for the first); it fences the
// claim, so a sender that held the row too long cannot settle it over
// another's.
type QueuedMail struct {
	ID        string
	OrgID     string
	Kind      string
	Provider  Provider
	Reason    string
	Recipient string
	Attempt   int
	CreatedAt time.Time
}

// Settled states of a queued message (see MailSettlement).
const (
	MailSent    = "sent"
	MailFailed  = "failed"
	MailPending = "pending"
)

// MailSettlement is what became of one attempt at a queued message: sent,
// failed for good (Error says
// why), or pending again until RetryAt (Error says what failed).
type MailSettlement struct {
	Status  string
	At      time.Time
	RetryAt time.Time
	Error   string
}
