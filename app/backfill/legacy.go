package backfill

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"byoc/app"
)

// The old service's stored format: encrypted_config is
// hex(iv):hex(authTag):hex(ciphertext), AES-256-GCM with a 12- or 16-byte IV
// and a 16-byte tag, of a JSON object holding the provider's fields; or the
// JSON object itself. Everything here reads hostile input: it never panics,
// bounds what it reads, and its errors never quote the data.

// MaxLegacyConfig bounds a stored legacy config (in bytes): far above any
// real one, it keeps a damaged row from costing much.
const MaxLegacyConfig = 64 << 10

// Why a legacy config cannot be read. Each names what is wrong, never what
// the row holds.
var (
	ErrLegacyEmpty    = errors.New("the stored config is empty")
	ErrLegacyTooLarge = errors.New("the stored config is too large")
	ErrLegacyFormat   = errors.New("the stored config is neither hex(iv):hex(tag):hex(ciphertext) nor a JSON object")
	ErrLegacyIV       = errors.New("the stored config's IV is not 12 or 16 bytes")
	ErrLegacyTag      = errors.New("the stored config's authentication tag is not 16 bytes")
	ErrLegacyDecrypt  = errors.New("the stored config cannot be decrypted with LEGACY_ENCRYPTION_KEY (another key, or altered)")
	ErrLegacyJSON     = errors.New("the config is not a JSON object")
)

// LegacyKey is the old service's AES-256 key.
type LegacyKey struct {
	gcm12, gcm16 cipher.AEAD
}

// ParseLegacyKey reads a key given as 64 hex characters. Its error never
// repeats the key.
func ParseLegacyKey(hexKey string) (*LegacyKey, error) {
	raw, err := hex.DecodeString(strings.TrimSpace(hexKey))
	if err != nil || len(raw) != 32 {
		return nil, errors.New("the legacy key must be exactly 64 hex characters (32 bytes)")
	}
	defer clear(raw)
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	k := &LegacyKey{}
	if k.gcm12, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	if k.gcm16, err = cipher.NewGCMWithNonceSize(block, 16); err != nil {
		return nil, err
	}
	return k, nil
}

// Plaintext returns the JSON object a stored legacy config holds:
// decrypted when it is in the old service's encrypted form, as it is when
// it is plain JSON. The result holds secrets: clear it after use. Errors are
// the ErrLegacy* values.
func (k *LegacyKey) Plaintext(stored string) ([]byte, error) {
	s := strings.TrimSpace(stored)
	switch {
	case s == "":
		return nil, ErrLegacyEmpty
	case len(s) > MaxLegacyConfig:
		return nil, ErrLegacyTooLarge
	case s[0] == '{':
		out := []byte(s)
		if !isObject(out) {
			clear(out)
			return nil, ErrLegacyJSON
		}
		return out, nil
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return nil, ErrLegacyFormat
	}
	var raw [3][]byte
	for i, p := range parts {
		b, err := hex.DecodeString(p)
		if err != nil {
			return nil, ErrLegacyFormat
		}
		raw[i] = b
	}
	iv, tag, ct := raw[0], raw[1], raw[2]
	var aead cipher.AEAD
	switch len(iv) {
	case 12:
		aead = k.gcm12
	case 16:
		aead = k.gcm16
	default:
		return nil, ErrLegacyIV
	}
	if len(tag) != 16 {
		return nil, ErrLegacyTag
	}
	if len(ct) == 0 {
		return nil, ErrLegacyJSON
	}
	// Go's GCM takes the tag after the ciphertext; Node keeps it apart.
	sealed := append(ct, tag...)
	out, err := aead.Open(nil, iv, sealed, nil)
	clear(sealed)
	if err != nil {
		return nil, ErrLegacyDecrypt
	}
	if !isObject(out) {
		clear(out)
		return nil, ErrLegacyJSON
	}
	return out, nil
}

// isObject reports whether b is one valid JSON object.
func isObject(b []byte) bool {
	t := bytes.TrimSpace(b)
	return len(t) > 0 && t[0] == '{' && json.Valid(t)
}

// ErrNoRefreshToken says a legacy Google Calendar grant has no refresh
// token, without which BYOC cannot act for the org: it must connect again.
var ErrNoRefreshToken = errors.New("the Google Calendar grant has no refresh token: the org must connect Google Calendar again")

