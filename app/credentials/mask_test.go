package credentials_test

import (
	"testing"

	"byoc/app"
)

// The details a status shows are its provider's masked fields.
func TestMaskedDetails(t *testing.T) {
	tests := []struct {
		name string
		cfg  app.Config
		want map[string]string
	}{
		{"vapi", app.VapiConfig{APIKey: app.NewSecret("sk-live-abcdef1234"), WebhookSecret: app.NewSecret("short"), Region: app.VapiEU},
			map[string]string{"apiKey": "••••1234", "webhookSecret": "set", "region": "eu"}},
		{"vapi webhook secret shows no characters", app.VapiConfig{APIKey: app.NewSecret("sk-live-abcdef1234"),
			WebhookSecret: app.NewSecret("whsec-0123456789abcdefWXYZ"), Region: app.VapiUS},
			map[string]string{"apiKey": "••••1234", "webhookSecret": "set", "region": "us"}},
		{"vapi without a webhook secret", app.VapiConfig{APIKey: app.NewSecret("sk-live-abcdef1234"), Region: app.VapiUS},
			map[string]string{"apiKey": "••••1234", "region": "us"}},
		{"twilio", app.TwilioConfig{AccountSID: "AC0123456789abcdef0123456789ab1234", AuthToken: app.NewSecret("tok-0123456789-9876"),
			PhoneNumber: "+12025551234", WhatsAppNumber: "+4915112345678"},
			map[string]string{"accountSid": "AC••••1234", "authToken": "••••9876", "phoneNumber": "+1202•••1234", "whatsappNumber": "+4915•••5678"}},
		{"twilio short values", app.TwilioConfig{AccountSID: "AC12", PhoneNumber: "+1555123"},
			map[string]string{"accountSid": "••••", "phoneNumber": "•••5123"}},
		{"google", app.GoogleCalendarConfig{RefreshToken: app.NewSecret("1//refresh-token"), Email: "owner@example.com"},
			map[string]string{"email": "owner@example.com"}},
		{"resend", app.ResendConfig{APIKey: app.NewSecret("re_abcdefgh5678"), FromEmail: "hi@example.com"},
			map[string]string{"apiKey": "••••5678", "fromEmail": "hi@example.com"}},
		{"elevenlabs", app.ElevenLabsConfig{APIKey: app.NewSecret("xi-abcdefgh9999"), VoiceID: "voice-1"},
			map[string]string{"apiKey": "••••9999", "voiceId": "voice-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := app.MustDescribe(tt.cfg.Provider()).Masked(tt.cfg)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s: got %q, want %q", k, got[k], v)
				}
			}
		})
	}
}
