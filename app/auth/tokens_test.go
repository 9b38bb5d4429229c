package auth_test

import (
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"

	"byoc/app"
	"byoc/app/auth"
)

var (
	testSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")
	testNow    = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
)

const (
	testUser = "8c6f3f4e-1d2b-4c5a-9e7f-0a1b2c3d4e5f"
	testOrg  = "0b7c4a0e-8a55-4a57-9a8f-3a1b6f1e2d3c"
)

func newTokens(t *testing.T) *auth.Tokens {
	t.Helper()
	tk, err := auth.NewTokens(testSecret, auth.TokenOptions{Issuer: "https://byoc.example", Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// goodClaims are the claims of a valid token; each case below spoils one.
func goodClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"sub":    testUser,
		"org_id": testOrg,
		"role":   "authenticated",
		"aud":    "authenticated",
		"iss":    "https://byoc.example",
		"iat":    testNow.Add(-time.Minute).Unix(),
		"exp":    testNow.Add(time.Hour).Unix(),
		"email":  "a@example.com",
	}
}

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func with(change func(jwt.MapClaims)) jwt.MapClaims {
	c := goodClaims()
	change(c)
	return c
}

func TestTokensIssueAndParse(t *testing.T) {
	tk := newTokens(t)
	p := app.Principal{UserID: testUser, OrgID: testOrg, Email: "a@example.com", Role: app.RoleAdmin}
	tok, err := tk.Issue(p, 7)
	if err != nil {
		t.Fatal(err)
	}
	if want := testNow.Add(auth.DefaultTokenTTL); !tok.ExpiresAt.Equal(want) {
		t.Fatalf("ExpiresAt %v, want %v", tok.ExpiresAt, want)
	}
	c, err := tk.Parse(tok.Value)
	if err != nil {
		t.Fatal(err)
	}
	want := auth.Claims{UserID: testUser, OrgID: testOrg, Email: "a@example.com", SessionVersion: 7, ExpiresAt: tok.ExpiresAt}
	if c.UserID != want.UserID || c.OrgID != want.OrgID || c.Email != want.Email ||
		c.SessionVersion != want.SessionVersion || !c.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("Parse: %+v, want %+v", c, want)
	}

	// The body carries the Supabase-style claims the database reads.
	var raw jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok.Value, &raw); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"sub": testUser, "org_id": testOrg, "role": "authenticated", "aud": []any{"authenticated"}, "iss": "https://byoc.example"} {
		if got := raw[k]; !equalClaim(got, v) {
			t.Errorf("claim %s = %#v, want %#v", k, got, v)
		}
	}
}

func equalClaim(got, want any) bool {
	if w, ok := want.([]any); ok {
		g, ok := got.([]any)
		return ok && len(g) == len(w) && g[0] == w[0]
	}
	return got == want
}

func TestTokensParseAccepts(t *testing.T) {
	tk := newTokens(t)
	tests := []struct {
		name   string
		claims jwt.MapClaims
		org    string
	}{
		{"org_id at the top level", goodClaims(), testOrg},
		{"org_id in app_metadata", with(func(c jwt.MapClaims) {
			delete(c, "org_id")
			c["app_metadata"] = map[string]any{"org_id": testOrg, "provider": "email"}
		}), testOrg},
		{"aud as a list", with(func(c jwt.MapClaims) { c["aud"] = []string{"other", "authenticated"} }), testOrg},
		{"expired within the leeway", with(func(c jwt.MapClaims) { c["exp"] = testNow.Add(-10 * time.Second).Unix() }), testOrg},
		{"upper-case ids", with(func(c jwt.MapClaims) { c["org_id"] = strings.ToUpper(testOrg) }), testOrg},
		{"no session version, issued just under the cap ago", with(func(c jwt.MapClaims) {
			c["iat"] = testNow.Add(-auth.MaxUnversionedTokenAge + time.Second).Unix()
		}), testOrg},
		{"a session version, issued long ago, not expired", with(func(c jwt.MapClaims) {
			c["session_version"] = 3
			c["iat"] = testNow.Add(-48 * time.Hour).Unix()
			c["exp"] = testNow.Add(48 * time.Hour).Unix()
		}), testOrg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tk.Parse(sign(t, jwt.SigningMethodHS256, testSecret, tt.claims))
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if c.OrgID != tt.org || c.UserID != testUser {
				t.Fatalf("got org %q user %q", c.OrgID, c.UserID)
			}
		})
	}
}

