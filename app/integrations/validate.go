package integrations

import (
	"net/mail"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"byoc/app"
	"byoc/app/providers/twilio"
)

var voiceIDPattern = regexp.MustCompile(`^[A-Za-z0-9]+$`)

// VapiInput is the form of POST /api/integrations/vapi.
type VapiInput struct {
	APIKey        string `json:"apiKey" form:"apiKey"`
	WebhookSecret string `json:"webhookSecret" form:"webhookSecret"`
	Region        string `json:"region" form:"region"`
}

// TwilioInput is the form of POST /api/integrations/twilio.
type TwilioInput struct {
	AccountSID     string `json:"accountSid" form:"accountSid"`
	AuthToken      string `json:"authToken" form:"authToken"`
	PhoneNumber    string `json:"phoneNumber" form:"phoneNumber"`
	WhatsAppNumber string `json:"whatsappNumber" form:"whatsappNumber"`
}

// ResendInput is the form of POST /api/integrations/resend.
type ResendInput struct {
	APIKey    string `json:"apiKey" form:"apiKey"`
	FromEmail string `json:"fromEmail" form:"fromEmail"`
}

// ElevenLabsInput is the form of POST /api/integrations/elevenlabs.
type ElevenLabsInput struct {
	APIKey  string `json:"apiKey" form:"apiKey"`
	VoiceID string `json:"voiceId" form:"voiceId"`
}

// Config returns the trimmed, validated Vapi config of in, with the region
// defaulting to US, or an EValidation error naming the bad fields (apiKey,
// webhookSecret, region).
func (in VapiInput) Config() (app.VapiConfig, error) {
	f := map[string]string{}
	key := strings.TrimSpace(in.APIKey)
	checkKey(f, "apiKey", key, "Enter your Vapi private API key.", app.MinKeyLength)
	secret := strings.TrimSpace(in.WebhookSecret)
	if secret != "" {
		checkKey(f, "webhookSecret", secret, "", app.MinKeyLength)
	}
	region := app.VapiRegion(strings.ToLower(strings.TrimSpace(in.Region)))
	switch region {
	case "":
		region = app.VapiUS
	case app.VapiUS, app.VapiEU:
	default:
		f["region"] = `Choose the region of your Vapi organization: "us" or "eu".`
	}
	return app.VapiConfig{APIKey: app.NewSecret(key), WebhookSecret: app.NewSecret(secret), Region: region},
		app.ValidationError(f)
}

// Config returns the trimmed, validated Twilio config of in, with both
// numbers in E.164 (numbers without a country code are read in
// defaultRegion; a "whatsapp:" prefix is dropped), or an EValidation error
// naming the bad fields (accountSid, authToken, phoneNumber,
// whatsappNumber).
func (in TwilioInput) Config(defaultRegion string) (app.TwilioConfig, error) {
	f := map[string]string{}
	sid := strings.TrimSpace(in.AccountSID)
	switch {
	case sid == "":
		f["accountSid"] = "Enter your Twilio Account SID."
	case !twilio.ValidAccountSID(sid):
		f["accountSid"] = "An Account SID is AC followed by 32 hexadecimal characters (not an API key SID, which starts with SK)."
	}
	token := strings.TrimSpace(in.AuthToken)
	switch n := utf8.RuneCountInString(token); {
	case token == "":
		f["authToken"] = "Enter the account's Auth Token."
	case n < app.MinTwilioTokenLength || n > app.MaxTwilioTokenLength || hasSpace(token):
		f["authToken"] = "An Auth Token is 32 characters without spaces; copy it from the Twilio Console."
	}
	phone := ""
	if strings.TrimSpace(in.PhoneNumber) == "" {
		f["phoneNumber"] = "Enter the Twilio number to send SMS from."
	} else if e164, err := twilio.NormalizeE164(stripWhatsApp(in.PhoneNumber), defaultRegion); err != nil {
		f["phoneNumber"] = app.ErrorMessage(err)
	} else {
		phone = e164
	}
	whatsApp := ""
	if strings.TrimSpace(in.WhatsAppNumber) != "" {
		if e164, err := twilio.NormalizeE164(stripWhatsApp(in.WhatsAppNumber), defaultRegion); err != nil {
			f["whatsappNumber"] = app.ErrorMessage(err)
		} else {
			whatsApp = e164
		}
	}
	return app.TwilioConfig{AccountSID: sid, AuthToken: app.NewSecret(token), PhoneNumber: phone, WhatsAppNumber: whatsApp},
		app.ValidationError(f)
}

// Config returns the trimmed, validated Resend config of in, or an
// EValidation error naming the bad fields (apiKey, fromEmail). The sender is
// a plain address such as hello@example.com.
func (in ResendInput) Config() (app.ResendConfig, error) {
	f := map[string]string{}
	key := strings.TrimSpace(in.APIKey)
	checkKey(f, "apiKey", key, "Enter your Resend API key.", app.MinResendKeyLength)
	if _, bad := f["apiKey"]; !bad && !strings.HasPrefix(key, "re_") {
		f["apiKey"] = `A Resend API key starts with "re_".`
	}
	from := strings.TrimSpace(in.FromEmail)
	if from != "" && !plainAddress(from) {
		f["fromEmail"] = "Enter a sender address such as hello@example.com."
	}
	return app.ResendConfig{APIKey: app.NewSecret(key), FromEmail: from}, app.ValidationError(f)
}

// Config returns the trimmed, validated ElevenLabs config of in, or an
// EValidation error naming the bad fields (apiKey, voiceId).
func (in ElevenLabsInput) Config() (app.ElevenLabsConfig, error) {
	f := map[string]string{}
	key := strings.TrimSpace(in.APIKey)
	checkKey(f, "apiKey", key, "Enter your ElevenLabs API key.", app.MinKeyLength)
	voice := strings.TrimSpace(in.VoiceID)
	if voice != "" && (len(voice) > app.MaxVoiceIDLength || !voiceIDPattern.MatchString(voice)) {
		f["voiceId"] = "A voice ID has only letters and digits, such as 21m00Tcm4TlvDq8ikWAM."
	}
	return app.ElevenLabsConfig{APIKey: app.NewSecret(key), VoiceID: voice}, app.ValidationError(f)
}

// checkKey records a message under field when key is empty (required is
// the message; "" means the field is optional), too short, too long or has
// whitespace. Messages never repeat the value.
func checkKey(f map[string]string, field, key, required string, minLength int) {
	n := utf8.RuneCountInString(key)
	switch {
	case key == "" && required != "":
		f[field] = required
	case key == "":
	case hasSpace(key):
		f[field] = "Remove the spaces: paste the value exactly as the provider shows it."
	case n < minLength:
		f[field] = "This is too short to be valid: paste the whole value."
	case n > app.MaxKeyLength:
		f[field] = "This is too long to be valid: paste only the value."
	}
}

func hasSpace(s string) bool { return strings.IndexFunc(s, unicode.IsSpace) >= 0 }

func stripWhatsApp(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= len("whatsapp:") && strings.EqualFold(s[:len("whatsapp:")], "whatsapp:") {
		return s[len("whatsapp:"):]
	}
	return s
}

// plainAddress reports whether s is a bare e-mail address (no display name,
// no angle brackets) with a dotted domain.
func plainAddress(s string) bool {
	if len(s) > app.MaxEmailLength {
		return false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	domain := s[at+1:]
	return strings.Contains(domain, ".") && !strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".")
}
