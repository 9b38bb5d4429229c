package integrations_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"byoc/app"
)

// invalidations is a cache subscribed to the credential service: it records
// every invalidation that reaches it.
type invalidations struct {
	mu    sync.Mutex
	calls []string
}

func (r *invalidations) Invalidate(orgID, provider string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, orgID+"/"+provider)
	return 0
}

func (r *invalidations) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "flush")
}

// take returns the calls recorded since the last take.
func (r *invalidations) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	calls := r.calls
	r.calls = nil
	return calls
}

// subscribe registers a recording cache with the env's credential service,
// as the webhook routing is.
func subscribe(e *env) *invalidations {
	r := &invalidations{}
	e.creds.Subscribe(r)
	return r
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

// Every change of a connection reaches the caches subscribed to the
// credential service at once, whether or not it succeeded, so the webhook
// routing of this instance forgets a disconnected org's assistants without
// waiting for the database's notice.
func TestSubscribersHearEveryChange(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	heard := subscribe(e)
	for _, tt := range keyProviders() {
		p := tt.good.provider
		t.Run(string(p), func(t *testing.T) {
			admin, member := seedOrg(t, "Changed Clinic")
			want := []string{admin.OrgID + "/" + string(p)}
			steps := []struct {
				name string
				run  func() error
				want []string
			}{
				{"save", func() error { _, err := tt.good.save(ctx, e.svc, admin); return err }, want},
				{"verify", func() error { _, err := e.svc.Verify(ctx, admin, p); return err }, want},
				{"failed write", func() error {
					lift := refuseWrites(t, admin.OrgID, "org_credentials", "insert or update")
					defer lift()
					_, err := tt.good.save(ctx, e.svc, admin)
					wantCode(t, err, app.EInternal)
					return nil
				}, want},
				// Refused before anything could change: nothing to hear.
				{"member disconnect", func() error {
					_, err := e.svc.Disconnect(ctx, member, p)
					wantCode(t, err, app.EForbidden)
					return nil
				}, nil},
				{"disconnect", func() error { _, err := e.svc.Disconnect(ctx, admin, p); return err }, want},
			}
			heard.take()
			for _, s := range steps {
				if err := s.run(); err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				if got := heard.take(); !slices.Equal(got, s.want) {
					t.Errorf("%s: the subscriber heard %v, want %v", s.name, got, s.want)
				}
			}
		})
	}
}

// A save the provider refuses is an attempted change too: the subscribed
// caches hear of it, as they did when every attempted change, successful or
// not, was announced.
func TestSubscribersHearARefusedSave(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	heard := subscribe(e)
	for _, tt := range keyProviders() {
		p := tt.bad.provider
		t.Run(string(p), func(t *testing.T) {
			admin, _ := seedOrg(t, "Refused Clinic")
			heard.take()
			_, err := tt.bad.save(ctx, e.svc, admin)
			wantCode(t, err, app.EVerificationFailed)
			if got, want := heard.take(), []string{admin.OrgID + "/" + string(p)}; !slices.Equal(got, want) {
				t.Errorf("the subscriber heard %v, want %v", got, want)
			}
		})
	}
}

// Google Calendar's connect, test and disconnect reach the subscribers like
// every provider's changes.
func TestSubscribersHearGoogleCalendarChanges(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, withGoogle)
	heard := subscribe(e)
	admin, _ := seedOrg(t, "Changed Calendar Clinic")
	want := []string{admin.OrgID + "/" + string(app.GoogleCalendar)}

	e.connectGoogle(t, admin)
	if got := heard.take(); !slices.Equal(got, want) {
		t.Errorf("connect: the subscriber heard %v, want %v", got, want)
	}
	if _, err := e.svc.Verify(ctx, admin, app.GoogleCalendar); err != nil {
		t.Fatal(err)
	}
	if got := heard.take(); !slices.Equal(got, want) {
		t.Errorf("verify: the subscriber heard %v, want %v", got, want)
	}
	if _, err := e.svc.Disconnect(ctx, admin, app.GoogleCalendar); err != nil {
		t.Fatal(err)
	}
	if got := heard.take(); !slices.Equal(got, want) {
		t.Errorf("disconnect: the subscriber heard %v, want %v", got, want)
	}
}
