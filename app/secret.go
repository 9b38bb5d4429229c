package app

import (
	"encoding/json"
	"log/slog"
)

// Secret holds a credential value (an API key, a token, a password). It never
// reveals itself: String, fmt verbs, slog and JSON all print a fixed mask.
// The raw value is read with Reveal, only where it is handed to a provider or
// to the keyring.
type Secret struct{ v string }

// NewSecret wraps a raw value.
func NewSecret(v string) Secret { return Secret{v: v} }

const secretMask = "[redacted]"

// Reveal returns the raw value.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == "" }

// Last4 returns the last four characters (not bytes) of the value for
// display, or "" when the value is shorter than eight characters (showing
// half of a short secret would give too much away).
func (s Secret) Last4() string {
	r := []rune(s.v)
	if len(r) < 8 {
		return ""
	}
	return string(r[len(r)-4:])
}

// String implements fmt.Stringer with a mask.
func (s Secret) String() string { return secretMask }

// GoString implements fmt.GoStringer with a mask, so %#v stays safe too.
func (s Secret) GoString() string { return secretMask }

// LogValue implements slog.LogValuer with a mask.
func (s Secret) LogValue() slog.Value { return slog.StringValue(secretMask) }

// MarshalJSON writes the mask. Stored configs are encoded with their own
// types (see the credentials package), never through this method.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(secretMask) }

// MarshalText writes the mask.
func (s Secret) MarshalText() ([]byte, error) { return []byte(secretMask), nil }
