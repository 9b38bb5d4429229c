package credentials

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"byoc/app"
	"byoc/app/keyring"
)

// Table is the table name bound into every ciphertext's additional data.
const Table = "org_credentials"

// The wire structs are the stored JSON form of each config: raw secret values
// under stable camelCase names. They exist only between decryption and the
// typed config (or the typed config and encryption), never in a log or a
// response.
type (
	vapiWire struct {
		APIKey        string `json:"apiKey"`
		WebhookSecret string `json:"webhookSecret,omitempty"`
		Region        string `json:"region,omitempty"`
	}
	twilioWire struct {
		AccountSID     string `json:"accountSid"`
		AuthToken      string `json:"authToken"`
		PhoneNumber    string `json:"phoneNumber,omitempty"`
		WhatsAppNumber string `json:"whatsappNumber,omitempty"`
	}
	googleCalendarWire struct {
		RefreshToken string    `json:"refreshToken"`
		AccessToken  string    `json:"accessToken,omitempty"`
		Expiry       time.Time `json:"expiry,omitzero"`
		Email        string    `json:"email,omitempty"`
		Scopes       []string  `json:"scopes,omitempty"`
	}
	resendWire struct {
		APIKey    string `json:"apiKey"`
		FromEmail string `json:"fromEmail,omitempty"`
	}
	elevenLabsWire struct {
		APIKey  string `json:"apiKey"`
		VoiceID string `json:"voiceId,omitempty"`
	}
)

// normalize returns cfg as a value of one of the five config types, also
// when it is given as a pointer; nil and other types are errors.
func normalize(cfg app.Config) (app.Config, error) {
	switch c := cfg.(type) {
	case app.VapiConfig, app.TwilioConfig, app.GoogleCalendarConfig, app.ResendConfig, app.ElevenLabsConfig:
		return c, nil
	case *app.VapiConfig:
		if c != nil {
			return *c, nil
		}
	case *app.TwilioConfig:
		if c != nil {
			return *c, nil
		}
	case *app.GoogleCalendarConfig:
		if c != nil {
			return *c, nil
		}
	case *app.ResendConfig:
		if c != nil {
			return *c, nil
		}
	case *app.ElevenLabsConfig:
		if c != nil {
			return *c, nil
		}
	}
	return nil, fmt.Errorf("credentials: cannot store a config of type %T", cfg)
}

// encode returns the stored JSON form of cfg, a value normalize returned.
func encode(cfg app.Config) ([]byte, error) {
	switch c := cfg.(type) {
	case app.VapiConfig:
		return json.Marshal(vapiWire{c.APIKey.Reveal(), c.WebhookSecret.Reveal(), string(c.Region)})
	case app.TwilioConfig:
		return json.Marshal(twilioWire{c.AccountSID, c.AuthToken.Reveal(), c.PhoneNumber, c.WhatsAppNumber})
	case app.GoogleCalendarConfig:
		return json.Marshal(googleCalendarWire{c.RefreshToken.Reveal(), c.AccessToken.Reveal(), c.Expiry, c.Email, c.Scopes})
	case app.ResendConfig:
		return json.Marshal(resendWire{c.APIKey.Reveal(), c.FromEmail})
	case app.ElevenLabsConfig:
		return json.Marshal(elevenLabsWire{c.APIKey.Reveal(), c.VoiceID})
	}
	return nil, fmt.Errorf("credentials: cannot store a config of type %T", cfg)
}

// errBadPlaintext replaces json's errors, which may quote a byte of the
// decrypted text.
var errBadPlaintext = errors.New("the decrypted config is not valid JSON for its provider")

// decode parses the stored JSON form of provider p's config.
func decode(p app.Provider, data []byte) (app.Config, error) {
	switch p {
	case app.Vapi:
		var w vapiWire
		if json.Unmarshal(data, &w) != nil {
			return nil, errBadPlaintext
		}
		return app.VapiConfig{APIKey: app.NewSecret(w.APIKey), WebhookSecret: app.NewSecret(w.WebhookSecret),
			Region: app.VapiRegion(w.Region)}, nil
	case app.Twilio:
		var w twilioWire
		if json.Unmarshal(data, &w) != nil {
			return nil, errBadPlaintext
		}
		return app.TwilioConfig{AccountSID: w.AccountSID, AuthToken: app.NewSecret(w.AuthToken),
			PhoneNumber: w.PhoneNumber, WhatsAppNumber: w.WhatsAppNumber}, nil
	case app.GoogleCalendar:
		var w googleCalendarWire
		if json.Unmarshal(data, &w) != nil {
			return nil, errBadPlaintext
		}
		return app.GoogleCalendarConfig{RefreshToken: app.NewSecret(w.RefreshToken), AccessToken: app.NewSecret(w.AccessToken),
			Expiry: w.Expiry, Email: w.Email, Scopes: w.Scopes}, nil
	case app.Resend:
		var w resendWire
		if json.Unmarshal(data, &w) != nil {
			return nil, errBadPlaintext
		}
		return app.ResendConfig{APIKey: app.NewSecret(w.APIKey), FromEmail: w.FromEmail}, nil
	case app.ElevenLabs:
		var w elevenLabsWire
		if json.Unmarshal(data, &w) != nil {
			return nil, errBadPlaintext
		}
		return app.ElevenLabsConfig{APIKey: app.NewSecret(w.APIKey), VoiceID: w.VoiceID}, nil
	}
	return nil, fmt.Errorf("credentials: no codec for provider %q", p)
}

// aad binds a ciphertext to its row.
func aad(orgID string, p app.Provider) keyring.AAD {
	return keyring.AAD{Table: Table, OrgID: orgID, Provider: string(p)}
}

// seal encodes cfg and encrypts it for the org's row of cfg's provider.
func seal(kr *keyring.Keyring, orgID string, cfg app.Config) ([]byte, error) {
	plaintext, err := encode(cfg)
	if err != nil {
		return nil, err
	}
	defer clear(plaintext)
	return kr.Seal(plaintext, aad(orgID, cfg.Provider()))
}

// open decrypts and decodes the config stored in rec. Its errors carry no
// plaintext; a keyring failure is a *keyring.DecryptError.
func open(kr *keyring.Keyring, rec app.CredentialRecord) (app.Config, error) {
	plaintext, err := kr.Open(rec.Ciphertext, aad(rec.OrgID, rec.Provider))
	if err != nil {
		return nil, err
	}
	defer clear(plaintext)
	return decode(rec.Provider, plaintext)
}

// cloneConfig copies the parts of a config that share memory, so callers
// cannot change what the cache holds.
func cloneConfig(cfg app.Config) app.Config {
	if g, ok := cfg.(app.GoogleCalendarConfig); ok && g.Scopes != nil {
		g.Scopes = append([]string(nil), g.Scopes...)
		return g
	}
	return cfg
}
