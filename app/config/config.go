// Package config loads BYOC's configuration from the environment (and an
// optional .env.local file) into one typed, validated struct. Load either
// returns a complete Config or an error naming every missing or invalid
// variable at once; it never returns a half-valid Config.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"byoc/app"
	"byoc/app/paths"
)

// Env is the deployment mode.
type Env string

// Deployment modes. Development generates missing secrets; production refuses
// to start without them.
const (
	Development Env = "development"
	Production  Env = "production"
)

// Config is the whole configuration of a BYOC process. Secret values are
// app.Secret so that logging the Config never leaks them.
type Config struct {
	Env       Env
	Port      int
	PublicURL string
	// DatabaseURL may carry a password: it is a Secret.
	DatabaseURL app.Secret
	// DataDir holds development-only state (generated secrets, the private
	// PostgreSQL cluster).
	DataDir  string
	LogLevel slog.Level

	// EncryptionKey (64 hex characters) encrypts stored credentials;
	// EncryptionKeysPrevious (comma-separated) only decrypt.
	EncryptionKey          app.Secret
	EncryptionKeysPrevious app.Secret
	JWTSecret              app.Secret
	SessionSecret          app.Secret
	// LegacyEncryptionKey (64 hex characters) decrypts the old platform's
	// stored configs for `byoc backfill-legacy`; EncryptionKey when unset.
	LegacyEncryptionKey app.Secret
	// OpsToken enables the operator routes; empty means they are off.
	OpsToken app.Secret
	// VapiWebhookSecret verifies webhooks of orgs that set no secret of their own.
	VapiWebhookSecret app.Secret
	// WebhookDebug adds which webhook check failed to the server log.
	WebhookDebug bool
	// TrustedProxies are the reverse proxies (IPs or CIDR ranges) whose
	// X-Forwarded-For names the client; empty means the peer is the client.
	TrustedProxies []string

	// Limits are the attempt limits of sign-in, signup and provider calls.
	Limits Limits

	// Mail is the platform's own e-mail sender (invitations, password
	// resets).
	Mail Mail

	Google          GoogleOAuth
	ProviderTimeout time.Duration
	URLs            ProviderURLs

	// ShutdownDrain is how long a stopping server keeps serving while its
	// /readyz already answers 503, so that a load balancer takes it out of
	// rotation before it stops accepting connections (SHUTDOWN_DRAIN).
	ShutdownDrain time.Duration

	// WebhookSecretGrace is how long an org's Vapi webhook secret keeps
	// verifying webhooks after a rotation replaced it
	// (WEBHOOK_SECRET_GRACE).
	WebhookSecretGrace time.Duration
	// ReverifyInterval is how often every stored connection is checked
	// again with its provider in the background (REVERIFY_INTERVAL); 0
	// turns the checks off.
	ReverifyInterval time.Duration

	// Generated lists the secrets made up for this development setup (and
	// kept in DataDir); main warns about them.
	Generated []string
}

// Limits are the attempt limits, counted across every instance on the
// database: failed sign-ins per client address (AUTH_ATTEMPTS_PER_IP, which
// also caps signups per address, counted apart) and per e-mail from one
// address (AUTH_ATTEMPTS_PER_EMAIL) within AttemptWindow
// (AUTH_ATTEMPT_WINDOW), and provider calls per org and per address within
// a minute (PROVIDER_CALLS_PER_ORG, PROVIDER_CALLS_PER_IP). Load fills every
// field; a zero field means the web server's default.
type Limits struct {
	AttemptsPerIP       int
	AttemptsPerEmail    int
	AttemptWindow       time.Duration
	ProviderCallsPerOrg int
	ProviderCallsPerIP  int
}

// Mail is the platform's Resend account, which sends BYOC's own e-mail:
// MAIL_RESEND_API_KEY and MAIL_FROM (an address on a domain verified at
// Resend), both or neither. Never an org's credentials.
type Mail struct {
	ResendAPIKey app.Secret
	From         string
}

// Configured reports whether both the key and the sender are set.
func (m Mail) Configured() bool { return !m.ResendAPIKey.IsZero() && m.From != "" }

// GoogleOAuth is the server's own OAuth client at Google. Configured reports
// whether the Google Calendar connect flow can be offered.
type GoogleOAuth struct {
	ClientID     string
	ClientSecret app.Secret
	CallbackURL  string
}

// Configured reports whether both the client id and secret are set.
func (g GoogleOAuth) Configured() bool { return g.ClientID != "" && !g.ClientSecret.IsZero() }