// fieldError says which field of a legacy config is unusable, by name only.
type fieldError struct{ field, why string }

func (e *fieldError) Error() string { return fmt.Sprintf("field %s %s", e.field, e.why) }

// Decode turns the plaintext of a legacy config (a JSON object) into the
// typed config of spec's provider, checked as a save checks it: fields are
// found by their name in the API (apiKey, accountSid, ...) or its
// snake_case form (api_key, account_sid), in any letter case; other keys
// are ignored. defaultRegion reads national phone numbers ("US" when
// empty). A Google Calendar grant keeps its refresh token, account e-mail
// and scopes (the access token is dropped: the first use refreshes it); one
// without a refresh token is ErrNoRefreshToken. Other errors are an
// EValidation *app.Error with per-field messages, or a plain error naming
// the field; none quotes a value.
func Decode(spec *app.Spec, plaintext []byte, defaultRegion string) (app.Config, error) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(plaintext, &obj) != nil {
		return nil, ErrLegacyJSON
	}
	if spec.OAuth {
		return decodeGoogle(obj)
	}
	vals := app.Values{}
	for _, f := range spec.FormFields() {
		v, err := field(obj, f.Name)
		if err != nil {
			return nil, err
		}
		vals[f.Name] = v
	}
	defer clear(vals)
	return spec.Config(vals, defaultRegion)
}

// MaxRefreshTokenLength bounds a legacy Google refresh token (Google's are
// about 100 characters).
const MaxRefreshTokenLength = 2048

func decodeGoogle(obj map[string]json.RawMessage) (app.Config, error) {
	rt, err := field(obj, "refreshToken")
	if err != nil {
		return nil, err
	}
	rt = strings.TrimSpace(rt)
	switch {
	case rt == "":
		return nil, ErrNoRefreshToken
	case len(rt) > MaxRefreshTokenLength || strings.IndexFunc(rt, unicode.IsSpace) >= 0 || !utf8.ValidString(rt):
		return nil, &fieldError{"refreshToken", "is not a refresh token"}
	}
	cfg := app.GoogleCalendarConfig{RefreshToken: app.NewSecret(rt)}
	email, err := field(obj, "email")
	if err != nil {
		return nil, err
	}
	if a, err := mail.ParseAddress(email); err == nil && a.Name == "" && a.Address == email && len(email) <= app.MaxEmailLength {
		cfg.Email = email
	}
	if cfg.Scopes, err = scopes(obj); err != nil {
		return nil, err
	}
	return cfg, nil
}

// maxScopes bounds the scopes kept of a legacy grant.
const maxScopes = 32

// scopes reads a grant's scopes: "scope" as Google's token answer gives it
// (space-separated), or "scopes" as a list.
func scopes(obj map[string]json.RawMessage) ([]string, error) {
	var out []string
	keep := func(s string) {
		s = strings.TrimSpace(s)
		if s != "" && len(s) <= 256 && utf8.ValidString(s) && !slices.Contains(out, s) && len(out) < maxScopes {
			out = append(out, s)
		}
	}
	for key, raw := range obj {
		switch normalize(key) {
		case "scope":
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return nil, &fieldError{"scope", "is not text"}
			}
			for _, sc := range strings.Fields(s) {
				keep(sc)
			}
		case "scopes":
			var list []string
			if json.Unmarshal(raw, &list) != nil {
				return nil, &fieldError{"scopes", "is not a list of text"}
			}
			for _, sc := range list {
				keep(sc)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// field returns the text of the field called name (in the API's spelling)
// in obj, found under any key that normalizes to the same: "" when absent
// or null. A value that is not text, or two keys with different values,
// are errors naming the field.
func field(obj map[string]json.RawMessage, name string) (string, error) {
	want := normalize(name)
	found, value := false, ""
	for key, raw := range obj {
		if normalize(key) != want {
			continue
		}
		var v *string
		if json.Unmarshal(raw, &v) != nil {
			return "", &fieldError{name, "is not text"}
		}
		if v == nil {
			continue
		}
		if found && *v != value {
			return "", &fieldError{name, "is given twice with different values"}
		}
		found, value = true, *v
	}
	return value, nil
}

// normalize folds a key's spelling: letter case, underscores and hyphens
// do not count, so apiKey, api_key and API-KEY are one name.
func normalize(key string) string {
	var b strings.Builder
	for _, r := range key {
		if r == '_' || r == '-' {
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
