package webhooks

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"testing"

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
				key, err := h.secret(ctx, org)
				if err != nil {
					b.Fatal(err)
				}
				if v := verify(hdr.Get, body, key, fuzzNow, DefaultTolerance); !v.ok {
					b.Fatal(v.failure)
				}
			}
		})
	}
}
