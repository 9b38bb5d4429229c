package seed_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/app"
	"byoc/app/credentials"
	"byoc/app/keyring"
	"byoc/db"
	"byoc/db/dbtest"
	"byoc/db/seed"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

func testKeyring(t *testing.T) *keyring.Keyring {
	t.Helper()
	kr, err := keyring.Parse(testKey, "")
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

const testKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// listen subscribes a connection of its own to the cache channel, so a test
// can tell whether anything was announced.
func listen(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "listen "+db.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	return conn
}

func TestRunSeedsOnceThroughTheRealFormat(t *testing.T) {
	d := dbtest.DB(t)
	kr := testKeyring(t)
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "data", seed.TargetsFile)
	listener := listen(t)

	// Batches of 10 over 25 orgs: two full batches and a partial one.
	rep, err := seed.Run(ctx, d, kr, seed.Options{Orgs: 25, BatchSize: 10, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Added != 25 || rep.Rows != 75 || rep.Targets != 25 || rep.RowsPerSecond() <= 0 {
		t.Fatalf("first run: %+v", rep)
	}
	first, err := seed.ReadTargets(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 25 {
		t.Fatalf("targets: %d, want 25", len(first))
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("targets file mode %v, want 0600", st.Mode().Perm())
	}
	if dir, _ := os.Stat(filepath.Dir(out)); dir.Mode().Perm() != 0o700 {
		t.Errorf("targets folder mode %v, want 0700", dir.Mode().Perm())
	}

	// What the credential service and the webhook routing read is what the
	// file says: the real stored format, under the real keyring.
	svc := credentials.New(d, kr, credentials.Options{})
	for _, tg := range []seed.Target{first[0], first[24]} {
		cfg, err := svc.Vapi(ctx, tg.OrgID)
		if err != nil {
			t.Fatalf("org %s: %v", tg.OrgID, err)
		}
		if cfg.WebhookSecret.Reveal() != tg.WebhookSecret.Reveal() || len(cfg.APIKey.Reveal()) < app.MinKeyLength {
			t.Errorf("org %s: the stored config does not match the targets file", tg.OrgID)
		}
		m, err := d.ResolveAssistant(ctx, tg.AssistantID)
		if err != nil || m.OrgID != tg.OrgID || m.Role != app.Inbound {
			t.Errorf("assistant %s: %+v, %v", tg.AssistantID, m, err)
		}
	}

	// A second run with the same count adds nothing and keeps every secret.
	rep, err = seed.Run(ctx, d, kr, seed.Options{Orgs: 25, BatchSize: 10, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Added != 0 || rep.Rows != 0 || rep.Targets != 25 {
		t.Fatalf("second run: %+v", rep)
	}
	second, err := seed.ReadTargets(out)
	if err != nil {
		t.Fatal(err)
	}
	for i := range first {
		if first[i].AssistantID != second[i].AssistantID || first[i].WebhookSecret.Reveal() != second[i].WebhookSecret.Reveal() {
			t.Fatalf("target %d changed between runs", i)
		}
	}
	var orgs int
	if err := d.Pool.QueryRow(ctx, `select count(*) from orgs where id::text like '5eed%'`).Scan(&orgs); err != nil {
		t.Fatal(err)
	}
	if orgs != 25 {
		t.Errorf("%d seeded orgs in the database, want 25", orgs)
	}

	// A larger count adds only the difference.
	rep, err = seed.Run(ctx, d, kr, seed.Options{Orgs: 30, BatchSize: 10, Out: out})
	if err != nil || rep.Added != 5 || rep.Targets != 30 {
		t.Fatalf("growing run: %+v, %v", rep, err)
	}

	// Seeding only adds orgs nobody could have cached: it announces nothing.
	wait, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if n, err := listener.WaitForNotification(wait); err == nil {
		t.Errorf("seeding announced a cache invalidation: %s", n.Payload)
	}
}

func TestRunRefusesBadOptions(t *testing.T) {
	d := dbtest.DB(t)
	kr := testKeyring(t)
	out := filepath.Join(t.TempDir(), seed.TargetsFile)
	for name, opts := range map[string]seed.Options{
		"negative count": {Orgs: -1, Out: out},
		"too many":       {Orgs: seed.MaxOrgs + 1, Out: out},
		"no file":        {Orgs: 1},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := seed.Run(context.Background(), d, kr, opts); err == nil {
				t.Fatal("accepted")
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a targets file was written")
			}
		})
	}
}

func TestReadTargetsRefusesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"no header":    "a,b,c\n",
		"not an id":    "assistant_id,org_id,webhook_secret\nnot-a-uuid,5eed0000-0000-4000-8000-000000000000,s\n",
		"no secret":    "assistant_id,org_id,webhook_secret\n5eed0000-0000-4000-a000-000000000000,5eed0000-0000-4000-8000-000000000000,\n",
		"wrong fields": "assistant_id,org_id,webhook_secret\n5eed0000-0000-4000-a000-000000000000\n",
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := seed.ReadTargets(p); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
