package app_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"byoc/app"
)

// TestSpecConfigChecksEachField runs every rule of every key-based
// provider's fields: the message a field gets, or the value it becomes.
func TestSpecConfigChecksEachField(t *testing.T) {
	key := "sk_" + strings.Repeat("a", 30)
	tests := []struct {
		name     string
		provider app.Provider
		in       app.Values
		field    string
		wantMsg  string // "" means the field is accepted
		wantVal  string // the accepted value, when wantMsg is ""
	}{
		{"vapi key missing", app.Vapi, app.Values{}, "apiKey", "Enter your Vapi private API key.", ""},
		{"vapi key with spaces", app.Vapi, app.Values{"apiKey": "abc def ghi jkl mno"}, "apiKey",
			"Remove the spaces: paste the value exactly as the provider shows it.", ""},
		{"vapi key too short", app.Vapi, app.Values{"apiKey": "short"}, "apiKey",
			"This is too short to be valid: paste the whole value.", ""},
		{"vapi key too long", app.Vapi, app.Values{"apiKey": strings.Repeat("k", app.MaxKeyLength+1)}, "apiKey",
			"This is too long to be valid: paste only the value.", ""},
		{"vapi key trimmed", app.Vapi, app.Values{"apiKey": "  " + key + "\n"}, "apiKey", "", key},
		{"vapi webhook secret optional", app.Vapi, app.Values{"apiKey": key}, "webhookSecret", "", ""},
		{"vapi webhook secret too short", app.Vapi, app.Values{"apiKey": key, "webhookSecret": "x"}, "webhookSecret",
			"This is too short to be valid: paste the whole value.", ""},
		{"vapi region defaults to us", app.Vapi, app.Values{"apiKey": key}, "region", "", "us"},
		{"vapi region case-insensitive", app.Vapi, app.Values{"apiKey": key, "region": " EU "}, "region", "", "eu"},
		{"vapi region unknown", app.Vapi, app.Values{"apiKey": key, "region": "ap"}, "region",
			`Choose the region of your Vapi organization: "us" or "eu".`, ""},
		{"twilio sid missing", app.Twilio, app.Values{}, "accountSid", "Enter your Twilio Account SID.", ""},
		{"twilio sid lower-case hex", app.Twilio, app.Values{"accountSid": "AC0123456789abcdef0123456789abcdef"}, "accountSid",
			"", "AC0123456789abcdef0123456789abcdef"},
		{"twilio sid upper-case hex", app.Twilio, app.Values{"accountSid": "AC0123456789ABCDEF0123456789ABCDEF"}, "accountSid",
			"", "AC0123456789ABCDEF0123456789ABCDEF"},
		{"twilio API key SID", app.Twilio, app.Values{"accountSid": "SK0123456789abcdef0123456789abcdef"}, "accountSid",
			"An Account SID is AC followed by 32 hexadecimal characters (not an API key SID, which starts with SK).", ""},
		{"twilio sid lower-case prefix", app.Twilio, app.Values{"accountSid": "ac0123456789abcdef0123456789abcdef"}, "accountSid",
			"An Account SID is AC followed by 32 hexadecimal characters (not an API key SID, which starts with SK).", ""},
		{"twilio sid 31 digits", app.Twilio, app.Values{"accountSid": "AC0123456789abcdef0123456789abcde"}, "accountSid",
			"An Account SID is AC followed by 32 hexadecimal characters (not an API key SID, which starts with SK).", ""},
		{"twilio sid 33 digits", app.Twilio, app.Values{"accountSid": "AC0123456789abcdef0123456789abcdef0"}, "accountSid",
			"An Account SID is AC followed by 32 hexadecimal characters (not an API key SID, which starts with SK).", ""},
		{"twilio sid not hex", app.Twilio, app.Values{"accountSid": "AC0123456789abcdef0123456789abcdeg"}, "accountSid",
			"An Account SID is AC followed by 32 hexadecimal characters (not an API key SID, which starts with SK).", ""},
		{"twilio sid with inner newline", app.Twilio, app.Values{"accountSid": "AC0123456789abcdef\n0123456789abcdef"}, "accountSid",
			"An Account SID is AC followed by 32 hexadecimal characters (not an API key SID, which starts with SK).", ""},
		{"twilio token missing", app.Twilio, app.Values{}, "authToken", "Enter the account's Auth Token.", ""},
		{"twilio token with spaces", app.Twilio, app.Values{"authToken": "0123456789 abcdef0123"}, "authToken",
			"An Auth Token is 32 characters without spaces; copy it from the Twilio Console.", ""},
		{"twilio token too long", app.Twilio, app.Values{"authToken": strings.Repeat("f", app.MaxTwilioTokenLength+1)}, "authToken",
			"An Auth Token is 32 characters without spaces; copy it from the Twilio Console.", ""},
		{"twilio phone missing", app.Twilio, app.Values{}, "phoneNumber", "Enter the Twilio number to send SMS from.", ""},
		{"twilio phone national", app.Twilio, app.Values{"phoneNumber": "(202) 555-0142"}, "phoneNumber", "", "+12025550142"},
		{"twilio phone invalid", app.Twilio, app.Values{"phoneNumber": "12"}, "phoneNumber",
			"Enter a valid phone number in international format, such as +12025550123.", ""},
		{"twilio whatsapp prefix dropped", app.Twilio, app.Values{"whatsappNumber": "whatsapp:+14155238886"}, "whatsappNumber", "", "+14155238886"},
		{"twilio whatsapp optional", app.Twilio, app.Values{}, "whatsappNumber", "", ""},
		{"resend key prefix", app.Resend, app.Values{"apiKey": "sk_0123456789abc"}, "apiKey", `A Resend API key starts with "re_".`, ""},
		{"resend key too short first", app.Resend, app.Values{"apiKey": "re_1"}, "apiKey",
			"This is too short to be valid: paste the whole value.", ""},
		{"resend key accepted", app.Resend, app.Values{"apiKey": "re_0123456789"}, "apiKey", "", "re_0123456789"},
		{"resend sender with display name", app.Resend, app.Values{"fromEmail": "Clinic <hello@example.com>"}, "fromEmail",
			"Enter a sender address such as hello@example.com.", ""},
		{"resend sender undotted domain", app.Resend, app.Values{"fromEmail": "hello@localhost"}, "fromEmail",
			"Enter a sender address such as hello@example.com.", ""},
		{"resend sender accepted", app.Resend, app.Values{"fromEmail": " hello@example.com "}, "fromEmail", "", "hello@example.com"},
		{"elevenlabs voice id not alphanumeric", app.ElevenLabs, app.Values{"voiceId": "21m00-Tcm4"}, "voiceId",
			"A voice ID has only letters and digits, such as 21m00Tcm4TlvDq8ikWAM.", ""},
		{"elevenlabs voice id too long", app.ElevenLabs, app.Values{"voiceId": strings.Repeat("a", app.MaxVoiceIDLength+1)}, "voiceId",
			"A voice ID has only letters and digits, such as 21m00Tcm4TlvDq8ikWAM.", ""},
		{"elevenlabs voice id accepted", app.ElevenLabs, app.Values{"voiceId": "21m00Tcm4TlvDq8ikWAM"}, "voiceId", "", "21m00Tcm4TlvDq8ikWAM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := app.MustDescribe(tt.provider)
			cfg, err := spec.Config(tt.in, "US")
			fields := app.ErrorFields(err)
			if tt.wantMsg != "" {
				if got := fields[tt.field]; got != tt.wantMsg {
					t.Fatalf("message of %s = %q, want %q (all: %v)", tt.field, got, tt.wantMsg, fields)
				}
				if app.ErrorCode(err) != app.EValidation {
					t.Fatalf("code %q, want %q", app.ErrorCode(err), app.EValidation)
				}
				return
			}
			if msg, bad := fields[tt.field]; bad {
				t.Fatalf("%s refused: %q", tt.field, msg)
			}
			if err != nil {
				return // other fields are missing; this one was accepted
			}
			if got := spec.Values(cfg)[tt.field]; got != tt.wantVal {
				t.Fatalf("%s = %q, want %q", tt.field, got, tt.wantVal)
			}
		})
	}
}

