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

func TestSaveVapiConnection(t *testing.T) {
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
	if err := d.SaveVapiConnection(ctx, rec, mappings, app.OutboundAgent{OrgID: org, VapiAssistantID: out}); err != nil {
		t.Fatal(err)
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
			agent    app.OutboundAgent
			wantCode string
			// notOtherOrg says the conflict is within the org, so the error
			// must not blame another organization.
			notOtherOrg bool
		}{
			{"assistant of another org",
				app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("second")},
				[]app.AssistantMapping{{VapiAssistantID: asstID(), OrgID: org, Role: app.Outbound},
					{VapiAssistantID: taken, OrgID: org, Role: app.Inbound}},
				app.OutboundAgent{OrgID: org, VapiAssistantID: asstID()}, app.EConflict, false},
			{"one assistant for both roles in one save",
				app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("second")},
				func() []app.AssistantMapping {
					id := asstID()
					return []app.AssistantMapping{{VapiAssistantID: id, OrgID: org, Role: app.Inbound},
						{VapiAssistantID: id, OrgID: org, Role: app.Outbound}}
				}(),
				app.OutboundAgent{OrgID: org}, app.EConflict, true},
			{"the org's inbound assistant as its outbound one",
				app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("second")},
				[]app.AssistantMapping{{VapiAssistantID: in, OrgID: org, Role: app.Outbound}},
				app.OutboundAgent{OrgID: org}, app.EConflict, true},
			{"credential row refused (no ciphertext)",
				app.CredentialRecord{OrgID: org, Provider: app.Vapi},
				[]app.AssistantMapping{{VapiAssistantID: asstID(), OrgID: org, Role: app.Inbound}},
				app.OutboundAgent{OrgID: org, VapiAssistantID: asstID()}, "", false},
			{"row of another org",
				app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("second")},
				[]app.AssistantMapping{{VapiAssistantID: asstID(), OrgID: other, Role: app.Inbound}},
				app.OutboundAgent{OrgID: org}, "", false},
			{"agent of another org",
				app.CredentialRecord{OrgID: org, Provider: app.Vapi, Ciphertext: []byte("second")}, nil,
				app.OutboundAgent{OrgID: other, VapiAssistantID: asstID()}, "", false},
			{"credentials of another provider",
				app.CredentialRecord{OrgID: org, Provider: app.Twilio, Ciphertext: []byte("second")}, nil,
				app.OutboundAgent{OrgID: org}, "", false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := d.SaveVapiConnection(ctx, tt.rec, tt.mappings, tt.agent)
				if err == nil {
					t.Fatal("saved")
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
		// The next announcement for the org is this write's, not a failed one's.
		if _, err := d.UpsertCredential(ctx, app.CredentialRecord{OrgID: org, Provider: app.Resend, Ciphertext: []byte("fence")}); err != nil {
			t.Fatal(err)
		}
		if p, ok := next(); !ok || p != "resend" {
			t.Errorf("notification %q, %v; want the fence's resend", p, ok)
		}
	})
}

func TestSaveTwilioConnection(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org := dbtest.SeedOrg(t, "assistants test")
	next := connListen(t, org)
	out := asstID()
	if err := d.SaveOutboundAgent(ctx, app.OutboundAgent{OrgID: org, VapiAssistantID: out}); err != nil {
		t.Fatal(err)
	}
	rec := app.CredentialRecord{OrgID: org, Provider: app.Twilio, Ciphertext: []byte("twilio")}
	if err := d.SaveTwilioConnection(ctx, rec, app.OutboundAgent{OrgID: org, PhoneNumber: "+12025550123"}); err != nil {
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
	if err := d.SaveTwilioConnection(ctx, app.CredentialRecord{OrgID: org, Provider: app.Twilio},
		app.OutboundAgent{OrgID: org, PhoneNumber: "+12025550199"}); err == nil {
		t.Fatal("saved without a ciphertext")
	}
	if got := readConnState(t, d, org, app.Twilio); !got.equal(want) {
		t.Errorf("stored %+v, want the previous %+v", got, want)
	}
}
