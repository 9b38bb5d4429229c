package credentials_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/credentials"
	"byoc/app/orgcache"
	"byoc/db"
	"byoc/db/dbtest"
)

// watchedStore is the database under a test's eye: it remembers what
// SaveConnection and DeleteConnection were given, can make SaveConnection
// fail without writing, and fails the test when a method it forbids runs.
type watchedStore struct {
	*db.DB
	t *testing.T

	mu      sync.Mutex
	forbid  map[string]bool
	calls   map[string]int
	saveErr error
	saves   []savedConnection
	deletes []deletedConnection
}

type savedConnection struct {
	rec      app.CredentialRecord
	mappings []app.AssistantMapping
	outbound *app.OutboundAgent
}

type deletedConnection struct {
	orgID      string
	provider   app.Provider
	assistants bool
}

func newWatchedStore(t *testing.T) *watchedStore {
	return &watchedStore{DB: dbtest.DB(t), t: t, forbid: map[string]bool{}, calls: map[string]int{}}
}

// call counts a call of method and fails the test when it is forbidden.
func (w *watchedStore) call(method string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls[method]++
	if w.forbid[method] {
		w.t.Errorf("%s called", method)
	}
}

func (w *watchedStore) setForbidden(on bool, methods ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range methods {
		w.forbid[m] = on
	}
}

func (w *watchedStore) count(method string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls[method]
}

func (w *watchedStore) SaveConnection(ctx context.Context, rec app.CredentialRecord, mappings []app.AssistantMapping,
	outbound *app.OutboundAgent, audit ...app.AuditEntry) (app.CredentialRecord, error) {
	w.call("SaveConnection")
	w.mu.Lock()
	w.saves = append(w.saves, savedConnection{rec: rec, mappings: mappings, outbound: outbound})
	err := w.saveErr
	w.mu.Unlock()
	if err != nil {
		return app.CredentialRecord{}, err
	}
	return w.DB.SaveConnection(ctx, rec, mappings, outbound, audit...)
}

func (w *watchedStore) DeleteConnection(ctx context.Context, orgID string, p app.Provider, assistants bool,
	audit ...app.AuditEntry) (bool, error) {
	w.call("DeleteConnection")
	w.mu.Lock()
	w.deletes = append(w.deletes, deletedConnection{orgID: orgID, provider: p, assistants: assistants})
	w.mu.Unlock()
	return w.DB.DeleteConnection(ctx, orgID, p, assistants, audit...)
}

func (w *watchedStore) GetCredential(ctx context.Context, orgID string, p app.Provider) (app.CredentialRecord, error) {
	w.call("GetCredential")
	return w.DB.GetCredential(ctx, orgID, p)
}

func (w *watchedStore) ListCredentials(ctx context.Context, orgID string) ([]app.CredentialRecord, error) {
	w.call("ListCredentials")
	return w.DB.ListCredentials(ctx, orgID)
}

