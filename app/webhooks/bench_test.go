package webhooks_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"byoc/app/metrics"
	"byoc/app/webhooks"
)

// body2KiB is a speech-update (an event that needs no write) of about 2 KiB.
func body2KiB(b *testing.B, assistantID string) []byte {
	b.Helper()
	build := func(pad int) []byte {
		return msg("speech-update", assistantID, map[string]any{"status": "started", "role": "user",
			"timestamp": time.Now().UnixMilli(), "artifact": map[string]any{"note": strings.Repeat("x", pad)}})
	}
	body := build(0)
	body = build(2048 - len(body))
	if len(body) != 2048 {
		b.Fatalf("body of %d bytes, want 2 KiB", len(body))
	}
	return body
}

// quietEnv is an env without logging and with the metrics the server
// records into, as in production.
func quietEnv(b *testing.B, opts ...func(*envConfig)) *env {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	return newEnv(b, append([]func(*envConfig){withOptions(webhooks.Options{Logger: slog.New(slog.DiscardHandler), Metrics: m})},
		opts...)...)
}

// BenchmarkWarmPath measures Handle on a warm instance (mapping and secret
// cached) for a 2 KiB event that needs no write: parsing, resolution,
// verification and the answer.
func BenchmarkWarmPath(b *testing.B) {
	e := quietEnv(b)
	o := e.newOrg("bench-secret-0123456789abcdef")
	body := body2KiB(b, o.assistant)
	now := time.Now()
	modes := []struct {
		name string
		h    header
	}{
		{"hmac", hmacHeaders(o.secret, now.Unix(), body)},
		{"x-vapi-secret", header{"X-Vapi-Secret": o.secret}},
	}
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			r := req(body, m.h, now)
			if got := e.h.Handle(context.Background(), r); got.Status != http.StatusOK {
				b.Fatalf("warm-up: %d", got.Status)
			}
			q := e.queries.n.Load()
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if got := e.h.Handle(context.Background(), r); got.Status != http.StatusOK {
					b.Fatalf("status %d", got.Status)
				}
			}
			if n := e.queries.n.Load() - q; n != 0 {
				b.Fatalf("the warm path sent %d statements to PostgreSQL", n)
			}
		})
	}
}

// BenchmarkColdResolution measures the same webhook with the handler's
// caches empty, so the assistant is resolved in PostgreSQL: with the
// credential service still warm ("mapping"), and with it cold as well
// ("mapping+credentials": the stored Vapi config is read and decrypted).
func BenchmarkColdResolution(b *testing.B) {
	e := quietEnv(b, withOwnCaches)
	o := e.newOrg("bench-secret-0123456789abcdef")
	body := body2KiB(b, o.assistant)
	now := time.Now()
	r := req(body, hmacHeaders(o.secret, now.Unix(), body), now)
	for _, flushCreds := range []bool{false, true} {
		name := "mapping"
		if flushCreds {
			name = "mapping+credentials"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				e.caches.Flush()
				if flushCreds {
					e.creds.Flush()
				}
				if got := e.h.Handle(context.Background(), r); got.Status != http.StatusOK {
					b.Fatalf("status %d", got.Status)
				}
			}
		})
	}
}

// BenchmarkWarmPathAfterRotation measures the warm path of an org inside
// its rotation's grace period: a webhook signed with the new secret (one
// check, as before any rotation) and one signed with the previous secret
// (the current one refuses it first, then the previous one verifies it).
func BenchmarkWarmPathAfterRotation(b *testing.B) {
	e := quietEnv(b)
	o := e.newOrg("bench-old-secret-0123456789abcdef")
	next := "bench-new-secret-0123456789abcdef"
	e.rotate(e.creds, o, next, time.Now().Add(time.Hour))
	body := body2KiB(b, o.assistant)
	now := time.Now()
	for _, m := range []struct{ name, secret string }{{"hmac-current", next}, {"hmac-previous", o.secret}} {
		b.Run(m.name, func(b *testing.B) {
			r := req(body, hmacHeaders(m.secret, now.Unix(), body), now)
			if got := e.h.Handle(context.Background(), r); got.Status != http.StatusOK {
				b.Fatalf("warm-up: %d", got.Status)
			}
			q := e.queries.n.Load()
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if got := e.h.Handle(context.Background(), r); got.Status != http.StatusOK {
					b.Fatalf("status %d", got.Status)
				}
			}
			if n := e.queries.n.Load() - q; n != 0 {
				b.Fatalf("the warm path sent %d statements to PostgreSQL", n)
			}
		})
	}
}
