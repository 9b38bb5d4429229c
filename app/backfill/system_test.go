package backfill_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/backfill"
	"byoc/app/sandbox"
	"byoc/app/system"
	"byoc/app/system/systemtest"
	"byoc/app/webhooks"
	"byoc/db"
)

// server is a running instance of BYOC (the whole graph system.Build
// makes, providers on the stand-ins) on the test database, with the test
// keyring, listening for other instances' cache invalidations as main's
// does. settle returns once the instance has applied every announcement
// made before it was called (announcements arrive in order, so it waits
// for one of its own).
func server(t *testing.T, d *db.DB) (sys *system.System, settle func()) {
	t.Helper()
	sb := sandbox.New()
	hs := httptest.NewServer(sb.Handler())
	t.Cleanup(hs.Close)
	cfg := systemtest.Config(t, sb.BaseURLs(hs.URL))
	cfg.EncryptionKey = app.NewSecret(byocKeyHex)
	sys, err := system.Build(cfg, d, system.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	heard := make(chan string, 64)
	go d.ListenInvalidations(ctx, func(org, provider string) {
		sys.Credentials.Invalidate(org, provider)
		select {
		case heard <- org:
		default:
		}
	}, sys.Credentials.Flush)
	settle = func() {
		t.Helper()
		probe := newID(t)
		for end := time.Now().Add(10 * time.Second); ; {
			if _, err := d.Pool.Exec(ctx, `select pg_notify($1, $2)`, db.NotifyChannel, `{"org":"`+probe+`"}`); err != nil {
				t.Fatal(err)
			}
			for wait := time.After(100 * time.Millisecond); ; {
				select {
				case org := <-heard:
					if org == probe {
						return
					}
					continue
				case <-wait:
				}
				break
			}
			if time.Now().After(end) {
				t.Fatal("the invalidation listener never heard its probe")
			}
		}
	}
	settle() // the listener listens
	return sys, settle
}

// webhook sends a Vapi conversation update from assistant, authenticated
// with secret, to sys, and returns the status it answered.
func webhook(sys *system.System, assistant, secret string) int {
	body, _ := json.Marshal(map[string]any{"message": map[string]any{"type": "hang",
		"call": map[string]any{"id": "call-1", "assistantId": assistant}}})
	h := http.Header{}
	h.Set("X-Vapi-Secret", secret)
	return sys.Webhooks.Handle(context.Background(), webhooks.Request{Header: h.Get, Body: body}).Status
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s did not happen", what)
		}
	}
}

