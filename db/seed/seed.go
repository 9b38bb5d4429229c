// Package seed fills a development database with many orgs for benchmarks
// (`byoc seed`, `make bench`): each org gets Vapi credentials sealed by the
// real keyring in the stored format of the credential service, and one
// inbound assistant mapping. It then writes the targets file the load
// generator reads: every seeded assistant with its org and the org's
// webhook secret, read back from the database.
//
// Seeding is idempotent: org i always has the same id and assistant id, so a
// second run with the same count adds nothing and keeps every secret.
package seed

import (
	"context"
	"crypto/rand"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/app"
	"byoc/app/credentials"
	"byoc/app/keyring"
	"byoc/db"
)

// Defaults and limits of Options.
const (
	DefaultOrgs      = 10_000
	MaxOrgs          = 1_000_000
	DefaultBatchSize = 2_000
	// TargetsFile is the targets file's name in the data folder.
	TargetsFile = "seed-targets.csv"
)

// Options says what Run seeds.
type Options struct {
	// Orgs is how many orgs to have (1 to MaxOrgs; 0: DefaultOrgs).
	Orgs int
	// BatchSize is how many orgs one transaction inserts (0:
	// DefaultBatchSize).
	BatchSize int
	// Out is where the targets file is written (mode 0600; its folder is
	// made with mode 0700). Required.
	Out string
}

// Report says what Run did.
type Report struct {
	Orgs    int // orgs asked for
	Added   int // orgs inserted by this run
	Rows    int // rows inserted by this run: each added org, its credentials and its assistant mapping
	Targets int // assistants written to the targets file
	// Insert is how long the inserts took, Total the whole run (the read
	// back and the file included).
	Insert, Total time.Duration
}

// RowsPerSecond is the insert rate.
func (r Report) RowsPerSecond() float64 {
	if r.Insert <= 0 {
		return 0
	}
	return float64(r.Rows) / r.Insert.Seconds()
}

// String summarizes the report for the operator.
func (r Report) String() string {
	return fmt.Sprintf("%d orgs: %d added (%d rows in %s, %.0f rows/s), %d already there; %d targets written in %s",
		r.Orgs, r.Added, r.Rows, r.Insert.Round(time.Millisecond), r.RowsPerSecond(), r.Orgs-r.Added, r.Targets,
		r.Total.Round(time.Millisecond))
}

// OrgID is the id of seeded org i.
func OrgID(i int) string { return fmt.Sprintf("5eed0000-0000-4000-8000-%012x", i) }

// AssistantID is the Vapi assistant id of seeded org i's inbound assistant.
func AssistantID(i int) string { return fmt.Sprintf("5eed0000-0000-4000-a000-%012x", i) }

// Run makes sure orgs 0 to opts.Orgs-1 exist and writes the targets file.
// Each batch is inserted in one transaction as the service role; orgs that
// already exist are left exactly as they are.
//
// No cache invalidation is announced, and none is needed: a run only adds
// orgs that did not exist, so no instance can hold anything of them except
// an assistant id looked up before and remembered as unknown, which expires
// after the webhook routing's negative lifetime (30 s). Announcing each org
// would make every running instance's listener do 100,000 invalidations for
// nothing; announcing "everything changed" would empty their caches.
func Run(ctx context.Context, d *db.DB, kr *keyring.Keyring, opts Options) (Report, error) {
	if opts.Orgs == 0 {
		opts.Orgs = DefaultOrgs
	}
	if opts.Orgs < 1 || opts.Orgs > MaxOrgs {
		return Report{}, fmt.Errorf("seed: the number of orgs must be between 1 and %d", MaxOrgs)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.Out == "" {
		return Report{}, errors.New("seed: no targets file given")
	}
	rep := Report{Orgs: opts.Orgs}
	start := time.Now()
	for lo := 0; lo < opts.Orgs; lo += opts.BatchSize {
		hi := min(lo+opts.BatchSize, opts.Orgs)
		added, err := insertBatch(ctx, d, kr, lo, hi)
		if err != nil {
			return rep, err
		}
		rep.Added += added
		rep.Rows += 3 * added
	}
	rep.Insert = time.Since(start)
	targets, err := readTargets(ctx, d, kr, opts.Orgs, opts.BatchSize)
	if err != nil {
		return rep, err
	}
	if err := WriteTargets(opts.Out, targets); err != nil {
		return rep, err
	}
	rep.Targets = len(targets)
	rep.Total = time.Since(start)
	return rep, nil
}

// insertBatch inserts the orgs lo to hi-1 that do not exist yet, with their
// credentials and assistant mappings, in one transaction, and returns how
// many it inserted.
func insertBatch(ctx context.Context, d *db.DB, kr *keyring.Keyring, lo, hi int) (int, error) {
	ids := make([]string, 0, hi-lo)
	names := make([]string, 0, hi-lo)
	index := make(map[string]int, hi-lo)
	for i := lo; i < hi; i++ {
		ids = append(ids, OrgID(i))
		names = append(names, fmt.Sprintf("Seeded org %06d", i))
		index[OrgID(i)] = i
	}
	var added int
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `insert into orgs (id, name)
			select * from unnest($1::uuid[], $2::text[])
			on conflict (id) do nothing
			returning id::text`, ids, names)
		if err != nil {
			return err
		}
		fresh, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(fresh) == 0 {
			return err
		}
		sealed := make([][]byte, len(fresh))
		assistants := make([]string, len(fresh))
		assistantNames := make([]string, len(fresh))
		for k, org := range fresh {
			i := index[org]
			cfg := app.VapiConfig{APIKey: app.NewSecret(randomUUID()), WebhookSecret: app.NewSecret(randomHex(24)),
				Region: app.VapiUS}
			if sealed[k], err = credentials.Seal(kr, org, cfg); err != nil {
				return fmt.Errorf("seal org %d: %w", i, err)
			}
			assistants[k] = AssistantID(i)
			assistantNames[k] = fmt.Sprintf("Seeded org %06d inbound", i)
		}
		if _, err := tx.Exec(ctx, `insert into org_credentials (org_id, provider, encrypted_config, is_active, last_verified_at)
			select o, $3, c, true, now() from unnest($1::uuid[], $2::bytea[]) as t(o, c)`,
			fresh, sealed, string(app.Vapi)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `insert into assistant_org_mapping (vapi_assistant_id, org_id, assistant_role, name)
			select a, o, $4, n from unnest($1::text[], $2::uuid[], $3::text[]) as t(a, o, n)`,
			assistants, fresh, assistantNames, string(app.Inbound)); err != nil {
			return err
		}
		added = len(fresh)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("seed: insert orgs %d to %d: %w", lo, hi-1, err)
	}
	return added, nil
}