func TestTokensParseRefuses(t *testing.T) {
	tk := newTokens(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	good := sign(t, jwt.SigningMethodHS256, testSecret, goodClaims())
	tests := []struct {
		name  string
		token string
	}{
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, goodClaims())},
		{"HS512", sign(t, jwt.SigningMethodHS512, testSecret, goodClaims())},
		{"HS384", sign(t, jwt.SigningMethodHS384, testSecret, goodClaims())},
		{"RS256 signed", sign(t, jwt.SigningMethodRS256, rsaKey, goodClaims())},
		{"other secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-enough-length-0123456789"), goodClaims())},
		{"bad signature", good[:len(good)-4] + "AAAA"},
		{"expired", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["exp"] = testNow.Add(-time.Minute).Unix() }))},
		{"no exp", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { delete(c, "exp") }))},
		{"issued in the future", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["iat"] = testNow.Add(time.Hour).Unix() }))},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["nbf"] = testNow.Add(time.Hour).Unix() }))},
		{"wrong aud", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["aud"] = "anon" }))},
		{"no aud", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { delete(c, "aud") }))},
		{"wrong iss", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }))},
		{"no iss", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { delete(c, "iss") }))},
		{"service_role token", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["role"] = "service_role" }))},
		{"anon token", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["role"] = "anon" }))},
		{"no org", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { delete(c, "org_id") }))},
		{"non-UUID org", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["org_id"] = "acme" }))},
		{"non-UUID org in app_metadata", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) {
			delete(c, "org_id")
			c["app_metadata"] = map[string]any{"org_id": "' or 1=1 --"}
		}))},
		{"non-UUID sub", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["sub"] = "admin" }))},
		{"negative session version", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["session_version"] = -1 }))},
		// Logout cannot revoke a token without a session version: it lives at
		// most MaxUnversionedTokenAge, whatever its exp says.
		{"no session version, no iat", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { delete(c, "iat") }))},
		{"no session version, issued over the cap ago", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) {
			c["iat"] = testNow.Add(-auth.MaxUnversionedTokenAge - time.Minute).Unix()
		}))},
		{"no session version, a year-long exp", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) {
			c["iat"] = testNow.Add(-180 * 24 * time.Hour).Unix()
			c["exp"] = testNow.Add(180 * 24 * time.Hour).Unix()
		}))},
		{"session version 0, issued over the cap ago", sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) {
			c["session_version"] = 0
			c["iat"] = testNow.Add(-2 * auth.MaxUnversionedTokenAge).Unix()
		}))},
		{"garbage", "not.a.token"},
		{"empty", ""},
		{"two parts", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tk.Parse(tt.token)
			if code := app.ErrorCode(err); code != app.EUnauthorized {
				t.Fatalf("code %q (%v), want %q", code, err, app.EUnauthorized)
			}
			// Every refusal reads the same, so the message leaks no parser detail.
			if msg, want := app.ErrorMessage(err), "The access token is invalid or has expired."; msg != want {
				t.Fatalf("message %q, want %q", msg, want)
			}
		})
	}
}

func TestNewTokensRefusesShortSecret(t *testing.T) {
	if _, err := auth.NewTokens([]byte("short"), auth.TokenOptions{}); err == nil {
		t.Fatal("NewTokens accepted a 5-byte secret")
	}
}

