package webhooks_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/webhooks"
	"byoc/db/dbtest"
)

func TestUnknownAssistant(t *testing.T) {
	e := newEnv(t)
	got := e.handle("whatever", msg("hang", newUUID(t), nil))
	if got.Status != http.StatusNotFound || errorCode(t, got) != "unknown_assistant" {
		t.Fatalf("got %d %s, want 404 unknown_assistant", got.Status, encode(t, got.Body))
	}
	if e.credsCnt.vapi.Load() != 0 {
		t.Errorf("an unknown assistant's secret was looked up")
	}
	if n := e.outcome(webhooks.OutcomeUnknownAssistant); n != 1 {
		t.Errorf("unknown_assistant counted %d times, want 1", n)
	}
}

// TestUnknownAssistantFlood sends 1000 webhooks, 50 at a time, for one
// unknown id: the database is asked once.
func TestUnknownAssistantFlood(t *testing.T) {
	e := newEnv(t)
	id := newUUID(t)
	body := msg("status-update", id, map[string]any{"status": "ringing"})
	var wg sync.WaitGroup
	statuses := make(chan int, 1000)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				statuses <- e.handle("s", body).Status
			}
		}()
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusNotFound {
			t.Fatalf("status %d, want 404", s)
		}
	}
	if n := e.mappings.resolves.Load(); n != 1 {
		t.Errorf("ResolveAssistant called %d times for one unknown id, want 1", n)
	}
	cs := e.h.CacheStats().Mappings
	if cs.NegativeItems != 1 || cs.Hits+cs.Misses != 1000 {
		t.Errorf("mapping cache %+v, want 1 negative entry and 1000 lookups", cs)
	}
	if s := e.h.Stats(); s.Outcomes[webhooks.OutcomeUnknownAssistant] != 1000 || s.StoreCalls != 1 {
		t.Errorf("stats %+v, want 1000 unknown_assistant and 1 store call", s)
	}
}

// TestNonUUIDAssistantIDNeverQueried: Vapi's assistant ids are UUIDs, so
// any other id is unknown without asking the database.
func TestNonUUIDAssistantIDNeverQueried(t *testing.T) {
	e := newEnv(t)
	u := newUUID(t)
	for _, id := range []string{
		"a1",
		"assistant-1",
		strings.Repeat("a", 500),
		strings.ReplaceAll(u, "-", ""),
		u + "0",
		" " + u,
		u[:35] + "g",
		"'; select pg_sleep(10); --",
	} {
		t.Run(clipName(id), func(t *testing.T) {
			body := []byte(encode(t, map[string]any{"message": map[string]any{"type": "status-update",
				"call": map[string]any{"id": "c1", "assistantId": id}}}))
			got := e.handle("s", body)
			if got.Status != http.StatusNotFound || errorCode(t, got) != "unknown_assistant" {
				t.Fatalf("got %d %s, want 404 unknown_assistant", got.Status, encode(t, got.Body))
			}
		})
	}
	if n := e.mappings.resolves.Load(); n != 0 {
		t.Errorf("%d ids that are not UUIDs reached the database", n)
	}
	if s := e.h.Stats(); s.StoreCalls != 0 {
		t.Errorf("%d store calls for ids that are not UUIDs", s.StoreCalls)
	}
}

func clipName(s string) string {
	if len(s) > 20 {
		return s[:20]
	}
	return s
}

// TestInvalidateOrg: once the org's mapping is gone from the database and
// the invalidation is applied (as on Vapi disconnect), its assistant is
// unknown at once.
func TestInvalidateOrg(t *testing.T) {
	e := newEnv(t)
	a := e.newOrg("org-a-secret-for-invalidate")
	b := e.newOrg("org-b-secret-for-invalidate")
	ctx := context.Background()
	for _, o := range []org{a, b} {
		if got := e.handle(o.secret, msg("hang", o.assistant, nil)); got.Status != http.StatusOK {
			t.Fatalf("warm-up: %d", got.Status)
		}
	}
	if _, err := dbtest.DB(t).DeleteAssistantMappings(ctx, a.id); err != nil {
		t.Fatal(err)
	}
	// Still cached: this is what the invalidation is for.
	if got := e.handle(a.secret, msg("hang", a.assistant, nil)); got.Status != http.StatusOK {
		t.Fatalf("before invalidation: %d, want 200 from the cache", got.Status)
	}
	if n := e.creds.Invalidate(a.id, string(app.Twilio)); n != 0 {
		t.Errorf("a Twilio invalidation dropped %d entries, want 0", n)
	}
	// The mapping and the secret (read with the HMAC-only setting from the
	// store, not through the credential service's config cache).
	if n := e.creds.Invalidate(a.id, string(app.Vapi)); n != 2 {
		t.Errorf("a Vapi invalidation dropped %d entries, want 2", n)
	}
	if got := e.handle(a.secret, msg("hang", a.assistant, nil)); got.Status != http.StatusNotFound {
		t.Errorf("after invalidation: %d, want 404", got.Status)
	}
	// The other org is untouched and still warm.
	before := e.queries.n.Load()
	if got := e.handle(b.secret, msg("hang", b.assistant, nil)); got.Status != http.StatusOK {
		t.Errorf("org B after A's invalidation: %d", got.Status)
	}
	if e.queries.n.Load() != before {
		t.Error("org B's warm entries were dropped too")
	}
}

