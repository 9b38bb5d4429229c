package app

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Connection is one provider connection of an org as it is saved: the
// credentials and the rows that only make sense with them. The credential
// service stores all of it in one transaction, or none of it.
type Connection struct {
	OrgID  string
	Config Config
	// VerifiedAt is when the provider accepted Config; the zero time means
	// never verified.
	VerifiedAt time.Time
	// Limited and Warning are what that verification found of the
	// credentials' scope (see Verification and Status.Limited).
	Limited bool
	Warning string
	// Assistants are the Vapi assistant mappings to record, each replacing
	// the org's mapping of its role (providers whose Spec manages
	// assistants).
	Assistants []AssistantMapping
	// Outbound, when set, is recorded as the org's outbound agent set-up;
	// an empty field of it keeps the stored value.
	Outbound *OutboundAgent
	// WebhookHMACOnly is the CredentialRecord.WebhookHMACOnly a new row
	// starts with (set for a connection whose assistants BYOC configures
	// to sign with HMAC); saving over a stored row keeps the row's setting.
	WebhookHMACOnly bool
	// WebhookSecretNew says Config holds a webhook secret other than the
	// stored one (see CredentialRecord.WebhookSecretNew).
	WebhookSecretNew bool
}

// OutboundNumberer is implemented by configs that carry the number the
// org's outbound agent calls from (Twilio's SMS number): saving them records
// that number with the outbound agent.
type OutboundNumberer interface {
	OutboundNumber() string
}

// OutboundNumber implements OutboundNumberer.
func (c TwilioConfig) OutboundNumber() string { return c.PhoneNumber }

// Verification is the outcome of a successful credential check: the provider
// accepted the credentials. Limited is set when they work with a narrower
// scope than full access (a Resend sending-only key, an ElevenLabs key without
// the User: Read permission); Detail says in plain words what was found and
// never contains a secret.
type Verification struct {
	Limited bool
	Detail  string
}

// Warning is what a status shows of a limited verification: its Detail as
// a sentence; "" when the credentials have full access.
func (v Verification) Warning() string {
	if !v.Limited {
		return ""
	}
	d := strings.TrimSpace(v.Detail)
	if d == "" {
		return "These credentials work with limited access."
	}
	r, n := utf8.DecodeRuneInString(d)
	d = string(unicode.ToUpper(r)) + d[n:]
	if !strings.HasSuffix(d, ".") {
		d += "."
	}
	return d
}

// OAuthToken is what an OAuth token endpoint granted: the tokens, when the
// access token expires (the zero time when unknown), the scopes granted and,
// for a sign-in, the OpenID Connect id_token.
type OAuthToken struct {
	AccessToken, RefreshToken Secret
	Expiry                    time.Time
	Scopes                    []string
	IDToken                   string
}
