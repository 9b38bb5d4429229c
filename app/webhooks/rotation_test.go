package webhooks_test

import (
	"context"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/credentials"
	"byoc/app/webhooks"
	"byoc/db/dbtest"
)

// rotate stores a rotation of the org's webhook secret through the
// credential service, as the integrations service does once Vapi took the
// new secret: next is the new secret, the old one accepted until until.
func (e *env) rotate(creds *credentials.Service, o org, next string, until time.Time) {
	e.t.Helper()
	cfg := app.VapiConfig{APIKey: app.NewSecret("vapi-private-key-" + o.id[:8]), WebhookSecret: app.NewSecret(next),
		Region: app.VapiUS, PreviousWebhookSecret: app.NewSecret(o.secret), PreviousWebhookSecretUntil: until}
	if _, err := creds.ReplaceVapiWebhook(context.Background(), o.id, cfg); err != nil {
		e.t.Fatal(err)
	}
}

// TestRotationGraceWindow: after a rotation both secrets verify the org's
// webhooks until the grace period ends, by the handler's clock; after it
// only the new one does. Either mode (static header, HMAC) follows the
// org's HMAC-only setting for the previous secret too, and the warm path
// verifies the previous secret without the database.
func TestRotationGraceWindow(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	clock := apptest.NewClock(start)
	e := newEnv(t, withOptions(webhooks.Options{Now: clock.Now, Debug: true}))
	o := e.newOrg("old-secret-" + apptest.RandomHex(12))
	next := "new-secret-" + apptest.RandomHex(12)
	until := start.Add(24 * time.Hour)
	e.rotate(e.creds, o, next, until)

	send := func(secret string, at time.Time, static bool) webhooks.Response {
		body := msg("speech-update", o.assistant, nil)
		h := hmacHeaders(secret, at.Unix(), body)
		if static {
			h = header{"X-Vapi-Secret": secret}
		}
		clock.Set(at)
		// ReceivedAt left to the handler's clock.
		return e.h.Handle(context.Background(), webhooks.Request{Header: h.canonical().Get, Body: body})
	}
	tests := []struct {
		name   string
		secret string
		at     time.Time
		static bool
		want   int
	}{
		{"new secret, right after the rotation", next, start, false, 200},
		{"old secret, right after the rotation", o.secret, start, false, 200},
		{"old secret, static header", o.secret, start, true, 200},
		{"old secret, a second before the end", o.secret, until.Add(-time.Second), false, 200},
		{"old secret, at the end", o.secret, until, false, 401},
		{"old secret, a day after", o.secret, until.Add(24 * time.Hour), false, 401},
		{"old secret, static header after the end", o.secret, until.Add(time.Second), true, 401},
		{"new secret, after the end", next, until.Add(time.Hour), false, 200},
		{"neither", "some-other-secret-0123456", start, false, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if res := send(tt.secret, tt.at, tt.static); res.Status != tt.want {
				t.Fatalf("status %d, want %d: %s", res.Status, tt.want, encode(t, res.Body))
			}
		})
	}

	t.Run("HMAC only: the previous secret's static header is refused", func(t *testing.T) {
		if _, err := e.creds.SetWebhookHMACOnly(context.Background(), o.id, true); err != nil {
			t.Fatal(err)
		}
		if res := send(o.secret, start, true); res.Status != 401 {
			t.Errorf("static header of the previous secret: %d, want 401", res.Status)
		}
		if res := send(o.secret, start, false); res.Status != 200 {
			t.Errorf("signature of the previous secret: %d, want 200", res.Status)
		}
	})
	t.Run("warm: the previous secret costs no statement", func(t *testing.T) {
		send(next, start, false)
		q, calls := e.queries.n.Load(), e.h.Stats().StoreCalls
		for range 5 {
			if res := send(o.secret, start, false); res.Status != 200 {
				t.Fatalf("status %d", res.Status)
			}
		}
		if n := e.queries.n.Load() - q; n != 0 {
			t.Errorf("warm webhooks verified with the previous secret ran %d statements", n)
		}
		if n := e.h.Stats().StoreCalls - calls; n != 0 {
			t.Errorf("%d store calls", n)
		}
	})
	t.Run("secrets never logged", func(t *testing.T) {
		apptest.AssertNoSecret(t, "log", e.logs.String(), o.secret, next)
	})
}

// TestRotationOnAnotherInstance: a rotation stored by one instance reaches
// the other instance's warm cache through the database's notification: the
// new secret is accepted there as soon as the notification arrives, the
// old one still within the grace period.
func TestRotationOnAnotherInstance(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("old-secret-" + apptest.RandomHex(12))
	other := newEnv(t, sharing(e))
	d := dbtest.DB(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	listening := make(chan struct{})
	go d.ListenInvalidationsReporting(ctx, func(orgID, provider string) { e.creds.Invalidate(orgID, provider) },
		e.creds.Flush, func(up bool) {
			if up {
				select {
				case <-listening:
				default:
					close(listening)
				}
			}
		})
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		t.Fatal("the invalidation listener never connected")
	}
	send := func(secret string) int {
		body := msg("speech-update", o.assistant, nil)
		return e.h.Handle(context.Background(), req(body, hmacHeaders(secret, time.Now().Unix(), body), time.Now())).Status
	}
	// Warm: this instance holds the old secret in memory.
	if got := send(o.secret); got != 200 {
		t.Fatalf("before the rotation: %d", got)
	}
	next := "new-secret-" + apptest.RandomHex(12)
	other.rotate(other.creds, o, next, time.Now().Add(time.Hour))

	began := time.Now()
	for send(next) != 200 {
		if time.Since(began) > 5*time.Second {
			t.Fatal("the new secret was still refused 5 s after the other instance's rotation")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("the new secret was accepted %v after the rotation committed", time.Since(began))
	if got := send(o.secret); got != 200 {
		t.Errorf("the old secret within the grace period: %d, want 200", got)
	}
}

// TestRotationFromTheSharedSecret: an org verified with the server's
// shared secret (none of its own) that rotates keeps the shared secret
// accepted for the grace period, and only that long.
func TestRotationFromTheSharedSecret(t *testing.T) {
	const shared = "server-shared-secret-for-rotation"
	start := time.Now().UTC().Truncate(time.Second)
	clock := apptest.NewClock(start)
	e := newEnv(t, withOptions(webhooks.Options{Now: clock.Now, DefaultSecret: app.NewSecret(shared)}))
	o := e.newOrg("")
	e.setVapi(o.id, "")
	send := func(secret string, at time.Time) int {
		body := msg("speech-update", o.assistant, nil)
		clock.Set(at)
		return e.h.Handle(context.Background(), webhooks.Request{Header: hmacHeaders(secret, at.Unix(), body).canonical().Get,
			Body: body}).Status
	}
	if got := send(shared, start); got != 200 {
		t.Fatalf("before the rotation: %d", got)
	}
	next := "new-secret-" + apptest.RandomHex(12)
	until := start.Add(time.Hour)
	e.rotate(e.creds, o, next, until) // o.secret is "": the shared one was in use
	for _, tt := range []struct {
		name, secret string
		at           time.Time
		want         int
	}{
		{"the new secret", next, start, 200},
		{"the shared secret within the grace period", shared, until.Add(-time.Second), 200},
		{"the shared secret after it", shared, until, 401},
	} {
		if got := send(tt.secret, tt.at); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}
