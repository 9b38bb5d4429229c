package app

import "time"

// Config is the decrypted, typed credential config of one provider. Each
// provider has its own struct; secret fields are Secret so that printing or
// logging a config never leaks them.
type Config interface {
	// Provider names the provider this config belongs to.
	Provider() Provider
}

// VapiRegion selects Vapi's US or EU API. A key works only in its own region.
type VapiRegion string

// Vapi regions.
const (
	VapiUS VapiRegion = "us"
	VapiEU VapiRegion = "eu"
)

// VapiConfig is an org's Vapi account: its private API key, the optional
// secret Vapi sends with webhooks, and the region the key belongs to.
type VapiConfig struct {
	APIKey        Secret
	WebhookSecret Secret
	Region        VapiRegion
}

// TwilioConfig is an org's Twilio account and the numbers it sends from (E.164).
type TwilioConfig struct {
	AccountSID     string
	AuthToken      Secret
	PhoneNumber    string
	WhatsAppNumber string
}

// GoogleCalendarConfig is an org's Google OAuth grant for its calendar.
type GoogleCalendarConfig struct {
	RefreshToken Secret
	AccessToken  Secret
	Expiry       time.Time
	Email        string
	Scopes       []string
}

// ResendConfig is an org's Resend API key and default sender.
type ResendConfig struct {
	APIKey    Secret
	FromEmail string
}

// ElevenLabsConfig is an org's ElevenLabs API key and default voice.
type ElevenLabsConfig struct {
	APIKey  Secret
	VoiceID string
}

// Provider implements Config.
func (VapiConfig) Provider() Provider { return Vapi }

// Provider implements Config.
func (TwilioConfig) Provider() Provider { return Twilio }

// Provider implements Config.
func (GoogleCalendarConfig) Provider() Provider { return GoogleCalendar }

// Provider implements Config.
func (ResendConfig) Provider() Provider { return Resend }

// Provider implements Config.
func (ElevenLabsConfig) Provider() Provider { return ElevenLabs }

// ReconnectNeeded reports whether the provider no longer accepts the stored
// authorization, so the account must be connected again.
func (s Status) ReconnectNeeded() bool { return s.VerificationCode == ReasonReconnect }

// Status is what the dashboard and the status API show of one provider for
// one org. It never holds a secret: Details are already masked.
type Status struct {
	Provider          Provider
	Connected         bool
	LastVerified      *time.Time
	VerificationError string
	// VerificationCode is the stable reason of VerificationError, such as
	// ReasonReconnect; "" for none or an ordinary failed check.
	VerificationCode string
	// NeedsAttention is set when the stored row exists but cannot be used:
	// verification failed, or it can no longer be decrypted.
	NeedsAttention bool
	// Details are masked, display-ready facts ("key": "••••abcd").
	Details   map[string]string
	UpdatedAt time.Time
}
