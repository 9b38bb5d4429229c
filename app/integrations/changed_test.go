package integrations_test

import (
	"context"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/orgcache"
)

// watcher is another cache of the credential service's group, as the
// webhook routing keeps one: it holds an entry per (org, provider) it is
// armed for, and an invalidation that reaches it drops the entry.
type watcher struct {
	g *orgcache.Group
	c *orgcache.Cache[string, bool]
}

func watch(e *env) *watcher {
	return &watcher{g: e.sys.Caches, c: orgcache.New[string, bool](e.sys.Caches, "watcher", time.Hour)}
}

// arm caches an entry owned by the org's provider.
func (w *watcher) arm(t *testing.T, orgID string, p app.Provider) {
	t.Helper()
	key := orgID + "/" + string(p)
	if !w.c.Put(w.g.Stamp(), key, orgcache.Entry[bool]{Owner: orgcache.Owner{Org: orgID, Provider: p}, Value: true}) {
		t.Fatal("the watcher's entry was not stored")
	}
}

// heard reports whether the org's provider was invalidated since arm.
func (w *watcher) heard(orgID string, p app.Provider) bool {
	_, ok, _ := w.c.Get(orgID + "/" + string(p))
	return !ok
}

// keyProviders are a good and a refused save of each provider connected
// with a key.
func keyProviders() []struct{ good, bad saveCall } {
	return []struct{ good, bad saveCall }{
		{vapiSave(app.Values{"apiKey": vapiKey()}), vapiSave(app.Values{"apiKey": vapiKey("invalid")})},
		{twilioSave(app.Values{"accountSid": twilioSID(), "authToken": twilioToken(), "phoneNumber": "+12025550123"}),
			twilioSave(app.Values{"accountSid": twilioSID(), "authToken": twilioToken("invalid"), "phoneNumber": "+12025550123"})},
		{resendSave(app.Values{"apiKey": resendKey()}), resendSave(app.Values{"apiKey": resendKey("invalid")})},
		{elevenLabsSave(app.Values{"apiKey": elevenLabsKey()}), elevenLabsSave(app.Values{"apiKey": elevenLabsKey("invalid")})},
	}
}

// Every change of a connection reaches every cache of the credential
// service's group at once, so the webhook routing of this instance forgets
// a disconnected org's assistants without waiting for the database's
// notice; a change refused before anything was written reaches none, and a
// connection test or a scheduled re-check, which change only the status,
// leave what the credentials hold cached.
func TestEveryChangeReachesTheCaches(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	w := watch(e)
	for _, tt := range keyProviders() {
		p := tt.good.provider
		t.Run(string(p), func(t *testing.T) {
			admin, member := seedOrg(t, "Changed Clinic")
			other, _ := seedOrg(t, "Unchanged Clinic")
			steps := []struct {
				name  string
				run   func() error
				heard bool
			}{
				{"save", func() error { _, err := tt.good.save(ctx, e.svc, admin); return err }, true},
				// A check changes the status only: what the credentials
				// hold stays cached (the webhook routing stays warm).
				{"verify", func() error { _, err := e.svc.Verify(ctx, admin, p); return err }, false},
				// So does the background re-verification.
				{"scheduled re-check", func() error { _, err := e.svc.Recheck(ctx, admin.OrgID, p); return err }, false},
				{"failed write", func() error {
					lift := refuseWrites(t, admin.OrgID, "org_credentials", "insert or update")
					defer lift()
					_, err := tt.good.save(ctx, e.svc, admin)
					wantCode(t, err, app.EInternal)
					return nil
				}, true},
				// Refused before anything was written: nothing to forget.
				{"refused by the provider", func() error {
					_, err := tt.bad.save(ctx, e.svc, admin)
					wantCode(t, err, app.EVerificationFailed)
					return nil
				}, false},
				{"member disconnect", func() error {
					_, err := e.svc.Disconnect(ctx, member, p)
					wantCode(t, err, app.EForbidden)
					return nil
				}, false},
				{"disconnect", func() error { _, err := e.svc.Disconnect(ctx, admin, p); return err }, true},
			}
			for _, s := range steps {
				w.arm(t, admin.OrgID, p)
				w.arm(t, other.OrgID, p)
				if err := s.run(); err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				if got := w.heard(admin.OrgID, p); got != s.heard {
					t.Errorf("%s: the cache heard of it: %v, want %v", s.name, got, s.heard)
				}
				if w.heard(other.OrgID, p) {
					t.Errorf("%s: another org's entry was dropped", s.name)
				}
			}
		})
	}
}

// Google Calendar's connect, test and disconnect reach the caches like
// every provider's changes.
func TestGoogleCalendarChangesReachTheCaches(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, withGoogle)
	w := watch(e)
	admin, _ := seedOrg(t, "Changed Calendar Clinic")
	steps := []struct {
		name  string
		run   func() error
		heard bool
	}{
		{"connect", func() error { e.connectGoogle(t, admin); return nil }, true},
		{"verify", func() error { _, err := e.svc.Verify(ctx, admin, app.GoogleCalendar); return err }, false},
		{"disconnect", func() error { _, err := e.svc.Disconnect(ctx, admin, app.GoogleCalendar); return err }, true},
	}
	for _, s := range steps {
		w.arm(t, admin.OrgID, app.GoogleCalendar)
		if err := s.run(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := w.heard(admin.OrgID, app.GoogleCalendar); got != s.heard {
			t.Errorf("%s: the cache heard of it: %v, want %v", s.name, got, s.heard)
		}
	}
}