// readTargets reads every seeded org's inbound assistant and webhook
// secret back from the database, decrypting the stored credentials as the
// credential service does.
func readTargets(ctx context.Context, d *db.DB, kr *keyring.Keyring, orgs, batch int) ([]Target, error) {
	out := make([]Target, 0, orgs)
	for lo := 0; lo < orgs; lo += batch {
		ids := make([]string, 0, batch)
		for i := lo; i < min(lo+batch, orgs); i++ {
			ids = append(ids, OrgID(i))
		}
		var recs []app.CredentialRecord
		var assistants []string
		err := d.AsService(ctx, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `select m.vapi_assistant_id, c.org_id::text, c.encrypted_config
				from org_credentials c
				join assistant_org_mapping m on m.org_id = c.org_id and m.assistant_role = $2
				where c.org_id = any($1::uuid[]) and c.provider = $3 and c.is_active
				order by c.org_id`, ids, string(app.Inbound), string(app.Vapi))
			if err != nil {
				return err
			}
			var a string
			rec := app.CredentialRecord{Provider: app.Vapi}
			_, err = pgx.ForEachRow(rows, []any{&a, &rec.OrgID, &rec.Ciphertext}, func() error {
				assistants = append(assistants, a)
				recs = append(recs, rec)
				return nil
			})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("seed: read back orgs %d to %d: %w", lo, lo+len(ids)-1, err)
		}
		for k, rec := range recs {
			cfg, err := credentials.Open(kr, rec)
			if err != nil {
				return nil, fmt.Errorf("seed: org %s: %w (was it seeded with another ENCRYPTION_KEY?)", rec.OrgID, err)
			}
			v, ok := cfg.(app.VapiConfig)
			if !ok || v.WebhookSecret.IsZero() {
				return nil, fmt.Errorf("seed: org %s has no Vapi webhook secret", rec.OrgID)
			}
			out = append(out, Target{AssistantID: assistants[k], OrgID: rec.OrgID, WebhookSecret: v.WebhookSecret})
		}
	}
	return out, nil
}

// Target is one seeded assistant as the load generator needs it.
type Target struct {
	AssistantID   string
	OrgID         string
	WebhookSecret app.Secret
}

var targetsHeader = []string{"assistant_id", "org_id", "webhook_secret"}

// WriteTargets writes targets to path as CSV with a header line (mode 0600,
// replaced atomically; the folder is made with mode 0700).
func WriteTargets(path string, targets []Target) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".targets-*")
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer os.Remove(tmp.Name())
	w := csv.NewWriter(tmp)
	_ = w.Write(targetsHeader)
	for _, t := range targets {
		_ = w.Write([]string{t.AssistantID, t.OrgID, t.WebhookSecret.Reveal()})
	}
	w.Flush()
	err = errors.Join(w.Error(), tmp.Chmod(0o600), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("seed: write %s: %w", path, err)
	}
	return nil
}

// ReadTargets reads a file written by WriteTargets.
func ReadTargets(path string) ([]Target, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = len(targetsHeader)
	head, err := r.Read()
	if err != nil || fmt.Sprint(head) != fmt.Sprint(targetsHeader) {
		return nil, fmt.Errorf("%s: not a targets file (run byoc seed)", path)
	}
	var out []Target
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if !app.IsUUID(rec[0]) || !app.IsUUID(rec[1]) || rec[2] == "" {
			return nil, fmt.Errorf("%s: line %d is not an assistant, an org and a secret", path, len(out)+2)
		}
		out = append(out, Target{AssistantID: rec[0], OrgID: rec[1], WebhookSecret: app.NewSecret(rec[2])})
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// randomUUID is a random version 4 UUID: the shape of a Vapi private key.
func randomUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
