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
	// LastVerifiedAt is when the provider last accepted the credentials;
	// nil when it never did.
	LastVerifiedAt *time.Time
	// LastCheckedAt is when the credentials were last checked with the
	// provider, whatever the outcome; nil when they never were.
	LastCheckedAt *time.Time
	// Limited says the provider accepted the credentials with a narrower
	// scope than full access; Warning says what that means in plain words
	// ("" when not limited). A failed check leaves both as they were.
	Limited bool
	Warning string
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
	// WebhookSecretRevealedAt (Vapi rows only) is when the current webhook
	// secret was shown to an admin, by a reveal or by the rotation that
	// made it; nil while it has not been. A secret is shown at most once.
	WebhookSecretRevealedAt *time.Time
	// WebhookSecretNew, on a save only, says the saved config holds a
	// webhook secret other than the stored one, so it has not been shown
	// yet (WebhookSecretRevealedAt is cleared); otherwise a save keeps it.
	WebhookSecretNew bool
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// CheckOutcome is the outcome of one check of stored credentials with their
// provider, as it is recorded: when it ran, the user-facing reason it
// failed and that reason's code ("" when it passed) and, for a check that
// passed, whether the credentials are limited and what that means.
type CheckOutcome struct {
	At          time.Time
	Error, Code string
	Limited     bool
	Warning     string
	// Of, when set, is the UpdatedAt of the credentials that were
	// checked: the outcome is recorded only while they are still the
	// stored ones (a check of credentials replaced meanwhile says nothing
	// about the new ones).
	Of time.Time
}

// CheckClaim names one stored connection that a background re-check
// claimed (see db.DB.ClaimChecks).
type CheckClaim struct {
	OrgID    string
	Provider Provider
}
