package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/db/dbtest"
	"byoc/db/seed"
)

func TestSeedCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbURL, drop, err := dbtest.Create(ctx)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	defer drop()
	dataDir := t.TempDir()
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("DATA_DIR", dataDir)
	t.Setenv("APP_ENV", "development")
	t.Setenv("LOG_LEVEL", "error")

	// The command migrates an empty database, seeds and writes the targets
	// file into the data folder; a second run finds everything there.
	for run := 1; run <= 2; run++ {
		if err := run1(t, "seed", "-orgs", "12"); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		targets, err := seed.ReadTargets(filepath.Join(dataDir, seed.TargetsFile))
		if err != nil {
			t.Fatal(err)
		}
		if len(targets) != 12 {
			t.Fatalf("run %d: %d targets, want 12", run, len(targets))
		}
	}

	for _, args := range [][]string{{"seed", "-orgs", "0x"}, {"seed", "extra"}, {"seed", "-orgs", "-3"}} {
		if err := run1(t, args...); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

func TestSeedCommandRefusedInProduction(t *testing.T) {
	dataDir := t.TempDir()
	for k, v := range map[string]string{
		"APP_ENV":        "production",
		"PUBLIC_URL":     "https://byoc.example.com",
		"DATABASE_URL":   "postgres://nobody@127.0.0.1:1/none?sslmode=disable",
		"DATA_DIR":       dataDir,
		"ENCRYPTION_KEY": strings.Repeat("ab", 32),
		"JWT_SECRET":     strings.Repeat("j", 32),
		"SESSION_SECRET": strings.Repeat("s", 32),
	} {
		t.Setenv(k, v)
	}
	err := run1(t, "seed", "-orgs", "5")
	if err == nil || !strings.Contains(err.Error(), "refused when APP_ENV=production") {
		t.Fatalf("got %v, want the production refusal", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, seed.TargetsFile)); !os.IsNotExist(err) {
		t.Error("a targets file was written in production")
	}
}

// run1 runs one command as the binary would, from a folder without a
// .env.local.
func run1(t *testing.T, args ...string) error {
	t.Helper()
	t.Chdir(t.TempDir())
	return run(args)
}

func TestCheckRLSCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbURL, drop, err := dbtest.Create(ctx)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	defer drop()
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("DATA_DIR", t.TempDir())
	t.Setenv("APP_ENV", "development")
	t.Setenv("LOG_LEVEL", "error")

	// An empty database: every table is missing.
	out, err := stdoutOf(t, "check-rls")
	if err == nil || !strings.Contains(out, "problem: table org_credentials does not exist") {
		t.Fatalf("an empty database: err %v, output:\n%s", err, out)
	}

	if err := run1(t, "migrate", "up"); err != nil {
		t.Fatal(err)
	}
	out, err = stdoutOf(t, "check-rls")
	if err != nil || !strings.Contains(out, "checked: ok") {
		t.Fatalf("a migrated database: err %v, output:\n%s", err, out)
	}

	// Broken for good (committed), as a careless hand on production would.
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range []string{
		`alter table org_credentials no force row level security`,
		`drop policy call_events_delete on call_events`,
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	out, err = stdoutOf(t, "check-rls")
	if err == nil || !strings.Contains(err.Error(), "2 problem(s)") {
		t.Fatalf("a broken database: err %v, want 2 problems; output:\n%s", err, out)
	}
	for _, want := range []string{
		"problem: table org_credentials: row level security is not forced",
		"problem: table call_events: policy call_events_delete (DELETE for authenticated) is missing",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, dbURL) || strings.Contains(err.Error(), dbURL) {
		t.Error("the report shows the connection string")
	}

	if err := run1(t, "check-rls", "extra"); err == nil {
		t.Error("check-rls accepted an argument")
	}
}

// stdoutOf runs one command as run1 does and returns what it printed.
func stdoutOf(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return captureStdout(t, func() error { return run1(t, args...) })
}

func TestRotateKeysFailsOnUndecryptableRows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbURL, drop, err := dbtest.Create(ctx)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	defer drop()
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("DATA_DIR", t.TempDir())
	t.Setenv("APP_ENV", "development")
	t.Setenv("LOG_LEVEL", "error")
	t.Setenv("ENCRYPTION_KEY", strings.Repeat("ab", 32))
	t.Setenv("ENCRYPTION_KEYS_PREVIOUS", "")
	if err := run1(t, "migrate", "up"); err != nil {
		t.Fatal(err)
	}
	if err := run1(t, "rotate-keys"); err != nil {
		t.Fatalf("an empty database: %v", err)
	}

	// A row sealed under a key that is no longer configured (here: bytes
	// no key opens) must keep the command failing.
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `
		with o as (insert into orgs (name) values ('Lost key') returning id)
		insert into org_credentials (org_id, provider, encrypted_config) select id, 'resend', '\x0100000000'::bytea from o`); err != nil {
		t.Fatal(err)
	}
	err = run1(t, "rotate-keys")
	if err == nil || !strings.Contains(err.Error(), "1 row(s) cannot be decrypted") {
		t.Fatalf("got %v, want the undecryptable row reported as a failure", err)
	}
}