// Save answers with the status of the row it wrote, and reads nothing back
// to build it.
func TestSaveReturnsTheStatusItWrote(t *testing.T) {
	ctx := context.Background()
	kr := newKeyring(t, newKey(t))
	for _, cfg := range sampleConfigs() {
		t.Run(string(cfg.Provider()), func(t *testing.T) {
			store := newWatchedStore(t)
			s := credentials.New(store, kr, credentials.Options{})
			org := dbtest.SeedOrg(t, "credentials service test")
			// A failed check before the save, which the save clears.
			if _, err := s.Save(ctx, app.Connection{OrgID: org, Config: cfg}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.RecordVerification(ctx, org, cfg.Provider(), time.Now(),
				&app.Error{Code: app.EVerificationFailed, Reason: app.ReasonReconnect, Message: "Refused."}); err != nil {
				t.Fatal(err)
			}

			store.setForbidden(true, "ListCredentials", "GetCredential")
			at := time.Now().Add(-time.Minute).UTC().Truncate(time.Microsecond)
			st, err := s.Save(ctx, app.Connection{OrgID: org, Config: cfg, VerifiedAt: at})
			if err != nil {
				t.Fatal(err)
			}
			store.setForbidden(false, "ListCredentials", "GetCredential")
			if n, m := store.count("ListCredentials"), store.count("GetCredential"); n+m != 0 {
				t.Fatalf("Save read %d lists and %d rows back", n, m)
			}
			want := app.MustDescribe(cfg.Provider()).Masked(cfg)
			if st.Provider != cfg.Provider() || !st.Connected || st.NeedsAttention || st.VerificationError != "" ||
				st.VerificationCode != "" || st.ReconnectNeeded() || st.LastVerified == nil || !st.LastVerified.Equal(at) ||
				st.UpdatedAt.IsZero() || !reflect.DeepEqual(st.Details, want) {
				t.Fatalf("Save returned %+v; want connected, verified at %v, details %v", st, at, want)
			}
			assertNoSecrets(t, "the returned status", fmt.Sprintf("%+v %#v", st, st))

			// It is what the statuses show afterwards.
			all, err := newService(t, kr, nil).Statuses(ctx, org)
			if err != nil {
				t.Fatal(err)
			}
			var shown app.Status
			for _, v := range all {
				if v.Provider == cfg.Provider() {
					shown = v
				}
			}
			if shown.Connected != st.Connected || shown.NeedsAttention != st.NeedsAttention ||
				shown.VerificationError != st.VerificationError || shown.VerificationCode != st.VerificationCode ||
				!shown.LastVerified.Equal(*st.LastVerified) || !shown.UpdatedAt.Equal(st.UpdatedAt) ||
				!reflect.DeepEqual(shown.Details, st.Details) {
				t.Fatalf("Statuses shows %+v, Save returned %+v", shown, st)
			}
		})
	}

	t.Run("saved unverified", func(t *testing.T) {
		store := newWatchedStore(t)
		s := credentials.New(store, kr, credentials.Options{})
		store.setForbidden(true, "ListCredentials", "GetCredential")
		st, err := s.Save(ctx, app.Connection{OrgID: dbtest.SeedOrg(t, "credentials service test"), Config: sampleConfigs()[3]})
		if err != nil || !st.Connected || st.LastVerified != nil {
			t.Fatalf("Save = %+v, %v; want connected and never verified", st, err)
		}
	})
}

// A store that fails keeps the previous credentials, and its domain errors
// pass through.
func TestSaveFailingStoreKeepsThePreviousCredentials(t *testing.T) {
	ctx := context.Background()
	store := newWatchedStore(t)
	s := credentials.New(store, newKeyring(t, newKey(t)), credentials.Options{})
	org := dbtest.SeedOrg(t, "credentials service test")
	old, next := sampleConfigs()[0].(app.VapiConfig), sampleConfigs()[0].(app.VapiConfig)
	next.APIKey = app.NewSecret("vapi-key-next-0123456789")
	if _, err := s.Save(ctx, app.Connection{OrgID: org, Config: old}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, org, app.Vapi); err != nil { // cached now
		t.Fatal(err)
	}
	for _, storeErr := range []error{errors.New("commit failed"), app.Errorf(app.EConflict, "Taken.")} {
		store.saveErr = storeErr
		st, err := s.Save(ctx, app.Connection{OrgID: org, Config: next, VerifiedAt: time.Now()})
		want := app.EInternal
		if app.ErrorCode(storeErr) != app.EInternal {
			want = app.ErrorCode(storeErr)
		}
		if app.ErrorCode(err) != want {
			t.Errorf("err = %v, want code %s", err, want)
		}
		if want == app.EConflict && app.ErrorMessage(err) != "Taken." {
			t.Errorf("message %q, want the store's", app.ErrorMessage(err))
		}
		if st.Connected || st.Provider != "" {
			t.Errorf("a failed save returned the status %+v", st)
		}
		if got, err := s.Get(ctx, org, app.Vapi); err != nil || !reflect.DeepEqual(got, old) {
			t.Errorf("Get = %#v, %v; want the previous config", got, err)
		}
	}
}

// The store gets one connection: the sealed record with the rows that
// belong to it; and the cache drops what it held.
func TestSaveHandsTheStoreTheWholeConnection(t *testing.T) {
	ctx := context.Background()
	store := newWatchedStore(t)
	s := credentials.New(store, newKeyring(t, newKey(t)), credentials.Options{})
	org := dbtest.SeedOrg(t, "credentials service test")
	old, next := sampleConfigs()[0].(app.VapiConfig), sampleConfigs()[0].(app.VapiConfig)
	next.APIKey = app.NewSecret("vapi-key-next-0123456789")
	if _, err := s.Save(ctx, app.Connection{OrgID: org, Config: old}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, org, app.Vapi); err != nil { // cached now
		t.Fatal(err)
	}

	at := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
	in, out := "asst-in-"+apptest.RandomHex(8), "asst-out-"+apptest.RandomHex(8)
	mappings := []app.AssistantMapping{{VapiAssistantID: in, OrgID: org, Role: app.Inbound, Name: "In"},
		{VapiAssistantID: out, OrgID: org, Role: app.Outbound, Name: "Out"}}
	outbound := &app.OutboundAgent{OrgID: org, VapiAssistantID: out}
	if _, err := s.Save(ctx, app.Connection{OrgID: org, Config: next, VerifiedAt: at, Assistants: mappings, Outbound: outbound}); err != nil {
		t.Fatal(err)
	}
	got := store.saves[len(store.saves)-1]
	if got.rec.OrgID != org || got.rec.Provider != app.Vapi || got.rec.LastVerifiedAt == nil || !got.rec.LastVerifiedAt.Equal(at) ||
		got.rec.VerificationError != "" || got.rec.VerificationCode != "" || len(got.rec.Ciphertext) == 0 {
		t.Errorf("record = %+v", got.rec)
	}
	for _, secret := range []string{next.APIKey.Reveal(), next.WebhookSecret.Reveal()} {
		if bytes.Contains(got.rec.Ciphertext, []byte(secret)) {
			t.Error("the record carries a secret in the clear")
		}
	}
	if !reflect.DeepEqual(got.mappings, mappings) || got.outbound == nil || *got.outbound != *outbound {
		t.Errorf("the store got mappings %+v and outbound %+v", got.mappings, got.outbound)
	}
	stored, err := store.AssistantMappings(ctx, org)
	if err != nil || len(stored) != 2 || stored[0].VapiAssistantID != in || stored[1].VapiAssistantID != out {
		t.Errorf("stored mappings %+v, %v", stored, err)
	}
	// Without the invalidation this would still be the cached old config.
	if cfg, err := s.Get(ctx, org, app.Vapi); err != nil || !reflect.DeepEqual(cfg, next) {
		t.Errorf("Get = %#v, %v; want the new config", cfg, err)
	}
}

// A config that cannot be stored is refused before the store runs.
func TestSaveRefusesMissingConfigBeforeTheStore(t *testing.T) {
	store := newWatchedStore(t)
	s := credentials.New(store, newKeyring(t, newKey(t)), credentials.Options{})
	store.setForbidden(true, "SaveConnection")
	_, err := s.Save(context.Background(), app.Connection{OrgID: dbtest.SeedOrg(t, "credentials service test")})
	if app.ErrorCode(err) != app.EInternal {
		t.Errorf("err = %v, want internal", err)
	}
}

// Deleting a provider that manages assistants deletes the org's mappings
// and outbound assistant with its credentials; other providers leave them.
func TestDeleteRemovesWhatTheConnectionOwns(t *testing.T) {
	ctx := context.Background()
	store := newWatchedStore(t)
	s := credentials.New(store, newKeyring(t, newKey(t)), credentials.Options{})
	org := dbtest.SeedOrg(t, "credentials service test")
	cfgs := sampleConfigs()
	in, out := "asst-in-"+apptest.RandomHex(8), "asst-out-"+apptest.RandomHex(8)
	if _, err := s.Save(ctx, app.Connection{OrgID: org, Config: cfgs[0], VerifiedAt: time.Now(),
		Assistants: []app.AssistantMapping{{VapiAssistantID: in, OrgID: org, Role: app.Inbound},
			{VapiAssistantID: out, OrgID: org, Role: app.Outbound}},
		Outbound: &app.OutboundAgent{OrgID: org, VapiAssistantID: out}}); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range cfgs[1:] {
		c := app.Connection{OrgID: org, Config: cfg, VerifiedAt: time.Now()}
		if n, ok := cfg.(app.OutboundNumberer); ok {
			c.Outbound = &app.OutboundAgent{OrgID: org, PhoneNumber: n.OutboundNumber()}
		}
		if _, err := s.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	mappingsLeft := func() int {
		t.Helper()
		ms, err := store.AssistantMappings(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		return len(ms)
	}

	// Every other provider goes alone.
	for _, cfg := range cfgs[1:] {
		if err := s.Delete(ctx, org, cfg.Provider()); err != nil {
			t.Fatal(err)
		}
		if d := store.deletes[len(store.deletes)-1]; d.orgID != org || d.provider != cfg.Provider() || d.assistants {
			t.Fatalf("the store was asked to delete %+v", d)
		}
		if n := mappingsLeft(); n != 2 {
			t.Fatalf("%d assistant mappings left after deleting %s, want both", n, cfg.Provider())
		}
	}
	agent, err := store.OutboundAgent(ctx, org)
	if err != nil || agent.VapiAssistantID != out || agent.PhoneNumber != "+12025551234" {
		t.Fatalf("outbound agent before deleting Vapi: %+v, %v", agent, err)
	}

	if err := s.Delete(ctx, org, app.Vapi); err != nil {
		t.Fatal(err)
	}
	if d := store.deletes[len(store.deletes)-1]; d.provider != app.Vapi || !d.assistants {
		t.Fatalf("the store was asked to delete %+v, want Vapi with its assistants", d)
	}
	if n := mappingsLeft(); n != 0 {
		t.Fatalf("%d assistant mappings left after deleting Vapi", n)
	}
	agent, err = store.OutboundAgent(ctx, org)
	if err != nil || agent.VapiAssistantID != "" || agent.PhoneNumber != "+12025551234" {
		t.Fatalf("outbound agent after deleting Vapi: %+v, %v; want the number kept and no assistant", agent, err)
	}
	if _, err := s.Vapi(ctx, org); app.ErrorCode(err) != app.ENotConfigured {
		t.Fatalf("Vapi after the delete: %v", err)
	}

	// Leftover assistants of an interrupted save go even when no
	// credentials are left; the caller still hears that none were stored.
	if err := store.SaveAssistantMapping(ctx, app.AssistantMapping{VapiAssistantID: in, OrgID: org, Role: app.Inbound}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, org, app.Vapi); app.ErrorCode(err) != app.ENotConfigured {
		t.Fatalf("second delete: %v, want %s", err, app.ENotConfigured)
	}
	if n := mappingsLeft(); n != 0 {
		t.Fatalf("%d leftover assistant mappings kept", n)
	}
}

// The reason of a failed check is stored as its code and shown in the
// status; an unreadable row shows no code of its own.
func TestRecordVerificationKeepsTheReason(t *testing.T) {
	ctx := context.Background()
	kr := newKeyring(t, newKey(t))
	s := newService(t, kr, nil)
	org := dbtest.SeedOrg(t, "credentials service test")
	cfg := sampleConfigs()[2]
	if _, err := s.Save(ctx, app.Connection{OrgID: org, Config: cfg, VerifiedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	const refused = "Google refused the stored authorization (invalid_grant). Connect Google Calendar again."
	tests := []struct {
		name      string
		err       error
		wantMsg   string
		wantCode  string
		attention bool
	}{
		{"reconnect needed", &app.Error{Code: app.EVerificationFailed, Reason: app.ReasonReconnect, Message: refused},
			refused, app.ReasonReconnect, true},
		{"a failure without a reason", app.Errorf(app.EVerificationFailed, "Google Calendar refused access."),
			"Google Calendar refused access.", "", true},
		{"passed", nil, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := time.Now().UTC().Truncate(time.Microsecond)
			st, err := s.RecordVerification(ctx, org, app.GoogleCalendar, at, tt.err)
			if err != nil {
				t.Fatal(err)
			}
			all, err := s.Statuses(ctx, org)
			if err != nil {
				t.Fatal(err)
			}
			for what, v := range map[string]app.Status{"returned": st, "listed": all[2]} {
				if v.Provider != app.GoogleCalendar || !v.Connected || v.NeedsAttention != tt.attention ||
					v.VerificationError != tt.wantMsg || v.VerificationCode != tt.wantCode ||
					v.ReconnectNeeded() != (tt.wantCode == app.ReasonReconnect) || !v.LastChecked.Equal(at) ||
					(tt.err == nil) != v.LastVerified.Equal(at) ||
					v.Details["email"] != "owner@example.com" {
					t.Errorf("%s status %+v; want message %q, code %q", what, v, tt.wantMsg, tt.wantCode)
				}
			}
		})
	}

	if _, err := s.RecordVerification(ctx, org, app.GoogleCalendar, time.Now(),
		&app.Error{Code: app.EVerificationFailed, Reason: app.ReasonReconnect, Message: refused}); err != nil {
		t.Fatal(err)
	}
	all, err := newService(t, newKeyring(t, newKey(t)), nil).Statuses(ctx, org)
	if err != nil {
		t.Fatal(err)
	}
	if v := all[2]; v.Connected || !v.NeedsAttention || v.VerificationCode != "" || v.ReconnectNeeded() ||
		v.VerificationError != keyMissing {
		t.Fatalf("unreadable row's status %+v", v)
	}
}

// Every write, invalidation and flush of the service reaches every cache of
// its group: here another cache of Vapi-derived data, as the webhook routing
// keeps one.
func TestEveryChangeReachesTheCacheGroup(t *testing.T) {
	ctx := context.Background()
	g := orgcache.NewGroup(orgcache.Options{})
	s := credentials.New(dbtest.DB(t), newKeyring(t, newKey(t)), credentials.Options{Caches: g})
	secrets := orgcache.New[string, string](g, "webhook_secrets", time.Minute)
	org := dbtest.SeedOrg(t, "credentials service test")
	missing := "00000000-0000-4000-8000-000000000000"
	cache := func(orgID string) {
		t.Helper()
		if !secrets.Put(g.Stamp(), orgID, orgcache.Entry[string]{Owner: orgcache.Owner{Org: orgID, Provider: app.Vapi}, Value: "cached"}) {
			t.Fatal("the entry was not stored")
		}
	}
	cached := func(orgID string) bool { _, ok, _ := secrets.Get(orgID); return ok }

	steps := []struct {
		name  string
		orgID string
		run   func() error
		// kept: only the status changed, so what the credentials hold
		// stays cached.
		kept bool
	}{
		{"save", org, func() error {
			_, err := s.Save(ctx, app.Connection{OrgID: org, Config: sampleConfigs()[0], VerifiedAt: time.Now()})
			return err
		}, false},
		{"record verification", org, func() error {
			_, err := s.RecordVerification(ctx, org, app.Vapi, time.Now(), nil)
			return err
		}, true},
		{"webhook signing", org, func() error {
			_, err := s.SetWebhookHMACOnly(ctx, org, true)
			return err
		}, false},
		{"delete", org, func() error { return s.Delete(ctx, org, app.Vapi) }, false},
		{"a failed save", missing, func() error {
			_, err := s.Save(ctx, app.Connection{OrgID: missing, Config: sampleConfigs()[0]})
			if err == nil {
				return errors.New("saved for a missing org")
			}
			return nil
		}, false},
		{"invalidate the org", org, func() error { s.Invalidate(org, ""); return nil }, false},
		{"flush", org, func() error { s.Flush(); return nil }, false},
	}
	for _, st := range steps {
		cache(st.orgID)
		other := dbtest.SeedOrg(t, "another org")
		cache(other)
		if err := st.run(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if cached(st.orgID) != st.kept {
			t.Fatalf("%s: the other cache holds the org's entry: %v, want %v", st.name, cached(st.orgID), st.kept)
		}
		if st.name != "flush" && !cached(other) {
			t.Fatalf("%s: another org's entry was dropped", st.name)
		}
	}
	cache(org)
	if n := s.Invalidate(org, string(app.Twilio)); n != 0 || !cached(org) {
		t.Fatalf("a Twilio change dropped %d Vapi-derived entries", n)
	}
	if n := s.Invalidate("", ""); n != 0 || !cached(org) {
		t.Fatalf("an invalidation of no org dropped %d entries", n)
	}
}

// The HMAC-only webhook setting: a new Vapi row takes the connection's, the
// status shows it, VapiWebhook hands it out with the secret, and
// SetWebhookHMACOnly changes it and nothing else.
func TestWebhookHMACOnly(t *testing.T) {
	ctx := context.Background()
	s := newService(t, newKeyring(t, newKey(t)), nil)
	org := dbtest.SeedOrg(t, "credentials service test")
	vapi := sampleConfigs()[0].(app.VapiConfig)

	if _, err := s.SetWebhookHMACOnly(ctx, org, true); app.ErrorCode(err) != app.ENotConfigured {
		t.Fatalf("set without Vapi credentials: %v, want %s", err, app.ENotConfigured)
	}
	if _, err := s.VapiWebhook(ctx, org); app.ErrorCode(err) != app.ENotConfigured {
		t.Fatalf("webhook without Vapi credentials: %v, want %s", err, app.ENotConfigured)
	}
	st, err := s.Save(ctx, app.Connection{OrgID: org, Config: vapi, VerifiedAt: time.Now(), WebhookHMACOnly: true})
	if err != nil || !st.WebhookHMACOnly || !st.Connected {
		t.Fatalf("saved HMAC-only: %+v, %v", st, err)
	}
	w, err := s.VapiWebhook(ctx, org)
	if err != nil || !w.HMACOnly || w.Secret.Reveal() != vapi.WebhookSecret.Reveal() {
		t.Fatalf("VapiWebhook = %+v, %v; want the stored secret, HMAC only", w, err)
	}

	before := ciphertext(t, org, app.Vapi)
	off, err := s.SetWebhookHMACOnly(ctx, org, false)
	if err != nil || off.WebhookHMACOnly || !off.Connected || off.Details["apiKey"] == "" {
		t.Fatalf("turned off: %+v, %v; want Vapi's whole status", off, err)
	}
	if w, err := s.VapiWebhook(ctx, org); err != nil || w.HMACOnly {
		t.Fatalf("VapiWebhook after turning off = %+v, %v", w, err)
	}
	if string(ciphertext(t, org, app.Vapi)) != string(before) {
		t.Error("changing the setting rewrote the credentials")
	}
	all, err := s.Statuses(ctx, org)
	if err != nil || all[0].Provider != app.Vapi || all[0].WebhookHMACOnly {
		t.Fatalf("statuses after turning off: %+v, %v", all, err)
	}
	if _, err := s.SetWebhookHMACOnly(ctx, org, true); err != nil {
		t.Fatal(err)
	}
	if all, err := s.Statuses(ctx, org); err != nil || !all[0].WebhookHMACOnly {
		t.Fatalf("statuses after turning on: %+v, %v; want the cached statuses dropped", all, err)
	}

	// A row that cannot be decrypted has no secret to hand out.
	setCiphertext(t, org, app.Vapi, []byte("garbage"))
	s.Invalidate(org, "")
	if _, err := s.VapiWebhook(ctx, org); !errors.Is(err, app.ErrUndecryptable) {
		t.Fatalf("VapiWebhook of an unreadable row: %v, want ErrUndecryptable in its chain", err)
	}
}

// A reveal stores its claim, with the audit entries it is given, only for
// a secret it then shows: without a secret of its own the org is told so,
// and nothing is claimed or written to the log.
func TestRevealClaimsOnlyASecretItShows(t *testing.T) {
	ctx := context.Background()
	d := dbtest.DB(t)
	s := newService(t, newKeyring(t, newKey(t)), nil)
	org := dbtest.SeedOrg(t, "credentials service test")
	entry := app.AuditEntry{OrgID: org, Action: "credentials.reveal_secret", Provider: app.Vapi, Outcome: app.OutcomeSuccess}
	log := func() int {
		t.Helper()
		es, err := d.AuditLog(ctx, org, 10)
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}

	vapi := sampleConfigs()[0].(app.VapiConfig)
	vapi.WebhookSecret = app.Secret{}
	if _, err := s.Save(ctx, app.Connection{OrgID: org, Config: vapi, VerifiedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RevealVapiWebhookSecret(ctx, org, entry); app.ErrorCode(err) != app.ENotConfigured {
		t.Fatalf("reveal without a secret of its own: %v, want %s", err, app.ENotConfigured)
	}
	var claimed bool
	if err := d.Pool.QueryRow(ctx, `select webhook_secret_revealed_at is not null from org_credentials
		where org_id = $1 and provider = 'vapi'`, org).Scan(&claimed); err != nil || claimed {
		t.Fatalf("claimed %v, %v; want nothing claimed", claimed, err)
	}
	if n := log(); n != 0 {
		t.Fatalf("%d audit entries for a reveal that showed nothing", n)
	}

	vapi.WebhookSecret = app.NewSecret("whsec-" + apptest.RandomHex(12))
	if _, err := s.Save(ctx, app.Connection{OrgID: org, Config: vapi, VerifiedAt: time.Now(), WebhookSecretNew: true}); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.RevealVapiWebhookSecret(ctx, org, entry)
	if err != nil || got.Reveal() != vapi.WebhookSecret.Reveal() {
		t.Fatalf("reveal: %v", err)
	}
	if n := log(); n != 1 {
		t.Fatalf("%d audit entries after a reveal, want its one", n)
	}
}
