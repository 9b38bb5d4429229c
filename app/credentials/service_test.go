package credentials_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/credentials"
	"byoc/app/keyring"
	"byoc/db"
	"byoc/db/dbtest"
)

// Secret values used in the sample configs. None of them may ever appear in
// a status, a log line or an error.
var secrets = []string{
	"vapi-key-7f3e9a1c5b2d4e6f",
	"vapi-hook-0a1b2c3d4e5f6a7b",
	"twilio-token-9e8d7c6b5a4f3e2d",
	"google-refresh-1f2e3d4c5b6a7988",
	"google-access-a1b2c3d4e5f60718",
	"re_resend-key-5a6b7c8d9e0f1a2b",
	"xi-eleven-key-3c4d5e6f7a8b9c0d",
}

func sampleConfigs() []app.Config {
	return []app.Config{
		app.VapiConfig{APIKey: app.NewSecret(secrets[0]), WebhookSecret: app.NewSecret(secrets[1]), Region: app.VapiEU},
		app.TwilioConfig{AccountSID: "AC0123456789abcdef0123456789abcdef", AuthToken: app.NewSecret(secrets[2]),
			PhoneNumber: "+12025551234", WhatsAppNumber: "+14155550000"},
		app.GoogleCalendarConfig{RefreshToken: app.NewSecret(secrets[3]), AccessToken: app.NewSecret(secrets[4]),
			Expiry: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Email: "owner@example.com",
			Scopes: []string{"https://www.googleapis.com/auth/calendar.events", "openid"}},
		app.ResendConfig{APIKey: app.NewSecret(secrets[5]), FromEmail: "hello@example.com"},
		app.ElevenLabsConfig{APIKey: app.NewSecret(secrets[6]), VoiceID: "21m00Tcm4TlvDq8ikWAM"},
	}
}

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func newKeyring(t *testing.T, primary []byte, previous ...[]byte) *keyring.Keyring {
	t.Helper()
	kr, err := keyring.New(primary, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func newService(t *testing.T, kr *keyring.Keyring, logs *apptest.LogBuffer) *credentials.Service {
	t.Helper()
	opts := credentials.Options{}
	if logs != nil {
		opts.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return credentials.New(dbtest.DB(t), kr, opts)
}

func assertNoSecrets(t *testing.T, what, text string) {
	t.Helper()
	apptest.AssertNoSecret(t, what, text, secrets...)
}

func rowCount(t *testing.T, orgID string, p app.Provider) int {
	t.Helper()
	var n int
	if err := dbtest.DB(t).Pool.QueryRow(context.Background(),
		`select count(*) from org_credentials where org_id = $1 and provider = $2`, orgID, string(p)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func ciphertext(t *testing.T, orgID string, p app.Provider) []byte {
	t.Helper()
	var ct []byte
	if err := dbtest.DB(t).Pool.QueryRow(context.Background(),
		`select encrypted_config from org_credentials where org_id = $1 and provider = $2`, orgID, string(p)).Scan(&ct); err != nil {
		t.Fatal(err)
	}
	return ct
}

func setCiphertext(t *testing.T, orgID string, p app.Provider, ct []byte) {
	t.Helper()
	tag, err := dbtest.DB(t).Pool.Exec(context.Background(),
		`update org_credentials set encrypted_config = $3 where org_id = $1 and provider = $2`, orgID, string(p), ct)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("set ciphertext: %v, %d rows", err, tag.RowsAffected())
	}
}

// saveRecovering is s.Save that fails the test when Save panics (instead of
// ending the test binary) and then returns an error.
func saveRecovering(t *testing.T, ctx context.Context, s *credentials.Service, c app.Connection) (st app.Status, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("Save(%#v) panicked: %v", c.Config, r)
			err = fmt.Errorf("Save panicked: %v", r)
		}
	}()
	return s.Save(ctx, c)
}

var _ credentials.Store = (*db.DB)(nil)

func TestRoundTripEveryProvider(t *testing.T) {
	ctx := context.Background()
	kr := newKeyring(t, newKey(t))
	org := dbtest.SeedOrg(t, "credentials service test")
	verified := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	for _, cfg := range sampleConfigs() {
		t.Run(string(cfg.Provider()), func(t *testing.T) {
			if _, err := newService(t, kr, nil).Save(ctx, app.Connection{OrgID: org, Config: cfg, VerifiedAt: verified}); err != nil {
				t.Fatal(err)
			}
			raw := ciphertext(t, org, cfg.Provider())
			assertNoSecrets(t, "the stored row", string(raw))

			// A fresh service has nothing cached: this reads and decrypts the row.
			fresh := newService(t, kr, nil)
			got, err := fresh.Get(ctx, org, cfg.Provider())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, cfg) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, cfg)
			}
			var typed app.Config
			switch cfg.Provider() {
			case app.Vapi:
				typed, err = fresh.Vapi(ctx, org)
			case app.Twilio:
				typed, err = fresh.Twilio(ctx, org)
			case app.GoogleCalendar:
				typed, err = fresh.GoogleCalendar(ctx, org)
			case app.Resend:
				typed, err = fresh.Resend(ctx, org)
			case app.ElevenLabs:
				typed, err = fresh.ElevenLabs(ctx, org)
			}
			if err != nil || !reflect.DeepEqual(typed, cfg) {
				t.Fatalf("typed helper: %#v, %v", typed, err)
			}
		})
	}
	st, err := newService(t, kr, nil).Statuses(ctx, org)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if !s.Connected || s.NeedsAttention || s.LastVerified == nil || !s.LastVerified.Equal(verified) {
			t.Errorf("%s: %+v", s.Provider, s)
		}
	}
}

