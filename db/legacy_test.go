package db_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/app"
	"byoc/db"
	"byoc/db/dbtest"
)

// TestImportRowsAddsOnly: ImportRows adds what is missing, leaves what is
// there alone, returns only what it added, fills only empty outbound
// fields from what it added, and records each item once.
func TestImportRowsAddsOnly(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	a, b := dbtest.SeedOrg(t, "import A"), dbtest.SeedOrg(t, "import B")
	kept := "a0000000-0000-4000-8000-00000000000b"
	if _, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: a, Provider: app.Resend, Ciphertext: []byte("theirs")},
		[]app.AssistantMapping{{VapiAssistantID: kept, OrgID: a, Role: app.Outbound}},
		&app.OutboundAgent{OrgID: a, VapiAssistantID: kept}); err != nil {
		t.Fatal(err)
	}
	in, out := "a0000000-0000-4000-8000-0000000000a1", "a0000000-0000-4000-8000-0000000000a2"
	rows := app.ImportRows{
		Credentials: []app.CredentialRecord{
			{OrgID: a, Provider: app.Resend, Ciphertext: []byte("legacy")},
			{OrgID: a, Provider: app.Twilio, Ciphertext: []byte("legacy")},
			{OrgID: b, Provider: app.Twilio, Ciphertext: []byte("legacy")},
		},
		Mappings: []app.AssistantMapping{
			{VapiAssistantID: in, OrgID: a, Role: app.Inbound},
			{VapiAssistantID: out, OrgID: a, Role: app.Outbound}, // A has one
			{VapiAssistantID: out, OrgID: b, Role: app.Outbound},
		},
		Outbound: []app.OutboundAgent{
			{OrgID: a, VapiAssistantID: out, PhoneNumber: "+14155550100"},
			{OrgID: b, VapiAssistantID: out, PhoneNumber: "+14155550101"},
		},
		Items: []app.ImportItem{{OrgID: a, Kind: app.ImportCredentials, Item: "resend"}, {OrgID: a, Kind: app.ImportCredentials, Item: "resend"}},
	}
	added, err := d.ImportRows(ctx, rows)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range added.Credentials {
		got = append(got, r.OrgID+" "+string(r.Provider))
	}
	slices.Sort(got)
	want := []string{a + " twilio", b + " twilio"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("credentials added: %v, want %v", got, want)
	}
	if len(added.Mappings) != 2 {
		t.Errorf("mappings added: %+v", added.Mappings)
	}
	rec, err := d.GetCredential(ctx, a, app.Resend)
	if err != nil || string(rec.Ciphertext) != "theirs" {
		t.Errorf("A's Resend row: %q, %v", rec.Ciphertext, err)
	}
	if ob, err := d.OutboundAgent(ctx, a); err != nil || ob.VapiAssistantID != kept || ob.PhoneNumber != "+14155550100" {
		t.Errorf("A's outbound agent: %+v, %v", ob, err)
	}
	if ob, err := d.OutboundAgent(ctx, b); err != nil || ob.VapiAssistantID != out || ob.PhoneNumber != "+14155550101" {
		t.Errorf("B's outbound agent: %+v, %v", ob, err)
	}
	st, err := d.ImportState(ctx, []string{a, b}, []string{kept})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Orgs) != 2 || len(st.Items) != 1 || len(st.Credentials) != 3 || len(st.Mappings) != 3 {
		t.Errorf("state: %d orgs, %d items, %d credentials, %d mappings", len(st.Orgs), len(st.Items), len(st.Credentials), len(st.Mappings))
	}
}

// TestImportRowsAnnouncesInBatches: a bulk import costs each listener a
// few notifications naming many orgs, each under PostgreSQL's payload
// limit, and none when it adds nothing.
func TestImportRowsAnnouncesInBatches(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "listen "+db.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	const n = 400
	var orgs []string
	if err := d.Pool.QueryRow(ctx, `with o as (insert into orgs (name) select 'bulk ' || i from generate_series(1, $1) i returning id::text)
		select array_agg(id) from o`, n).Scan(&orgs); err != nil {
		t.Fatal(err)
	}
	var rows app.ImportRows
	for _, o := range orgs {
		rows.Credentials = append(rows.Credentials, app.CredentialRecord{OrgID: o, Provider: app.Resend, Ciphertext: []byte("x")})
	}
	heard := func() []string {
		var out []string
		for {
			wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			note, err := conn.WaitForNotification(wctx)
			cancel()
			if err != nil {
				return out
			}
			out = append(out, note.Payload)
		}
	}
	if _, err := d.ImportRows(ctx, rows); err != nil {
		t.Fatal(err)
	}
	payloads := heard()
	if len(payloads) != 3 {
		t.Errorf("%d notifications for %d orgs, want 3", len(payloads), n)
	}
	var named []string
	for _, p := range payloads {
		var inv struct {
			Orgs     []string `json:"orgs"`
			Provider string   `json:"provider"`
		}
		if err := json.Unmarshal([]byte(p), &inv); err != nil || inv.Provider != "resend" || len(p) >= 8000 {
			t.Errorf("payload of %d bytes: %v", len(p), err)
		}
		named = append(named, inv.Orgs...)
	}
	slices.Sort(named)
	slices.Sort(orgs)
	if !slices.Equal(named, orgs) {
		t.Errorf("the notifications name %d orgs, want the %d added", len(named), n)
	}
	if _, err := d.ImportRows(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if again := heard(); len(again) != 0 {
		t.Errorf("an import that added nothing announced %d times", len(again))
	}
}

func TestLegacyTablesAbsent(t *testing.T) {
	d := dbtest.DB(t)
	tables, ids, err := d.LegacyOrgIDs(context.Background())
	if err != nil || len(tables) != 0 || len(ids) != 0 {
		t.Fatalf("%v %v %v", tables, ids, err)
	}
}
