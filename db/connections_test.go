package db_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/app"
	"byoc/db"
	"byoc/db/dbtest"
)

// connListen subscribes a connection of its own to the cache channel and
// returns a function that waits for the next notification naming org.
func connListen(t *testing.T, org string) (next func() (provider string, ok bool)) {
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
	return func() (string, bool) {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		for {
			n, err := conn.WaitForNotification(wctx)
			if err != nil {
				return "", false
			}
			var p struct{ Org, Provider string }
			if json.Unmarshal([]byte(n.Payload), &p) == nil && p.Org == org {
				return p.Provider, true
			}
		}
	}
}

// connState is what a test reads back of an org's connection rows.
type connState struct {
	cipher   string
	mappings []string // assistant ids, inbound first
	agent    app.OutboundAgent
}

func readConnState(t *testing.T, d *db.DB, org string, p app.Provider) connState {
	t.Helper()
	ctx := context.Background()
	var st connState
	if rec, err := d.GetCredential(ctx, org, p); err == nil {
		st.cipher = string(rec.Ciphertext)
	} else if app.ErrorCode(err) != app.ENotConfigured {
		t.Fatal(err)
	}
	ms, err := d.AssistantMappings(ctx, org)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		st.mappings = append(st.mappings, m.VapiAssistantID)
	}
	if a, err := d.OutboundAgent(ctx, org); err == nil {
		a.UpdatedAt = time.Time{}
		st.agent = a
	} else if app.ErrorCode(err) != app.ENotFound {
		t.Fatal(err)
	}
	return st
}

func (s connState) equal(o connState) bool {
	if s.cipher != o.cipher || s.agent != o.agent || len(s.mappings) != len(o.mappings) {
		return false
	}
	for i := range s.mappings {
		if s.mappings[i] != o.mappings[i] {
			return false
		}
	}
	return true
}

