package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"time"
)

// Values are a provider's credential fields by Field.Name, raw (secrets
// included). They exist between a request and the typed config, and between
// the typed config and the keyring; never log them.
type Values map[string]string

// HelpItem is one line of a provider's "where to find these" help: Term in
// bold (may be empty), then Text, then a link to URL, the provider's own
// page where the value is found ("" for none).
type HelpItem struct {
	Term, Text string
	URL        string
}

// Spec describes one provider once: how the dashboard presents it, the
// fields of its credentials with their rules, how they are stored, and what
// else a connection of it owns. Everything per provider (forms, masking,
// validation, storage, saving) is driven by its Spec.
type Spec struct {
	Provider    Provider
	Title       string
	Description string
	// Initial and Accent draw the provider's logo: a letter on a colour
	// (a Tailwind background class).
	Initial, Accent string
	// OAuth providers connect through the provider's sign-in instead of a
	// form; their fields are only shown, never entered.
	OAuth bool
	// ManagesAssistants says a connection owns the org's assistant mappings
	// and outbound assistant: a save (re)creates them, a disconnect deletes
	// them with the credentials. Their webhooks are BYOC's to verify, so
	// such a connection also carries the HMAC-only webhook setting
	// (Status.WebhookHMACOnly).
	ManagesAssistants bool
	Fields            []Field
	Help              []HelpItem
	// Disconnect says in plain words what stops working when the
	// connection is disconnected.
	Disconnect string

	// config builds the typed config from checked values; values is its
	// inverse (stored fields only).
	config func(Values) Config
	values func(Config) Values
	// encode and decode replace the stored form (JSON of values) for
	// configs that hold more than strings.
	encode func(Config) ([]byte, error)
	decode func([]byte) (Config, error)
}

