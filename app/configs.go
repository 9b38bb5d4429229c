package app

import "time"

// Config is the decrypted, typed credential config of one provider. Each
// provider has its own struct; secret fields are Secret so that printing or
// logging a config never leaks them.
type Config interface {
	// Provider names the provider this config belongs to.
	Provider() Provider
}

// ReconnectNeeded reports whether the provider no longer accepts the stored
// authorization, so the account must be connected again.
func (s Status) ReconnectNeeded() bool { return s.VerificationCode == ReasonReconnect }

// Status is what the dashboard and the status API show of one provider for
// one org. It never holds a secret: Details are already masked.
type Status struct {
	Provider  Provider
	Connected bool
	// LastVerified is the last check the provider passed; LastChecked the
	// last check of either outcome (nil: never).
	LastVerified *time.Time
	LastChecked  *time.Time
	// Limited is set when the provider accepted the credentials with a
	// narrower scope than full access; Warning says in plain words what
	// they cannot do.
	Limited           bool
	Warning           string
	VerificationError string
	// VerificationCode is the stable reason of VerificationError, such as
	// ReasonReconnect; "" for none or an ordinary failed check.
	VerificationCode string
	// NeedsAttention is set when the stored row exists but cannot be used:
	// verification failed, or it can no longer be decrypted.
	NeedsAttention bool
	// Details are masked, display-ready facts ("key": "••••abcd").
	Details map[string]string
	// WebhookHMACOnly is the stored row's CredentialRecord.WebhookHMACOnly
	// (Vapi only).
	WebhookHMACOnly bool
	// WebhookSecret describes the org's Vapi webhook secret (Vapi only,
	// when connected); never the secret itself.
	WebhookSecret *WebhookSecretState
	UpdatedAt     time.Time
}

// WebhookSecretState is what the dashboard and the status API show of an
// org's Vapi webhook secret.
type WebhookSecretState struct {
	// Own says the org has a secret of its own (otherwise the server's
	// shared VAPI_WEBHOOK_SECRET verifies its webhooks).
	Own bool
	// RevealedAt is when the current secret was shown (nil: not yet; it
	// can be revealed once).
	RevealedAt *time.Time
	// PreviousUntil is when the secret a rotation replaced stops being
	// accepted (nil: none is accepted any more, as of the status's read).
	PreviousUntil *time.Time
}