// TestBackfilledOrgsReachRunningInstances: a running instance that saw a
// legacy org's assistant as unknown and its cards as not connected sees
// the backfill as soon as its announcement arrives, while the warm entries
// of other orgs stay warm.
func TestBackfilledOrgsReachRunningInstances(t *testing.T) {
	l := newLegacy(t, false)
	d := l.d
	ctx := context.Background()
	sys, settle := server(t, d)
	a, warm := l.newOrg("reaches A"), l.newOrg("stays warm")
	assistant, warmAssistant := newID(t), newID(t)
	const warmSecret = "warm-org-webhook-secret-12345"
	if _, err := sys.Credentials.Save(ctx, app.Connection{OrgID: warm, Config: app.VapiConfig{APIKey: app.NewSecret(vapiKey),
		WebhookSecret: app.NewSecret(warmSecret), Region: app.VapiUS},
		Assistants: []app.AssistantMapping{{VapiAssistantID: warmAssistant, OrgID: warm, Role: app.Inbound}}}); err != nil {
		t.Fatal(err)
	}
	settle() // the save's own announcement must not cool what the test warms next
	l.integration(a, "vapi", legacySeal(t, legacyKeyHex, 12, `{"apiKey":"`+vapiKey+`","webhookSecret":"`+vapiSecret+`"}`))
	l.integration(a, "twilio", legacySeal(t, legacyKeyHex, 16, twilioJSON("account_sid")))
	l.agent(a, assistant)

	// The instance remembers the assistant as unknown, the org's cards as
	// not connected, and the other org's webhook entries.
	if got := webhook(sys, assistant, vapiSecret); got != http.StatusNotFound {
		t.Fatalf("before the backfill: %d, want 404", got)
	}
	connected := func(org string, p app.Provider) bool {
		st, err := sys.Credentials.Statuses(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if s.Provider == p {
				return s.Connected
			}
		}
		return false
	}
	if connected(a, app.Vapi) || connected(a, app.Twilio) {
		t.Fatal("connected before the backfill")
	}
	for range 2 {
		if got := webhook(sys, warmAssistant, warmSecret); got != http.StatusOK {
			t.Fatalf("warm org: %d", got)
		}
	}

	logs := &apptest.LogBuffer{}
	rep := mustRun(t, l.src, d, opts(t, logs))
	if rep.Integrations.Migrated != 2 || rep.Agents.Migrated != 1 {
		t.Fatalf("%s / %s", tally(rep.Integrations), tally(rep.Agents))
	}
	eventually(t, "the backfilled assistant routing to its org, verified with its own secret", func() bool {
		return webhook(sys, assistant, vapiSecret) == http.StatusOK
	})
	if got := webhook(sys, assistant, "some-other-secret-0000000000"); got != http.StatusUnauthorized {
		t.Errorf("a wrong secret: %d, want 401", got)
	}
	eventually(t, "the org's cards showing Vapi and Twilio connected", func() bool {
		return connected(a, app.Vapi) && connected(a, app.Twilio)
	})

	// The other org's entries were not dropped: its webhook is answered
	// from the cache.
	before := sys.Webhooks.CacheStats()
	if got := webhook(sys, warmAssistant, warmSecret); got != http.StatusOK {
		t.Fatalf("warm org after the backfill: %d", got)
	}
	after := sys.Webhooks.CacheStats()
	if after.Mappings.Misses != before.Mappings.Misses || after.Secrets.Misses != before.Secrets.Misses {
		t.Errorf("the backfill cooled another org's entries: %+v then %+v", before, after)
	}
}

// TestBackfillVerifiesWhenAsked: with Verify, each provider is asked
// first, as a save asks it; what it refuses or cannot answer is not
// brought over.
func TestBackfillVerifiesWhenAsked(t *testing.T) {
	l := newLegacy(t, false)
	ctx := context.Background()
	sys, _ := server(t, l.d)
	good, refused, down, google := l.newOrg("verify good"), l.newOrg("verify refused"), l.newOrg("verify down"), l.newOrg("verify google")
	l.integration(good, "vapi", `{"apiKey":"`+vapiKey+`"}`)
	l.integration(refused, "vapi", `{"apiKey":"invalid-2222-4333-8444-555555555555"}`)
	l.integration(down, "resend", `{"apiKey":"re_down_0123456789"}`)
	l.integration(google, "google_calendar", `{"refresh_token":"`+refreshToken+`"}`)

	logs := &apptest.LogBuffer{}
	o := opts(t, logs)
	o.Verify = true
	o.Verifiers = map[app.Provider]backfill.Verifier{}
	for p, v := range sys.Verifiers {
		o.Verifiers[p] = v
	}
	o.Verifiers[app.GoogleCalendar] = backfill.GoogleGrant(sys.GoogleOAuth)
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	o.Now = func() time.Time { return at }
	rep := mustRun(t, l.src, l.d, o)
	if rep.Integrations.Migrated != 1 || rep.Failed() != 3 {
		t.Fatalf("%s", tally(rep.Integrations))
	}
	for _, e := range rep.Entries {
		if e.Outcome != backfill.Failed || len(e.Reason) < len("not verified: ") || e.Reason[:14] != "not verified: " {
			t.Errorf("%+v", e)
		}
	}
	st, err := sys.Credentials.Statuses(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Provider == app.Vapi && (!s.Connected || s.LastVerified == nil || !s.LastVerified.Equal(at)) {
			t.Errorf("verified Vapi: %+v", s)
		}
	}
	for _, org := range []string{refused, down, google} {
		var n int
		if err := l.d.Pool.QueryRow(ctx, `select count(*) from org_credentials where org_id = $1`, org).Scan(&n); err != nil || n != 0 {
			t.Errorf("org %s: %d rows stored (%v)", org, n, err)
		}
	}
	apptest.AssertNoSecret(t, "report", rep.String(), append(secrets, "invalid-2222-4333-8444-555555555555", "re_down_0123456789")...)
}
