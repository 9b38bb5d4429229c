package db_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/app"
	"byoc/db"
	"byoc/db/dbtest"
)

// audSeed inserts an org and one user of it through the raw pool.
func audSeed(t *testing.T, d *db.DB) (orgID, userID string) {
	t.Helper()
	ctx := context.Background()
	if err := d.Pool.QueryRow(ctx, `insert into orgs (name) values ('audit test') returning id::text`).Scan(&orgID); err != nil {
		t.Fatal(err)
	}
	if err := d.Pool.QueryRow(ctx, `insert into users (email, password_hash) values ($1, 'x') returning id::text`,
		uniqueEmail(t)).Scan(&userID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Pool.Exec(ctx, `insert into org_members (org_id, user_id, role) values ($1, $2, 'admin')`, orgID, userID); err != nil {
		t.Fatal(err)
	}
	return orgID, userID
}

func TestAuditAppendAndListNewestFirst(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org, user := audSeed(t, d)

	empty, err := d.AuditLog(ctx, org, 10)
	if err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("empty log: %v, %v; want an empty, non-nil slice", empty, err)
	}

	entries := []app.AuditEntry{
		{OrgID: org, ActorID: user, Action: "credentials.save", Provider: app.Vapi, Outcome: app.OutcomeSuccess,
			Detail: "Vapi accepted the API key (US region)."},
		{OrgID: org, ActorID: user, Action: "credentials.verify", Provider: app.Twilio, Outcome: app.OutcomeFailure,
			Detail: "Twilio rejected the Account SID and Auth Token."},
		{OrgID: org, Action: "credentials.disconnect", Provider: app.Resend, Outcome: app.OutcomeSuccess},
		{OrgID: org, ActorID: user, Action: "org.rename", Outcome: app.OutcomeSuccess, Detail: "no provider"},
	}
	for _, e := range entries {
		if err := d.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := d.AuditLog(ctx, org, 10)
	if err != nil || len(got) != len(entries) {
		t.Fatalf("log = %+v, %v", got, err)
	}
	for i, g := range got {
		want := entries[len(entries)-1-i]
		if g.At.IsZero() {
			t.Errorf("entry %d has no time", i)
		}
		want.At = g.At
		if g != want {
			t.Errorf("entry %d = %+v, want %+v", i, g, want)
		}
		if i > 0 && g.At.After(got[i-1].At) {
			t.Errorf("entry %d is newer than entry %d", i, i-1)
		}
	}

	limited, err := d.AuditLog(ctx, org, 2)
	if err != nil || len(limited) != 2 || limited[0] != got[0] || limited[1] != got[1] {
		t.Errorf("limit 2: %+v, %v; want the two newest", limited, err)
	}
}

func TestAuditInvalidEntryIsRefused(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org, user := audSeed(t, d)
	if err := d.AppendAudit(ctx, app.AuditEntry{OrgID: org, ActorID: user, Action: "credentials.save", Outcome: "maybe"}); err == nil {
		t.Error("an outcome other than success or failure was stored")
	}
	if err := d.AppendAudit(ctx, app.AuditEntry{OrgID: "not-a-uuid", Action: "credentials.save", Outcome: app.OutcomeSuccess}); err == nil {
		t.Error("an entry without a valid org was stored")
	}
}

func TestAuditStaysInItsOrg(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	orgA, userA := audSeed(t, d)
	orgB, userB := audSeed(t, d)
	for i := range 3 {
		if err := d.AppendAudit(ctx, app.AuditEntry{OrgID: orgA, ActorID: userA, Action: "credentials.save",
			Provider: app.Vapi, Outcome: app.OutcomeSuccess, Detail: fmt.Sprintf("A %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.AppendAudit(ctx, app.AuditEntry{OrgID: orgB, ActorID: userB, Action: "credentials.save",
		Provider: app.Twilio, Outcome: app.OutcomeFailure, Detail: "B"}); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		org  string
		want int
	}{{orgA, 3}, {orgB, 1}} {
		got, err := d.AuditLog(ctx, tt.org, 100)
		if err != nil || len(got) != tt.want {
			t.Fatalf("org %s: %d entries, %v; want %d", tt.org, len(got), err, tt.want)
		}
		for _, e := range got {
			if e.OrgID != tt.org {
				t.Errorf("org %s sees %+v", tt.org, e)
			}
		}
	}

	// Row level security underneath: even without the WHERE clause, a
	// tenant transaction of org B sees only org B's entries.
	var n int
	if err := d.InOrg(ctx, orgB, userB, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `select count(*) from audit_log`).Scan(&n)
	}); err != nil || n != 1 {
		t.Errorf("org B counts %d audit entries without a filter (%v), want 1", n, err)
	}
	// And tenants cannot rewrite history.
	err := d.InOrg(ctx, orgA, userA, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `update audit_log set detail = 'rewritten' where org_id = $1`, orgA)
		return err
	})
	if err == nil {
		t.Error("a tenant updated its audit log")
	}
}