// TestSpecConfigBuildsTypedConfigs: a complete input becomes the typed
// config of its provider, unknown fields ignored.
func TestSpecConfigBuildsTypedConfigs(t *testing.T) {
	in := app.Values{"accountSid": "AC0123456789abcdef0123456789abcdef", "authToken": strings.Repeat("f", 32),
		"phoneNumber": "+12025550142", "whatsappNumber": "", "isAdmin": "true"}
	cfg, err := app.MustDescribe(app.Twilio).Config(in, "")
	if err != nil {
		t.Fatal(err)
	}
	tc, ok := cfg.(app.TwilioConfig)
	if !ok {
		t.Fatalf("config is a %T", cfg)
	}
	if tc.AccountSID != in["accountSid"] || tc.AuthToken.Reveal() != in["authToken"] || tc.PhoneNumber != "+12025550142" {
		t.Fatalf("config %+v does not carry the input", tc)
	}
	if n, ok := cfg.(app.OutboundNumberer); !ok || n.OutboundNumber() != "+12025550142" {
		t.Fatal("a Twilio config does not name its outbound number")
	}
	if _, err := app.MustDescribe(app.GoogleCalendar).Config(app.Values{"email": "a@example.com"}, ""); app.ErrorCode(err) != app.EValidation {
		t.Fatalf("Google Calendar from a form: %v, want %s", err, app.EValidation)
	}
}