// credFence makes a write whose announcement must be the next one heard
// for org: a failed or empty write before it announced nothing.
func credFence(t *testing.T, d *db.DB, org string, next func() (string, bool)) {
	t.Helper()
	if _, err := d.SaveConnection(context.Background(),
		app.CredentialRecord{OrgID: org, Provider: app.Resend, Ciphertext: []byte("fence")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if p, ok := next(); !ok || p != "resend" {
		t.Errorf("notification %q, %v; want the fence's resend", p, ok)
	}
}

func TestSaveConnectionVapi(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org, other := dbtest.SeedOrg(t, "assistants test"), dbtest.SeedOrg(t, "assistants test")
	next := connListen(t, org)
	in, out, taken := asstID(), asstID(), asstID()
	asstSave(t, d, other, taken, app.Inbound, "")

	rec := app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("first")}
	mappings := []app.AssistantMapping{
		{VapiAssistantID: in, OrgID: org, Role: app.Inbound, Name: "In"},
		{VapiAssistantID: out, OrgID: org, Role: app.Outbound, Name: "Out"},
	}
	saved, err := d.SaveConnection(ctx, rec, mappings, &app.OutboundAgent{OrgID: org, VapiAssistantID: out})
	if err != nil {
		t.Fatal(err)
	}
	if saved.OrgID != org || saved.Provider != app.Vapi || string(saved.Ciphertext) != "first" || !saved.IsActive {
		t.Fatalf("SaveConnection returned %+v", saved)
	}
	want := connState{cipher: "first", mappings: []string{in, out}, agent: app.OutboundAgent{OrgID: org, VapiAssistantID: out}}
	if got := readConnState(t, d, org, app.Vapi); !got.equal(want) {
		t.Fatalf("stored %+v, want %+v", got, want)
	}
	if p, ok := next(); !ok || p != "vapi" {
		t.Fatalf("notification %q, %v; want vapi", p, ok)
	}

	t.Run("a failing row stores nothing and announces nothing", func(t *testing.T) {
		tests := []struct {
			name     string
			rec      app.CredentialRecord
			mappings []app.AssistantMapping
			agent    *app.OutboundAgent
			wantCode string
			// notOtherOrg says the conflict is within the org, so the error
			// must not blame another organization.
			notOtherOrg bool
		}{
			{"assistant of another org",
				app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("second")},
				[]app.AssistantMapping{{VapiAssistantID: asstID(), OrgID: org, Role: app.Outbound},
					{VapiAssistantID: taken, OrgID: org, Role: app.Inbound}},
				&app.OutboundAgent{OrgID: org, VapiAssistantID: asstID()}, app.EConflict, false},
			{"one assistant for both roles in one save",
				app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("second")},
				func() []app.AssistantMapping {
					id := asstID()
					return []app.AssistantMapping{{VapiAssistantID: id, OrgID: org, Role: app.Inbound},
						{VapiAssistantID: id, OrgID: org, Role: app.Outbound}}
				}(),
				&app.OutboundAgent{OrgID: org}, app.EConflict, true},
			{"the org's inbound assistant as its outbound one",
				app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("second")},
				[]app.AssistantMapping{{VapiAssistantID: in, OrgID: org, Role: app.Outbound}},
				&app.OutboundAgent{OrgID: org}, app.EConflict, true},
			{"credential row refused (no ciphertext)",
				app.CredentialRecord{OrgID: org, Provider: app.Vapi},
				[]app.AssistantMapping{{VapiAssistantID: asstID(), OrgID: org, Role: app.Inbound}},
				&app.OutboundAgent{OrgID: org, VapiAssistantID: asstID()}, "", false},
			{"row of another org",
				app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("second")},
				[]app.AssistantMapping{{VapiAssistantID: asstID(), OrgID: other, Role: app.Inbound}},
				&app.OutboundAgent{OrgID: org}, "", false},
			{"agent of another org",
				app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("second")}, nil,
				&app.OutboundAgent{OrgID: other, VapiAssistantID: asstID()}, "", false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				rec, err := d.SaveConnection(ctx, tt.rec, tt.mappings, tt.agent)
				if err == nil {
					t.Fatal("saved")
				}
				if rec.OrgID != "" || rec.Ciphertext != nil {
					t.Errorf("a failed save returned the row %+v", rec)
				}
				if tt.wantCode != "" && app.ErrorCode(err) != tt.wantCode {
					t.Errorf("err = %v, want code %s", err, tt.wantCode)
				}
				if tt.notOtherOrg && strings.Contains(err.Error(), "another organization") {
					t.Errorf("err = %v, blames another organization for the org's own assistant", err)
				}
				if got := readConnState(t, d, org, app.Vapi); !got.equal(want) {
					t.Errorf("stored %+v, want the previous %+v", got, want)
				}
			})
		}
		credFence(t, d, org, next)
	})
}

// A first connection whose assistant belongs to another org leaves no trace:
// no credential row, no mapping, the outbound agent as it was.
func TestSaveConnectionConflictStoresNothing(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org, other := dbtest.SeedOrg(t, "assistants test"), dbtest.SeedOrg(t, "assistants test")
	next := connListen(t, org)
	taken := asstID()
	asstSave(t, d, other, taken, app.Outbound, "")
	// The org already sends from a number (saved with Twilio).
	if err := d.SaveOutboundAgent(ctx, app.OutboundAgent{OrgID: org, PhoneNumber: "+12025550123"}); err != nil {
		t.Fatal(err)
	}
	before := readConnState(t, d, org, app.Vapi)

	_, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("vapi")},
		[]app.AssistantMapping{
			{VapiAssistantID: asstID(), OrgID: org, Role: app.Inbound, Name: "In"},
			{VapiAssistantID: taken, OrgID: org, Role: app.Outbound, Name: "Out"},
		},
		&app.OutboundAgent{OrgID: org, VapiAssistantID: taken})
	if app.ErrorCode(err) != app.EConflict || !strings.Contains(app.ErrorMessage(err), "another organization") {
		t.Fatalf("err = %v, want EConflict naming another organization", err)
	}
	if n := credCountRows(t, d, org); n != 0 {
		t.Errorf("%d credential rows after the refused save, want none", n)
	}
	after := readConnState(t, d, org, app.Vapi)
	if !after.equal(before) || len(after.mappings) != 0 || after.agent.VapiAssistantID != "" ||
		after.agent.PhoneNumber != "+12025550123" {
		t.Errorf("stored %+v, want the previous %+v", after, before)
	}
	// The other org keeps its assistant.
	if m, err := d.ResolveAssistant(ctx, taken); err != nil || m.OrgID != other {
		t.Errorf("the other org's assistant: %+v, %v", m, err)
	}
	credFence(t, d, org, next)
}

