package app

// Input limits of the provider credential forms. The integrations service
// enforces them; the dashboard's forms repeat them as HTML attributes so the
// browser refuses obviously bad input before sending. Keys are checked
// loosely (length, no whitespace, a known prefix where the provider
// documents one): the provider is the judge of a key.
const (
	MinKeyLength = 16
	MaxKeyLength = 200
	// MinResendKeyLength allows "re_" and a short key; real keys are longer.
	MinResendKeyLength = 10
	// Twilio Auth Tokens are 32 hex characters; any 16..128 characters
	// without whitespace are accepted and Twilio decides.
	MinTwilioTokenLength = 16
	MaxTwilioTokenLength = 128
	MaxEmailLength       = 254
	MaxVoiceIDLength     = 64
)
