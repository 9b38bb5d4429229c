package integrations_test

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/integrations"
	"byoc/db/dbtest"
)

// refuseWrites makes the database refuse the given writes (ops, such as
// "insert or update" or "delete") of the org's rows of table (a trigger
// standing in for a failing statement) until the returned function, also
// run at cleanup, lifts it.
func refuseWrites(t *testing.T, orgID, table, ops string) (lift func()) {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.DB(t).Pool
	name := "refuse_" + apptest.RandomHex(6)
	if _, err := pool.Exec(ctx, `create function `+name+`() returns trigger language plpgsql as $$
		begin
			if tg_op = 'DELETE' then
				if old.org_id = '`+orgID+`'::uuid then
					raise exception '`+table+` deletes of this org are refused by the test';
				end if;
				return old;
			end if;
			if new.org_id = '`+orgID+`'::uuid then
				raise exception '`+table+` writes of this org are refused by the test';
			end if;
			return new;
		end $$`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `create trigger `+name+` before `+ops+` on `+table+`
		for each row execute function `+name+`()`); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	lift = func() {
		once.Do(func() {
			if _, err := pool.Exec(ctx, `drop trigger if exists `+name+` on `+table+`; drop function if exists `+name+`()`); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(lift)
	return lift
}

// refuseCredentialWrites makes the database refuse every write of the org's
// credential rows until the returned function lifts it.
func refuseCredentialWrites(t *testing.T, orgID string) (lift func()) {
	t.Helper()
	return refuseWrites(t, orgID, "org_credentials", "insert or update")
}

func TestSaveStoresNothingWhenTheCredentialWriteFails(t *testing.T) {
	// The mappings, the outbound agent and the credentials are one write:
	// when the credential row cannot be stored, nothing of the save is, and
	// the previous connection keeps working.
	ctx := context.Background()
	tests := []struct {
		name        string
		good, bad   saveCall
		wantInbound bool // the org has Vapi assistants after the good save
	}{
		{"twilio",
			twilioSave(app.Values{"accountSid": twilioSID(), "authToken": twilioToken(), "phoneNumber": "+12025550123"}),
			twilioSave(app.Values{"accountSid": twilioSID(), "authToken": twilioToken(), "phoneNumber": "+12025550199"}),
			false},
		{"vapi, another account",
			vapiSave(app.Values{"apiKey": vapiKey(), "webhookSecret": webhookSecret()}),
			vapiSave(app.Values{"apiKey": vapiKey(), "webhookSecret": webhookSecret()}),
			true},
		{"vapi, assistants deleted in Vapi",
			vapiSave(app.Values{"apiKey": vapiKey()}), saveCall{}, true},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			admin, _ := seedOrg(t, "Atomic Dental")
			if _, err := tt.good.save(ctx, e.svc, admin); err != nil {
				t.Fatal(err)
			}
			if tt.good.provider == app.Twilio {
				// A Vapi connection too, so there is an outbound assistant.
				if _, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": vapiKey()}); err != nil {
					t.Fatal(err)
				}
			}
			bad := tt.bad
			if bad.provider == "" {
				// The same key again, after the account lost both
				// assistants: the save creates two new ones.
				bad = tt.good
				for _, m := range e.mappings(t, admin.OrgID) {
					e.deleteVapiAssistant(t, tt.good.secrets[0], m.VapiAssistantID)
				}
			}
			stored, err := e.creds.Get(ctx, admin.OrgID, tt.good.provider)
			if err != nil {
				t.Fatal(err)
			}
			mappings := e.mappings(t, admin.OrgID)
			agent, err := e.db.OutboundAgent(ctx, admin.OrgID)
			if err != nil {
				t.Fatal(err)
			}

			lift := refuseCredentialWrites(t, admin.OrgID)
			_, saveErr := bad.save(ctx, e.svc, admin)
			wantCode(t, saveErr, app.EInternal)
			lift()

			e.creds.Flush()
			if got, err := e.creds.Get(ctx, admin.OrgID, tt.good.provider); err != nil || !reflect.DeepEqual(got, stored) {
				t.Errorf("stored = %#v, %v; want the previous %#v", got, err, stored)
			}
			if got := e.mappings(t, admin.OrgID); !reflect.DeepEqual(got, mappings) {
				t.Errorf("mappings = %+v, want the previous %+v", got, mappings)
			}
			if got, err := e.db.OutboundAgent(ctx, admin.OrgID); err != nil || got != agent {
				t.Errorf("outbound agent = %+v, %v; want the previous %+v", got, err, agent)
			}
			if last := e.lastAudit(t, admin.OrgID); last.Outcome != app.OutcomeFailure {
				t.Errorf("audit entry = %+v", last)
			}
			e.assertNoLeak(t, admin.OrgID, append(tt.good.secrets, bad.secrets...), saveErr)

			// Once the database takes writes again, the same save succeeds.
			if _, err := bad.save(ctx, e.svc, admin); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSaveVapiOnASmallPool(t *testing.T) {
	// Provider calls and several transactions run under the per-org lock;
	// on a pool of 4 that once deadlocked until the deadline.
	e := newEnv(t, withPool(t, 4))

	// saveAll saves keys[i] for admins[i], all at once, each subtest within
	// 20 seconds.
	saveAll := func(t *testing.T, admins []app.Principal, keys []string) []error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		t.Cleanup(cancel)
		errs := make([]error, len(admins))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range admins {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = e.svc.Save(ctx, admins[i], app.Vapi, app.Values{"apiKey": keys[i]})
			}()
		}
		close(start)
		wg.Wait()
		return errs
	}

	t.Run("eight saves for one org", func(t *testing.T) {
		admin, _ := seedOrg(t, "Crowded Dental")
		key := vapiKey()
		admins, keys := make([]app.Principal, 8), make([]string, 8)
		for i := range admins {
			admins[i], keys[i] = admin, key
		}
		for i, err := range saveAll(t, admins, keys) {
			if err != nil {
				t.Errorf("save %d: %v", i, err)
			}
		}
		if n := len(e.sb.Vapi.Assistants(key)); n != 2 {
			t.Errorf("the stand-in holds %d assistants, want exactly 2", n)
		}
		if n := e.mappingCount(t, admin.OrgID); n != 2 {
			t.Errorf("%d mappings, want 2", n)
		}
	})
	t.Run("six orgs at once", func(t *testing.T) {
		admins, keys := make([]app.Principal, 6), make([]string, 6)
		for i := range admins {
			admins[i], _ = seedOrg(t, "Neighbour Dental")
			keys[i] = vapiKey()
		}
		for i, err := range saveAll(t, admins, keys) {
			if err != nil {
				t.Errorf("save %d: %v", i, err)
			}
			if n := len(e.sb.Vapi.Assistants(keys[i])); n != 2 {
				t.Errorf("org %d: the stand-in holds %d assistants, want 2", i, n)
			}
		}
	})
}

// connectionState is what an org has stored of its connections.
type connectionState struct {
	configs  map[app.Provider]app.Config
	mappings []app.AssistantMapping
	agent    app.OutboundAgent
	agentErr string // the error code reading the outbound agent gave
}

// connectionsOf reads the org's stored connections past every cache.
func (e *env) connectionsOf(t *testing.T, orgID string) connectionState {
	t.Helper()
	ctx := context.Background()
	e.creds.Flush()
	st := connectionState{configs: map[app.Provider]app.Config{}, mappings: e.mappings(t, orgID)}
	for _, p := range app.Providers {
		cfg, err := e.creds.Get(ctx, orgID, p)
		switch app.ErrorCode(err) {
		case "":
			st.configs[p] = cfg
		case app.ENotConfigured:
		default:
			t.Fatalf("read %s: %v", p, err)
		}
	}
	agent, err := e.db.OutboundAgent(ctx, orgID)
	st.agent, st.agentErr = agent, app.ErrorCode(err)
	return st
}

func (e *env) assertConnections(t *testing.T, orgID string, want connectionState) {
	t.Helper()
	got := e.connectionsOf(t, orgID)
	if !reflect.DeepEqual(got.configs, want.configs) {
		t.Errorf("stored configs = %#v, want %#v", got.configs, want.configs)
	}
	if !reflect.DeepEqual(got.mappings, want.mappings) {
		t.Errorf("mappings = %+v, want %+v", got.mappings, want.mappings)
	}
	if got.agent != want.agent || got.agentErr != want.agentErr {
		t.Errorf("outbound agent = %+v (%q), want %+v (%q)", got.agent, got.agentErr, want.agent, want.agentErr)
	}
}

// A Vapi save writes the credentials, the mappings and the outbound agent in
// one transaction: when any of these writes fails, none of them is stored
// and the previous connection stays as it was.
func TestSaveVapiIsOneTransaction(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	tests := []struct {
		name, table string
		// connected saves a first connection before the failing one.
		connected bool
	}{
		{"mapping write fails", "assistant_org_mapping", true},
		{"outbound agent write fails", "outbound_agent_config", true},
		{"credential write fails", "org_credentials", true},
		{"first save, mapping write fails", "assistant_org_mapping", false},
		{"first save, outbound agent write fails", "outbound_agent_config", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			admin, _ := seedOrg(t, "One Write Dental")
			if _, err := e.svc.Save(ctx, admin, app.Twilio, app.Values{"accountSid": twilioSID(), "authToken": twilioToken(),
				"phoneNumber": "+12025550123"}); err != nil {
				t.Fatal(err)
			}
			if tt.connected {
				if _, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": vapiKey(), "webhookSecret": webhookSecret()}); err != nil {
					t.Fatal(err)
				}
			}
			before := e.connectionsOf(t, admin.OrgID)

			// Another Vapi account: new assistants, so every row changes.
			key := vapiKey()
			lift := refuseWrites(t, admin.OrgID, tt.table, "insert or update")
			_, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key, "webhookSecret": webhookSecret()})
			wantCode(t, err, app.EInternal)
			lift()

			e.assertConnections(t, admin.OrgID, before)
			if last := e.lastAudit(t, admin.OrgID); last.Action != integrations.ActionSave || last.Outcome != app.OutcomeFailure {
				t.Errorf("audit entry = %+v", last)
			}
			e.assertNoLeak(t, admin.OrgID, []string{key}, err)

			// Once the database takes writes again, the same save succeeds.
			res, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key})
			if err != nil {
				t.Fatal(err)
			}
			if in, out := mappedIDs(t, e, admin.OrgID); in != res.InboundAssistantID || out != res.OutboundAssistantID {
				t.Errorf("mapped %s, %s; want %s, %s", in, out, res.InboundAssistantID, res.OutboundAssistantID)
			}
		})
	}
}