// Field returns the spec's field called name.
func (s *Spec) Field(name string) (Field, bool) {
	for _, f := range s.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// FormFields are the fields an admin enters, in form order.
func (s *Spec) FormFields() []Field {
	var out []Field
	for _, f := range s.Fields {
		if !f.FormHidden {
			out = append(out, f)
		}
	}
	return out
}

// Config checks in, trimmed, against the spec's fields and returns the typed
// config, or an EValidation error with a message per bad field (keyed by
// Field.Name, never repeating a value). Fields in that are not the spec's
// are ignored. defaultRegion is the region national phone numbers are read
// in ("US" when empty).
func (s *Spec) Config(in Values, defaultRegion string) (Config, error) {
	if s.OAuth {
		return nil, Errorf(EValidation, "%s is connected through its own sign-in, not with a key.", s.Title)
	}
	if defaultRegion == "" {
		defaultRegion = "US"
	}
	out := Values{}
	bad := map[string]string{}
	for _, f := range s.FormFields() {
		v, msg := f.check(in[f.Name], defaultRegion)
		if msg != "" {
			bad[f.Name] = msg
			continue
		}
		out[f.Name] = v
	}
	if err := ValidationError(bad); err != nil {
		return nil, err
	}
	return s.config(out), nil
}

// Values returns the fields of cfg, a config of this provider, by name.
func (s *Spec) Values(cfg Config) Values { return s.values(cfg) }

// Masked returns the display-ready details of cfg: every non-empty field
// masked as its Field.Mask says. No secret survives it.
func (s *Spec) Masked(cfg Config) map[string]string {
	vals := s.values(cfg)
	out := make(map[string]string, len(vals))
	for _, f := range s.Fields {
		if m := f.mask(vals[f.Name]); m != "" {
			out[f.Name] = m
		}
	}
	return out
}

// errBadPlaintext replaces json's errors, which may quote a byte of the
// decrypted text.
var errBadPlaintext = errors.New("the decrypted config is not valid JSON for its provider")

// Encode returns the stored form of cfg (a config of this provider): JSON
// with the field names as keys. The result holds raw secrets: seal it and
// clear it.
func (s *Spec) Encode(cfg Config) ([]byte, error) {
	cfg, err := ConfigValue(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Provider() != s.Provider {
		return nil, fmt.Errorf("app: cannot store a %T as %s credentials", cfg, s.Provider)
	}
	if s.encode != nil {
		return s.encode(cfg)
	}
	vals := s.values(cfg)
	for k, v := range vals {
		if v == "" {
			delete(vals, k)
		}
	}
	return json.Marshal(vals)
}

// Decode parses the stored form of this provider's config. Its error never
// quotes the data.
func (s *Spec) Decode(data []byte) (Config, error) {
	if s.decode != nil {
		return s.decode(data)
	}
	var vals Values
	if json.Unmarshal(data, &vals) != nil {
		return nil, errBadPlaintext
	}
	return s.config(vals), nil
}

// ConfigValue returns cfg as a value of its config type, also when it is
// given as a pointer; nil and a nil pointer are errors.
func ConfigValue(cfg Config) (Config, error) {
	if cfg == nil {
		return nil, errors.New("app: no config")
	}
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer {
		return cfg, nil
	}
	if v.IsNil() {
		return nil, fmt.Errorf("app: a nil %T", cfg)
	}
	c, ok := v.Elem().Interface().(Config)
	if !ok {
		return nil, fmt.Errorf("app: %T is not a config", cfg)
	}
	return c, nil
}

// Describe returns the spec of provider p, or EUnknownProvider.
func Describe(p Provider) (*Spec, error) {
	for _, s := range catalog {
		if s.Provider == p {
			return s, nil
		}
	}
	return nil, Errorf(EUnknownProvider, "There is no provider called %q.", truncate(string(p), 40))
}

// MustDescribe returns the spec of one of the five providers; it panics for
// any other value (a programming error).
func MustDescribe(p Provider) *Spec {
	s, err := Describe(p)
	if err != nil {
		panic(err)
	}
	return s
}

// Specs returns every provider's spec in dashboard order.
func Specs() []*Spec { return catalog }

func init() {
	for _, s := range catalog {
		for i, f := range s.Fields {
			if f.Pattern != "" {
				s.Fields[i].pattern = regexp.MustCompile(`^(?:` + f.Pattern + `)$`)
			}
		}
	}
}

// The providers, each with its typed config. Secret fields are Secret so
// that printing or logging a config never leaks them.
// StatusScope is the pseudo-provider of a change that moved only what a
// status shows (when the credentials were checked and how it went): caches
// of what the credentials hold (decrypted configs, webhook secrets,
// assistant mappings) keep their entries, only statuses are dropped.
const StatusScope Provider = "~status"

// AccountScope is the pseudo-provider of a change to what a sign-in is
// checked against (a membership or its role, a user's session version or
// email, an org's name), announced by the database itself for each org
// concerned: caches of sign-ins drop the org's entries, caches of what the
// credentials hold keep theirs.
const AccountScope Provider = "~accounts"

// The five providers.
const (
	Vapi           Provider = "vapi"
	Twilio         Provider = "twilio"
	GoogleCalendar Provider = "google_calendar"
	Resend         Provider = "resend"
	ElevenLabs     Provider = "elevenlabs"
)

// VapiRegion selects Vapi's US or EU API. A key works only in its own region.
type VapiRegion string

// Vapi regions.
const (
	VapiUS VapiRegion = "us"
	VapiEU VapiRegion = "eu"
)

// VapiConfig is an org's Vapi account: its private API key, the optional
// secret Vapi signs webhooks with, and the region the key belongs to.
type VapiConfig struct {
	APIKey        Secret
	WebhookSecret Secret
	Region        VapiRegion
	// WebhookCredentialID is the HMAC credential in the org's Vapi account
	// that BYOC's assistants sign their webhooks with (made from
	// WebhookSecret by the last save); "" before BYOC made one.
	WebhookCredentialID string
	// PreviousWebhookSecret is the secret a rotation replaced: it still
	// verifies the org's webhooks until PreviousWebhookSecretUntil, so
	// calls that began before the rotation are not refused. Zero with an
	// end set: the org had no secret of its own before, and the server's
	// shared secret (VAPI_WEBHOOK_SECRET) is the one still accepted. Both
	// zero when no rotation left one. PreviousWebhookCredentialID is the signing
	// credential made from it, kept in the org's Vapi account for those
	// calls until the next rotation or save deletes it.
	PreviousWebhookSecret       Secret
	PreviousWebhookSecretUntil  time.Time
	PreviousWebhookCredentialID string
}

// PreviousSecretValid reports whether cfg's previous webhook secret (its
// own, or the server's shared one) still verifies webhooks at now.
func (c VapiConfig) PreviousSecretValid(now time.Time) bool {
	return !c.PreviousWebhookSecretUntil.IsZero() && now.Before(c.PreviousWebhookSecretUntil)
}

// VapiWebhook is what verifies an org's Vapi webhooks: the secret they are
// signed with (zero when the org has none of its own) and whether only an
// HMAC signature counts (CredentialRecord.WebhookHMACOnly).
type VapiWebhook struct {
	Secret   Secret
	HMACOnly bool
	// Previous is the secret a rotation replaced, which verifies webhooks
	// too until PreviousUntil (both zero: none; Previous zero before a set
	// PreviousUntil: the server's shared secret).
	Previous      Secret
	PreviousUntil time.Time
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

// secretField is a required or optional secret with the shared length rules.
func secretField(name, label, required string, minLength, maxLength int) Field {
	return Field{Name: name, Label: label, Kind: FieldSecret, Required: required != "", RequiredMessage: required,
		MinLength: minLength, MaxLength: maxLength, Mask: MaskLast4}
}

// catalog is every provider's description, in dashboard order. It is the
// one place that knows the providers' fields.
var catalog = []*Spec{
	{
		Provider: Vapi, Title: "Vapi", Description: "Voice assistants that answer and place calls",
		Initial: "V", Accent: "bg-indigo-600", ManagesAssistants: true,
		Fields: []Field{
			func() Field {
				f := secretField("apiKey", "Private API key", "Enter your Vapi private API key.", MinKeyLength, MaxKeyLength)
				f.DetailLabel = "API key"
				return f
			}(),
			func() Field {
				f := secretField("webhookSecret", "Webhook secret", "", MinKeyLength, MaxKeyLength)
				f.Mask = MaskSet // a signing secret shows not even a few characters
				return f
			}(),
			{Name: "region", Label: "Region", Kind: FieldChoice,
				Options: []Option{{string(VapiUS), "US (api.vapi.ai)"}, {string(VapiEU), "EU (api.eu.vapi.ai)"}},
				Invalid: `Choose the region of your Vapi organization: "us" or "eu".`,
				Hint:    "A key works only in the region of the Vapi organization that made it."},
			{Name: "webhookCredentialId", Label: "Webhook signing credential", Kind: FieldText, FormHidden: true, Mask: MaskHidden},
			// What a rotation replaced, kept for its grace period; never
			// entered, never shown.
			{Name: "previousWebhookSecret", Label: "Previous webhook secret", Kind: FieldSecret, FormHidden: true, Mask: MaskHidden},
			{Name: "previousWebhookSecretUntil", Label: "Previous webhook secret valid until", Kind: FieldText, FormHidden: true, Mask: MaskHidden},
			{Name: "previousWebhookCredentialId", Label: "Previous webhook signing credential", Kind: FieldText, FormHidden: true, Mask: MaskHidden},
		},
		Help: []HelpItem{
			{"Private API key", "Vapi Dashboard → API Keys → copy the private key (the public key is refused).", "https://dashboard.vapi.ai/org/api-keys"},
			{"Webhook secret", "optional: BYOC makes one when you leave it empty. Your assistants sign every event with it (an HMAC credential named \"BYOC webhook signing\" in your Vapi account), so BYOC can tell the events are really from Vapi.", ""},
			{"", "Saving creates an inbound and an outbound assistant in your Vapi account, or reuses the ones BYOC made before.", "https://dashboard.vapi.ai/assistants"},
		},
		Disconnect: "Calls to your Vapi assistants stop reaching BYOC (no more call events, bookings or messages from them). The assistants stay in your Vapi account.",
		config: func(v Values) Config {
			cfg := VapiConfig{APIKey: NewSecret(v["apiKey"]), WebhookSecret: NewSecret(v["webhookSecret"]), Region: VapiRegion(v["region"]),
				WebhookCredentialID: v["webhookCredentialId"], PreviousWebhookSecret: NewSecret(v["previousWebhookSecret"]),
				PreviousWebhookCredentialID: v["previousWebhookCredentialId"]}
			if until, err := time.Parse(time.RFC3339Nano, v["previousWebhookSecretUntil"]); err == nil {
				cfg.PreviousWebhookSecretUntil = until
			} else {
				// Without a readable end no previous secret verifies anything.
				cfg.PreviousWebhookSecret = Secret{}
			}
			return cfg
		},
		values: func(c Config) Values {
			cfg := c.(VapiConfig)
			v := Values{"apiKey": cfg.APIKey.Reveal(), "webhookSecret": cfg.WebhookSecret.Reveal(), "region": string(cfg.Region),
				"webhookCredentialId": cfg.WebhookCredentialID, "previousWebhookSecret": cfg.PreviousWebhookSecret.Reveal(),
				"previousWebhookCredentialId": cfg.PreviousWebhookCredentialID}
			if !cfg.PreviousWebhookSecretUntil.IsZero() {
				v["previousWebhookSecretUntil"] = cfg.PreviousWebhookSecretUntil.UTC().Format(time.RFC3339Nano)
			}
			return v
		},
	},
	{
		Provider: Twilio, Title: "Twilio", Description: "SMS and WhatsApp messages", Initial: "T", Accent: "bg-rose-600",
		Fields: []Field{
			{Name: "accountSid", Label: "Account SID", Kind: FieldText, Required: true,
				RequiredMessage: "Enter your Twilio Account SID.", MaxLength: 34,
				Pattern: "AC[0-9a-fA-F]{32}", PatternTitle: "AC followed by 32 hexadecimal characters",
				Invalid:     "An Account SID is AC followed by 32 hexadecimal characters (not an API key SID, which starts with SK).",
				Placeholder: "AC…", Mask: MaskIdentifier},
			func() Field {
				f := secretField("authToken", "Auth Token", "Enter the account's Auth Token.", MinTwilioTokenLength, MaxTwilioTokenLength)
				f.Invalid = "An Auth Token is 32 characters without spaces; copy it from the Twilio Console."
				return f
			}(),
			{Name: "phoneNumber", Label: "SMS number", Kind: FieldPhone, Required: true,
				RequiredMessage: "Enter the Twilio number to send SMS from.", Mask: MaskNumber,
				Hint: "With the country code, such as +44 for the UK; US numbers may leave it out."},
			{Name: "whatsappNumber", Label: "WhatsApp number", Kind: FieldPhone, Mask: MaskNumber},
		},
		Help: []HelpItem{
			{"Account SID and Auth Token", "Twilio Console → Account Info, on the Console's home page. The SID starts with AC.", "https://console.twilio.com/"},
			{"SMS number", "a number of this account (Phone Numbers → Manage → Active numbers).", "https://console.twilio.com/us1/develop/phone-numbers/manage/incoming"},
			{"WhatsApp number", "your WhatsApp sender in Twilio, if you use WhatsApp.", "https://console.twilio.com/us1/develop/sms/senders/whatsapp-senders"},
		},
		Disconnect: "Your assistants can no longer send SMS or WhatsApp messages from your Twilio numbers.",
		config: func(v Values) Config {
			return TwilioConfig{AccountSID: v["accountSid"], AuthToken: NewSecret(v["authToken"]),
				PhoneNumber: v["phoneNumber"], WhatsAppNumber: v["whatsappNumber"]}
		},
		values: func(c Config) Values {
			cfg := c.(TwilioConfig)
			return Values{"accountSid": cfg.AccountSID, "authToken": cfg.AuthToken.Reveal(),
				"phoneNumber": cfg.PhoneNumber, "whatsappNumber": cfg.WhatsAppNumber}
		},
	},
	{
		Provider: GoogleCalendar, Title: "Google Calendar", Description: "Appointments in your calendar",
		Initial: "G", Accent: "bg-sky-600", OAuth: true,
		Disconnect: "Your assistants can no longer check availability or book appointments in your calendar; BYOC's access is revoked at Google.",
		Fields: []Field{
			{Name: "email", Label: "Google account", Kind: FieldEmail, FormHidden: true},
		},
		values: func(c Config) Values { return Values{"email": c.(GoogleCalendarConfig).Email} },
		encode: func(c Config) ([]byte, error) {
			cfg := c.(GoogleCalendarConfig)
			return json.Marshal(googleCalendarStored{cfg.RefreshToken.Reveal(), cfg.AccessToken.Reveal(), cfg.Expiry, cfg.Email, cfg.Scopes})
		},
		decode: func(data []byte) (Config, error) {
			var w googleCalendarStored
			if json.Unmarshal(data, &w) != nil {
				return nil, errBadPlaintext
			}
			return GoogleCalendarConfig{RefreshToken: NewSecret(w.RefreshToken), AccessToken: NewSecret(w.AccessToken),
				Expiry: w.Expiry, Email: w.Email, Scopes: w.Scopes}, nil
		},
	},
	{
		Provider: Resend, Title: "Resend", Description: "Transactional e-mail", Initial: "R", Accent: "bg-slate-900",
		Fields: []Field{
			func() Field {
				f := secretField("apiKey", "API key", "Enter your Resend API key.", MinResendKeyLength, MaxKeyLength)
				f.Pattern, f.PatternTitle = `re_\S+`, "A Resend API key starts with re_"
				f.PatternMessage = `A Resend API key starts with "re_".`
				return f
			}(),
			{Name: "fromEmail", Label: "Sender address", DetailLabel: "Sender", Kind: FieldEmail,
				MaxLength: MaxEmailLength, Placeholder: "hello@example.com",
				Invalid: "Enter a sender address such as hello@example.com."},
		},
		Help: []HelpItem{
			{"API key", "Resend dashboard → API Keys → Create API key. It starts with re_. A full-access key lets BYOC check your domains; a sending-only key works too.", "https://resend.com/api-keys"},
			{"Sender", "the address e-mails come from, on a domain you verified in Resend (Domains).", "https://resend.com/domains"},
		},
		Disconnect: "BYOC can no longer send e-mail from your Resend account.",
		config:     func(v Values) Config { return ResendConfig{APIKey: NewSecret(v["apiKey"]), FromEmail: v["fromEmail"]} },
		values: func(c Config) Values {
			cfg := c.(ResendConfig)
			return Values{"apiKey": cfg.APIKey.Reveal(), "fromEmail": cfg.FromEmail}
		},
	},
	{
		Provider: ElevenLabs, Title: "ElevenLabs", Description: "Natural voices for your assistants",
		Initial: "E", Accent: "bg-violet-600",
		Fields: []Field{
			secretField("apiKey", "API key", "Enter your ElevenLabs API key.", MinKeyLength, MaxKeyLength),
			{Name: "voiceId", Label: "Voice ID", Kind: FieldText, MaxLength: MaxVoiceIDLength,
				Pattern: "[A-Za-z0-9]+", PatternTitle: "Letters and digits only", Placeholder: "21m00Tcm4TlvDq8ikWAM",
				Invalid: "A voice ID has only letters and digits, such as 21m00Tcm4TlvDq8ikWAM."},
		},
		Help: []HelpItem{
			{"API key", "ElevenLabs → Profile → API keys (keys start with sk_).", "https://elevenlabs.io/app/settings/api-keys"},
			{"Voice ID", "Voices → choose a voice → copy its ID, if your assistants should use one voice.", "https://elevenlabs.io/app/voice-library"},
		},
		Disconnect: "Your assistants can no longer speak with your ElevenLabs voices.",
		config:     func(v Values) Config { return ElevenLabsConfig{APIKey: NewSecret(v["apiKey"]), VoiceID: v["voiceId"]} },
		values: func(c Config) Values {
			cfg := c.(ElevenLabsConfig)
			return Values{"apiKey": cfg.APIKey.Reveal(), "voiceId": cfg.VoiceID}
		},
	},
}

// googleCalendarStored is the stored form of a Google Calendar grant.
type googleCalendarStored struct {
	RefreshToken string    `json:"refreshToken"`
	AccessToken  string    `json:"accessToken,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
	Email        string    `json:"email,omitempty"`
	Scopes       []string  `json:"scopes,omitempty"`
}
