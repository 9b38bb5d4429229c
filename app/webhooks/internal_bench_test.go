package webhooks

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
)

// BenchmarkResolveVerify isolates the part of the warm path the latency
// statistics measure: the cached resolution of the assistant and its org's
// secret, and the verification of a 2 KiB body (no JSON parsing, no event
// handling).
func BenchmarkResolveVerify(b *testing.B) {
	h := New(Deps{Mappings: memDeps{}, Credentials: memDeps{}, Events: memDeps{}}, Options{})
	body := bytes.Repeat([]byte("x"), 2048)
	ts := strconv.FormatInt(fuzzNow.Unix(), 10)
	modes := map[string]http.Header{
		"hmac":          {HeaderSignature: {apptest.VapiSignature(fuzzSecret, ts, body)}, HeaderTimestamp: {ts}},
		"x-vapi-secret": {HeaderVapiSecret: {fuzzSecret}},
	}
	for _, name := range []string{"hmac", "x-vapi-secret"} {
		hdr := modes[name]
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				org, err := h.resolve(ctx, fuzzAssistant)
				if err != nil {
					b.Fatal(err)
				}
				key, hmacOnly, err := h.secret(ctx, org)
				if err != nil {
					b.Fatal(err)
				}
				if v := verify(hdr.Get, body, key, hmacOnly, fuzzNow, DefaultTolerance); !v.ok {
					b.Fatal(v.failure)
				}
			}
		})
	}
}

// manyOrgs is an in-memory store of n orgs, each with one assistant and a
// webhook secret of its own.
type manyOrgs struct{ memDeps }

func benchAssistant(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
func benchOrg(i int) string       { return fmt.Sprintf("10000000-0000-4000-8000-%012d", i) }

func (manyOrgs) ResolveAssistant(_ context.Context, id string) (app.AssistantMapping, error) {
	return app.AssistantMapping{VapiAssistantID: id, OrgID: "1" + id[1:]}, nil
}

func (manyOrgs) VapiWebhook(_ context.Context, orgID string) (app.VapiWebhook, error) {
	return app.VapiWebhook{Secret: app.NewSecret("secret-" + orgID)}, nil
}

// BenchmarkWarmPathStorm resolves and verifies webhooks of random orgs
// among 100,000 (all cached) while credential changes stream in for 1,000
// other orgs a second, as a key rotation, a backfill or a re-verification
// sweep of other orgs would, side by side with the same load in quiet. It
// reports the hit rate of the warm path: a change to one org must never
// cool another's entries.
func BenchmarkWarmPathStorm(b *testing.B) {
	const orgs = 100_000
	body := bytes.Repeat([]byte("x"), 2048)
	ts := strconv.FormatInt(fuzzNow.Unix(), 10)
	for _, storm := range []bool{false, true} {
		name := "quiet"
		if storm {
			name = "storm-1000-per-second"
		}
		b.Run(name, func(b *testing.B) {
			g := NewCacheGroup(Options{})
			h := New(Deps{Mappings: manyOrgs{}, Credentials: manyOrgs{}, Events: memDeps{}}, Options{Caches: g})
			ctx := context.Background()
			sigs := make([]string, orgs/2)
			for i := range orgs / 2 { // the read half, warmed
				sigs[i] = apptest.VapiSignature("secret-"+benchOrg(i), ts, body)
				org, err := h.resolve(ctx, benchAssistant(i))
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := h.secret(ctx, org); err != nil {
					b.Fatal(err)
				}
			}
			stop := make(chan struct{})
			done := make(chan struct{})
			invalidated := 0
			began := time.Now()
			go func() {
				defer close(done)
				if !storm {
					return
				}
				tick := time.NewTicker(time.Millisecond)
				defer tick.Stop()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-tick.C:
						invalidated++
						g.Invalidate(benchOrg(orgs/2+i%(orgs/2)), app.Vapi)
					}
				}
			}()
			before := h.CacheStats()
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.RunParallel(func(pb *testing.PB) {
				rng := rand.New(rand.NewPCG(rand.Uint64(), 0))
				for pb.Next() {
					i := rng.IntN(orgs / 2)
					org, err := h.resolve(ctx, benchAssistant(i))
					if err != nil {
						b.Fatal(err)
					}
					key, hmacOnly, err := h.secret(ctx, org)
					if err != nil {
						b.Fatal(err)
					}
					hdr := http.Header{HeaderSignature: {sigs[i]}, HeaderTimestamp: {ts}}
					if v := verify(hdr.Get, body, key, hmacOnly, fuzzNow, DefaultTolerance); !v.ok {
						b.Fatal(v.failure)
					}
				}
			})
			close(stop)
			<-done
			b.ReportMetric(float64(invalidated)/time.Since(began).Seconds(), "invalidations/s")
			after := h.CacheStats()
			hits := float64(after.Mappings.Hits-before.Mappings.Hits) + float64(after.Secrets.Hits-before.Secrets.Hits)
			misses := float64(after.Mappings.Misses-before.Mappings.Misses) + float64(after.Secrets.Misses-before.Secrets.Misses)
			b.ReportMetric(hits/(hits+misses), "hit-rate")
		})
	}
}

// BenchmarkInvalidateOneOrg is what one credential change costs the webhook
// routing with 100,000 orgs cached: it must not grow with the other orgs.
func BenchmarkInvalidateOneOrg(b *testing.B) {
	const orgs = 100_000
	g := NewCacheGroup(Options{})
	h := New(Deps{Mappings: manyOrgs{}, Credentials: manyOrgs{}, Events: memDeps{}}, Options{Caches: g})
	ctx := context.Background()
	for i := range orgs {
		org, err := h.resolve(ctx, benchAssistant(i))
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := h.secret(ctx, org); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		g.Invalidate(benchOrg(i%orgs), app.Vapi)
	}
}

// BenchmarkRefused compares a whole delivery refused for a bad signature
// (counted in memory for the org's assistant) with the same delivery
// accepted: the count must cost the refused path next to nothing and no
// round trip.
func BenchmarkRefused(b *testing.B) {
	h := New(Deps{Mappings: memDeps{}, Credentials: memDeps{}, Events: memDeps{}, Refusals: discardRefusals{}}, Options{})
	body := []byte(`{"message":{"type":"speech-update","call":{"id":"c1","assistantId":"` + fuzzAssistant + `"}}}`)
	for _, c := range []struct {
		name, secret string
		status       int
	}{{"accepted", fuzzSecret, http.StatusOK}, {"refused", "not-the-secret", http.StatusUnauthorized}} {
		hdr := http.Header{HeaderVapiSecret: {c.secret}}
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if r := h.Handle(ctx, Request{Header: hdr.Get, Body: body, ReceivedAt: fuzzNow}); r.Status != c.status {
					b.Fatalf("%d, want %d", r.Status, c.status)
				}
			}
		})
	}
	if err := h.FlushRefusals(context.Background()); err != nil {
		b.Fatal(err)
	}
}

type discardRefusals struct{}

func (discardRefusals) AddRefusals(context.Context, []app.RefusalTally) error { return nil }
