package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func lookup(m map[string]string) Lookup {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

const key64 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

func TestDevelopmentGeneratesSecretsOnceAndKeepsThem(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"DATA_DIR": dir, "DATABASE_URL": "postgres://x@127.0.0.1:5/db"}
	first, err := Load(lookup(env))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(first.Generated, ","); got != "ENCRYPTION_KEY,JWT_SECRET,SESSION_SECRET" {
		t.Fatalf("Generated = %q", got)
	}
	if len(first.EncryptionKey.Reveal()) != 64 {
		t.Fatalf("generated encryption key has %d characters", len(first.EncryptionKey.Reveal()))
	}
	info, err := os.Stat(filepath.Join(dir, "dev-secrets.env"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("dev-secrets.env mode %v, want 0600", info.Mode().Perm())
	}
	second, err := Load(lookup(env))
	if err != nil {
		t.Fatal(err)
	}
	if second.EncryptionKey.Reveal() != first.EncryptionKey.Reveal() ||
		second.JWTSecret.Reveal() != first.JWTSecret.Reveal() ||
		second.SessionSecret.Reveal() != first.SessionSecret.Reveal() {
		t.Fatal("a restart must reuse the generated development secrets")
	}
	if first.ShutdownDrain != 0 || first.Port != 3000 || first.PublicURL != "http://localhost:3000" || first.ProviderTimeout.String() != "10s" ||
		first.URLs.Vapi != "https://api.vapi.ai" || first.Google.CallbackURL != "http://localhost:3000/api/auth/google-calendar/callback" {
		t.Fatalf("defaults: %+v", first)
	}
}

func TestRefusedStartListsEveryProblem(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{
			name: "production without secrets",
			env:  map[string]string{"APP_ENV": "production", "PUBLIC_URL": "https://byoc.example", "DATA_DIR": t.TempDir()},
			want: []string{"DATABASE_URL", "ENCRYPTION_KEY", "JWT_SECRET", "SESSION_SECRET"},
		},
		{
			name: "production with a plain-http provider",
			env: map[string]string{"APP_ENV": "production", "PUBLIC_URL": "https://byoc.example", "DATA_DIR": t.TempDir(),
				"DATABASE_URL": "postgres://u@db/byoc", "ENCRYPTION_KEY": key64, "JWT_SECRET": strings.Repeat("j", 32),
				"SESSION_SECRET": strings.Repeat("s", 32), "TWILIO_BASE_URL": "http://api.twilio.com"},
			want: []string{"TWILIO_BASE_URL must be an https:// URL in production"},
		},
		{
			name: "invalid values",
			env: map[string]string{
				"DATA_DIR": t.TempDir(), "DATABASE_URL": "mysql://x", "ENCRYPTION_KEY": key64[:63],
				"PORT": "seventy", "PROVIDER_TIMEOUT": "soon", "VAPI_BASE_URL": "not a url",
				"ENCRYPTION_KEYS_PREVIOUS": key64 + ",zz", "APP_ENV": "staging", "GOOGLE_CLIENT_ID": "id-only",
				"WEBHOOK_DEBUG": "verbose", "TRUSTED_PROXIES": "10.0.0.0/8, proxy.internal",
				"SHUTDOWN_DRAIN": "-1s",
			},
			want: []string{"DATABASE_URL", "ENCRYPTION_KEY must be exactly 64 hex", "PORT", "PROVIDER_TIMEOUT",
				"VAPI_BASE_URL", "ENCRYPTION_KEYS_PREVIOUS item 2", "APP_ENV", "GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET",
				"WEBHOOK_DEBUG", "TRUSTED_PROXIES item \"proxy.internal\"", "SHUTDOWN_DRAIN"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(lookup(tt.env))
			if err == nil {
				t.Fatal("Load accepted an invalid configuration")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), key64[:63]) {
				t.Error("the error quotes a key")
			}
		})
	}
}

