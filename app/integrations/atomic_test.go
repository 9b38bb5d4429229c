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

// refuseCredentialWrites makes the database refuse every write of the org's
// credential rows (a trigger standing in for a failing commit) until the
// returned function, also run at cleanup, lifts it.
func refuseCredentialWrites(t *testing.T, orgID string) (lift func()) {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.DB(t).Pool
	name := "refuse_" + apptest.RandomHex(6)
	if _, err := pool.Exec(ctx, `create function `+name+`() returns trigger language plpgsql as $$
		begin
			if new.org_id = '`+orgID+`'::uuid then
				raise exception 'credential writes of this org are refused by the test';
			end if;
			return new;
		end $$`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `create trigger `+name+` before insert or update on org_credentials
		for each row execute function `+name+`()`); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	lift = func() {
		once.Do(func() {
			if _, err := pool.Exec(ctx, `drop trigger if exists `+name+` on org_credentials; drop function if exists `+name+`()`); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(lift)
	return lift
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
			twilioSave(integrations.TwilioInput{AccountSID: twilioSID(), AuthToken: twilioToken(), PhoneNumber: "+12025550123"}),
			twilioSave(integrations.TwilioInput{AccountSID: twilioSID(), AuthToken: twilioToken(), PhoneNumber: "+12025550199"}),
			false},
		{"vapi, another account",
			vapiSave(integrations.VapiInput{APIKey: vapiKey(), WebhookSecret: webhookSecret()}),
			vapiSave(integrations.VapiInput{APIKey: vapiKey(), WebhookSecret: webhookSecret()}),
			true},
		{"vapi, assistants deleted in Vapi",
			vapiSave(integrations.VapiInput{APIKey: vapiKey()}), saveCall{}, true},
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
				if _, err := e.svc.SaveVapi(ctx, admin, integrations.VapiInput{APIKey: vapiKey()}); err != nil {
					t.Fatal(err)
				}
			}
			bad := tt.bad
			if bad.save == nil {
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
				_, errs[i] = e.svc.SaveVapi(ctx, admins[i], integrations.VapiInput{APIKey: keys[i]})
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