// A Vapi disconnect deletes the credentials, the mappings and the outbound
// assistant in one transaction: when any step fails, the connection is
// still there, whole, and a later disconnect removes it.
func TestDisconnectVapiIsOneTransaction(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	tests := []struct {
		name, table, ops string
	}{
		{"outbound agent update fails", "outbound_agent_config", "update"},
		{"mapping delete fails", "assistant_org_mapping", "delete"},
		{"credential delete fails", "org_credentials", "delete"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			admin, _ := seedOrg(t, "Staying Dental")
			if _, err := e.svc.Save(ctx, admin, app.Twilio, app.Values{"accountSid": twilioSID(), "authToken": twilioToken(),
				"phoneNumber": "+12025550123"}); err != nil {
				t.Fatal(err)
			}
			res, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": vapiKey()})
			if err != nil {
				t.Fatal(err)
			}
			before := e.connectionsOf(t, admin.OrgID)
			if before.configs[app.Vapi] == nil || len(before.mappings) != 2 || before.agent.VapiAssistantID != res.OutboundAssistantID {
				t.Fatalf("set-up: %+v", before)
			}

			lift := refuseWrites(t, admin.OrgID, tt.table, tt.ops)
			st, err := e.svc.Disconnect(ctx, admin, app.Vapi)
			wantCode(t, err, app.EInternal)
			lift()
			if st.Connected || st.Provider != "" {
				t.Errorf("status = %+v, want the zero value", st)
			}

			e.assertConnections(t, admin.OrgID, before)
			if got := e.statusOf(t, admin, app.Vapi); !got.Connected {
				t.Errorf("status after the failed disconnect = %+v, want still connected", got)
			}
			if last := e.lastAudit(t, admin.OrgID); last.Action != integrations.ActionDisconnect || last.Outcome != app.OutcomeFailure {
				t.Errorf("audit entry = %+v", last)
			}

			if _, err := e.svc.Disconnect(ctx, admin, app.Vapi); err != nil {
				t.Fatal(err)
			}
			after := e.connectionsOf(t, admin.OrgID)
			if after.configs[app.Vapi] != nil || len(after.mappings) != 0 || after.agent.VapiAssistantID != "" ||
				after.agent.PhoneNumber != "+12025550123" || after.configs[app.Twilio] == nil {
				t.Errorf("after the disconnect: %+v", after)
			}
		})
	}
}