func TestProductionAcceptsCompleteConfiguration(t *testing.T) {
	c, err := Load(lookup(map[string]string{
		"APP_ENV": "production", "PUBLIC_URL": "https://byoc.example/", "DATABASE_URL": "postgres://u:p@db/byoc",
		"ENCRYPTION_KEY": key64, "JWT_SECRET": strings.Repeat("j", 32), "SESSION_SECRET": strings.Repeat("s", 32),
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Production() || c.PublicURL != "https://byoc.example" || len(c.Generated) != 0 {
		t.Fatalf("got %+v", c)
	}
	if s := strings.Join([]string{c.DatabaseURL.String(), c.EncryptionKey.String()}, " "); strings.Contains(s, "p@db") || strings.Contains(s, key64) {
		t.Fatal("secrets print themselves")
	}
}

func TestPublicURLFollowsThePort(t *testing.T) {
	c, err := Load(lookup(map[string]string{"DATA_DIR": t.TempDir(), "DATABASE_URL": "postgres://x@127.0.0.1:5/db", "PORT": "3011"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.PublicURL != "http://localhost:3011" || c.Google.CallbackURL != "http://localhost:3011/api/auth/google-calendar/callback" {
		t.Fatalf("PublicURL %q, callback %q", c.PublicURL, c.Google.CallbackURL)
	}
}

func TestEnvironmentWinsOverDotenvFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".env.local")
	content := "# local settings\nexport PORT=4000\nLOG_LEVEL='debug'\nPUBLIC_URL=\"http://127.0.0.1:4000\"\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PORT", "5000")
	get, err := FromEnvironment(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"PORT": "5000", "LOG_LEVEL": "debug", "PUBLIC_URL": "http://127.0.0.1:4000"} {
		if got, _ := get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if err := os.WriteFile(path, []byte("this is not an assignment\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := FromEnvironment(path); err == nil {
		t.Error("a malformed .env.local was accepted")
	}
}

func TestAttemptLimits(t *testing.T) {
	base := func() map[string]string {
		return map[string]string{"DATA_DIR": t.TempDir(), "DATABASE_URL": "postgres://x@127.0.0.1:5/db"}
	}
	t.Run("defaults", func(t *testing.T) {
		c, err := Load(lookup(base()))
		if err != nil {
			t.Fatal(err)
		}
		want := Limits{AttemptsPerIP: 30, AttemptsPerEmail: 10, AttemptWindow: time.Minute, ProviderCallsPerOrg: 20, ProviderCallsPerIP: 60}
		if c.Limits != want {
			t.Fatalf("Limits = %+v, want %+v", c.Limits, want)
		}
	})
	t.Run("set", func(t *testing.T) {
		env := base()
		env["AUTH_ATTEMPTS_PER_IP"], env["AUTH_ATTEMPTS_PER_EMAIL"], env["AUTH_ATTEMPT_WINDOW"] = "300", "5", "90s"
		env["PROVIDER_CALLS_PER_ORG"], env["PROVIDER_CALLS_PER_IP"] = "7", "70"
		c, err := Load(lookup(env))
		if err != nil {
			t.Fatal(err)
		}
		want := Limits{AttemptsPerIP: 300, AttemptsPerEmail: 5, AttemptWindow: 90 * time.Second, ProviderCallsPerOrg: 7, ProviderCallsPerIP: 70}
		if c.Limits != want {
			t.Fatalf("Limits = %+v, want %+v", c.Limits, want)
		}
	})
	t.Run("refused", func(t *testing.T) {
		env := base()
		env["AUTH_ATTEMPTS_PER_IP"], env["AUTH_ATTEMPTS_PER_EMAIL"], env["AUTH_ATTEMPT_WINDOW"] = "0", "ten", "100ms"
		env["PROVIDER_CALLS_PER_ORG"], env["PROVIDER_CALLS_PER_IP"] = "-1", "2000000"
		_, err := Load(lookup(env))
		if err == nil {
			t.Fatal("Load accepted invalid limits")
		}
		for _, name := range []string{"AUTH_ATTEMPTS_PER_IP", "AUTH_ATTEMPTS_PER_EMAIL", "AUTH_ATTEMPT_WINDOW",
			"PROVIDER_CALLS_PER_ORG", "PROVIDER_CALLS_PER_IP"} {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error does not name %s:\n%v", name, err)
			}
		}
	})
}

func TestLegacyEncryptionKey(t *testing.T) {
	base := map[string]string{"DATA_DIR": t.TempDir(), "DATABASE_URL": "postgres://u@db/byoc", "ENCRYPTION_KEY": key64}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for k, v := range base {
			m[k] = v
		}
		return m
	}
	t.Run("defaults to ENCRYPTION_KEY", func(t *testing.T) {
		c, err := Load(lookup(base))
		if err != nil {
			t.Fatal(err)
		}
		if c.LegacyEncryptionKey.Reveal() != key64 {
			t.Fatal("LEGACY_ENCRYPTION_KEY unset is not ENCRYPTION_KEY")
		}
	})
	t.Run("its own", func(t *testing.T) {
		other := strings.Repeat("ab", 32)
		c, err := Load(lookup(with("LEGACY_ENCRYPTION_KEY", other)))
		if err != nil {
			t.Fatal(err)
		}
		if c.LegacyEncryptionKey.Reveal() != other || c.EncryptionKey.Reveal() != key64 {
			t.Fatal("LEGACY_ENCRYPTION_KEY not kept apart from ENCRYPTION_KEY")
		}
	})
	t.Run("refused when not 64 hex", func(t *testing.T) {
		bad := strings.Repeat("zz", 32)
		_, err := Load(lookup(with("LEGACY_ENCRYPTION_KEY", bad)))
		if err == nil || !strings.Contains(err.Error(), "LEGACY_ENCRYPTION_KEY must be exactly 64 hex") {
			t.Fatalf("got %v", err)
		}
		if strings.Contains(err.Error(), bad) {
			t.Fatal("the error quotes the key")
		}
	})
}

func TestPlatformMail(t *testing.T) {
	base := map[string]string{"DATABASE_URL": "postgres://localhost/byoc", "DATA_DIR": t.TempDir()}
	load := func(extra map[string]string) (*Config, error) {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for k, v := range extra {
			env[k] = v
		}
		return Load(func(name string) (string, bool) { v, ok := env[name]; return v, ok })
	}
	c, err := load(map[string]string{"MAIL_RESEND_API_KEY": "re_platform", "MAIL_FROM": "BYOC <noreply@example.com>"})
	if err != nil || !c.Mail.Configured() || c.Mail.ResendAPIKey.Reveal() != "re_platform" {
		t.Fatalf("both set: %+v %v", c, err)
	}
	if c, err := load(nil); err != nil || c.Mail.Configured() {
		t.Fatalf("neither set: %v", err)
	}
	for _, bad := range []map[string]string{{"MAIL_RESEND_API_KEY": "re_x"}, {"MAIL_FROM": "a@example.com"},
		{"MAIL_RESEND_API_KEY": "re_x", "MAIL_FROM": "not an address"}} {
		_, err := load(bad)
		if err == nil || !strings.Contains(err.Error(), "MAIL_") || strings.Contains(err.Error(), "re_x") {
			t.Fatalf("%v: %v", bad, err)
		}
	}
}