func TestSaveConnectionTwilio(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org := dbtest.SeedOrg(t, "assistants test")
	next := connListen(t, org)
	out := asstID()
	if err := d.SaveOutboundAgent(ctx, app.OutboundAgent{OrgID: org, VapiAssistantID: out}); err != nil {
		t.Fatal(err)
	}
	rec := app.CredentialRecord{OrgID: org, Provider: app.Twilio, Ciphertext: []byte("twilio")}
	if _, err := d.SaveConnection(ctx, rec, nil, &app.OutboundAgent{OrgID: org, PhoneNumber: "+12025550123"}); err != nil {
		t.Fatal(err)
	}
	want := connState{cipher: "twilio", agent: app.OutboundAgent{OrgID: org, VapiAssistantID: out, PhoneNumber: "+12025550123"}}
	if got := readConnState(t, d, org, app.Twilio); !got.equal(want) {
		t.Fatalf("stored %+v, want %+v (the assistant kept)", got, want)
	}
	if p, ok := next(); !ok || p != "twilio" {
		t.Fatalf("notification %q, %v; want twilio", p, ok)
	}
	// A refused credential row leaves the number as it was.
	if _, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: org, Provider: app.Twilio},
		nil, &app.OutboundAgent{OrgID: org, PhoneNumber: "+12025550199"}); err == nil {
		t.Fatal("saved without a ciphertext")
	}
	if got := readConnState(t, d, org, app.Twilio); !got.equal(want) {
		t.Errorf("stored %+v, want the previous %+v", got, want)
	}
}

// failTrigger makes every row operation op (DELETE or UPDATE) on table for
// org fail until the test ends, so a transaction can be broken between two
// of its statements.
func failTrigger(t *testing.T, d *db.DB, table, op, org string) {
	t.Helper()
	ctx := context.Background()
	name := "byoc_test_fail_" + strings.ReplaceAll(asstID(), "-", "_")
	row := "new"
	if op == "DELETE" {
		row = "old"
	}
	for _, q := range []string{
		`create function ` + name + `() returns trigger language plpgsql as $$
			begin raise exception 'refused by the test trigger'; end $$`,
		`create trigger ` + name + ` before ` + op + ` on ` + table + ` for each row
			when (` + row + `.org_id = '` + org + `'::uuid) execute function ` + name + `()`,
	} {
		if _, err := d.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if _, err := d.Pool.Exec(context.Background(), `drop trigger `+name+` on `+table+`; drop function `+name+`()`); err != nil {
			t.Errorf("drop the test trigger: %v", err)
		}
	})
}

