// Package systemtest gives tests the configuration system.Build takes, for
// a server whose providers are the stand-ins of app/sandbox. Import it only
// from _test.go files.
package systemtest

import (
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/config"
	"byoc/app/sandbox"
)

// PublicURL is the public address of the configured server.
const PublicURL = "https://byoc.example.com"

// GoogleCallbackURL is the Google callback registered for the configured
// server.
const GoogleCallbackURL = PublicURL + "/api/auth/google-calendar/callback"

// Config returns a development configuration with fresh random keys and
// secrets, PublicURL, a one-second provider timeout and every provider URL
// pointing at urls (a sandbox's BaseURLs). Google is not configured: see
// WithGoogle.
func Config(t testing.TB, urls sandbox.URLs) *config.Config {
	t.Helper()
	cfg := &config.Config{
		Env:             config.Development,
		PublicURL:       PublicURL,
		EncryptionKey:   app.NewSecret(randomHex(t, 32)),
		JWTSecret:       app.NewSecret(randomHex(t, 32)),
		SessionSecret:   app.NewSecret(randomHex(t, 32)),
		ProviderTimeout: time.Second,
		Google:          config.GoogleOAuth{CallbackURL: GoogleCallbackURL},
	}
	cfg.URLs.Vapi, cfg.URLs.VapiEU, cfg.URLs.Twilio = urls.Vapi, urls.VapiEU, urls.Twilio
	cfg.URLs.Resend, cfg.URLs.ElevenLabs = urls.Resend, urls.ElevenLabs
	return cfg
}

// WithGoogle points cfg's Google client and URLs at a Google stand-in
// served at base, registered with cfg's callback URL.
func WithGoogle(cfg *config.Config, g *sandbox.Google, base string) {
	id, secret := g.Client()
	cfg.Google.ClientID, cfg.Google.ClientSecret = id, app.NewSecret(secret)
	u := g.URLs(base)
	cfg.URLs.GoogleAuth, cfg.URLs.GoogleToken, cfg.URLs.GoogleRevoke, cfg.URLs.GoogleCalendar = u.Auth, u.Token, u.Revoke, u.Calendar
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
