package webhooks_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/credentials"
	"byoc/app/webhooks"
	"byoc/db/dbtest"
)

// setHMACOnly changes the org's HMAC-only setting through the credential
// service, as the dashboard does.
func (e *env) setHMACOnly(orgID string, on bool) {
	e.t.Helper()
	if _, err := e.creds.SetWebhookHMACOnly(context.Background(), orgID, on); err != nil {
		e.t.Fatal(err)
	}
}

// TestHMACOnly: an org that takes static secrets (as every org stored
// before the setting existed) accepts X-Vapi-Secret, a bearer credential and
// an HMAC signature; an HMAC-only org accepts only a signature within the
// tolerance and refuses the static credentials with the same 401 as any
// other failure. A signature replayed outside the tolerance is refused in
// both.
func TestHMACOnly(t *testing.T) {
	const def = "server-default-secret-hmac-only"
	e := newEnv(t, withOptions(webhooks.Options{Debug: true, DefaultSecret: app.NewSecret(def)}))
	static := e.newOrg("static-mode-secret-0123456")
	hmacOnly := e.newOrg("hmac-only-secret-abcdefghij")
	e.setHMACOnly(hmacOnly.id, true)
	// An HMAC-only org without a secret of its own: the default secret
	// verifies it, and only by a signature too.
	viaDefault := e.newOrg("")
	e.setVapi(viaDefault.id, "")
	e.setHMACOnly(viaDefault.id, true)

	now := time.Now()
	stamp := now.UnixMilli()
	type sign func(secret string, body []byte) header
	var (
		xVapiSecret sign = func(s string, _ []byte) header { return header{"X-Vapi-Secret": s} }
		bearer      sign = func(s string, _ []byte) header { return header{"Authorization": "Bearer " + s} }
		signed      sign = func(s string, b []byte) header { return hmacHeaders(s, now.Unix(), b) }
		both        sign = func(s string, b []byte) header {
			h := hmacHeaders(s, now.Unix(), b)
			h["X-Vapi-Secret"] = s
			return h
		}
		replayed sign = func(s string, b []byte) header { return hmacHeaders(s, now.Unix()-301, b) }
		wrongMAC sign = func(s string, b []byte) header {
			h := hmacHeaders("not-"+s, now.Unix(), b)
			h["X-Vapi-Secret"] = s
			return h
		}
	)
	tests := []struct {
		name   string
		o      org
		secret string
		sign   sign
		want   string // outcome
	}{
		{"static mode: x-vapi-secret", static, static.secret, xVapiSecret, webhooks.OutcomeVerified},
		{"static mode: bearer", static, static.secret, bearer, webhooks.OutcomeVerified},
		{"static mode: hmac", static, static.secret, signed, webhooks.OutcomeVerified},
		{"static mode: hmac replayed outside the tolerance", static, static.secret, replayed, webhooks.OutcomeStaleTimestamp},

		{"hmac only: x-vapi-secret refused", hmacOnly, hmacOnly.secret, xVapiSecret, webhooks.OutcomeInvalidSignature},
		{"hmac only: bearer refused", hmacOnly, hmacOnly.secret, bearer, webhooks.OutcomeInvalidSignature},
		{"hmac only: hmac", hmacOnly, hmacOnly.secret, signed, webhooks.OutcomeVerified},
		{"hmac only: hmac beside the secret header", hmacOnly, hmacOnly.secret, both, webhooks.OutcomeVerified},
		{"hmac only: hmac replayed outside the tolerance", hmacOnly, hmacOnly.secret, replayed, webhooks.OutcomeStaleTimestamp},
		{"hmac only: right secret header, wrong signature", hmacOnly, hmacOnly.secret, wrongMAC, webhooks.OutcomeInvalidSignature},

		{"hmac only by default secret: x-vapi-secret refused", viaDefault, def, xVapiSecret, webhooks.OutcomeInvalidSignature},
		{"hmac only by default secret: bearer refused", viaDefault, def, bearer, webhooks.OutcomeInvalidSignature},
		{"hmac only by default secret: hmac", viaDefault, def, signed, webhooks.OutcomeVerified},
	}
	var refused string // the body of the first 401, which every 401 must repeat
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stamp++
			body := msg("status-update", tt.o.assistant, map[string]any{"status": "ringing", "timestamp": stamp})
			events := callEventCount(t, tt.o.id)
			before := e.outcome(tt.want)
			resp := e.h.Handle(context.Background(), req(body, tt.sign(tt.secret, body), now))
			if after := e.outcome(tt.want); after != before+1 {
				t.Errorf("outcome %s counted %d -> %d, want one more (%d %s)", tt.want, before, after, resp.Status, encode(t, resp.Body))
			}
			if tt.want == webhooks.OutcomeVerified {
				if resp.Status != http.StatusOK || callEventCount(t, tt.o.id) != events+1 {
					t.Fatalf("got %d %s, want 200 and the event recorded", resp.Status, encode(t, resp.Body))
				}
				return
			}
			if resp.Status != http.StatusUnauthorized || errorCode(t, resp) != app.EInvalidSignature {
				t.Fatalf("got %d %s, want 401 %s", resp.Status, encode(t, resp.Body), app.EInvalidSignature)
			}
			if got := encode(t, resp.Body); refused == "" {
				refused = got
			} else if got != refused {
				t.Errorf("401 body %s differs from an earlier 401 body %s", got, refused)
			}
			if n := callEventCount(t, tt.o.id); n != events {
				t.Errorf("a refused delivery recorded %d events", n-events)
			}
		})
	}

	t.Run("a tool call by the secret header runs nothing", func(t *testing.T) {
		e.setTwilio(hmacOnly.id, orgTwilio)
		stamp++
		body := toolCallsBody(t, hmacOnly.assistant, stamp,
			tc{id: "call_forged", name: "send_sms", args: map[string]any{"to": "+12025550123", "body": "forged"}})
		for name, h := range map[string]header{"x-vapi-secret": xVapiSecret(hmacOnly.secret, body), "bearer": bearer(hmacOnly.secret, body)} {
			if got := e.h.Handle(context.Background(), req(body, h, now)); got.Status != http.StatusUnauthorized {
				t.Errorf("%s: %d %s, want 401", name, got.Status, encode(t, got.Body))
			}
		}
		if n := len(e.sb.Twilio.Messages()); n != 0 {
			t.Fatalf("%d messages sent for refused deliveries", n)
		}
		if r := results(t, e.h.Handle(context.Background(), req(body, signed(hmacOnly.secret, body), now))); len(r) != 1 ||
			!strings.Contains(r[0].Result, "was sent") {
			t.Fatalf("the signed delivery: %+v", r)
		}
	})

	logs := e.logs.String()
	if !strings.Contains(logs, "static secret refused") {
		t.Errorf("the debug log does not say why a static secret was refused:\n%s", logs)
	}
	apptest.AssertNoSecret(t, "the log", logs, static.secret, hmacOnly.secret, def)
}

