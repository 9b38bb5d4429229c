package google

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"

	"byoc/app"
)

// idClaims are the fields of an id_token the connect flow reads.
type idClaims struct {
	Issuer        string    `json:"iss"`
	Audience      audience  `json:"aud"`
	Email         string    `json:"email"`
	EmailVerified *flexBool `json:"email_verified"`
}

// audience is a JWT "aud": one string or a list.
type audience []string

// UnmarshalJSON accepts a string or a list of strings.
func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud is neither a string nor a list of strings")
	}
	*a = many
	return nil
}

// flexBool is a boolean claim that some issuers send as "true"/"false".
type flexBool bool

// UnmarshalJSON accepts a boolean or the strings "true" and "false".
func (f *flexBool) UnmarshalJSON(b []byte) error {
	var v bool
	if err := json.Unmarshal(b, &v); err == nil {
		*f = flexBool(v)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("email_verified is neither a boolean nor a string")
	}
	*f = flexBool(strings.EqualFold(s, "true"))
	return nil
}

// EmailFromIDToken returns the verified email address in the id_token that
// came with a token response.
//
// The signature is not checked: the token was received directly from the
// token endpoint, over TLS, in answer to this server's own authenticated
// request, which is what OpenID Connect Core 3.1.3.7 accepts in place of a
// signature check (Google's documentation says the same). The claims are
// still checked: aud must contain this client's id, and iss must be
// Google's issuer ("https://accounts.google.com" or "accounts.google.com")
// or the origin (scheme://host) of the configured authorization or token
// endpoint, which is what a local stand-in issues; for the real endpoints
// those origins add nothing Google would not already be trusted for. The
// email must be present and well formed, and email_verified, when present,
// must be true. Expiry is not checked: the token is seconds old.
func (o *OAuth) EmailFromIDToken(raw string) (string, error) {
	refused := func(cause string) error {
		return &app.Error{Code: app.EVerificationFailed, Cause: errors.New("google id_token: " + cause),
			Message: "Google's answer did not say which account was connected. Click Connect to start again."}
	}
	if raw == "" {
		return "", refused("missing from the token response")
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", refused(fmt.Sprintf("%d parts, want 3", len(parts)))
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", refused("payload is not base64url")
	}
	var c idClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", refused("payload is not the expected JSON")
	}
	switch {
	case !slices.Contains(c.Audience, o.conf.ClientID):
		return "", refused("aud does not contain this client's id")
	case !slices.Contains(o.issuers, c.Issuer):
		return "", refused(fmt.Sprintf("issuer %q is not accepted", clip(c.Issuer, 80)))
	case c.EmailVerified != nil && !bool(*c.EmailVerified):
		return "", &app.Error{Code: app.EVerificationFailed, Cause: errors.New("google id_token: email_verified is false"),
			Message: "Google says the account's email address is not verified. Verify it with Google, then connect again."}
	}
	addr, err := mail.ParseAddress(c.Email)
	if err != nil || addr.Name != "" || addr.Address != c.Email || len(c.Email) > 254 {
		return "", refused("email is missing or malformed")
	}
	return c.Email, nil
}

// clip shortens s to at most n runes.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
