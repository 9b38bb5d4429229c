package db_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"byoc/app"
	"byoc/db/dbtest"
)

// TestRecordCheckBreaksOnce: of many concurrent failed checks of a working
// connection exactly one reports the break; further failures do not, and a
// passed check (or new credentials) lets the next failure break it again.
func TestRecordCheckBreaksOnce(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org := dbtest.SeedOrg(t, "breaks")
	save := func() {
		t.Helper()
		if _, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: org, Provider: app.Resend, Ciphertext: []byte("sealed")}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	fail := app.CheckOutcome{At: time.Now(), Error: "Resend rejected the API key.", Code: app.ReasonReconnect}
	concurrent := func() int {
		t.Helper()
		var broke atomic.Int32
		var wg sync.WaitGroup
		for range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, b, err := d.RecordCheck(ctx, org, app.Resend, fail)
				if err != nil {
					t.Error(err)
				}
				if b {
					broke.Add(1)
				}
			}()
		}
		wg.Wait()
		return int(broke.Load())
	}

	save()
	if n := concurrent(); n != 1 {
		t.Fatalf("12 concurrent failures of a working connection broke it %d times, want 1", n)
	}
	if _, b, err := d.RecordCheck(ctx, org, app.Resend, fail); err != nil || b {
		t.Fatalf("a failure of a failing connection: broke %v, %v", b, err)
	}
	// A passed check is a recovery, and passing never breaks anything.
	if _, b, err := d.RecordCheck(ctx, org, app.Resend, app.CheckOutcome{At: time.Now()}); err != nil || b {
		t.Fatalf("a passed check: broke %v, %v", b, err)
	}
	if n := concurrent(); n != 1 {
		t.Fatalf("after recovering, concurrent failures broke it %d times, want 1", n)
	}
	// New credentials are working again until a check fails.
	save()
	if _, b, err := d.RecordCheck(ctx, org, app.Resend, fail); err != nil || !b {
		t.Fatalf("the first failure after a save: broke %v, %v; want a break", b, err)
	}
	if _, b, err := d.RecordCheck(ctx, org, app.Twilio, fail); app.ErrorCode(err) != app.ENotConfigured || b {
		t.Fatalf("a check of nothing stored: %v, broke %v", err, b)
	}
}

// TestOrgAdminEmails lists the org's admins only: no member, nobody of
// another org.
func TestOrgAdminEmails(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org, other := dbtest.SeedOrg(t, "admins"), dbtest.SeedOrg(t, "other admins")
	add := func(orgID, email, role string) {
		t.Helper()
		if _, err := d.Pool.Exec(ctx, `
			with u as (insert into users (email, password_hash) values ($1, 'x') returning id)
			insert into org_members (org_id, user_id, role) select $2, id, $3 from u`, email, orgID, role); err != nil {
			t.Fatal(err)
		}
	}
	suffix := time.Now().Format("150405.000000000")
	add(org, "first."+suffix+"@example.com", "admin")
	add(org, "member."+suffix+"@example.com", "member")
	add(org, "second."+suffix+"@example.com", "admin")
	add(other, "elsewhere."+suffix+"@example.com", "admin")
	got, err := d.OrgAdminEmails(ctx, org)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "first."+suffix+"@example.com" || got[1] != "second."+suffix+"@example.com" {
		t.Fatalf("admins %v", got)
	}
	if _, err := d.OrgAdminEmails(ctx, "not-a-uuid"); err == nil {
		t.Fatal("an org id that is not a UUID was accepted")
	}
}

// TestClaimChecksRefusesNonsense: no interval, a negative jitter or no
// room for a claim is an error, never a claim of everything.
func TestClaimChecksRefusesNonsense(t *testing.T) {
	d := dbtest.DB(t)
	for _, c := range []struct {
		interval, jitter time.Duration
		limit            int
	}{{0, 0, 1}, {time.Hour, -time.Second, 1}, {time.Hour, 0, 0}} {
		if got, err := d.ClaimChecks(context.Background(), time.Now(), c.interval, c.jitter, c.limit); err == nil {
			t.Fatalf("ClaimChecks(%v, %v, %d) = %v, want an error", c.interval, c.jitter, c.limit, got)
		}
	}
}
