package integrations_test

import (
	"context"
	"crypto/rand"
	"log/slog"
	"maps"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/credentials"
	"byoc/app/integrations"
	"byoc/app/keyring"
	"byoc/app/providers/elevenlabs"
	"byoc/app/providers/google"
	"byoc/app/providers/resend"
	"byoc/app/providers/twilio"
	"byoc/app/providers/vapi"
	"byoc/app/sandbox"
	"byoc/app/system/systemtest"
	"byoc/db/dbtest"
)

// countingStore is the database as the credential service sees it,
// counting the reads: ListCredentials (every row of an org, each decrypted
// for the statuses) and GetCredential by provider (a row to decrypt).
type countingStore struct {
	credentials.Store
	mu    sync.Mutex
	lists int
	gets  map[app.Provider]int
}

func (s *countingStore) ListCredentials(ctx context.Context, orgID string) ([]app.CredentialRecord, error) {
	s.mu.Lock()
	s.lists++
	s.mu.Unlock()
	return s.Store.ListCredentials(ctx, orgID)
}

func (s *countingStore) GetCredential(ctx context.Context, orgID string, p app.Provider) (app.CredentialRecord, error) {
	s.mu.Lock()
	s.gets[p]++
	s.mu.Unlock()
	return s.Store.GetCredential(ctx, orgID, p)
}

// take returns the reads counted since the last take.
func (s *countingStore) take() (lists int, gets map[app.Provider]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lists, gets = s.lists, s.gets
	s.lists, s.gets = 0, map[app.Provider]int{}
	return lists, gets
}

