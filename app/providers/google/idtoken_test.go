package google

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"byoc/app"
)

func jwt(claims map[string]any) string {
	payload, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"k"}`)) + "." +
		base64.RawURLEncoding.EncodeToString(payload) + ".c2lnbmF0dXJl"
}

func TestEmailFromIDToken(t *testing.T) {
	o := NewOAuth(OAuthConfig{
		ClientID: "client-1", ClientSecret: app.NewSecret("s"),
		AuthURL: "http://127.0.0.1:4000/google/o/oauth2/v2/auth", TokenURL: "http://localhost:4001/google/token",
	})
	base := func(change map[string]any) string {
		c := map[string]any{"iss": "https://accounts.google.com", "aud": "client-1", "sub": "1", "email": "a@example.com", "email_verified": true}
		for k, v := range change {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return jwt(c)
	}
	tests := []struct {
		name    string
		token   string
		wantErr string // "" accepts
	}{
		{"google issuer", base(nil), ""},
		{"google issuer without scheme", base(map[string]any{"iss": "accounts.google.com"}), ""},
		{"the auth endpoint's origin", base(map[string]any{"iss": "http://127.0.0.1:4000"}), ""},
		{"the token endpoint's origin", base(map[string]any{"iss": "http://localhost:4001"}), ""},
		{"audience list", base(map[string]any{"aud": []string{"other", "client-1"}}), ""},
		{"email_verified absent", base(map[string]any{"email_verified": nil}), ""},
		{"email_verified as a string", base(map[string]any{"email_verified": "true"}), ""},
		{"other issuer", base(map[string]any{"iss": "https://evil.example"}), "did not say which account"},
		{"auth endpoint with another port", base(map[string]any{"iss": "http://127.0.0.1:4002"}), "did not say which account"},
		{"other audience", base(map[string]any{"aud": "client-2"}), "did not say which account"},
		{"no audience", base(map[string]any{"aud": nil}), "did not say which account"},
		{"email not verified", base(map[string]any{"email_verified": false}), "not verified"},
		{"email not verified as a string", base(map[string]any{"email_verified": "false"}), "not verified"},
		{"no email", base(map[string]any{"email": nil}), "did not say which account"},
		{"email with a name", base(map[string]any{"email": "A <a@example.com>"}), "did not say which account"},
		{"not a JWT", "abc", "did not say which account"},
		{"payload not base64", "a.%%%.c", "did not say which account"},
		{"payload not JSON", "a." + base64.RawURLEncoding.EncodeToString([]byte("nope")) + ".c", "did not say which account"},
		{"missing", "", "did not say which account"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			email, err := o.EmailFromIDToken(tt.token)
			if tt.wantErr == "" {
				if err != nil || email != "a@example.com" {
					t.Fatalf("= %q, %v; want a@example.com", email, err)
				}
				return
			}
			if app.ErrorCode(err) != app.EVerificationFailed || !strings.Contains(app.ErrorMessage(err), tt.wantErr) {
				t.Fatalf("= %q, %v; want %s containing %q", email, err, app.EVerificationFailed, tt.wantErr)
			}
		})
	}
}

func TestOAuthDoesNotPrintItsSecret(t *testing.T) {
	o := NewOAuth(OAuthConfig{ClientID: "client-1", ClientSecret: app.NewSecret("very-secret-value")})
	cfg := OAuthConfig{ClientID: "client-1", ClientSecret: app.NewSecret("very-secret-value")}
	if s := fmt.Sprintf("%v %+v %#v %#v %+v", o, o, o, cfg, cfg); strings.Contains(s, "very-secret-value") {
		t.Fatalf("%q shows the client secret", s)
	}
}
