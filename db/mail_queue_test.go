package db_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"byoc/app"
	"byoc/db"
	"byoc/db/dbtest"
)

// addMember adds a new user with email to org as role.
func addMember(t *testing.T, d *db.DB, org, email, role string) {
	t.Helper()
	if _, err := d.Pool.Exec(context.Background(), `
		with u as (insert into users (email, password_hash) values ($1, 'x') returning id)
		insert into org_members (org_id, user_id, role) select $2, id, $3 from u`, email, org, role); err != nil {
		t.Fatal(err)
	}
}

// queuedFor returns the recipients of the org's queued notices and their
// provider, reason, status and due time.
func queuedFor(t *testing.T, d *db.DB, org string) map[string][4]string {
	t.Helper()
	rows, err := d.Pool.Query(context.Background(), `
		select recipient, provider, reason, status, next_attempt_at from mail_queue where org_id = $1`, org)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][4]string{}
	for rows.Next() {
		var to, p, reason, status string
		var due time.Time
		if err := rows.Scan(&to, &p, &reason, &status, &due); err != nil {
			t.Fatal(err)
		}
		out[to] = [4]string{p, reason, status, due.UTC().Format(time.RFC3339)}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBreakQueuesNotices: the check that breaks a working connection
// queues one notice per admin (no member, nobody of another org) in its
// transaction, due at the check's time; further failures queue nothing.
func TestBreakQueuesNotices(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org, other := dbtest.SeedOrg(t, "notices"), dbtest.SeedOrg(t, "other notices")
	suffix := time.Now().Format("150405.000000000")
	a, b := "a."+suffix+"@example.com", "b."+suffix+"@example.com"
	addMember(t, d, org, a, "admin")
	addMember(t, d, org, b, "admin")
	addMember(t, d, org, "m."+suffix+"@example.com", "member")
	addMember(t, d, other, "o."+suffix+"@example.com", "admin")
	if _, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: org, Provider: app.Twilio, Ciphertext: []byte("sealed")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2003, 4, 5, 6, 7, 8, 0, time.UTC)
	fail := app.CheckOutcome{At: at, Error: "Twilio rejected the Account SID or Auth Token.", Code: app.ReasonReconnect}
	if _, broke, err := d.RecordCheck(ctx, org, app.Twilio, fail); err != nil || !broke {
		t.Fatalf("break: %v, %v", broke, err)
	}
	want := [4]string{"twilio", fail.Error, "pending", at.Format(time.RFC3339)}
	got := queuedFor(t, d, org)
	if len(got) != 2 || got[a] != want || got[b] != want {
		t.Fatalf("queued %v, want %v for %s and %s", got, want, a, b)
	}
	fail.At = at.Add(time.Minute)
	if _, broke, err := d.RecordCheck(ctx, org, app.Twilio, fail); err != nil || broke {
		t.Fatalf("second failure: %v, %v", broke, err)
	}
	if got := queuedFor(t, d, org); len(got) != 2 {
		t.Fatalf("a failure of a failing connection queued more: %v", got)
	}
	if got := queuedFor(t, d, other); len(got) != 0 {
		t.Fatalf("another org's admins were queued: %v", got)
	}
}

