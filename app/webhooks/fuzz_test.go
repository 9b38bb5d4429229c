package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"byoc/app"
	"byoc/app/apptest"
)

// fuzzNow is the fixed clock of the signature fuzz target.
var fuzzNow = time.Unix(1_700_000_000, 0)

// memDeps are in-memory stand-ins for the stores: every assistant id but
// fuzzUnknown belongs to one org whose webhook secret is fuzzSecret.
type memDeps struct{}

const (
	fuzzSecret    = "fuzz-secret"
	fuzzOrg       = "00000000-0000-4000-8000-000000000001"
	fuzzAssistant = "5b0a3c2e-1d4f-4a6b-9c8d-7e6f5a4b3c2d"
	fuzzUnknown   = "00000000-0000-4000-8000-00000000dead"
)

func (memDeps) ResolveAssistant(_ context.Context, id string) (app.AssistantMapping, error) {
	if id == fuzzUnknown {
		return app.AssistantMapping{}, app.Errorf(app.ENotFound, "Unknown assistant.")
	}
	return app.AssistantMapping{VapiAssistantID: id, OrgID: fuzzOrg}, nil
}

func (memDeps) TouchAssistant(context.Context, string, string, time.Time) (bool, error) {
	return true, nil
}

func (memDeps) VapiWebhook(context.Context, string) (app.VapiWebhook, error) {
	return app.VapiWebhook{Secret: app.NewSecret(fuzzSecret)}, nil
}

func (memDeps) Twilio(context.Context, string) (app.TwilioConfig, error) {
	return app.TwilioConfig{}, app.Errorf(app.ENotConfigured, "No Twilio credentials are stored for this organization.")
}

func (memDeps) RecordCallEvent(context.Context, app.CallEvent) (bool, error)      { return true, nil }
func (memDeps) SetCallEventOutcome(context.Context, string, string, string) error { return nil }

func FuzzParsePayload(f *testing.F) {
	f.Add([]byte(`{"message":{"type":"status-update","status":"ringing","timestamp":1714000000000,"call":{"id":"c1","assistantId":"` + fuzzAssistant + `","orgId":"o1"}}}`))
	f.Add([]byte(`{"message":{"type":"end-of-call-report","endedReason":"hangup","startedAt":"2024-01-01T00:00:00Z","endedAt":"2024-01-01T00:01:00Z","call":{"id":"c1","assistantId":"` + fuzzAssistant + `"}}}`))
	f.Add([]byte(`{"message":{"type":"tool-calls","toolCallList":[{"id":"t1","function":{"name":"send_sms","arguments":"{\"to\":\"+12025550123\",\"body\":\"hi\"}"}},{"id":"t2","function":{"name":"check_availability","arguments":{"start":"2030-01-01T00:00:00Z","end":"2030-01-01T01:00:00Z"}}}],"assistant":{"id":"` + fuzzAssistant + `"}}}`))
	f.Add([]byte(`{"message":{"type":"hang","call":{"assistantId":"` + fuzzUnknown + `"}}}`))
	f.Add([]byte(`{"message":{"type":"status-update","status":"a\u0000b","timestamp":"2024-01-01T00:00:00Z","durationSeconds":-1,"call":{"id":7,"assistantId":"` + fuzzAssistant + `"}}}`))
	f.Add([]byte(`{"message":`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	h := New(Deps{Mappings: memDeps{}, Credentials: memDeps{}, Events: memDeps{}}, Options{MaxBodyBytes: 1 << 16})
	headers := http.Header{HeaderVapiSecret: {fuzzSecret}}

	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := parsePayload(body)
		if valid := json.Valid(body); valid != (err == nil) {
			t.Fatalf("json.Valid = %v but parsePayload error = %v", valid, err)
		}
		if err == nil {
			checkMessage(t, &m, body)
		}

		resp := h.Handle(context.Background(), Request{Header: headers.Get, Body: body, ReceivedAt: fuzzNow})
		switch resp.Status {
		case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for a body with the right secret", resp.Status)
		}
		if _, err := json.Marshal(resp.Body); err != nil {
			t.Fatalf("response body does not encode: %v", err)
		}
		if err == nil && app.IsUUID(m.AssistantID) && m.AssistantID != fuzzUnknown &&
			resp.Status != http.StatusOK && len(body) <= 1<<16 {
			t.Fatalf("status %d for a valid body naming assistant %q", resp.Status, m.AssistantID)
		}
	})
}