func TestDeleteConnection(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()

	// connect gives org a Vapi connection (credentials, both assistants, the
	// outbound assistant and number) and Twilio credentials.
	connect := func(t *testing.T, org string) connState {
		t.Helper()
		in, out := asstID(), asstID()
		if _, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("vapi")},
			[]app.AssistantMapping{{VapiAssistantID: in, OrgID: org, Role: app.Inbound},
				{VapiAssistantID: out, OrgID: org, Role: app.Outbound}},
			&app.OutboundAgent{OrgID: org, VapiAssistantID: out, PhoneNumber: "+12025550123"}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: org, Provider: app.Twilio, Ciphertext: []byte("twilio")},
			nil, nil); err != nil {
			t.Fatal(err)
		}
		return connState{cipher: "vapi", mappings: []string{in, out},
			agent: app.OutboundAgent{OrgID: org, VapiAssistantID: out, PhoneNumber: "+12025550123"}}
	}

	t.Run("with assistants: credentials, mappings and the outbound assistant go together", func(t *testing.T) {
		org, other := dbtest.SeedOrg(t, "connections test"), dbtest.SeedOrg(t, "connections test")
		connect(t, org)
		otherState := connect(t, other)
		next := connListen(t, org)

		deleted, err := d.DeleteConnection(ctx, org, app.Vapi, true)
		if err != nil || !deleted {
			t.Fatalf("DeleteConnection = %v, %v; want true, nil", deleted, err)
		}
		want := connState{agent: app.OutboundAgent{OrgID: org, PhoneNumber: "+12025550123"}}
		if got := readConnState(t, d, org, app.Vapi); !got.equal(want) {
			t.Fatalf("stored %+v, want %+v (only the number kept)", got, want)
		}
		if rec, err := d.GetCredential(ctx, org, app.Twilio); err != nil || string(rec.Ciphertext) != "twilio" {
			t.Errorf("the Twilio credentials: %+v, %v; want them kept", rec, err)
		}
		if got := readConnState(t, d, other, app.Vapi); !got.equal(otherState) {
			t.Errorf("the other org's connection: %+v, want %+v", got, otherState)
		}
		if p, ok := next(); !ok || p != "vapi" {
			t.Fatalf("notification %q, %v; want vapi", p, ok)
		}

		// Nothing left: nothing deleted, nothing announced.
		deleted, err = d.DeleteConnection(ctx, org, app.Vapi, true)
		if err != nil || deleted {
			t.Fatalf("second DeleteConnection = %v, %v; want false, nil", deleted, err)
		}
		credFence(t, d, org, next)
	})

	t.Run("with assistants, leftovers go even without credentials", func(t *testing.T) {
		org := dbtest.SeedOrg(t, "connections test")
		in := asstID()
		asstSave(t, d, org, in, app.Inbound, "")
		if err := d.SaveOutboundAgent(ctx, app.OutboundAgent{OrgID: org, VapiAssistantID: in}); err != nil {
			t.Fatal(err)
		}
		next := connListen(t, org)
		deleted, err := d.DeleteConnection(ctx, org, app.Vapi, true)
		if err != nil || deleted {
			t.Fatalf("DeleteConnection = %v, %v; want false (no credentials), nil", deleted, err)
		}
		want := connState{agent: app.OutboundAgent{OrgID: org}}
		if got := readConnState(t, d, org, app.Vapi); !got.equal(want) {
			t.Fatalf("stored %+v, want %+v", got, want)
		}
		if p, ok := next(); !ok || p != "vapi" {
			t.Fatalf("notification %q, %v; want vapi", p, ok)
		}
	})

	t.Run("without assistants, only the credentials go", func(t *testing.T) {
		org := dbtest.SeedOrg(t, "connections test")
		before := connect(t, org)
		deleted, err := d.DeleteConnection(ctx, org, app.Vapi, false)
		if err != nil || !deleted {
			t.Fatalf("DeleteConnection = %v, %v; want true, nil", deleted, err)
		}
		want := before
		want.cipher = ""
		if got := readConnState(t, d, org, app.Vapi); !got.equal(want) {
			t.Fatalf("stored %+v, want %+v", got, want)
		}
	})

	t.Run("a failure in the middle deletes nothing and announces nothing", func(t *testing.T) {
		tests := []struct {
			name, table, op string
		}{
			{"deleting the mappings fails", "assistant_org_mapping", "DELETE"},
			{"clearing the outbound assistant fails", "outbound_agent_config", "UPDATE"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				org := dbtest.SeedOrg(t, "connections test")
				before := connect(t, org)
				next := connListen(t, org)
				failTrigger(t, d, tt.table, tt.op, org)

				deleted, err := d.DeleteConnection(ctx, org, app.Vapi, true)
				if err == nil || deleted {
					t.Fatalf("DeleteConnection = %v, %v; want an error", deleted, err)
				}
				if !strings.Contains(err.Error(), "refused by the test trigger") {
					t.Fatalf("err = %v; want the trigger's", err)
				}
				if got := readConnState(t, d, org, app.Vapi); !got.equal(before) {
					t.Errorf("stored %+v, want everything as before %+v", got, before)
				}
				if n := credCountRows(t, d, org); n != 2 {
					t.Errorf("%d credential rows, want both kept", n)
				}
				credFence(t, d, org, next)
			})
		}
	})
}