// TestInvalidationsFromTheDatabase wires the handler to the database's
// invalidation listener, as main does, and checks that a disconnect, a
// secret change and a new mapping all take effect without any explicit call.
func TestInvalidationsFromTheDatabase(t *testing.T) {
	e := newEnv(t)
	d := dbtest.DB(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	listening := make(chan struct{}, 1)
	go d.ListenInvalidations(ctx, func(orgID, provider string) {
		e.creds.Invalidate(orgID, provider)
		select {
		case listening <- struct{}{}:
		default:
		}
	}, e.creds.Flush)
	// Wait until the listener hears something.
	probe := dbtest.SeedOrg(t, "webhooks test")
	deadline := time.Now().Add(10 * time.Second)
	for ready := false; !ready; {
		e.setVapi(probe, "probe-secret-000000")
		select {
		case <-listening:
			ready = true
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("the invalidation listener never delivered")
			}
		}
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(5 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("%s did not happen within 5 s", what)
			}
		}
	}

	o := e.newOrg("first-secret-abcdefgh")
	if got := e.handle(o.secret, msg("hang", o.assistant, nil)); got.Status != http.StatusOK {
		t.Fatalf("warm-up: %d", got.Status)
	}
	e.setVapi(o.id, "second-secret-ijklmnop")
	eventually("the new secret replacing the old", func() bool {
		return e.handle("first-secret-abcdefgh", msg("hang", o.assistant, nil)).Status == http.StatusUnauthorized &&
			e.handle("second-secret-ijklmnop", msg("hang", o.assistant, nil)).Status == http.StatusOK
	})

	if _, err := d.DeleteAssistantMappings(context.Background(), o.id); err != nil {
		t.Fatal(err)
	}
	eventually("the assistant becoming unknown", func() bool {
		return e.handle("second-secret-ijklmnop", msg("hang", o.assistant, nil)).Status == http.StatusNotFound
	})

	// An id cached as unknown becomes known once it is mapped.
	id := newUUID(t)
	if got := e.handle("second-secret-ijklmnop", msg("hang", id, nil)); got.Status != http.StatusNotFound {
		t.Fatalf("unmapped id: %d", got.Status)
	}
	if err := d.SaveAssistantMapping(context.Background(), app.AssistantMapping{VapiAssistantID: id, OrgID: o.id, Role: app.Outbound}); err != nil {
		t.Fatal(err)
	}
	eventually("the new mapping replacing the negative entry", func() bool {
		return e.handle("second-secret-ijklmnop", msg("hang", id, nil)).Status == http.StatusOK
	})
}

func TestFlush(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("flush-secret-12345678")
	e.handle(o.secret, msg("hang", o.assistant, nil))
	e.creds.Flush()
	if cs := e.h.CacheStats(); cs.Mappings.Items != 0 || cs.Secrets.Items != 0 {
		t.Errorf("after Flush: %+v", cs)
	}
	before := e.mappings.resolves.Load()
	if got := e.handle(o.secret, msg("hang", o.assistant, nil)); got.Status != http.StatusOK {
		t.Fatalf("after Flush: %d", got.Status)
	}
	if e.mappings.resolves.Load() != before+1 {
		t.Error("Flush did not make the next webhook resolve again")
	}
}