// A save stores what it was given and answers the status it wrote: it
// never lists the org's credentials (which decrypts every row) and reads
// no other provider's row than the ones it needs (a Vapi save reads the
// org's Twilio number for the outbound agent, and its own stored row for
// the webhook secret to keep and the signing credential it replaces). system.Build takes no store
// wrapper, so this service is wired by hand, as Build wires it.
func TestSaveReadsNoOtherCredentials(t *testing.T) {
	ctx := context.Background()
	d := dbtest.DB(t)
	sb := sandbox.New()
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	urls := sb.BaseURLs(srv.URL)
	g := sandbox.NewGoogle(sandbox.GoogleOptions{RedirectURIs: []string{systemtest.GoogleCallbackURL}})
	gsrv := httptest.NewServer(g)
	t.Cleanup(gsrv.Close)
	gurls := g.URLs(gsrv.URL)
	gid, gsecret := g.Client()

	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.New(key)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	clock := apptest.NewClock(time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC))
	const timeout = 2 * time.Second
	oauth := google.NewOAuth(google.OAuthConfig{ClientID: gid, ClientSecret: app.NewSecret(gsecret),
		RedirectURL: systemtest.GoogleCallbackURL, AuthURL: gurls.Auth, TokenURL: gurls.Token, RevokeURL: gurls.Revoke,
		CalendarBaseURL: gurls.Calendar, Timeout: timeout})
	store := &countingStore{Store: d, gets: map[app.Provider]int{}}
	creds := credentials.New(store, kr, credentials.Options{Logger: logger, Now: clock.Now, Google: oauth, Locker: d})
	calendar := google.NewCalendar(oauth, creds, logger)
	vapiClient := vapi.New(urls.Vapi, urls.VapiEU, nil, timeout)
	svc := integrations.New(integrations.Deps{
		Credentials: creds,
		Verifiers: map[app.Provider]integrations.Verifier{
			app.Vapi:       integrations.VerifyWith(vapiClient.Verify),
			app.Twilio:     integrations.VerifyWith(twilio.New(urls.Twilio, nil, timeout).Verify),
			app.Resend:     integrations.VerifyWith(resend.New(urls.Resend, nil, timeout).Verify),
			app.ElevenLabs: integrations.VerifyWith(elevenlabs.New(urls.ElevenLabs, nil, timeout).Verify),
			app.GoogleCalendar: integrations.VerifierFunc(func(ctx context.Context, orgID string, _ app.Config) (app.Verification, error) {
				return calendar.Check(ctx, orgID)
			}),
		},
		Assistants: vapiClient, Mappings: d, Audit: d, Locker: d, Google: oauth, States: d, Sealer: kr,
	}, integrations.Options{PublicURL: publicURL, Logger: logger, Now: clock.Now})

	admin, _ := seedOrg(t, "Frugal Dental")
	// The org has every provider connected.
	for _, cfg := range []app.Config{
		app.VapiConfig{APIKey: app.NewSecret(vapiKey()), WebhookSecret: app.NewSecret(webhookSecret()), Region: app.VapiUS},
		app.TwilioConfig{AccountSID: twilioSID(), AuthToken: app.NewSecret(twilioToken()), PhoneNumber: "+12025550123"},
		app.ResendConfig{APIKey: app.NewSecret(resendKey())},
		app.ElevenLabsConfig{APIKey: app.NewSecret(elevenLabsKey())},
		app.GoogleCalendarConfig{RefreshToken: app.NewSecret("google-refresh-" + apptest.RandomHex(8)), Email: "owner@example.com"},
	} {
		if _, err := creds.Save(ctx, app.Connection{OrgID: admin.OrgID, Config: cfg, VerifiedAt: clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name     string
		provider app.Provider
		save     func() (integrations.SaveResult, error)
		// wantGets are the rows the save may read.
		wantGets map[app.Provider]int
	}{
		{"vapi", app.Vapi, func() (integrations.SaveResult, error) {
			res, err := svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": vapiKey(), "webhookSecret": webhookSecret()})
			return res, err
		}, map[app.Provider]int{app.Vapi: 1, app.Twilio: 1}},
		{"vapi keeping its webhook secret", app.Vapi, func() (integrations.SaveResult, error) {
			res, err := svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": vapiKey()})
			return res, err
		}, map[app.Provider]int{app.Vapi: 1, app.Twilio: 1}},
		{"twilio", app.Twilio, func() (integrations.SaveResult, error) {
			res, err := svc.Save(ctx, admin, app.Twilio, app.Values{"accountSid": twilioSID(), "authToken": twilioToken(),
				"phoneNumber": "+12025550199"})
			return res, err
		}, map[app.Provider]int{}},
		{"resend", app.Resend, func() (integrations.SaveResult, error) {
			res, err := svc.Save(ctx, admin, app.Resend, app.Values{"apiKey": resendKey()})
			return res, err
		}, map[app.Provider]int{}},
		{"elevenlabs", app.ElevenLabs, func() (integrations.SaveResult, error) {
			res, err := svc.Save(ctx, admin, app.ElevenLabs, app.Values{"apiKey": elevenLabsKey()})
			return res, err
		}, map[app.Provider]int{}},
		{"google calendar", app.GoogleCalendar, func() (integrations.SaveResult, error) {
			binding := "csrf-" + apptest.RandomHex(8)
			authURL, err := svc.ConnectURL(ctx, admin, binding)
			if err != nil {
				return integrations.SaveResult{}, err
			}
			back, err := sandbox.GoogleConsent(ctx, nil, authURL, sandbox.GoogleConsentChoice{})
			if err != nil {
				return integrations.SaveResult{}, err
			}
			q := back.Query()
			store.take() // the callback is what saves
			_, err = svc.Callback(ctx, admin, binding, integrations.CallbackQuery{State: q.Get("state"), Code: q.Get("code")})
			return integrations.SaveResult{}, err
		}, map[app.Provider]int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := creds.Get(ctx, admin.OrgID, tt.provider)
			if err != nil {
				t.Fatal(err)
			}
			// Nothing cached: every read reaches the store.
			creds.Flush()
			store.take()
			res, err := tt.save()
			if err != nil {
				t.Fatal(err)
			}
			lists, gets := store.take()
			if tt.provider != app.GoogleCalendar && !res.Status.Connected {
				t.Errorf("status = %+v, want connected", res.Status)
			}
			if after, err := creds.Get(ctx, admin.OrgID, tt.provider); err != nil || reflect.DeepEqual(after, before) {
				t.Errorf("stored = %v; want the new connection", err)
			}
			if lists != 0 {
				t.Errorf("the save listed the org's credentials %d times, want never", lists)
			}
			if !maps.Equal(gets, tt.wantGets) {
				t.Errorf("the save read the rows %v, want %v", gets, tt.wantGets)
			}
		})
	}
}