// captureStdout runs fn and returns what it printed.
func captureStdout(t *testing.T, fn func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	err = fn()
	os.Stdout = old
	w.Close()
	return <-done, err
}

// sealLegacy writes plaintext as the old platform's service did:
// hex(iv):hex(tag):hex(ciphertext), AES-256-GCM with a 12-byte IV.
func sealLegacy(t *testing.T, keyHex, plaintext string) string {
	t.Helper()
	key, _ := hex.DecodeString(keyHex)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, _ := cipher.NewGCM(block)
	iv := make([]byte, 12)
	_, _ = rand.Read(iv)
	sealed := gcm.Seal(nil, iv, []byte(plaintext), nil)
	return hex.EncodeToString(iv) + ":" + hex.EncodeToString(sealed[len(sealed)-16:]) + ":" + hex.EncodeToString(sealed[:len(sealed)-16])
}

func TestBackfillLegacyCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbURL, drop, err := dbtest.Create(ctx)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	defer drop()
	legacyKey := strings.Repeat("5a", 32)
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("DATA_DIR", t.TempDir())
	t.Setenv("APP_ENV", "development")
	t.Setenv("LOG_LEVEL", "error")
	t.Setenv("LEGACY_ENCRYPTION_KEY", legacyKey)
	// A dry run changes nothing, not even the schema.
	if err := run1(t, "backfill-legacy", "--dry-run"); err == nil || !strings.Contains(err.Error(), "pending migrations") {
		t.Fatalf("a dry run on an unmigrated database: %v", err)
	}
	if err := run1(t, "migrate", "up"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	const token = "0123456789abcdef0123456789abcdef"
	var org string
	if err := conn.QueryRow(ctx, `insert into orgs (name) values ('legacy') returning id::text`).Scan(&org); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`create table integrations (org_id uuid, provider text, encrypted_config text)`,
		`create table agents (org_id uuid, vapi_assistant_id text, role text)`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `insert into integrations values ($1, 'twilio', $2)`, org,
		sealLegacy(t, legacyKey, `{"account_sid":"AC0123456789abcdef0123456789abcdef","auth_token":"`+token+`","phone_number":"+14155550100"}`)); err != nil {
		t.Fatal(err)
	}
	stored := func() int {
		var n int
		if err := conn.QueryRow(ctx, `select count(*) from org_credentials`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	out, err := captureStdout(t, func() error { return run1(t, "backfill-legacy", "--dry-run") })
	if err != nil || !strings.Contains(out, "dry run") || !strings.Contains(out, "would migrate 1") || stored() != 0 {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	out, err = captureStdout(t, func() error { return run1(t, "backfill-legacy") })
	if err != nil || !strings.Contains(out, "integrations: 1 rows: migrated 1") || stored() != 1 {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if strings.Contains(out, token) {
		t.Fatal("the report prints a secret")
	}

	// A row that fails makes the command fail, after its report.
	if _, err := conn.Exec(ctx, `insert into agents values ($1, 'not-an-assistant-id', null)`, org); err != nil {
		t.Fatal(err)
	}
	out, err = captureStdout(t, func() error { return run1(t, "backfill-legacy") })
	if err == nil || !strings.Contains(err.Error(), "failed rows: 1") || !strings.Contains(out, "not a Vapi assistant id") {
		t.Fatalf("a failed row: %v\n%s", err, out)
	}

	for _, args := range [][]string{{"backfill-legacy", "extra"}, {"backfill-legacy", "--batch", "x"}} {
		if err := run1(t, args...); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	t.Setenv("LEGACY_ENCRYPTION_KEY", "short")
	if err := run1(t, "backfill-legacy"); err == nil || !strings.Contains(err.Error(), "LEGACY_ENCRYPTION_KEY") {
		t.Errorf("a bad LEGACY_ENCRYPTION_KEY: %v", err)
	}
}