func TestSaveOverwrites(t *testing.T) {
	ctx := context.Background()
	s := newService(t, newKeyring(t, newKey(t)), nil)
	org := dbtest.SeedOrg(t, "credentials service test")
	first := app.ResendConfig{APIKey: app.NewSecret("re_first-key-00000001"), FromEmail: "a@example.com"}
	second := app.ResendConfig{APIKey: app.NewSecret("re_second-key-0000002"), FromEmail: "b@example.com"}
	if _, err := s.Save(ctx, app.Connection{OrgID: org, Config: first, VerifiedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	failed, err := s.RecordVerification(ctx, org, app.Resend, time.Now(), app.Errorf(app.EVerificationFailed, "Resend refused the key."))
	if err != nil {
		t.Fatal(err)
	}
	if failed.Provider != app.Resend || !failed.Connected || !failed.NeedsAttention || failed.VerificationError != "Resend refused the key." ||
		failed.VerificationCode != "" || failed.Details["fromEmail"] != "a@example.com" {
		t.Fatalf("RecordVerification returned %+v", failed)
	}
	// Pointers to configs are accepted too.
	if _, err := saveRecovering(t, ctx, s, app.Connection{OrgID: org, Config: &second, VerifiedAt: time.Time{}}); err != nil {
		t.Fatal(err)
	}
	if n := rowCount(t, org, app.Resend); n != 1 {
		t.Fatalf("rows: %d, want 1", n)
	}
	got, err := s.Resend(ctx, org)
	if err != nil || got != second {
		t.Fatalf("after overwrite: %#v, %v", got, err)
	}
	st, err := s.Statuses(ctx, org)
	if err != nil {
		t.Fatal(err)
	}
	// The overwrite cleared the failed check and, saved with a zero time, is unverified.
	if r := st[3]; r.Provider != app.Resend || !r.Connected || r.NeedsAttention || r.VerificationError != "" || r.LastVerified != nil {
		t.Fatalf("resend status after overwrite: %+v", r)
	}
}

func TestCacheHitsAndInvalidation(t *testing.T) {
	ctx := context.Background()
	s := newService(t, newKeyring(t, newKey(t)), nil)
	org := dbtest.SeedOrg(t, "credentials service test")
	v1 := app.VapiConfig{APIKey: app.NewSecret("vapi-cache-key-000001"), Region: app.VapiUS}
	v2 := app.VapiConfig{APIKey: app.NewSecret("vapi-cache-key-000002"), Region: app.VapiEU}

	if _, err := s.Save(ctx, app.Connection{OrgID: org, Config: v1, VerifiedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got, err := s.Vapi(ctx, org); err != nil || got != v1 {
			t.Fatalf("get: %#v, %v", got, err)
		}
	}
	if st := s.Stats().Configs; st.Hits != 1 || st.Misses != 1 || st.Items != 1 {
		t.Fatalf("config stats after two gets: %+v, want 1 hit, 1 miss, 1 item", st)
	}

	t.Run("save", func(t *testing.T) {
		if _, err := s.Save(ctx, app.Connection{OrgID: org, Config: v2, VerifiedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Vapi(ctx, org); err != nil || got != v2 {
			t.Fatalf("get after save: %#v, %v", got, err)
		}
	})

	t.Run("record verification", func(t *testing.T) {
		if _, err := s.Statuses(ctx, org); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Statuses(ctx, org); err != nil {
			t.Fatal(err)
		}
		if st := s.Stats().Statuses; st.Hits != 1 || st.Items != 1 {
			t.Fatalf("status stats: %+v", st)
		}
		if _, err := s.RecordVerification(ctx, org, app.Vapi, time.Now(), app.Errorf(app.EVerificationFailed, "Vapi says the key is revoked.")); err != nil {
			t.Fatal(err)
		}
		// The statuses are dropped; the decrypted config, which a check
		// does not change, stays cached.
		if st := s.Stats(); st.Statuses.Items != 0 || st.Configs.Items != 1 {
			t.Fatalf("entries after RecordVerification: %+v, want no status and the config", st)
		}
		st, err := s.Statuses(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		if v := st[0]; !v.Connected || !v.NeedsAttention || v.VerificationError != "Vapi says the key is revoked." {
			t.Fatalf("vapi status after a failed check: %+v", v)
		}
		// A non-domain error is stored as the generic message, never its text.
		if _, err := s.RecordVerification(ctx, org, app.Vapi, time.Now(), errors.New("dial tcp: secret-ish detail")); err != nil {
			t.Fatal(err)
		}
		st, _ = s.Statuses(ctx, org)
		if strings.Contains(st[0].VerificationError, "secret-ish") {
			t.Fatalf("raw error text stored: %q", st[0].VerificationError)
		}
		if _, err := s.RecordVerification(ctx, org, app.Vapi, time.Now(), nil); err != nil {
			t.Fatal(err)
		}
		st, _ = s.Statuses(ctx, org)
		if v := st[0]; !v.Connected || v.NeedsAttention || v.VerificationError != "" {
			t.Fatalf("vapi status after a passing check: %+v", v)
		}
	})

	t.Run("disconnect", func(t *testing.T) {
		if _, err := s.Vapi(ctx, org); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, org, app.Vapi); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Vapi(ctx, org); app.ErrorCode(err) != app.ENotConfigured {
			t.Fatalf("get after disconnect: %v", err)
		}
		if err := s.Delete(ctx, org, app.Vapi); app.ErrorCode(err) != app.ENotConfigured {
			t.Fatalf("second disconnect: %v", err)
		}
		if _, err := s.RecordVerification(ctx, org, app.Vapi, time.Now(), nil); app.ErrorCode(err) != app.ENotConfigured {
			t.Fatalf("record verification after disconnect: %v", err)
		}
		if n := rowCount(t, org, app.Vapi); n != 0 {
			t.Fatalf("rows after disconnect: %d", n)
		}
	})

	t.Run("invalidate and flush", func(t *testing.T) {
		if _, err := s.Save(ctx, app.Connection{OrgID: org, Config: v1, VerifiedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Vapi(ctx, org); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Statuses(ctx, org); err != nil {
			t.Fatal(err)
		}
		if n := s.Invalidate(org, string(app.Twilio)); n != 1 {
			t.Fatalf("invalidate twilio dropped %d entries, want 1 (the statuses)", n)
		}
		if _, err := s.Statuses(ctx, org); err != nil {
			t.Fatal(err)
		}
		if n := s.Invalidate(org, ""); n != 2 {
			t.Fatalf("invalidate org dropped %d entries, want 2", n)
		}
		if n := s.Invalidate(org, ""); n != 0 {
			t.Fatalf("second invalidate dropped %d entries, want 0", n)
		}
		if _, err := s.Vapi(ctx, org); err != nil {
			t.Fatal(err)
		}
		s.Flush()
		if st := s.Stats(); st.Configs.Items != 0 || st.Statuses.Items != 0 {
			t.Fatalf("after flush: %+v", st)
		}
	})
}

func TestCachedConfigsCannotBeChangedByCallers(t *testing.T) {
	ctx := context.Background()
	s := newService(t, newKeyring(t, newKey(t)), nil)
	org := dbtest.SeedOrg(t, "credentials service test")
	cfg := sampleConfigs()[2].(app.GoogleCalendarConfig)
	if _, err := s.Save(ctx, app.Connection{OrgID: org, Config: cfg, VerifiedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GoogleCalendar(ctx, org)
	if err != nil {
		t.Fatal(err)
	}
	got.Scopes[0] = "changed"
	again, err := s.GoogleCalendar(ctx, org)
	if err != nil || again.Scopes[0] != cfg.Scopes[0] {
		t.Fatalf("cached config changed by a caller: %v, %v", again.Scopes, err)
	}
	st, _ := s.Statuses(ctx, org)
	st[2].Details["email"] = "changed"
	st, _ = s.Statuses(ctx, org)
	if st[2].Details["email"] != cfg.Email {
		t.Fatalf("cached status changed by a caller: %v", st[2].Details)
	}
}

func TestStatuses(t *testing.T) {
	ctx := context.Background()
	kr := newKeyring(t, newKey(t))

	t.Run("nothing stored", func(t *testing.T) {
		st, err := newService(t, kr, nil).Statuses(ctx, dbtest.SeedOrg(t, "credentials service test"))
		if err != nil {
			t.Fatal(err)
		}
		if len(st) != len(app.Providers) {
			t.Fatalf("%d statuses, want %d", len(st), len(app.Providers))
		}
		for i, s := range st {
			if s.Provider != app.Providers[i] || s.Connected || s.NeedsAttention || len(s.Details) != 0 {
				t.Errorf("status %d: %+v", i, s)
			}
		}
	})

	t.Run("some connected, masked", func(t *testing.T) {
		s := newService(t, kr, nil)
		org := dbtest.SeedOrg(t, "credentials service test")
		cfgs := sampleConfigs()
		for _, cfg := range []app.Config{cfgs[0], cfgs[1], cfgs[3]} {
			if _, err := s.Save(ctx, app.Connection{OrgID: org, Config: cfg, VerifiedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.RecordVerification(ctx, org, app.Twilio, time.Now(), app.Errorf(app.EVerificationFailed, "Twilio refused the auth token.")); err != nil {
			t.Fatal(err)
		}
		st, err := s.Statuses(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		want := []struct {
			connected, attention bool
			details              map[string]string
		}{
			{true, false, map[string]string{"apiKey": "••••4e6f", "webhookSecret": "set", "region": "eu"}},
			{true, true, map[string]string{"accountSid": "AC••••cdef", "authToken": "••••3e2d", "phoneNumber": "+1202•••1234", "whatsappNumber": "+1415•••0000"}},
			{false, false, nil},
			{true, false, map[string]string{"apiKey": "••••1a2b", "fromEmail": "hello@example.com"}},
			{false, false, nil},
		}
		for i, w := range want {
			got := st[i]
			if got.Provider != app.Providers[i] || got.Connected != w.connected || got.NeedsAttention != w.attention {
				t.Errorf("%s: %+v", app.Providers[i], got)
			}
			if len(got.Details) != len(w.details) {
				t.Errorf("%s details: %v, want %v", got.Provider, got.Details, w.details)
			}
			for k, v := range w.details {
				if got.Details[k] != v {
					t.Errorf("%s details[%s] = %q, want %q", got.Provider, k, got.Details[k], v)
				}
			}
		}
		if st[1].VerificationError != "Twilio refused the auth token." {
			t.Errorf("twilio verification error: %q", st[1].VerificationError)
		}
		raw, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		assertNoSecrets(t, "the statuses as JSON", string(raw))
		assertNoSecrets(t, "the statuses printed", fmt.Sprintf("%+v %#v", st, st))
	})
}

// What a status says of a row that cannot be opened.
const (
	keyMissing      = "Stored credentials can no longer be decrypted (encryption key not available). Reconnect to fix."
	integrityFailed = "Stored credentials failed their integrity check: this row's data does not match its place " +
		"(it was altered or copied from another row). Reconnect to fix."
)

func TestUndecryptableRows(t *testing.T) {
	ctx := context.Background()
	oldRing := newKeyring(t, newKey(t))
	newRing := newKeyring(t, newKey(t))

	tests := []struct {
		name string
		// reader is the keyring of the service that reads the broken row.
		reader *keyring.Keyring
		// breakRow makes the org's vapi row (sealed by oldRing) unreadable.
		breakRow func(t *testing.T, org string)
		reason   string
		// status is the row's VerificationError: a missing key, or an
		// integrity failure.
		status string
	}{
		{"key dropped", newRing, func(*testing.T, string) {}, "unknown_key", keyMissing},
		{"tampered", oldRing, func(t *testing.T, org string) {
			ct := ciphertext(t, org, app.Vapi)
			ct[len(ct)-1] ^= 0x01
			setCiphertext(t, org, app.Vapi, ct)
		}, "auth_failed", integrityFailed},
		{"copied from another org", oldRing, func(t *testing.T, org string) {
			other := dbtest.SeedOrg(t, "credentials service test")
			if _, err := newService(t, oldRing, nil).Save(ctx, app.Connection{OrgID: other, Config: app.VapiConfig{APIKey: app.NewSecret(secrets[0])}, VerifiedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			setCiphertext(t, org, app.Vapi, ciphertext(t, other, app.Vapi))
		}, "auth_failed", integrityFailed},
		{"copied from another provider", oldRing, func(t *testing.T, org string) {
			setCiphertext(t, org, app.Vapi, ciphertext(t, org, app.Resend))
		}, "auth_failed", integrityFailed},
		{"truncated", oldRing, func(t *testing.T, org string) {
			setCiphertext(t, org, app.Vapi, ciphertext(t, org, app.Vapi)[:10])
		}, "truncated", integrityFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			org := dbtest.SeedOrg(t, "credentials service test")
			cfgs := sampleConfigs()
			if _, err := newService(t, oldRing, nil).Save(ctx, app.Connection{OrgID: org, Config: cfgs[0], VerifiedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			// A second row the reader can open: one bad row must not spoil it.
			if _, err := newService(t, tt.reader, nil).Save(ctx, app.Connection{OrgID: org, Config: cfgs[3], VerifiedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			tt.breakRow(t, org)
			logs := &apptest.LogBuffer{}
			reader := newService(t, tt.reader, logs)

			_, err := reader.Get(ctx, org, app.Vapi)
			if app.ErrorCode(err) != app.ENotConfigured {
				t.Fatalf("get: %v, want %s", err, app.ENotConfigured)
			}
			if msg := app.ErrorMessage(err); msg != "The stored Vapi credentials can no longer be decrypted; please enter them again." {
				t.Fatalf("message: %q", msg)
			}
			if !errors.Is(err, app.ErrUndecryptable) || !errors.Is(err, keyring.ErrUndecryptable) {
				t.Fatalf("error chain lacks ErrUndecryptable: %v", err)
			}
			if _, err := reader.Vapi(ctx, org); app.ErrorCode(err) != app.ENotConfigured {
				t.Fatalf("typed get: %v", err)
			}
			if !strings.Contains(logs.String(), `"reason":"`+tt.reason+`"`) {
				t.Fatalf("log does not give the reason %q:\n%s", tt.reason, logs.String())
			}

			st, err := reader.Statuses(ctx, org)
			if err != nil {
				t.Fatalf("statuses failed because of one bad row: %v", err)
			}
			if v := st[0]; v.Connected || !v.NeedsAttention || v.VerificationError != tt.status {
				t.Fatalf("vapi status: %+v, want the message %q", v, tt.status)
			}
			if r := st[3]; !r.Connected || r.NeedsAttention || r.Details["fromEmail"] != "hello@example.com" {
				t.Fatalf("resend status next to the bad row: %+v", r)
			}
			assertNoSecrets(t, "the log", logs.String())

			// Entering the credentials again fixes it.
			if _, err := reader.Save(ctx, app.Connection{OrgID: org, Config: cfgs[0], VerifiedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if got, err := reader.Get(ctx, org, app.Vapi); err != nil || !reflect.DeepEqual(got, cfgs[0]) {
				t.Fatalf("after saving again: %#v, %v", got, err)
			}
			st, _ = reader.Statuses(ctx, org)
			if !st[0].Connected || st[0].NeedsAttention {
				t.Fatalf("vapi status after saving again: %+v", st[0])
			}
		})
	}
}

func TestRotatedKeyStillOpens(t *testing.T) {
	ctx := context.Background()
	oldKey, newK := newKey(t), newKey(t)
	org := dbtest.SeedOrg(t, "credentials service test")
	cfg := sampleConfigs()[4]
	if _, err := newService(t, newKeyring(t, oldKey), nil).Save(ctx, app.Connection{OrgID: org, Config: cfg, VerifiedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	rotated := newKeyring(t, newK, oldKey)
	if got, err := newService(t, rotated, nil).Get(ctx, org, app.ElevenLabs); err != nil || !reflect.DeepEqual(got, cfg) {
		t.Fatalf("get with the old key as previous: %#v, %v", got, err)
	}
	if !rotated.NeedsRotation(ciphertext(t, org, app.ElevenLabs)) {
		t.Fatal("row sealed with the old key does not need rotation")
	}
}

// A row that decrypts but holds no config this server can read is neither a
// missing key nor an integrity failure.
func TestUnreadableRowStatus(t *testing.T) {
	ctx := context.Background()
	kr := newKeyring(t, newKey(t))
	s := newService(t, kr, nil)
	org := dbtest.SeedOrg(t, "credentials service test")
	if _, err := s.Save(ctx, app.Connection{OrgID: org, Config: sampleConfigs()[0], VerifiedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ct, err := kr.Seal([]byte("not a config"), keyring.AAD{Table: credentials.Table, OrgID: org, Provider: string(app.Vapi)})
	if err != nil {
		t.Fatal(err)
	}
	setCiphertext(t, org, app.Vapi, ct)
	st, err := newService(t, kr, nil).Statuses(ctx, org)
	if err != nil {
		t.Fatal(err)
	}
	if v := st[0]; v.Connected || !v.NeedsAttention ||
		v.VerificationError != "Stored credentials cannot be read by this server. Reconnect to fix." {
		t.Fatalf("vapi status: %+v", v)
	}
}

func TestOrgsAreIsolated(t *testing.T) {
	ctx := context.Background()
	s := newService(t, newKeyring(t, newKey(t)), nil)
	orgA, orgB := dbtest.SeedOrg(t, "credentials service test"), dbtest.SeedOrg(t, "credentials service test")
	for _, cfg := range sampleConfigs() {
		if _, err := s.Save(ctx, app.Connection{OrgID: orgA, Config: cfg, VerifiedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, orgA, cfg.Provider()); err != nil { // now cached for A
			t.Fatal(err)
		}
	}
	for _, p := range app.Providers {
		if _, err := s.Get(ctx, orgB, p); app.ErrorCode(err) != app.ENotConfigured {
			t.Errorf("org B gets org A's %s: %v", p, err)
		}
		if err := s.Delete(ctx, orgB, p); app.ErrorCode(err) != app.ENotConfigured {
			t.Errorf("org B disconnects org A's %s: %v", p, err)
		}
	}
	st, err := s.Statuses(ctx, orgB)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range st {
		if v.Connected || v.NeedsAttention {
			t.Errorf("org B status: %+v", v)
		}
	}
	if _, err := s.Get(ctx, orgA, app.Vapi); err != nil {
		t.Fatalf("org A after org B's attempts: %v", err)
	}
}

func TestUnknownProvider(t *testing.T) {
	ctx := context.Background()
	s := newService(t, newKeyring(t, newKey(t)), nil)
	org := dbtest.SeedOrg(t, "credentials service test")
	if _, err := s.Get(ctx, org, "stripe"); app.ErrorCode(err) != app.EUnknownProvider {
		t.Fatalf("get: %v", err)
	}
	if err := s.Delete(ctx, org, "stripe"); app.ErrorCode(err) != app.EUnknownProvider {
		t.Fatalf("disconnect: %v", err)
	}
	if _, err := s.RecordVerification(ctx, org, "stripe", time.Now(), nil); app.ErrorCode(err) != app.EUnknownProvider {
		t.Fatalf("record verification: %v", err)
	}
	for _, cfg := range []app.Config{nil, (*app.VapiConfig)(nil)} {
		if _, err := saveRecovering(t, ctx, s, app.Connection{OrgID: org, Config: cfg, VerifiedAt: time.Now()}); app.ErrorCode(err) != app.EInternal {
			t.Fatalf("save %#v: %v", cfg, err)
		}
	}
}

func TestConcurrentSaves(t *testing.T) {
	ctx := context.Background()
	s := newService(t, newKeyring(t, newKey(t)), nil)
	org := dbtest.SeedOrg(t, "credentials service test")
	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	saved := make(map[string]bool)
	for i := range n {
		key := fmt.Sprintf("xi-concurrent-key-%04d", i)
		saved[key] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Save(ctx, app.Connection{OrgID: org, Config: app.ElevenLabsConfig{APIKey: app.NewSecret(key)}, VerifiedAt: time.Now()})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c := rowCount(t, org, app.ElevenLabs); c != 1 {
		t.Fatalf("rows after %d concurrent saves: %d", n, c)
	}
	got, err := s.ElevenLabs(ctx, org)
	if err != nil || !saved[got.APIKey.Reveal()] {
		t.Fatalf("after concurrent saves: %v", err)
	}
}

// Another instance's write reaches this instance's cache through the
// database's notification.
func TestNotificationInvalidatesOtherInstance(t *testing.T) {
	d := dbtest.DB(t)
	kr := newKeyring(t, newKey(t))
	writer, reader := newService(t, kr, nil), newService(t, kr, nil)
	org := dbtest.SeedOrg(t, "credentials service test")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.ListenInvalidations(ctx, func(o, p string) { reader.Invalidate(o, p) }, reader.Flush)
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitForListener(t, d)

	bg := context.Background()
	v1 := app.VapiConfig{APIKey: app.NewSecret("vapi-instance-key-0001")}
	v2 := app.VapiConfig{APIKey: app.NewSecret("vapi-instance-key-0002")}
	if _, err := writer.Save(bg, app.Connection{OrgID: org, Config: v1, VerifiedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "reader sees the first save", func() bool {
		got, err := reader.Vapi(bg, org)
		return err == nil && got == v1
	})
	if _, err := writer.Save(bg, app.Connection{OrgID: org, Config: v2, VerifiedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "reader sees the second save", func() bool {
		got, err := reader.Vapi(bg, org)
		return err == nil && got == v2
	})
	if err := writer.Delete(bg, org, app.Vapi); err != nil {
		t.Fatal(err)
	}
	eventually(t, "reader sees the disconnect", func() bool {
		_, err := reader.Vapi(bg, org)
		return app.ErrorCode(err) == app.ENotConfigured
	})
}

func waitForListener(t *testing.T, d *db.DB) {
	t.Helper()
	eventually(t, "the listener listens", func() bool {
		var n int
		err := d.Pool.QueryRow(context.Background(), `
			select count(*) from pg_stat_activity
			where datname = current_database() and application_name = $1 and query ilike 'listen%'`,
			db.ListenerApplicationName).Scan(&n)
		return err == nil && n > 0
	})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Every operation, successful or not, logs nothing secret.
func TestLogsCarryNoSecrets(t *testing.T) {
	ctx := context.Background()
	logs := &apptest.LogBuffer{}
	kr := newKeyring(t, newKey(t))
	s := newService(t, kr, logs)
	org := dbtest.SeedOrg(t, "credentials service test")
	for _, cfg := range sampleConfigs() {
		if _, err := s.Save(ctx, app.Connection{OrgID: org, Config: cfg, VerifiedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, org, cfg.Provider()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordVerification(ctx, org, cfg.Provider(), time.Now(), app.Errorf(app.EVerificationFailed, "refused")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Statuses(ctx, org); err != nil {
		t.Fatal(err)
	}
	// The same rows through a keyring that cannot open them.
	other := newService(t, newKeyring(t, newKey(t)), logs)
	for _, p := range app.Providers {
		_, err := other.Get(ctx, org, p)
		assertNoSecrets(t, "an error", fmt.Sprintf("%v %+v", err, err))
	}
	if _, err := other.Statuses(ctx, org); err != nil {
		t.Fatal(err)
	}
	for _, p := range app.Providers {
		if err := s.Delete(ctx, org, p); err != nil {
			t.Fatal(err)
		}
	}
	out := logs.String()
	for _, want := range []string{"credentials saved", "cannot be decrypted", "credentials disconnected"} {
		if !strings.Contains(out, want) {
			t.Fatalf("log lacks %q, so this test checks nothing:\n%s", want, out)
		}
	}
	assertNoSecrets(t, "the log", out)
}

// pausingStore lets a test write between a Get's read and its cache fill.
type pausingStore struct {
	*db.DB
	read, proceed chan struct{}
}

func (s *pausingStore) GetCredential(ctx context.Context, orgID string, p app.Provider) (app.CredentialRecord, error) {
	rec, err := s.DB.GetCredential(ctx, orgID, p)
	if s.read != nil {
		close(s.read)
		<-s.proceed
	}
	return rec, err
}

// A read that raced a write never caches what the write replaced.
func TestRacingReadDoesNotCacheStaleConfig(t *testing.T) {
	ctx := context.Background()
	store := &pausingStore{DB: dbtest.DB(t)}
	s := credentials.New(store, newKeyring(t, newKey(t)), credentials.Options{})
	org := dbtest.SeedOrg(t, "credentials service test")
	old := app.ResendConfig{APIKey: app.NewSecret("re_racing-old-0000001")}
	fresh := app.ResendConfig{APIKey: app.NewSecret("re_racing-new-0000002")}
	if _, err := s.Save(ctx, app.Connection{OrgID: org, Config: old, VerifiedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	store.read, store.proceed = make(chan struct{}), make(chan struct{})
	got := make(chan app.Config, 1)
	go func() {
		cfg, _ := s.Get(ctx, org, app.Resend)
		got <- cfg
	}()
	<-store.read
	store.read = nil
	if _, err := s.Save(ctx, app.Connection{OrgID: org, Config: fresh, VerifiedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	close(store.proceed)
	if cfg := <-got; cfg != old {
		t.Fatalf("the racing read returned %#v, want the config it read", cfg)
	}
	if cfg, err := s.Resend(ctx, org); err != nil || cfg != fresh {
		t.Fatalf("after the racing read: %#v, %v; want the saved config", cfg, err)
	}
}