// TestClaimMail: concurrent claimers share the due notices without
// overlap; a claimed notice is not due again until its lease is over; a
// claim that ran out cannot settle over the next one; settled notices are
// never claimed again.
func TestClaimMail(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org := dbtest.SeedOrg(t, "claims")
	// A time of its own, so that no other test's notice is due.
	t0 := time.Date(2002, 3, 4, 5, 6, 7, 0, time.UTC)
	const n = 40
	for i := range n {
		if _, err := d.Pool.Exec(ctx, `insert into mail_queue (org_id, kind, provider, reason, recipient, next_attempt_at, created_at)
			values ($1, 'connection_broke', 'vapi', 'Vapi refused the key.', $2, $3, $3)`,
			org, "r"+time.Duration(i).String()+"@example.com", t0.Add(time.Duration(i)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	now := t0.Add(time.Second)
	lease := time.Minute

	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := d.ClaimMail(ctx, now, lease, 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, m := range got {
					seen[m.ID]++
					if m.Attempt != 1 || m.OrgID != org || m.Provider != app.Vapi || m.Kind != app.MailKindConnectionBroke {
						t.Errorf("claim %+v", m)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("claimed %d distinct notices, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("notice %s claimed %d times", id, c)
		}
	}
	if got, err := d.ClaimMail(ctx, now.Add(lease-time.Second), lease, n); err != nil || len(got) != 0 {
		t.Fatalf("within the lease: %d claimed, %v", len(got), err)
	}

	// The lease is over: claimed again, as attempt 2.
	later := now.Add(lease)
	again, err := d.ClaimMail(ctx, later, lease, n)
	if err != nil || len(again) != n {
		t.Fatalf("after the lease: %d claimed, %v", len(again), err)
	}
	m := again[0]
	if m.Attempt != 2 {
		t.Fatalf("attempt %d, want 2", m.Attempt)
	}
	if held, err := d.SettleMail(ctx, m.ID, 1, app.MailSettlement{Status: app.MailSent, At: later}); err != nil || held {
		t.Fatalf("the first, expired claim settled: %v, %v", held, err)
	}
	if held, err := d.SettleMail(ctx, m.ID, 2, app.MailSettlement{Status: app.MailSent, At: later}); err != nil || !held {
		t.Fatalf("the holding claim: %v, %v", held, err)
	}
	if held, err := d.SettleMail(ctx, m.ID, 2, app.MailSettlement{Status: app.MailFailed, At: later, Error: "x"}); err != nil || held {
		t.Fatalf("a settled notice settled again: %v, %v", held, err)
	}
	// A retry must be later than the attempt; then it is due at that time.
	r := again[1]
	if _, err := d.SettleMail(ctx, r.ID, 2, app.MailSettlement{Status: app.MailPending, At: later, RetryAt: later}); err == nil {
		t.Fatal("a retry not later than the attempt was accepted")
	}
	retryAt := later.Add(10 * time.Minute)
	if held, err := d.SettleMail(ctx, r.ID, 2, app.MailSettlement{Status: app.MailPending, At: later, RetryAt: retryAt, Error: "Resend is not available right now."}); err != nil || !held {
		t.Fatalf("retry: %v, %v", held, err)
	}
	for _, x := range again[2:] {
		if held, err := d.SettleMail(ctx, x.ID, 2, app.MailSettlement{Status: app.MailFailed, At: later, Error: "refused"}); err != nil || !held {
			t.Fatalf("fail: %v, %v", held, err)
		}
	}
	if got, err := d.ClaimMail(ctx, retryAt.Add(-time.Second), lease, n); err != nil || len(got) != 0 {
		t.Fatalf("before the retry is due: %d claimed, %v", len(got), err)
	}
	got, err := d.ClaimMail(ctx, retryAt.Add(time.Hour), lease, n)
	if err != nil || len(got) != 1 || got[0].ID != r.ID || got[0].Attempt != 3 {
		t.Fatalf("at the retry: %+v, %v; want only %s as attempt 3", got, err, r.ID)
	}
	var lastError string
	if err := d.Pool.QueryRow(ctx, `select coalesce(last_error, '') from mail_queue where id = $1`, r.ID).Scan(&lastError); err != nil || lastError != "Resend is not available right now." {
		t.Fatalf("last_error %q, %v", lastError, err)
	}

	for _, bad := range []struct {
		lease time.Duration
		limit int
	}{{0, 1}, {time.Minute, 0}} {
		if _, err := d.ClaimMail(ctx, now, bad.lease, bad.limit); err == nil {
			t.Errorf("lease %v limit %d accepted", bad.lease, bad.limit)
		}
	}
	if _, err := d.SettleMail(ctx, "not-a-uuid", 1, app.MailSettlement{Status: app.MailSent, At: now}); err == nil {
		t.Error("a malformed id was accepted")
	}
	if _, err := d.SettleMail(ctx, m.ID, 2, app.MailSettlement{Status: "maybe", At: now}); err == nil {
		t.Error("an unknown status was accepted")
	}
}

// TestBreakWithoutItsNoticesIsNotRecorded: when the notices cannot be
// queued, the check that would break the connection is not recorded
// either, so a later failure still decides the break (and queues them).
func TestBreakWithoutItsNoticesIsNotRecorded(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org := dbtest.SeedOrg(t, "unqueued")
	admin := "admin." + time.Now().Format("150405.000000000") + "@example.com"
	addMember(t, d, org, admin, "admin")
	if _, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: org, Provider: app.Resend, Ciphertext: []byte("sealed")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	// Queueing this org's notices fails (the trigger names no other org).
	if _, err := d.Pool.Exec(ctx, `create function public.refuse_mail_`+org[:8]+`() returns trigger language plpgsql as $$
		begin raise exception 'queue unavailable'; end $$`); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Pool.Exec(ctx, `create trigger refuse_mail_`+org[:8]+` before insert on mail_queue for each row
		when (new.org_id = '`+org+`') execute function public.refuse_mail_`+org[:8]+`()`); err != nil {
		t.Fatal(err)
	}
	dropped := false
	drop := func() {
		if dropped {
			return
		}
		dropped = true
		if _, err := d.Pool.Exec(ctx, `drop trigger refuse_mail_`+org[:8]+` on mail_queue; drop function public.refuse_mail_`+org[:8]+`()`); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(drop)

	fail := app.CheckOutcome{At: time.Now(), Error: "Resend rejected the API key.", Code: app.ReasonReconnect}
	if _, broke, err := d.RecordCheck(ctx, org, app.Resend, fail); err == nil || broke {
		t.Fatalf("a break whose notices could not be queued: broke %v, err %v; want an error", broke, err)
	}
	var stillWorking bool
	if err := d.Pool.QueryRow(ctx, `select verification_error is null from org_credentials where org_id = $1 and provider = 'resend'`, org).Scan(&stillWorking); err != nil || !stillWorking {
		t.Fatalf("the failed check was recorded without its notices (working %v, %v)", stillWorking, err)
	}
	drop()
	if _, broke, err := d.RecordCheck(ctx, org, app.Resend, fail); err != nil || !broke {
		t.Fatalf("the next failure: broke %v, %v", broke, err)
	}
	if got := queuedFor(t, d, org); len(got) != 1 || got[admin][0] != "resend" {
		t.Fatalf("queued %v", got)
	}
}
