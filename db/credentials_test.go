package db_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/app"
	"byoc/db"
	"byoc/db/dbtest"
)

func credCountRows(t *testing.T, d *db.DB, orgID string) int {
	t.Helper()
	var n int
	if err := d.Pool.QueryRow(context.Background(),
		`select count(*) from org_credentials where org_id = $1`, orgID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCredentialsCRUD(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org := dbtest.SeedOrg(t, "credentials test")
	verified := time.Now().Add(-time.Minute).Truncate(time.Microsecond)

	if _, err := d.GetCredential(ctx, org, app.Vapi); app.ErrorCode(err) != app.ENotConfigured {
		t.Fatalf("get before save: got %v, want %s", err, app.ENotConfigured)
	}
	if _, err := d.RecordVerification(ctx, org, app.Vapi, verified, "", ""); app.ErrorCode(err) != app.ENotConfigured {
		t.Fatalf("record verification before save: got %v, want %s", err, app.ENotConfigured)
	}
	list, err := d.ListCredentials(ctx, org)
	if err != nil || len(list) != 0 || list == nil {
		t.Fatalf("list before save: %v, %v; want an empty, non-nil slice", list, err)
	}

	saved, err := d.SaveConnection(ctx, app.CredentialRecord{
		OrgID: org, Provider: app.Vapi, Ciphertext: []byte("first"), LastVerifiedAt: &verified,
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if saved.OrgID != org || saved.Provider != app.Vapi || !saved.IsActive || string(saved.Ciphertext) != "first" ||
		saved.LastVerifiedAt == nil || !saved.LastVerifiedAt.Equal(verified) || saved.VerificationError != "" ||
		saved.VerificationCode != "" || saved.CreatedAt.IsZero() || saved.UpdatedAt.IsZero() {
		t.Fatalf("upsert returned %+v", saved)
	}

	// A second save replaces the ciphertext and the verification state in place.
	failedAt := verified.Add(time.Second)
	recorded, err := d.RecordVerification(ctx, org, app.Vapi, failedAt, "key revoked", app.ReasonReconnect)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.GetCredential(ctx, org, app.Vapi)
	if err != nil {
		t.Fatal(err)
	}
	if got.VerificationError != "key revoked" || got.VerificationCode != app.ReasonReconnect || !got.LastCheckedAt.Equal(failedAt) ||
		!got.LastVerifiedAt.Equal(verified) {
		t.Fatalf("after RecordVerification: %+v", got)
	}
	// RecordVerification returns the row as it now is, its ciphertext and
	// updated_at untouched.
	if recorded.VerificationError != got.VerificationError || recorded.VerificationCode != got.VerificationCode ||
		recorded.LastCheckedAt == nil || !recorded.LastCheckedAt.Equal(failedAt) || string(recorded.Ciphertext) != "first" ||
		!recorded.UpdatedAt.Equal(saved.UpdatedAt) || !recorded.CreatedAt.Equal(saved.CreatedAt) || recorded.OrgID != org ||
		recorded.Provider != app.Vapi || !recorded.IsActive {
		t.Fatalf("RecordVerification returned %+v, stored %+v", recorded, got)
	}
	again, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("second")}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(again.Ciphertext) != "second" || again.LastVerifiedAt != nil || again.VerificationError != "" || again.VerificationCode != "" ||
		!again.CreatedAt.Equal(saved.CreatedAt) || !again.UpdatedAt.After(saved.UpdatedAt) {
		t.Fatalf("second upsert: %+v (first %+v)", again, saved)
	}
	if n := credCountRows(t, d, org); n != 1 {
		t.Fatalf("rows after two saves: %d, want 1", n)
	}

	if _, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: org, Provider: app.Twilio, Ciphertext: []byte("t")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	list, err = d.ListCredentials(ctx, org)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Provider != app.Twilio || list[1].Provider != app.Vapi {
		t.Fatalf("list: %+v", list)
	}

	deleted, err := d.DeleteConnection(ctx, org, app.Vapi, false)
	if err != nil || !deleted {
		t.Fatalf("delete: %v, %v", deleted, err)
	}
	deleted, err = d.DeleteConnection(ctx, org, app.Vapi, false)
	if err != nil || deleted {
		t.Fatalf("second delete: %v, %v; want false, nil", deleted, err)
	}
	if _, err := d.GetCredential(ctx, org, app.Vapi); app.ErrorCode(err) != app.ENotConfigured {
		t.Fatalf("get after delete: %v", err)
	}
}

func TestCredentialsStayInTheirOrg(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	orgA, orgB := dbtest.SeedOrg(t, "credentials test"), dbtest.SeedOrg(t, "credentials test")
	if _, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: orgA, Provider: app.Resend, Ciphertext: []byte("a")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := d.GetCredential(ctx, orgB, app.Resend); app.ErrorCode(err) != app.ENotConfigured {
		t.Fatalf("org B reads org A's row: %v", err)
	}
	if list, err := d.ListCredentials(ctx, orgB); err != nil || len(list) != 0 {
		t.Fatalf("org B lists %d rows, %v", len(list), err)
	}
	if deleted, err := d.DeleteConnection(ctx, orgB, app.Resend, false); err != nil || deleted {
		t.Fatalf("org B deletes org A's row: %v, %v", deleted, err)
	}
	if _, err := d.RecordVerification(ctx, orgB, app.Resend, time.Now(), "x", ""); app.ErrorCode(err) != app.ENotConfigured {
		t.Fatalf("org B updates org A's row: %v", err)
	}
	if n := credCountRows(t, d, orgA); n != 1 {
		t.Fatalf("org A has %d rows, want 1", n)
	}
	// An org id that is not a UUID never reaches SQL.
	if _, err := d.GetCredential(ctx, "not-an-org", app.Resend); !errors.Is(err, db.ErrNoOrg) {
		t.Fatalf("bad org id: %v, want ErrNoOrg", err)
	}
}

func TestSaveConnectionConcurrently(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org := dbtest.SeedOrg(t, "credentials test")
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: org, Provider: app.ElevenLabs, Ciphertext: []byte{byte(i)}}, nil, nil)
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
	if got := credCountRows(t, d, org); got != 1 {
		t.Fatalf("rows after %d concurrent saves: %d, want 1", n, got)
	}
}

type credNote struct{ org, provider string }

// credListenerPID waits until the listener's connection to this test
// database has run LISTEN and returns its backend pid, skipping otherThan
// (the pid of a connection known to be gone).
// credNoListener waits until no listener of an earlier test is left on this
// database: a closed connection's backend lingers in pg_stat_activity for a
// moment, and credListenerPID must not mistake it for the new listener.
func credNoListener(t *testing.T, d *db.DB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		if err := d.Pool.QueryRow(context.Background(), `select count(*) from pg_stat_activity
			where datname = current_database() and application_name = $1`, db.ListenerApplicationName).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("a listener of an earlier test is still connected")
}

func credListenerPID(t *testing.T, d *db.DB, otherThan int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var pid int
		err := d.Pool.QueryRow(context.Background(), `
			select pid from pg_stat_activity
			where datname = current_database() and application_name = $1 and pid <> $2
			  and state = 'idle' and query ilike 'listen%'`, db.ListenerApplicationName, otherThan).Scan(&pid)
		if err == nil {
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the listener never started listening")
	return 0
}

func TestListenInvalidations(t *testing.T) {
	d := dbtest.DB(t)
	credNoListener(t, d)
	org := dbtest.SeedOrg(t, "credentials test")
	ctx, cancel := context.WithCancel(context.Background())
	notes := make(chan credNote, 16)
	reconnects := make(chan struct{}, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.ListenInvalidations(ctx,
			func(org, provider string) { notes <- credNote{org, provider} },
			func() { reconnects <- struct{}{} })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("ListenInvalidations did not return after its context ended")
		}
	})

	expect := func(step string, want credNote) {
		t.Helper()
		select {
		case got := <-notes:
			if got != want {
				t.Fatalf("%s: notification %+v, want %+v", step, got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no notification", step)
		}
	}
	bg := context.Background()

	pid := credListenerPID(t, d, 0)
	if _, err := d.SaveConnection(bg, app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("x")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	expect("upsert", credNote{org, "vapi"})
	if _, err := d.RecordVerification(bg, org, app.Vapi, time.Now(), "nope", ""); err != nil {
		t.Fatal(err)
	}
	// Only the status changed: the notice says so.
	expect("record verification", credNote{org, string(app.StatusScope)})
	if _, err := d.SetWebhookHMACOnly(bg, org, true); err != nil {
		t.Fatal(err)
	}
	// The webhook caches hold the setting with the Vapi credentials.
	expect("webhook signing", credNote{org, "vapi"})
	if _, err := d.DeleteConnection(bg, org, app.Vapi, false); err != nil {
		t.Fatal(err)
	}
	expect("delete", credNote{org, "vapi"})
	// Deleting nothing, or a failed write, announces nothing.
	if _, err := d.DeleteConnection(bg, org, app.Vapi, false); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeleteConnection(bg, org, app.Vapi, true); err != nil {
		t.Fatal(err)
	}
	_, _ = d.RecordVerification(bg, org, app.Vapi, time.Now(), "", "")
	// A key rotation changes the encryption, not what it decrypts to: it
	// announces nothing, so a rotation of every row cools no cache.
	if _, err := d.SaveConnection(bg, app.CredentialRecord{OrgID: org, Provider: app.Resend, Ciphertext: []byte("r1")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	expect("upsert before a rotation", credNote{org, "resend"})
	if swapped, err := d.ReplaceCiphertext(bg, org, app.Resend, []byte("r1"), []byte("r2")); err != nil || !swapped {
		t.Fatalf("ReplaceCiphertext = %v, %v", swapped, err)
	}
	if _, err := d.SaveConnection(bg, app.CredentialRecord{OrgID: org, Provider: app.ElevenLabs, Ciphertext: []byte("z")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	expect("upsert after writes that changed nothing", credNote{org, "elevenlabs"})
	select {
	case got := <-reconnects:
		t.Fatalf("reconnect before any connection loss: %v", got)
	default:
	}

	// Kill the listener's backend: it reconnects, asks for a flush, and hears
	// later writes.
	var killed bool
	if err := d.Pool.QueryRow(bg, `select pg_terminate_backend($1)`, pid).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate listener backend: %v, %v", killed, err)
	}
	select {
	case <-reconnects:
	case <-time.After(10 * time.Second):
		t.Fatal("no onReconnect after the listener's connection was killed")
	}
	credListenerPID(t, d, pid)
	if _, err := d.SaveConnection(bg, app.CredentialRecord{OrgID: org, Provider: app.Twilio, Ciphertext: []byte("y")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	expect("upsert after reconnect", credNote{org, "twilio"})

	// A payload that names nothing readable makes the listener ask for a flush.
	if _, err := d.Pool.Exec(bg, `select pg_notify($1, 'garbage')`, db.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reconnects:
	case <-time.After(5 * time.Second):
		t.Fatal("no flush after an unreadable payload")
	}

	// A bulk write names many orgs in one payload: each is heard.
	other := dbtest.SeedOrg(t, "credentials test, other")
	if _, err := d.Pool.Exec(bg, `select pg_notify($1, $2)`, db.NotifyChannel,
		`{"orgs":["`+org+`","`+other+`"],"provider":"twilio"}`); err != nil {
		t.Fatal(err)
	}
	expect("a batch, first org", credNote{org, "twilio"})
	expect("a batch, second org", credNote{other, "twilio"})
	// One that names an org both ways, no org, or an empty one is unreadable.
	for _, payload := range []string{`{"org":"` + org + `","orgs":["` + other + `"]}`, `{"orgs":[]}`, `{"orgs":["` + org + `",""]}`} {
		if _, err := d.Pool.Exec(bg, `select pg_notify($1, $2)`, db.NotifyChannel, payload); err != nil {
			t.Fatal(err)
		}
		select {
		case <-reconnects:
		case <-time.After(5 * time.Second):
			t.Fatalf("no flush after %s", payload)
		}
	}
	select {
	case got := <-notes:
		t.Fatalf("an unreadable batch was applied: %+v", got)
	default:
	}
}

// A transaction that rolls back publishes nothing.
func TestNotifyOnlyOnCommit(t *testing.T) {
	d := dbtest.DB(t)
	credNoListener(t, d)
	org := dbtest.SeedOrg(t, "credentials test")
	ctx, cancel := context.WithCancel(context.Background())
	notes := make(chan credNote, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.ListenInvalidations(ctx, func(o, p string) { notes <- credNote{o, p} }, func() {})
	}()
	t.Cleanup(func() { cancel(); <-done })
	credListenerPID(t, d, 0)
	// An upsert for an org that does not exist fails on the foreign key.
	missing := "00000000-0000-4000-8000-000000000000"
	if _, err := d.SaveConnection(context.Background(), app.CredentialRecord{OrgID: missing, Provider: app.Vapi, Ciphertext: []byte("x")}, nil, nil); err == nil {
		t.Fatal("upsert for a missing org succeeded")
	}
	if _, err := d.SaveConnection(context.Background(), app.CredentialRecord{OrgID: org, Provider: app.Resend, Ciphertext: []byte("x")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-notes:
		if got != (credNote{org, "resend"}) {
			t.Fatalf("first notification %+v, want the committed write of %s", got, org)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no notification")
	}
}

// The code of a verification error is stored next to it, cleared with it,
// and only ever a short lower-case word.
func TestVerificationCode(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org := dbtest.SeedOrg(t, "credentials test")
	at := time.Now().Truncate(time.Microsecond)
	saved, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: org, Provider: app.GoogleCalendar, Ciphertext: []byte("g"),
		LastVerifiedAt: &at, VerificationError: "Google refused.", VerificationCode: app.ReasonReconnect}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if saved.VerificationError != "Google refused." || saved.VerificationCode != app.ReasonReconnect {
		t.Fatalf("saved %+v", saved)
	}
	list, err := d.ListCredentials(ctx, org)
	if err != nil || len(list) != 1 || list[0].VerificationCode != app.ReasonReconnect {
		t.Fatalf("list: %+v, %v", list, err)
	}
	for _, bad := range []string{"Reconnect needed", "reconnect-needed", strings.Repeat("x", 41)} {
		if _, err := d.RecordVerification(ctx, org, app.GoogleCalendar, at, "x", bad); err == nil {
			t.Errorf("code %q stored", bad)
		}
	}
	rec, err := d.RecordVerification(ctx, org, app.GoogleCalendar, at, "", "")
	if err != nil || rec.VerificationError != "" || rec.VerificationCode != "" {
		t.Fatalf("passing check: %+v, %v", rec, err)
	}
	var code *string
	if err := d.Pool.QueryRow(ctx, `select verification_code from org_credentials where org_id = $1`, org).Scan(&code); err != nil {
		t.Fatal(err)
	}
	if code != nil {
		t.Fatalf("verification_code = %q, want NULL", *code)
	}
}

// The HMAC-only webhook setting lives on the org's Vapi row: a new row takes
// the one it is saved with, a save over a stored row keeps the row's, and
// SetWebhookHMACOnly changes only it.
func TestWebhookHMACOnly(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org, other := dbtest.SeedOrg(t, "hmac only"), dbtest.SeedOrg(t, "hmac only other")

	if _, err := d.SetWebhookHMACOnly(ctx, org, true); app.ErrorCode(err) != app.ENotConfigured {
		t.Fatalf("set before any save: %v, want %s", err, app.ENotConfigured)
	}
	saved, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("v1"),
		WebhookHMACOnly: true}, nil, nil)
	if err != nil || !saved.WebhookHMACOnly {
		t.Fatalf("new row saved HMAC-only: %+v, %v", saved, err)
	}
	if _, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: other, Provider: app.Vapi, Ciphertext: []byte("o1")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	again, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("v2")}, nil, nil)
	if err != nil || !again.WebhookHMACOnly || string(again.Ciphertext) != "v2" {
		t.Fatalf("a save over the row: %+v, %v; want the row's setting kept", again, err)
	}

	off, err := d.SetWebhookHMACOnly(ctx, org, false)
	if err != nil || off.WebhookHMACOnly || string(off.Ciphertext) != "v2" || !off.UpdatedAt.Equal(again.UpdatedAt) {
		t.Fatalf("turned off: %+v, %v; want only the setting changed", off, err)
	}
	if got, err := d.GetCredential(ctx, org, app.Vapi); err != nil || got.WebhookHMACOnly {
		t.Fatalf("stored after turning off: %+v, %v", got, err)
	}
	if _, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("v3"),
		WebhookHMACOnly: true}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := d.GetCredential(ctx, org, app.Vapi); err != nil || got.WebhookHMACOnly {
		t.Fatalf("after saving again: %+v, %v; want the admin's choice kept", got, err)
	}
	on, err := d.SetWebhookHMACOnly(ctx, org, true)
	if err != nil || !on.WebhookHMACOnly {
		t.Fatalf("turned on: %+v, %v", on, err)
	}
	if got, err := d.GetCredential(ctx, other, app.Vapi); err != nil || got.WebhookHMACOnly {
		t.Fatalf("the other org's row: %+v, %v; want it untouched", got, err)
	}

	// Only a Vapi row can carry the setting.
	if _, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: org, Provider: app.Resend, Ciphertext: []byte("r"),
		WebhookHMACOnly: true}, nil, nil); err == nil {
		t.Error("a Resend row was stored HMAC-only")
	}
}