// TestMaskedShowsNoSecret masks every field as its description says.
func TestMaskedShowsNoSecret(t *testing.T) {
	tests := []struct {
		name string
		cfg  app.Config
		want map[string]string
	}{
		{"vapi", app.VapiConfig{APIKey: app.NewSecret("vapi-private-key-0123abcd"), WebhookSecret: app.NewSecret("whsec-0123456789abcdef"), Region: app.VapiEU},
			map[string]string{"apiKey": "••••abcd", "webhookSecret": app.SecretSet, "region": "eu"}},
		{"vapi short key", app.VapiConfig{APIKey: app.NewSecret("short")},
			map[string]string{"apiKey": "••••"}},
		{"twilio", app.TwilioConfig{AccountSID: "AC0123456789abcdef0123456789abcdef", AuthToken: app.NewSecret(strings.Repeat("f", 28) + "9876"),
			PhoneNumber: "+12025550142", WhatsAppNumber: "+14155238886"},
			map[string]string{"accountSid": "AC••••cdef", "authToken": "••••9876", "phoneNumber": "+1202•••0142", "whatsappNumber": "+1415•••8886"}},
		{"google", app.GoogleCalendarConfig{RefreshToken: app.NewSecret("1//refresh-token"), AccessToken: app.NewSecret("ya29.token"), Email: "owner@example.com"},
			map[string]string{"email": "owner@example.com"}},
		{"resend", app.ResendConfig{APIKey: app.NewSecret("re_0123456789wxyz"), FromEmail: "hello@example.com"},
			map[string]string{"apiKey": "••••wxyz", "fromEmail": "hello@example.com"}},
		{"elevenlabs", app.ElevenLabsConfig{APIKey: app.NewSecret("sk_0123456789abcdefgh"), VoiceID: "21m00Tcm4TlvDq8ikWAM"},
			map[string]string{"apiKey": "••••efgh", "voiceId": "21m00Tcm4TlvDq8ikWAM"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := app.MustDescribe(tt.cfg.Provider()).Masked(tt.cfg)
			if len(got) != len(tt.want) {
				t.Fatalf("details %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// TestEncodeDecodeRoundTrip: every provider's config survives its stored
// form, which uses the field names as keys.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	expiry := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, cfg := range []app.Config{
		app.VapiConfig{APIKey: app.NewSecret("vapi-key-0123456789"), WebhookSecret: app.NewSecret("whsec-0123456789abcdef"), Region: app.VapiEU},
		app.TwilioConfig{AccountSID: "AC0123456789abcdef0123456789abcdef", AuthToken: app.NewSecret("token"), PhoneNumber: "+12025550142"},
		app.GoogleCalendarConfig{RefreshToken: app.NewSecret("r"), AccessToken: app.NewSecret("a"), Expiry: expiry, Email: "e@example.com", Scopes: []string{"s1", "s2"}},
		app.ResendConfig{APIKey: app.NewSecret("re_0123456789"), FromEmail: "hello@example.com"},
		app.ElevenLabsConfig{APIKey: app.NewSecret("sk_0123456789abcdef"), VoiceID: "voice1"},
	} {
		t.Run(string(cfg.Provider()), func(t *testing.T) {
			spec := app.MustDescribe(cfg.Provider())
			data, err := spec.Encode(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var raw map[string]any
			if err := json.Unmarshal(data, &raw); err != nil {
				t.Fatalf("stored form is not a JSON object: %v", err)
			}
			for _, f := range spec.Fields {
				if v := spec.Values(cfg)[f.Name]; v != "" && raw[f.Name] != v {
					t.Errorf("stored %s = %v, want %q", f.Name, raw[f.Name], v)
				}
			}
			back, err := spec.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := spec.Values(back), spec.Values(cfg); len(a) != len(b) {
				t.Fatalf("decoded %v, want %v", a, b)
			}
			if g, ok := back.(app.GoogleCalendarConfig); ok {
				if !g.Expiry.Equal(expiry) || len(g.Scopes) != 2 || g.RefreshToken.Reveal() != "r" || g.AccessToken.Reveal() != "a" {
					t.Fatalf("decoded grant %+v", g)
				}
			} else if spec.Values(back)["apiKey"] != spec.Values(cfg)["apiKey"] {
				t.Fatalf("decoded %v, want %v", spec.Values(back), spec.Values(cfg))
			}
			if _, err := spec.Encode(app.ResendConfig{}); cfg.Provider() != app.Resend && err == nil {
				t.Fatal("a config of another provider was encoded")
			}
			if _, err := spec.Decode([]byte(`{"apiKey": 42, "secretValue-xyz"`)); err == nil || strings.Contains(err.Error(), "secretValue") {
				t.Fatalf("bad stored form: %v", err)
			}
		})
	}
}

// TestDescribe: every provider has one description, in dashboard order.
func TestDescribe(t *testing.T) {
	specs := app.Specs()
	if len(specs) != len(app.Providers) {
		t.Fatalf("%d descriptions for %d providers", len(specs), len(app.Providers))
	}
	for i, p := range app.Providers {
		if specs[i].Provider != p || app.MustDescribe(p) != specs[i] || p.Title() != specs[i].Title {
			t.Errorf("description %d is not %s's", i, p)
		}
	}
	if _, err := app.Describe("slack"); app.ErrorCode(err) != app.EUnknownProvider {
		t.Fatalf("Describe(slack): %v", err)
	}
	if got := app.GoogleCalendar.JSONKey(); got != "googleCalendar" {
		t.Errorf("JSONKey = %q", got)
	}
	if got := app.ElevenLabs.JSONKey(); got != "elevenlabs" {
		t.Errorf("JSONKey = %q", got)
	}
}

// TestLast4CountsCharacters: a secret ending in multi-byte characters is
// masked into valid UTF-8.
func TestLast4CountsCharacters(t *testing.T) {
	s := app.NewSecret("key-0123456789-ünïcødé")
	got := s.Last4()
	if !utf8.ValidString(got) || got != "cødé" {
		t.Fatalf("Last4 = %q, want %q", got, "cødé")
	}
	if app.NewSecret("ab€€€€").Last4() != "" {
		t.Fatal("a secret of six characters shows its last four")
	}
}
