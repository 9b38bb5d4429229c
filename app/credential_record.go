package app

import "time"

// CredentialRecord is one stored row of an org's credentials for one
// provider, as the database holds it: the config is still sealed by the
// keyring in Ciphertext. Only the credentials service opens it.
type CredentialRecord struct {
	OrgID      string
	Provider   Provider
	Ciphertext []byte
	// IsActive is false when the credentials are kept but switched off; the
	// platform then acts as if none were stored.
	IsActive bool
	// LastVerifiedAt is when the provider last accepted (or refused) the
	// credentials; nil when they were never checked.
	LastVerifiedAt *time.Time
	// VerificationError is the user-facing reason the last check failed; ""
	// when it passed or never ran.
	VerificationError string
	// VerificationCode is the stable reason of VerificationError (see
	// Error.Reason); "" for none.
	VerificationCode string
	// WebhookHMACOnly (Vapi rows only) says the org's webhooks are accepted
	// only with an HMAC signature of their body and time: the static
	// X-Vapi-Secret and Authorization: Bearer credentials are refused. It is
	// kept beside the ciphertext, not sealed in it.
	WebhookHMACOnly bool
	CreatedAt       time.Time
	UpdatedAt       time.Time
}