// TestHMACOnlyTakesEffectAtOnce: turning the setting on or off drops the
// org's cached entry, on this instance at once and on another through the
// database's notification, so a warm org switches mode with the next
// delivery.
func TestHMACOnlyTakesEffectAtOnce(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("switching-secret-0123456789")
	staticOK := func() bool { return e.handle(o.secret, msg("hang", o.assistant, nil)).Status == http.StatusOK }
	if !staticOK() {
		t.Fatal("warm-up with the secret header was refused")
	}

	e.setHMACOnly(o.id, true)
	if staticOK() {
		t.Fatal("the secret header was still accepted after turning HMAC only on")
	}
	body := msg("hang", o.assistant, nil)
	if got := e.h.Handle(context.Background(), req(body, hmacHeaders(o.secret, time.Now().Unix(), body), time.Now())); got.Status != http.StatusOK {
		t.Fatalf("a signed delivery: %d", got.Status)
	}
	e.setHMACOnly(o.id, false)
	if !staticOK() {
		t.Fatal("the secret header was still refused after turning HMAC only off")
	}

	t.Run("changed on another instance", func(t *testing.T) {
		d := dbtest.DB(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		heard := make(chan string, 16)
		go d.ListenInvalidations(ctx, func(orgID, provider string) {
			e.creds.Invalidate(orgID, provider)
			if orgID != o.id {
				return
			}
			select {
			case heard <- orgID:
			default:
			}
		}, e.creds.Flush)
		// Another instance: its own credential service and caches. The
		// listener starts at some point: the setting is switched until a
		// change is heard, and the webhook must then follow the setting
		// stored last.
		other := credentials.New(d, sharedKeyring(), credentials.Options{})
		deadline := time.Now().Add(10 * time.Second)
		for on, checked := true, 0; checked < 2; on = !on {
			if _, err := other.SetWebhookHMACOnly(context.Background(), o.id, on); err != nil {
				t.Fatal(err)
			}
			select {
			case <-heard:
			case <-time.After(100 * time.Millisecond):
				if time.Now().After(deadline) {
					t.Fatal("the invalidation listener never delivered")
				}
				continue
			}
			if staticOK() == on {
				t.Fatalf("after the other instance set HMAC only to %v, the secret header was answered as before", on)
			}
			checked++
		}
	})
}

// TestHMACOnlyWarmPathMakesNoDatabaseRoundTrip: the setting is cached with
// the org's secret, so a warm HMAC-only org is answered, and its static
// deliveries refused, without any statement reaching PostgreSQL.
func TestHMACOnlyWarmPathMakesNoDatabaseRoundTrip(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("warm-hmac-only-secret-0123")
	e.setHMACOnly(o.id, true)
	send := func(i int, static bool) webhooks.Response {
		now := time.Now()
		body := msg("hang", o.assistant, map[string]any{"timestamp": now.UnixMilli() + int64(i)})
		h := hmacHeaders(o.secret, now.Unix(), body)
		if static {
			h = header{"X-Vapi-Secret": o.secret}
		}
		return e.h.Handle(context.Background(), req(body, h, now))
	}
	q0 := e.queries.n.Load()
	if got := send(0, false); got.Status != http.StatusOK {
		t.Fatalf("cold webhook: %d %s", got.Status, encode(t, got.Body))
	}
	if e.queries.n.Load() == q0 {
		t.Fatal("the cold webhook made no database round trip: the counter cannot fail")
	}
	q1, s1, v1 := e.queries.n.Load(), e.h.Stats().StoreCalls, e.credsCnt.vapi.Load()
	for i := range 40 {
		want := http.StatusOK
		if i%4 == 3 {
			want = http.StatusUnauthorized
		}
		if got := send(i+1, i%4 == 3); got.Status != want {
			t.Fatalf("warm webhook %d: %d, want %d", i, got.Status, want)
		}
	}
	if n := e.queries.n.Load() - q1; n != 0 {
		t.Errorf("warm path sent %d statements to PostgreSQL, want 0", n)
	}
	if n := e.h.Stats().StoreCalls - s1; n != 0 || e.credsCnt.vapi.Load() != v1 {
		t.Errorf("warm path counted %d store calls, want 0", n)
	}
}