// A token Parse accepted is remembered, but only for the span in which its
// checks pass: seen again later it is refused as it would be the first time,
// and only its exact text is remembered.
func TestTokensRememberedTokensStillExpire(t *testing.T) {
	now := testNow
	tk, err := auth.NewTokens(testSecret, auth.TokenOptions{Issuer: "https://byoc.example", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	versioned, err := tk.Issue(app.Principal{UserID: testUser, OrgID: testOrg}, 3)
	if err != nil {
		t.Fatal(err)
	}
	unversioned := sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) {
		c["iat"] = testNow.Unix()
		c["exp"] = testNow.Add(48 * time.Hour).Unix()
	}))
	future := sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) {
		c["nbf"] = testNow.Add(-time.Minute).Unix()
		c["session_version"] = 1
	}))
	tests := []struct {
		name   string
		token  string
		at     time.Duration // from testNow
		accept bool
	}{
		{"versioned, first seen", versioned.Value, 0, true},
		{"versioned, seen again", versioned.Value, 30 * time.Minute, true},
		{"versioned, within the leeway after exp", versioned.Value, auth.DefaultTokenTTL + 20*time.Second, true},
		{"versioned, after exp and the leeway", versioned.Value, auth.DefaultTokenTTL + 31*time.Second, false},
		{"versioned, the clock set back before its iat", versioned.Value, -time.Minute, false},
		{"unversioned, first seen", unversioned, 0, true},
		{"unversioned, seen again", unversioned, 50 * time.Minute, true},
		{"unversioned, older than the limit", unversioned, auth.MaxUnversionedTokenAge + 31*time.Second, false},
		{"nbf, first seen", future, 0, true},
		{"nbf, the clock set back before it", future, -2 * time.Minute, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now = testNow.Add(tc.at)
			_, err := tk.Parse(tc.token)
			if tc.accept && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.accept && app.ErrorCode(err) != app.EUnauthorized {
				t.Fatalf("err = %v, want unauthorized", err)
			}
		})
	}

	now = testNow
	if _, err := tk.Parse(versioned.Value); err != nil {
		t.Fatal(err)
	}
	sig := versioned.Value[strings.LastIndexByte(versioned.Value, '.')+1:]
	flipped := []byte(sig)
	flipped[len(flipped)/2] ^= 1
	for name, bad := range map[string]string{
		"signature changed": strings.TrimSuffix(versioned.Value, sig) + string(flipped),
		"signature removed": strings.TrimSuffix(versioned.Value, sig),
		"another secret": sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef-0123456789"),
			with(func(c jwt.MapClaims) { c["session_version"] = 3; c["iss"] = "https://byoc.example" })),
	} {
		if _, err := tk.Parse(bad); app.ErrorCode(err) != app.EUnauthorized {
			t.Errorf("%s: err = %v, want unauthorized", name, err)
		}
	}
}

// A token handed to Parse may share memory that its caller reuses (the
// HTTP server's request buffer): the next token in that memory must never
// be answered with the claims remembered for the previous one.
func TestTokensParseOwnsItsKeys(t *testing.T) {
	tk := newTokens(t)
	a, err := tk.Issue(app.Principal{UserID: "11111111-1111-4111-8111-111111111111", OrgID: testOrg}, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tk.Issue(app.Principal{UserID: "22222222-2222-4222-8222-222222222222", OrgID: testOrg}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Value) != len(b.Value) {
		t.Fatalf("tokens of %d and %d bytes", len(a.Value), len(b.Value))
	}
	buf := []byte(a.Value)
	if c, err := tk.Parse(unsafe.String(&buf[0], len(buf))); err != nil || c.UserID != "11111111-1111-4111-8111-111111111111" {
		t.Fatalf("first token: %+v, %v", c, err)
	}
	copy(buf, b.Value)
	c, err := tk.Parse(unsafe.String(&buf[0], len(buf)))
	if err != nil || c.UserID != "22222222-2222-4222-8222-222222222222" {
		t.Fatalf("the second token in the same memory parsed as %+v, %v", c, err)
	}
}
