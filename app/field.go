package app

import (
	"net/mail"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// FieldKind says what a provider field holds, which decides how its value is
// checked, shown in a form and masked in a status.
type FieldKind int

// Field kinds.
const (
	// FieldSecret is a key, token or signing secret: never shown again,
	// never put back into a form; no whitespace allowed.
	FieldSecret FieldKind = iota
	// FieldText is an identifier (an Account SID, a voice id).
	FieldText
	// FieldPhone is a phone number, stored in E.164 (a "whatsapp:" prefix is
	// dropped, national numbers are read in the default region).
	FieldPhone
	// FieldEmail is a plain e-mail address such as hello@example.com.
	FieldEmail
	// FieldChoice is one of Options, compared case-insensitively; empty
	// means the first option.
	FieldChoice
)

// Mask says how a status shows a stored field.
type Mask int

// Masks.
const (
	// MaskNone shows the value as stored.
	MaskNone Mask = iota
	// MaskLast4 shows "••••" and the last four characters (none of a value
	// shorter than eight).
	MaskLast4
	// MaskSet shows only that a value is set (SecretSet).
	MaskSet
	// MaskIdentifier keeps the first two and the last four characters.
	MaskIdentifier
	// MaskNumber keeps the first five and the last four characters.
	MaskNumber
	// MaskHidden never shows the field.
	MaskHidden
)

// SecretSet is what a status shows for a field masked with MaskSet.
const SecretSet = "set"

// Option is one choice of a FieldChoice field.
type Option struct {
	Value string
	Label string
}

// Field describes one field of a provider's credentials: how it is named
// (in JSON, forms, the stored config and the status details alike), labelled,
// checked, and shown.
type Field struct {
	// Name is the field's name everywhere: JSON body, form, stored config,
	// status details.
	Name string
	// Label names the field in the form; DetailLabel on the card ("" means
	// Label).
	Label, DetailLabel string
	Kind               FieldKind
	// Required fields must not be empty; RequiredMessage says so.
	Required        bool
	RequiredMessage string
	// MinLength and MaxLength bound the value's length in characters
	// (0: no bound).
	MinLength, MaxLength int
	// Pattern, when set, is a regular expression the whole value must match
	// (the HTML pattern attribute's syntax, anchored); PatternTitle tells the
	// browser's message what it expects.
	Pattern, PatternTitle string
	// Invalid, when set, replaces every message about a broken rule other
	// than a missing value.
	Invalid string
	// PatternMessage is the message for a value that breaks Pattern only
	// ("" means Invalid).
	PatternMessage string
	Options        []Option
	Placeholder    string
	Hint           string
	Mask           Mask
	// FormHidden fields are not part of the configure form (the Google
	// account's e-mail comes from Google's sign-in).
	FormHidden bool

	pattern *regexp.Regexp
}

// Messages of the rules every secret field shares. None repeats the value.
const (
	msgSpaces   = "Remove the spaces: paste the value exactly as the provider shows it."
	msgTooShort = "This is too short to be valid: paste the whole value."
	msgTooLong  = "This is too long to be valid: paste only the value."
)

// DisplayLabel is the field's label on a card.
func (f Field) DisplayLabel() string {
	if f.DetailLabel != "" {
		return f.DetailLabel
	}
	return f.Label
}

// Secret reports whether the field holds a secret.
func (f Field) Secret() bool { return f.Kind == FieldSecret }

// check returns the field's value trimmed and normalized, or a message
// saying what is wrong with it ("" when nothing is). defaultRegion is the
// region national phone numbers are read in.
func (f Field) check(raw, defaultRegion string) (string, string) {
	v := strings.TrimSpace(raw)
	if v == "" {
		switch {
		case f.Required:
			return "", f.RequiredMessage
		case f.Kind == FieldChoice && len(f.Options) > 0:
			return f.Options[0].Value, ""
		}
		return "", ""
	}
	invalid := func(generic string) string {
		if f.Invalid != "" {
			return f.Invalid
		}
		return generic
	}
	n := utf8.RuneCountInString(v)
	switch f.Kind {
	case FieldSecret:
		switch {
		case strings.IndexFunc(v, unicode.IsSpace) >= 0:
			return "", invalid(msgSpaces)
		case f.MinLength > 0 && n < f.MinLength:
			return "", invalid(msgTooShort)
		case f.MaxLength > 0 && n > f.MaxLength:
			return "", invalid(msgTooLong)
		}
	case FieldPhone:
		e164, err := NormalizeE164(stripWhatsApp(v), defaultRegion)
		if err != nil {
			return "", invalid(ErrorMessage(err))
		}
		v = e164
	case FieldEmail:
		if !plainAddress(v) {
			return "", invalid("Enter an e-mail address such as hello@example.com.")
		}
	case FieldChoice:
		v = strings.ToLower(v)
		ok := false
		for _, o := range f.Options {
			ok = ok || o.Value == v
		}
		if !ok {
			return "", invalid("Choose one of the options.")
		}
	default:
		if f.MaxLength > 0 && n > f.MaxLength {
			return "", invalid(msgTooLong)
		}
	}
	if f.pattern != nil && !f.pattern.MatchString(v) {
		if f.PatternMessage != "" {
			return "", f.PatternMessage
		}
		return "", invalid("This does not have the expected form.")
	}
	return v, ""
}

// stripWhatsApp drops the "whatsapp:" prefix Twilio writes WhatsApp numbers
// with.
func stripWhatsApp(s string) string {
	const prefix = "whatsapp:"
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return strings.TrimSpace(s[len(prefix):])
	}
	return s
}

// plainAddress reports whether s is a bare e-mail address (no display name,
// no angle brackets) with a dotted domain.
func plainAddress(s string) bool {
	if len(s) > MaxEmailLength {
		return false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return false
	}
	domain := s[strings.LastIndexByte(s, '@')+1:]
	return strings.Contains(domain, ".") && !strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".")
}

// mask returns how a status shows the stored value v of the field; "" hides
// it.
func (f Field) mask(v string) string {
	if v == "" {
		return ""
	}
	switch f.Mask {
	case MaskLast4:
		return dots + NewSecret(v).Last4()
	case MaskSet:
		return SecretSet
	case MaskIdentifier:
		return maskMiddle(v, 2, 4, dots)
	case MaskNumber:
		return maskMiddle(v, 5, 4, "•••")
	case MaskHidden:
		return ""
	}
	return v
}

const dots = "••••"

// maskMiddle keeps the first head and last tail characters of s and puts mid
// in between; shorter values keep only their tail, or nothing when they are
// too short for that to hide anything.
func maskMiddle(s string, head, tail int, mid string) string {
	r := []rune(s)
	switch {
	case len(r) >= head+tail+3:
		return string(r[:head]) + mid + string(r[len(r)-tail:])
	case len(r) >= tail+4:
		return mid + string(r[len(r)-tail:])
	}
	return mid
}