// checkMessage asserts what the rest of the handler relies on.
func checkMessage(t *testing.T, m *message, body []byte) {
	t.Helper()
	for i, tc := range m.ToolCalls {
		if i >= maxToolCallsPerEvent && tc.Args != nil {
			t.Fatalf("tool call %d, over the cap, kept its arguments", i)
		}
		if tc.Args != nil && (!json.Valid(tc.Args) || tc.Args[0] != '{') {
			t.Fatalf("tool arguments %q are not a JSON object", tc.Args)
		}
	}
	if len(m.Timestamp) > maxTimestampBytes {
		t.Fatalf("timestamp of %d bytes kept", len(m.Timestamp))
	}
	for _, s := range []string{m.Status, m.EndedReason, m.CallID} {
		if len(s) > maxFieldBytes || strings.ContainsRune(s, 0) || !utf8.ValidString(s) {
			t.Fatalf("stored field %q is not storable", s)
		}
	}
	if d := m.DurationSeconds; d != nil && (*d < 0 || *d >= 1e9) {
		t.Fatalf("duration %v", *d)
	}
	if at := m.OccurredAt; at != nil && (at.Year() < 1970 || at.Year() > 9999) {
		t.Fatalf("occurred at %v", at)
	}
	k1, k2 := dedupKey(m, body), dedupKey(m, bytes.Clone(body))
	if k1 != k2 || len(k1) != len("v1:")+64 {
		t.Fatalf("dedup key %q / %q", k1, k2)
	}
}

