package db_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"byoc/app"
	"byoc/db"
	"byoc/db/dbtest"
)

// Migration 00004 reads the code that rows written before it carried in
// their message ("Reconnect needed: ...") into verification_code, and its
// down migration puts it back. It runs on a database of its own: rolling
// back the shared one would break the other tests.
func TestMigrationMovesReconnectPrefixIntoCode(t *testing.T) {
	ctx := context.Background()
	dbtest.DB(t) // skips without a server
	u, drop, err := dbtest.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	d, err := db.Open(ctx, u, db.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	applied := func() map[int64]bool {
		t.Helper()
		st, err := d.MigrationStatuses(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int64]bool{}
		for _, s := range st {
			out[s.Version] = s.Applied
		}
		return out
	}
	if err := d.MigrateUp(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	// Steps down past 00004, through whatever later migrations there are.
	downBefore4 := func() {
		t.Helper()
		for applied()[4] {
			if err := d.MigrateDown(ctx, quiet); err != nil {
				t.Fatal(err)
			}
		}
	}
	downBefore4()
	if a := applied(); !a[3] || a[4] {
		t.Fatalf("after stepping down: %v; want 00003 applied and 00004 not", a)
	}

	// Rows as the code before 00004 wrote them.
	const reason = "Google refused the stored authorization (invalid_grant). Connect Google Calendar again."
	var org string
	if err := d.Pool.QueryRow(ctx, `insert into orgs (name) values ('migration test') returning id::text`).Scan(&org); err != nil {
		t.Fatal(err)
	}
	rows := []struct {
		provider app.Provider
		stored   *string // verification_error before 00004
		wantErr  string
		wantCode string
	}{
		{app.GoogleCalendar, ptr("Reconnect needed: " + reason), reason, app.ReasonReconnect},
		{app.Vapi, ptr("Reconnect needed:no space after the colon."), "no space after the colon.", app.ReasonReconnect},
		{app.Resend, ptr("Resend refused the key (401). Reconnect needed: no."), "Resend refused the key (401). Reconnect needed: no.", ""},
		{app.Twilio, ptr("reconnect needed: lower case is not the prefix."), "reconnect needed: lower case is not the prefix.", ""},
		{app.ElevenLabs, nil, "", ""},
	}
	for _, r := range rows {
		if _, err := d.Pool.Exec(ctx, `insert into org_credentials (org_id, provider, encrypted_config, verification_error)
			values ($1, $2, '\x01'::bytea, $3)`, org, string(r.provider), r.stored); err != nil {
			t.Fatal(err)
		}
	}

	if err := d.MigrateUp(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	if a := applied(); !a[4] {
		t.Fatalf("after migrating up: %v", a)
	}
	for _, r := range rows {
		rec, err := d.GetCredential(ctx, org, r.provider)
		if err != nil {
			t.Fatal(err)
		}
		if rec.VerificationError != r.wantErr || rec.VerificationCode != r.wantCode {
			t.Errorf("%s: error %q, code %q; want %q, %q", r.provider, rec.VerificationError, rec.VerificationCode, r.wantErr, r.wantCode)
		}
	}

	// The way back restores the message the old code reads.
	downBefore4()
	var msg string
	if err := d.Pool.QueryRow(ctx, `select verification_error from org_credentials where org_id = $1 and provider = 'google_calendar'`,
		org).Scan(&msg); err != nil {
		t.Fatal(err)
	}
	if msg != "Reconnect needed: "+reason {
		t.Errorf("after migrating down: %q", msg)
	}
	var cols int
	if err := d.Pool.QueryRow(ctx, `select count(*) from information_schema.columns
		where table_name = 'org_credentials' and column_name = 'verification_code'`).Scan(&cols); err != nil {
		t.Fatal(err)
	}
	if cols != 0 {
		t.Error("verification_code still exists after migrating down")
	}
}

func ptr(s string) *string { return &s }