// TestWarmPathMakesNoDatabaseRoundTrip counts every statement sent to
// PostgreSQL on the handler's pool, and every call into the DB-backed
// dependencies, while warm webhooks that need no write are answered.
func TestWarmPathMakesNoDatabaseRoundTrip(t *testing.T) {
	const def = "warm-default-secret-55"
	e := newEnv(t, withOptions(webhooks.Options{DefaultSecret: app.NewSecret(def)}))
	own := e.newOrg("warm-own-secret-12345678")
	viaDefault := e.newOrg("")
	types := []string{"speech-update", "transcript", "conversation-update", "hang", "assistant-request", "unknown-new-type"}

	send := func(o org, secret, typ string, i int) webhooks.Response {
		now := time.Now()
		body := msg(typ, o.assistant, map[string]any{"timestamp": now.UnixMilli() + int64(i), "transcript": "Hello, my number is +12025550123"})
		var h header
		switch i % 3 {
		case 0:
			h = header{"X-Vapi-Secret": secret}
		case 1:
			h = header{"Authorization": "Bearer " + secret}
		default:
			h = hmacHeaders(secret, now.Unix(), body)
		}
		return e.h.Handle(context.Background(), req(body, h, now))
	}
	for _, c := range []struct {
		o      org
		secret string
	}{{own, own.secret}, {viaDefault, def}} {
		// Cold: this must reach the database, or the counters prove nothing.
		q0, s0 := e.queries.n.Load(), e.h.Stats().StoreCalls
		if got := send(c.o, c.secret, "hang", 0); got.Status != http.StatusOK {
			t.Fatalf("cold webhook: %d %s", got.Status, encode(t, got.Body))
		}
		if e.queries.n.Load() == q0 || e.h.Stats().StoreCalls == s0 {
			t.Fatal("the cold webhook made no database round trip: the counters cannot fail")
		}
		q1, s1 := e.queries.n.Load(), e.h.Stats().StoreCalls
		r1, v1, t1, ev1 := e.mappings.resolves.Load(), e.credsCnt.vapi.Load(), e.mappings.touchs.Load(), e.events.n.Load()
		for i := range 60 {
			if got := send(c.o, c.secret, types[i%len(types)], i); got.Status != http.StatusOK {
				t.Fatalf("warm webhook %d: %d %s", i, got.Status, encode(t, got.Body))
			}
		}
		if n := e.queries.n.Load() - q1; n != 0 {
			t.Errorf("warm path sent %d statements to PostgreSQL, want 0", n)
		}
		if n := e.h.Stats().StoreCalls - s1; n != 0 {
			t.Errorf("warm path counted %d store calls, want 0", n)
		}
		if e.mappings.resolves.Load() != r1 || e.credsCnt.vapi.Load() != v1 || e.mappings.touchs.Load() != t1 || e.events.n.Load() != ev1 {
			t.Error("warm path called a DB-backed dependency")
		}
	}
}

func TestCacheStats(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("stats-secret-12345678")
	for range 4 {
		e.handle(o.secret, msg("hang", o.assistant, nil))
	}
	e.handle("x", msg("hang", newUUID(t), nil))
	cs := e.h.CacheStats()
	if cs.Mappings.Hits != 3 || cs.Mappings.Misses != 2 || cs.Mappings.Items != 2 || cs.Mappings.NegativeItems != 1 {
		t.Errorf("mappings %+v, want 3 hits, 2 misses, 2 items (1 negative)", cs.Mappings)
	}
	if cs.Mappings.HitRate != 0.6 {
		t.Errorf("hit rate %v, want 0.6", cs.Mappings.HitRate)
	}
	if cs.Secrets.Hits != 3 || cs.Secrets.Misses != 1 || cs.Secrets.Items != 1 {
		t.Errorf("secrets %+v, want 3 hits, 1 miss, 1 item", cs.Secrets)
	}
	if js := encode(t, cs); js == "" {
		t.Error("CacheStats does not encode")
	}
}

// TestStatusChangesKeepTheWarmPath: a connection test records only a status
// (when it ran, how it went); the org's mapping and secret stay cached, so
// the next webhook still makes no database round trip. A re-verification
// sweep over every org thus never cools the webhook routing.
func TestStatusChangesKeepTheWarmPath(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("status-change-secret-0123")
	if got := e.handle(o.secret, msg("hang", o.assistant, nil)); got.Status != http.StatusOK {
		t.Fatalf("warm-up: %d", got.Status)
	}
	for _, outcome := range []error{nil, app.Errorf(app.EVerificationFailed, "Vapi refused the key.")} {
		if _, err := e.creds.RecordVerification(context.Background(), o.id, app.Vapi, time.Now(), outcome); err != nil {
			t.Fatal(err)
		}
		before := e.queries.n.Load()
		if got := e.handle(o.secret, msg("hang", o.assistant, nil)); got.Status != http.StatusOK {
			t.Fatalf("after a recorded check: %d", got.Status)
		}
		if n := e.queries.n.Load() - before; n != 0 {
			t.Errorf("a recorded check (%v) cooled the warm path: %d statements", outcome, n)
		}
	}
	// A change of what the credentials hold still reaches the routing.
	e.setVapi(o.id, "status-change-secret-4567")
	if got := e.handle(o.secret, msg("hang", o.assistant, nil)); got.Status != http.StatusUnauthorized {
		t.Fatalf("the old secret after a save: %d, want 401", got.Status)
	}
}