func FuzzVerifySignature(f *testing.F) {
	sec := strconv.FormatInt(fuzzNow.Unix(), 10)
	ms := strconv.FormatInt(fuzzNow.UnixMilli(), 10)
	body := []byte(`{"message":{"type":"hang","call":{"assistantId":"a1"}}}`)
	// secret, timestamp, signature, X-Vapi-Secret, Authorization, body, selfSign, hmacOnly
	f.Add("s3cret", sec, "", "", "", body, true, false)
	f.Add("s3cret", ms, "", "", "", body, true, true)
	f.Add("s3cret", strconv.FormatInt(fuzzNow.Unix()-301, 10), "", "", "", body, true, true)
	f.Add("s3cret", sec, "sha256="+apptest.VapiSignature("s3cret", sec, body), "", "", body, false, false)
	f.Add("s3cret", sec, apptest.VapiSignature("s3cret", sec, body)[:63], "", "", body, false, false)
	f.Add("s3cret", sec, "zz"+apptest.VapiSignature("s3cret", sec, body)[2:], "", "", body, false, false)
	f.Add("s3cret", "", "", "s3cret", "", body, false, false)
	f.Add("s3cret", "", "", "s3cret", "", body, false, true)
	f.Add("s3cret", "", "", "", "Bearer s3cret", body, false, false)
	f.Add("s3cret", sec, "", "s3cret", "Bearer s3cret", body, true, true)
	f.Add("", sec, "", "", "Bearer ", body, true, false)
	f.Add("s3cret", "+1700000000", "", "wrong", "Basic czNjcmV0", []byte{}, true, false)

	f.Fuzz(func(t *testing.T, secret, ts, sig, vapiSecret, auth string, body []byte, selfSign, hmacOnly bool) {
		if selfSign {
			sig = apptest.VapiSignature(secret, ts, body)
		}
		h := http.Header{}
		for k, v := range map[string]string{HeaderSignature: sig, HeaderTimestamp: ts, HeaderVapiSecret: vapiSecret, HeaderAuthorization: auth} {
			if v != "" {
				h.Set(k, v)
			}
		}
		// http.Header trims nothing; the real servers trim surrounding
		// spaces, which verify must not depend on.
		v := verify(h.Get, body, newSecretKey(secret), hmacOnly, fuzzNow, DefaultTolerance)

		if secret == "" && v.ok {
			t.Fatal("verified with an empty secret")
		}
		if hmacOnly && v.ok && v.mode != authModeHMAC {
			t.Fatalf("verified in mode %q although only HMAC counts", v.mode)
		}
		if !v.ok && v.failure == "" {
			t.Fatal("a refusal without a reason")
		}
		if v.stale && v.ok {
			t.Fatal("stale and verified")
		}
		inWindow := func() bool {
			at, ok := parseTimestamp(ts)
			d := fuzzNow.Sub(at)
			return ok && d <= DefaultTolerance && d >= -DefaultTolerance
		}
		want := sign(secret, ts, body)
		if v.ok {
			switch v.mode {
			case authModeHMAC:
				got, ok := decodeSignature(h.Get(HeaderSignature))
				if !ok || !bytes.Equal(got, want[:]) || !bytes.Equal(v.signature, want[:]) {
					t.Fatal("verified a signature that is not the HMAC of the timestamp and body")
				}
				if !inWindow() {
					t.Fatalf("verified a timestamp outside the window: %q", ts)
				}
			case authModeSecretHeader:
				if h.Get(HeaderVapiSecret) != secret {
					t.Fatal("verified a wrong X-Vapi-Secret")
				}
			case authModeBearer:
				a := h.Get(HeaderAuthorization)
				if len(a) <= len(bearerPrefix) || !strings.EqualFold(a[:len(bearerPrefix)], bearerPrefix) ||
					strings.TrimSpace(a[len(bearerPrefix):]) != secret {
					t.Fatal("verified a wrong bearer credential")
				}
			default:
				t.Fatalf("verified in unknown mode %q", v.mode)
			}
		}
		if v.stale {
			if got, ok := decodeSignature(h.Get(HeaderSignature)); !ok || !bytes.Equal(got, want[:]) || inWindow() {
				t.Fatal("stale verdict for a wrong signature or a timestamp within the window")
			}
		}
		// Completeness: a correct signature with a timestamp in the window
		// always passes.
		if selfSign && secret != "" && ts != "" && inWindow() && !v.ok {
			t.Fatalf("a correct signature at %q was refused: %s", ts, v.failure)
		}
	})
}

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(101-i)*time.Millisecond)
	}
	l := summarize(d)
	if l.Samples != 100 || l.P50 != 50*time.Millisecond || l.P90 != 90*time.Millisecond || l.P99 != 99*time.Millisecond || l.Max != 100*time.Millisecond {
		t.Errorf("summarize = %+v", l)
	}
	if l := summarize([]time.Duration{7}); l.P50 != 7 || l.P99 != 7 || l.Max != 7 {
		t.Errorf("one sample: %+v", l)
	}
	if l := summarize(nil); l != (Latency{}) {
		t.Errorf("no samples: %+v", l)
	}
}

func TestLatencyRingIsBounded(t *testing.T) {
	s := newStats(8)
	for i := range 20 {
		s.observe(time.Duration(i))
	}
	h := &Handler{stats: s}
	if l := h.Stats().Latency; l.Samples != 8 || l.Max != 19 || l.P50 != 15 {
		t.Errorf("latency over the ring = %+v, want the 8 most recent samples", l)
	}
}

func TestParseTimestamp(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"1700000000", time.Unix(1_700_000_000, 0), true},
		{"1700000000123", time.UnixMilli(1_700_000_000_123), true},
		{"100000000000", time.Unix(100_000_000_000, 0), true}, // exactly 1e11: seconds
		{"100000000001", time.UnixMilli(100_000_000_001), true},
		{" 1700000000 ", time.Unix(1_700_000_000, 0), true},
		{"", time.Time{}, false},
		{"-1", time.Time{}, false},
		{"1.5", time.Time{}, false},
		{"0x10", time.Time{}, false},
		{"99999999999999999999", time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := parseTimestamp(tt.in)
		if ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("parseTimestamp(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