// A Twilio save records its number with the outbound agent in the same
// transaction as the credentials: neither is stored without the other.
func TestSaveTwilioRecordsTheNumberInTheSameTransaction(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	tests := []struct {
		name, table string
		connected   bool
	}{
		{"first save, outbound agent write fails", "outbound_agent_config", false},
		{"first save, credential write fails", "org_credentials", false},
		{"new number, outbound agent write fails", "outbound_agent_config", true},
		{"new number, credential write fails", "org_credentials", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			admin, _ := seedOrg(t, "Numbered Dental")
			if tt.connected {
				if _, err := e.svc.Save(ctx, admin, app.Twilio, app.Values{"accountSid": twilioSID(), "authToken": twilioToken(),
					"phoneNumber": "+12025550123"}); err != nil {
					t.Fatal(err)
				}
			}
			before := e.connectionsOf(t, admin.OrgID)

			lift := refuseWrites(t, admin.OrgID, tt.table, "insert or update")
			token := twilioToken()
			_, err := e.svc.Save(ctx, admin, app.Twilio, app.Values{"accountSid": twilioSID(), "authToken": token,
				"phoneNumber": "+44 7911 123456"})
			wantCode(t, err, app.EInternal)
			lift()

			e.assertConnections(t, admin.OrgID, before)
			e.assertNoLeak(t, admin.OrgID, []string{token}, err)

			if _, err := e.svc.Save(ctx, admin, app.Twilio, app.Values{"accountSid": twilioSID(), "authToken": token,
				"phoneNumber": "+44 7911 123456"}); err != nil {
				t.Fatal(err)
			}
			agent, err := e.db.OutboundAgent(ctx, admin.OrgID)
			if err != nil || agent.PhoneNumber != "+447911123456" {
				t.Errorf("outbound agent after the save = %+v, %v", agent, err)
			}
		})
	}
}