// ProviderURLs are the base URLs of every provider API. Each defaults to the
// real provider; tests and the sandbox point them at local stand-ins.
type ProviderURLs struct {
	Vapi, VapiEU, Twilio, Resend, ElevenLabs              string
	GoogleAuth, GoogleToken, GoogleRevoke, GoogleCalendar string
}

// Production reports whether the process runs in production mode.
func (c *Config) Production() bool { return c.Env == Production }

// Addr is the listen address for the HTTP server.
func (c *Config) Addr() string { return ":" + strconv.Itoa(c.Port) }

// Error lists every problem found by Load, one per line.
type Error struct{ Problems []string }

func (e *Error) Error() string {
	return "configuration refused:\n  - " + strings.Join(e.Problems, "\n  - ")
}

// Lookup reads one variable, like os.LookupEnv.
type Lookup func(name string) (string, bool)

// FromEnvironment returns a Lookup that reads the process environment first
// and then the KEY=VALUE lines of dotenvPath (if that file exists), so the
// environment wins.
func FromEnvironment(dotenvPath string) (Lookup, error) {
	file := map[string]string{}
	if raw, err := os.ReadFile(dotenvPath); err == nil {
		file, err = parseDotenv(string(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dotenvPath, err)
		}
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	return func(name string) (string, bool) {
		if v, ok := os.LookupEnv(name); ok {
			return v, true
		}
		v, ok := file[name]
		return v, ok
	}, nil
}

var hex64 = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// Load reads and validates every variable. In development, missing
// ENCRYPTION_KEY, JWT_SECRET and SESSION_SECRET are generated once and kept
// in DataDir/dev-secrets.env (mode 0600) so a restart can still decrypt what
// was stored; in production each of them is required. The returned error is
// an *Error listing every problem by variable name.
func Load(get Lookup) (*Config, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	str := func(name, def string) string {
		if v, ok := get(name); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}

	c := &Config{}
	switch env := str("APP_ENV", "development"); env {
	case "development", "production":
		c.Env = Env(env)
	default:
		bad("APP_ENV must be development or production (got %q)", clip(env))
		c.Env = Production // judge the rest as strictly as production would
	}

	port, err := strconv.Atoi(str("PORT", "3000"))
	if err != nil || port < 1 || port > 65535 {
		bad("PORT must be a TCP port number (1-65535)")
	}
	c.Port = port

	c.PublicURL = strings.TrimRight(str("PUBLIC_URL", "http://localhost:"+strconv.Itoa(c.Port)), "/")
	if err := checkURL(c.PublicURL); err != nil {
		bad("PUBLIC_URL %v", err)
	} else if c.Production() && !strings.HasPrefix(c.PublicURL, "https://") {
		bad("PUBLIC_URL must be an https:// URL in production (cookies are Secure and Google requires https callbacks)")
	}

	c.DataDir = str("DATA_DIR", ".data")
	if dbURL := str("DATABASE_URL", ""); dbURL == "" {
		bad("DATABASE_URL is required (make run and make test start a private PostgreSQL and set it for you)")
	} else if u, err := url.Parse(dbURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		bad("DATABASE_URL must be a postgres:// connection URL")
	} else {
		c.DatabaseURL = app.NewSecret(dbURL)
	}

	if err := c.LogLevel.UnmarshalText([]byte(str("LOG_LEVEL", "info"))); err != nil {
		bad("LOG_LEVEL must be debug, info, warn or error")
	}

	c.ProviderTimeout, err = time.ParseDuration(str("PROVIDER_TIMEOUT", "10s"))
	if err != nil || c.ProviderTimeout <= 0 || c.ProviderTimeout > 2*time.Minute {
		bad("PROVIDER_TIMEOUT must be a Go duration between 1ms and 2m, such as 10s")
	}

	c.ShutdownDrain, err = time.ParseDuration(str("SHUTDOWN_DRAIN", "0s"))
	if err != nil || c.ShutdownDrain < 0 || c.ShutdownDrain > time.Minute {
		bad("SHUTDOWN_DRAIN must be a Go duration between 0s and 1m, such as 3s")
	}

	c.WebhookSecretGrace, err = time.ParseDuration(str("WEBHOOK_SECRET_GRACE", "24h"))
	if err != nil || c.WebhookSecretGrace < time.Second || c.WebhookSecretGrace > 7*24*time.Hour {
		bad("WEBHOOK_SECRET_GRACE must be a Go duration between 1s and 168h, such as 24h")
	}
	c.ReverifyInterval, err = time.ParseDuration(str("REVERIFY_INTERVAL", "24h"))
	if err != nil || c.ReverifyInterval < 0 || (c.ReverifyInterval > 0 && c.ReverifyInterval < time.Minute) ||
		c.ReverifyInterval > 90*24*time.Hour {
		bad("REVERIFY_INTERVAL must be 0 (off) or a Go duration between 1m and 2160h, such as 24h")
	}

	count := func(name string, def int) int {
		n, err := strconv.Atoi(str(name, strconv.Itoa(def)))
		if err != nil || n < 1 || n > 1_000_000 {
			bad("%s must be a whole number from 1 to 1000000", name)
		}
		return n
	}
	c.Limits.AttemptsPerIP = count("AUTH_ATTEMPTS_PER_IP", 30)
	c.Limits.AttemptsPerEmail = count("AUTH_ATTEMPTS_PER_EMAIL", 10)
	c.Limits.ProviderCallsPerOrg = count("PROVIDER_CALLS_PER_ORG", 20)
	c.Limits.ProviderCallsPerIP = count("PROVIDER_CALLS_PER_IP", 60)
	c.Limits.AttemptWindow, err = time.ParseDuration(str("AUTH_ATTEMPT_WINDOW", "1m"))
	if err != nil || c.Limits.AttemptWindow < time.Second || c.Limits.AttemptWindow > 24*time.Hour {
		bad("AUTH_ATTEMPT_WINDOW must be a Go duration between 1s and 24h, such as 1m")
	}

	// Secrets: generated in development when missing, required in production.
	var dev map[string]string
	devPath := filepath.Join(c.DataDir, "dev-secrets.env")
	secret := func(name string, valid func(string) bool, rule string) app.Secret {
		v := str(name, "")
		if v == "" {
			if c.Production() {
				bad("%s is required in production (%s)", name, rule)
				return app.Secret{}
			}
			if dev == nil {
				dev, err = loadDevSecrets(devPath)
				if err != nil {
					bad("%s is missing and the development secrets file could not be read: %v", name, err)
					return app.Secret{}
				}
			}
			if v = dev[name]; v == "" || !valid(v) {
				v = randomHex(32)
				dev[name] = v
			}
			c.Generated = append(c.Generated, name)
		}
		if !valid(v) {
			bad("%s must be %s", name, rule)
			return app.Secret{}
		}
		return app.NewSecret(v)
	}
	c.EncryptionKey = secret("ENCRYPTION_KEY", hex64.MatchString, "exactly 64 hex characters (32 bytes)")
	c.JWTSecret = secret("JWT_SECRET", minLen(32), "at least 32 characters")
	c.SessionSecret = secret("SESSION_SECRET", minLen(32), "at least 32 characters")
	if len(c.Generated) > 0 && dev != nil {
		if err := saveDevSecrets(devPath, dev); err != nil {
			bad("could not keep the generated development secrets in %s: %v", devPath, err)
		}
	}

	prev := str("ENCRYPTION_KEYS_PREVIOUS", "")
	for i, k := range strings.Split(prev, ",") {
		if k = strings.TrimSpace(k); prev != "" && !hex64.MatchString(k) {
			bad("ENCRYPTION_KEYS_PREVIOUS item %d must be exactly 64 hex characters", i+1)
		}
	}
	c.EncryptionKeysPrevious = app.NewSecret(prev)

	c.LegacyEncryptionKey = app.NewSecret(str("LEGACY_ENCRYPTION_KEY", ""))
	switch k := c.LegacyEncryptionKey.Reveal(); {
	case k == "":
		c.LegacyEncryptionKey = c.EncryptionKey
	case !hex64.MatchString(k):
		bad("LEGACY_ENCRYPTION_KEY must be exactly 64 hex characters (32 bytes)")
	}

	c.OpsToken = app.NewSecret(str("OPS_TOKEN", ""))
	if t := c.OpsToken.Reveal(); t != "" && len(t) < 16 {
		bad("OPS_TOKEN must be at least 16 characters when set")
	}
	c.VapiWebhookSecret = app.NewSecret(str("VAPI_WEBHOOK_SECRET", ""))
	switch v := str("WEBHOOK_DEBUG", "0"); v {
	case "0", "false":
	case "1", "true":
		c.WebhookDebug = true
	default:
		bad("WEBHOOK_DEBUG must be 1 or 0")
	}

	for _, p := range strings.Split(str("TRUSTED_PROXIES", ""), ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if net.ParseIP(p) == nil {
			if _, _, err := net.ParseCIDR(p); err != nil {
				bad("TRUSTED_PROXIES item %q must be an IP address or a CIDR range", clip(p))
				continue
			}
		}
		c.TrustedProxies = append(c.TrustedProxies, p)
	}

	c.Google = GoogleOAuth{
		ClientID:     str("GOOGLE_CLIENT_ID", ""),
		ClientSecret: app.NewSecret(str("GOOGLE_CLIENT_SECRET", "")),
		CallbackURL:  str("GOOGLE_CALLBACK_URL", c.PublicURL+paths.GoogleCallback),
	}
	if (c.Google.ClientID == "") != c.Google.ClientSecret.IsZero() {
		bad("GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET must be set together")
	}

	c.Mail = Mail{ResendAPIKey: app.NewSecret(str("MAIL_RESEND_API_KEY", "")), From: str("MAIL_FROM", "")}
	if c.Mail.ResendAPIKey.IsZero() != (c.Mail.From == "") {
		bad("MAIL_RESEND_API_KEY and MAIL_FROM must be set together")
	}
	if c.Mail.From != "" {
		if _, err := mail.ParseAddress(c.Mail.From); err != nil {
			bad("MAIL_FROM must be an e-mail address such as BYOC <noreply@example.com>")
		}
	}

	urls := []struct {
		name, def string
		dst       *string
	}{
		{"VAPI_BASE_URL", "https://api.vapi.ai", &c.URLs.Vapi},
		{"VAPI_EU_BASE_URL", "https://api.eu.vapi.ai", &c.URLs.VapiEU},
		{"TWILIO_BASE_URL", "https://api.twilio.com", &c.URLs.Twilio},
		{"RESEND_BASE_URL", "https://api.resend.com", &c.URLs.Resend},
		{"ELEVENLABS_BASE_URL", "https://api.elevenlabs.io", &c.URLs.ElevenLabs},
		{"GOOGLE_AUTH_URL", "https://accounts.google.com/o/oauth2/v2/auth", &c.URLs.GoogleAuth},
		{"GOOGLE_TOKEN_URL", "https://oauth2.googleapis.com/token", &c.URLs.GoogleToken},
		{"GOOGLE_REVOKE_URL", "https://oauth2.googleapis.com/revoke", &c.URLs.GoogleRevoke},
		{"GOOGLE_CALENDAR_BASE_URL", "https://www.googleapis.com/calendar/v3", &c.URLs.GoogleCalendar},
		{"GOOGLE_CALLBACK_URL", c.Google.CallbackURL, &c.Google.CallbackURL},
	}
	for _, u := range urls {
		*u.dst = strings.TrimRight(str(u.name, u.def), "/")
		if err := checkURL(*u.dst); err != nil {
			bad("%s %v", u.name, err)
		} else if c.Production() && !strings.HasPrefix(*u.dst, "https://") {
			// Keys and tokens travel to these addresses.
			bad("%s must be an https:// URL in production", u.name)
		}
	}

	if len(problems) > 0 {
		return nil, &Error{Problems: problems}
	}
	return c, nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("must be an absolute http(s) URL")
	}
	return nil
}

func minLen(n int) func(string) bool { return func(s string) bool { return len(s) >= n } }

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

// clip shortens a user-supplied value quoted in a message.
func clip(s string) string {
	if len(s) > 20 {
		return s[:20] + "…"
	}
	return s
}

func loadDevSecrets(path string) (map[string]string, error) {
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	return parseDotenv(string(raw))
}

func saveDevSecrets(path string, m map[string]string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("# Development secrets generated by BYOC. Keep this file: the encryption key\n# decrypts the credentials stored in the development database.\n")
	for _, k := range []string{"ENCRYPTION_KEY", "JWT_SECRET", "SESSION_SECRET"} {
		if v, ok := m[k]; ok {
			fmt.Fprintf(&b, "%s=%s\n", k, v)
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// parseDotenv reads KEY=VALUE lines; blank lines and # comments are
// skipped, an optional "export " prefix is allowed, and a value may be
// wrapped in single or double quotes.
func parseDotenv(s string) (map[string]string, error) {
	out := map[string]string{}
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("line %d: expected KEY=VALUE", i+1)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		out[k] = v
	}
	return out, nil
}