// Every credential write appends the audit entries it is given in its own
// transaction: the entry lands with the change, an entry the log refuses
// (or one of another org) refuses the change, and a delete of nothing
// appends nothing.
func TestCredentialWritesAppendTheirEntries(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	writes := []struct {
		name  string
		write func(org string, e app.AuditEntry) error
	}{
		{"save", func(org string, e app.AuditEntry) error {
			_, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("second")}, nil, nil, e)
			return err
		}},
		{"delete", func(org string, e app.AuditEntry) error {
			_, err := d.DeleteConnection(ctx, org, app.Vapi, true, e)
			return err
		}},
		{"record a check", func(org string, e app.AuditEntry) error {
			_, _, err := d.RecordCheck(ctx, org, app.Vapi, app.CheckOutcome{At: time.Now(), Error: "Vapi refused the key.", Code: "refused"}, e)
			return err
		}},
		{"webhook signing", func(org string, e app.AuditEntry) error {
			_, err := d.SetWebhookHMACOnly(ctx, org, false, e)
			return err
		}},
		{"webhook secret rotation", func(org string, e app.AuditEntry) error {
			_, err := d.ReplaceVapiWebhookSecret(ctx, org, []byte("rotated"), e)
			return err
		}},
		{"webhook secret reveal", func(org string, e app.AuditEntry) error {
			_, err := d.ClaimWebhookSecretReveal(ctx, org, e)
			return err
		}},
	}
	// connected gives a new org a Vapi row and returns the org and its row.
	connected := func(t *testing.T) (org string, row func() string) {
		t.Helper()
		org = dbtest.SeedOrg(t, "audited writes")
		if _, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("first"),
			WebhookHMACOnly: true}, nil, nil); err != nil {
			t.Fatal(err)
		}
		return org, func() string {
			var s string
			if err := d.Pool.QueryRow(ctx, `select coalesce((select row_to_json(c)::text from org_credentials c
				where org_id = $1 and provider = 'vapi'), 'none')`, org).Scan(&s); err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	entries := func(t *testing.T, org string) []app.AuditEntry {
		t.Helper()
		log, err := d.AuditLog(ctx, org, 10)
		if err != nil {
			t.Fatal(err)
		}
		return log
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			t.Run("the entry lands with the change", func(t *testing.T) {
				org, row := connected(t)
				before := row()
				e := app.AuditEntry{OrgID: org, Action: "credentials." + w.name, Provider: app.Vapi, Outcome: app.OutcomeSuccess, Detail: w.name}
				if err := w.write(org, e); err != nil {
					t.Fatal(err)
				}
				if row() == before {
					t.Errorf("the row did not change")
				}
				if log := entries(t, org); len(log) != 1 || log[0].Action != e.Action || log[0].Detail != e.Detail {
					t.Errorf("audit log = %+v, want the one entry", log)
				}
			})
			t.Run("a refused entry refuses the change", func(t *testing.T) {
				org, row := connected(t)
				before := row()
				failTrigger(t, d, "audit_log", "INSERT", org)
				err := w.write(org, app.AuditEntry{OrgID: org, Action: "credentials." + w.name, Provider: app.Vapi, Outcome: app.OutcomeSuccess})
				if err == nil {
					t.Fatal("the write succeeded without its audit entry")
				}
				if after := row(); after != before {
					t.Errorf("row after the refused entry = %s, want %s", after, before)
				}
			})
			t.Run("an entry of another org refuses the change", func(t *testing.T) {
				org, row := connected(t)
				other := dbtest.SeedOrg(t, "audited writes")
				before := row()
				err := w.write(org, app.AuditEntry{OrgID: other, Action: "credentials." + w.name, Provider: app.Vapi, Outcome: app.OutcomeSuccess})
				if err == nil {
					t.Fatal("the write took another org's entry")
				}
				if after := row(); after != before {
					t.Errorf("row after the refused entry = %s, want %s", after, before)
				}
				if log := entries(t, other); len(log) != 0 {
					t.Errorf("the other org's log = %+v", log)
				}
			})
		})
	}
	t.Run("a delete of nothing appends nothing", func(t *testing.T) {
		org := dbtest.SeedOrg(t, "audited writes")
		deleted, err := d.DeleteConnection(ctx, org, app.Resend, false, app.AuditEntry{OrgID: org, Action: "credentials.disconnect",
			Provider: app.Resend, Outcome: app.OutcomeSuccess})
		if err != nil || deleted {
			t.Fatalf("DeleteConnection = %v, %v; want false, nil", deleted, err)
		}
		if log := entries(t, org); len(log) != 0 {
			t.Errorf("audit log = %+v, want empty", log)
		}
	})
}
