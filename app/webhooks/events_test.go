package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/app/webhooks"
	"byoc/db/dbtest"
)

func TestStatusUpdateAndEndOfCallRecorded(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("events-secret-12345678")
	ctx := context.Background()
	ts := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	received := time.Now()

	status := msg("status-update", o.assistant, map[string]any{"status": "in-progress", "timestamp": ts.UnixMilli(),
		"customer": map[string]any{"number": "+12025550123"}})
	if got := e.h.Handle(ctx, req(status, header{"X-Vapi-Secret": o.secret}, received)); got.Status != http.StatusOK ||
		encode(t, got.Body) != `{"received":true}` {
		t.Fatalf("status-update: %d %s", got.Status, encode(t, got.Body))
	}
	report := msg("end-of-call-report", o.assistant, map[string]any{"endedReason": "customer-ended-call",
		"timestamp": ts.Add(time.Minute).UnixMilli(), "startedAt": "2030-05-06T07:08:09Z", "endedAt": "2030-05-06T07:09:39.5Z",
		"artifact": map[string]any{"transcript": "AI: Hello. User: My card number is 4111."}})
	if got := e.handle(o.secret, report); got.Status != http.StatusOK {
		t.Fatalf("end-of-call-report: %d %s", got.Status, encode(t, got.Body))
	}

	evs, err := dbtest.DB(t).CallEvents(ctx, o.id, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("%d events recorded, want 2", len(evs))
	}
	byType := map[string]int{evs[0].Type: 0, evs[1].Type: 1}
	st := evs[byType["status-update"]]
	if st.CallID != "call-"+o.assistant[:8] || st.Status != "in-progress" || st.EndedReason != "" || st.DurationSeconds != nil ||
		st.OccurredAt == nil || !st.OccurredAt.Equal(ts) || !st.ReceivedAt.Equal(received.Truncate(time.Microsecond)) ||
		!strings.HasPrefix(st.DedupKey, "v1:") {
		t.Errorf("status-update recorded as %+v", st)
	}
	rep := evs[byType["end-of-call-report"]]
	if rep.EndedReason != "customer-ended-call" || rep.DurationSeconds == nil || *rep.DurationSeconds != 90.5 {
		t.Errorf("end-of-call-report recorded as %+v", rep)
	}

	// durationSeconds wins over the timestamps.
	report2 := msg("end-of-call-report", o.assistant, map[string]any{"durationSeconds": 12.25, "timestamp": 1})
	if got := e.handle(o.secret, report2); got.Status != http.StatusOK {
		t.Fatalf("second report: %d", got.Status)
	}
	evs, _ = dbtest.DB(t).CallEvents(ctx, o.id, 1)
	if len(evs) != 1 || evs[0].DurationSeconds == nil || *evs[0].DurationSeconds != 12.25 {
		t.Errorf("durationSeconds not recorded: %+v", evs)
	}

	// last_used_at: written once for the three events.
	if n := e.mappings.touchs.Load(); n != 1 {
		t.Errorf("TouchAssistant called %d times, want 1 within a minute", n)
	}
	var lastUsed *time.Time
	if err := dbtest.DB(t).Pool.QueryRow(ctx, `select last_used_at from assistant_org_mapping where vapi_assistant_id = $1`,
		o.assistant).Scan(&lastUsed); err != nil || lastUsed == nil {
		t.Errorf("last_used_at = %v, %v; want set", lastUsed, err)
	}
}

// The last_used_at write is bookkeeping: when it does not answer, the
// delivery is still stored and acknowledged after a short wait, not when
// the request's time is up (a tool-calls delivery would have none left for
// its tools).
func TestStuckTouchDoesNotHoldTheDelivery(t *testing.T) {
	e := newEnv(t)
	e.mappings.stuckTouch.Store(true)
	o := e.newOrg("stuck-touch-secret-1234")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	got := e.h.Handle(ctx, req(msg("status-update", o.assistant, map[string]any{"status": "ringing"}),
		header{"X-Vapi-Secret": o.secret}, time.Now()))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the delivery waited %v for its last_used_at write", took)
	}
	if got.Status != http.StatusOK {
		t.Fatalf("status %d, want 200", got.Status)
	}
	if n := callEventCount(t, o.id); n != 1 {
		t.Errorf("%d events stored, want 1", n)
	}
	if !strings.Contains(e.logs.String(), "touch_err") {
		t.Errorf("the failed last_used_at write is not in the log:\n%s", e.logs.String())
	}
}

func TestNULInPayloadStillRecorded(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("nul-secret-1234567890")
	body := []byte(`{"message":{"type":"status-update","status":"ring\u0000ing","call":{"id":"c\u0000all","assistantId":"` + o.assistant + `"}}}`)
	if got := e.handle(o.secret, body); got.Status != http.StatusOK {
		t.Fatalf("status %d %s, want 200", got.Status, encode(t, got.Body))
	}
	evs, err := dbtest.DB(t).CallEvents(context.Background(), o.id, 1)
	if err != nil || len(evs) != 1 || evs[0].Status != "ringing" || evs[0].CallID != "call" {
		t.Errorf("recorded %+v, %v", evs, err)
	}
}

func TestDuplicateDeliveries(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("dup-secret-1234567890")
	ctx := context.Background()
	now := time.Now()
	body := msg("status-update", o.assistant, map[string]any{"status": "ringing", "timestamp": now.UnixMilli()})

	t.Run("same delivery twice", func(t *testing.T) {
		first := e.handle(o.secret, body)
		second := e.handle(o.secret, body)
		if first.Status != http.StatusOK || encode(t, first.Body) != `{"received":true}` {
			t.Fatalf("first: %d %s", first.Status, encode(t, first.Body))
		}
		if second.Status != http.StatusOK || encode(t, second.Body) != `{"duplicate":true,"received":true}` &&
			encode(t, second.Body) != `{"received":true,"duplicate":true}` {
			t.Fatalf("second: %d %s, want 200 duplicate", second.Status, encode(t, second.Body))
		}
		if n := callEventCount(t, o.id); n != 1 {
			t.Errorf("%d rows, want 1", n)
		}
		if n := e.outcome(webhooks.OutcomeDuplicate); n != 1 {
			t.Errorf("duplicate counted %d times, want 1", n)
		}
		if n := e.events.n.Load(); n != 1 {
			t.Errorf("the duplicate reached the event store (%d calls), want it caught in memory", n)
		}
	})

	t.Run("same call, type and timestamp with different bytes", func(t *testing.T) {
		var generic any
		_ = json.Unmarshal(body, &generic)
		other, _ := json.MarshalIndent(generic, "", "\t")
		if bytes.Equal(other, body) {
			t.Fatal("no different bytes")
		}
		if got := e.handle(o.secret, other); got.Status != http.StatusOK || !strings.Contains(encode(t, got.Body), "duplicate") {
			t.Errorf("got %d %s, want a duplicate", got.Status, encode(t, got.Body))
		}
		if n := callEventCount(t, o.id); n != 1 {
			t.Errorf("%d rows, want 1", n)
		}
	})

	t.Run("same HMAC signature again", func(t *testing.T) {
		noTS := msg("end-of-call-report", o.assistant, map[string]any{"endedReason": "hangup"})
		h := hmacHeaders(o.secret, now.Unix(), noTS)
		if got := e.h.Handle(ctx, req(noTS, h, now)); encode(t, got.Body) != `{"received":true}` {
			t.Fatalf("first: %s", encode(t, got.Body))
		}
		if got := e.h.Handle(ctx, req(noTS, h, now.Add(time.Second))); !strings.Contains(encode(t, got.Body), "duplicate") {
			t.Errorf("replayed signature: %s, want a duplicate", encode(t, got.Body))
		}
		if n := callEventCount(t, o.id); n != 2 {
			t.Errorf("%d rows, want 2", n)
		}
	})

	t.Run("a new status of the same call is not a duplicate", func(t *testing.T) {
		next := msg("status-update", o.assistant, map[string]any{"status": "in-progress", "timestamp": now.UnixMilli() + 1})
		if got := e.handle(o.secret, next); encode(t, got.Body) != `{"received":true}` {
			t.Errorf("got %s", encode(t, got.Body))
		}
		if n := callEventCount(t, o.id); n != 3 {
			t.Errorf("%d rows, want 3", n)
		}
	})

	t.Run("concurrent copies on one instance", func(t *testing.T) {
		b := msg("status-update", o.assistant, map[string]any{"status": "ended", "timestamp": now.UnixMilli() + 2})
		var wg sync.WaitGroup
		bodies := make(chan string, 20)
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.handle(o.secret, b)
				if r.Status != http.StatusOK {
					t.Errorf("status %d", r.Status)
				}
				bodies <- encode(t, r.Body)
			}()
		}
		wg.Wait()
		close(bodies)
		fresh := 0
		for s := range bodies {
			if s == `{"received":true}` {
				fresh++
			}
		}
		if fresh != 1 {
			t.Errorf("%d of 20 copies were handled as new, want 1", fresh)
		}
		if n := callEventCount(t, o.id); n != 4 {
			t.Errorf("%d rows, want 4", n)
		}
	})
}

// TestTwoInstancesOneRow simulates two servers on one database receiving
// the same delivery: one row, and the second answers duplicate.
func TestTwoInstancesOneRow(t *testing.T) {
	a := newEnv(t)
	b := newEnv(t)
	o := a.newOrg("two-instances-secret-00")
	body := msg("end-of-call-report", o.assistant, map[string]any{"endedReason": "assistant-ended-call", "timestamp": time.Now().UnixMilli()})

	t.Run("one after the other", func(t *testing.T) {
		if got := a.handle(o.secret, body); encode(t, got.Body) != `{"received":true}` {
			t.Fatalf("instance A: %d %s", got.Status, encode(t, got.Body))
		}
		got := b.handle(o.secret, body)
		if got.Status != http.StatusOK || !strings.Contains(encode(t, got.Body), "duplicate") {
			t.Fatalf("instance B: %d %s, want 200 duplicate", got.Status, encode(t, got.Body))
		}
		if n := b.outcome(webhooks.OutcomeDuplicate); n != 1 {
			t.Errorf("instance B counted %d duplicates, want 1", n)
		}
		if n := callEventCount(t, o.id); n != 1 {
			t.Errorf("%d rows, want 1", n)
		}
	})

	t.Run("at the same time", func(t *testing.T) {
		for i := range 10 {
			body := msg("status-update", o.assistant, map[string]any{"status": "ringing", "timestamp": int64(1_900_000_000_000 + i)})
			var wg sync.WaitGroup
			for _, e := range []*env{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if got := e.handle(o.secret, body); got.Status != http.StatusOK {
						t.Errorf("status %d", got.Status)
					}
				}()
			}
			wg.Wait()
		}
		if n := callEventCount(t, o.id); n != 11 {
			t.Errorf("%d rows, want 11", n)
		}
		if n := a.outcome(webhooks.OutcomeVerified) + b.outcome(webhooks.OutcomeVerified); n != 11 {
			t.Errorf("%d deliveries handled as new across both instances, want 11", n)
		}
	})
}

// TestStoreFailureIsRetried: an event that cannot be stored is answered
// 503 (never 200), and the retry is handled in full.
func TestStoreFailureIsRetried(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("failure-secret-12345678")
	body := msg("status-update", o.assistant, map[string]any{"status": "queued", "timestamp": time.Now().UnixMilli()})
	e.events.fail.Store(true)
	got := e.handle(o.secret, body)
	if got.Status != http.StatusServiceUnavailable || errorCode(t, got) != "unavailable" {
		t.Fatalf("got %d %s, want 503 unavailable", got.Status, encode(t, got.Body))
	}
	if strings.Contains(encode(t, got.Body), "database is down") {
		t.Error("the cause leaked into the answer")
	}
	if n := e.outcome(webhooks.OutcomeError); n != 1 {
		t.Errorf("error counted %d times, want 1", n)
	}
	e.events.fail.Store(false)
	if got := e.handle(o.secret, body); encode(t, got.Body) != `{"received":true}` {
		t.Fatalf("retry: %d %s, want the event recorded", got.Status, encode(t, got.Body))
	}
	if n := callEventCount(t, o.id); n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("bad-request-secret-000")
	big := append([]byte(`{"message":{"type":"hang","call":{"assistantId":"`+o.assistant+`"},"pad":"`),
		bytes.Repeat([]byte("x"), webhooks.DefaultMaxBodyBytes)...)
	big = append(big, `"}}`...)
	tests := []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		{"not JSON", []byte(`{"message": {`), 400, "validation_failed"},
		{"empty body", nil, 400, "validation_failed"},
		{"trailing garbage", append(msg("hang", o.assistant, nil), 'x'), 400, "validation_failed"},
		{"no assistant id", []byte(`{"message":{"type":"hang","call":{"id":"c1"}}}`), 400, "validation_failed"},
		{"no message", []byte(`{"type":"hang"}`), 400, "validation_failed"},
		{"array", []byte(`[1,2,3]`), 400, "validation_failed"},
		{"assistant id of the wrong type", []byte(`{"message":{"type":"hang","call":{"assistantId":42}}}`), 400, "validation_failed"},
		{"over 1 MiB", big, 413, "payload_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.handle(o.secret, tt.body)
			if got.Status != tt.status || errorCode(t, got) != tt.code {
				t.Errorf("got %d %s, want %d %s", got.Status, encode(t, got.Body), tt.status, tt.code)
			}
		})
	}
	if n := e.outcome(webhooks.OutcomeBadRequest); n != uint64(len(tests)) {
		t.Errorf("bad_request counted %d times, want %d", n, len(tests))
	}
	if s := e.h.Stats(); s.StoreCalls != 0 {
		t.Errorf("bad requests made %d store calls", s.StoreCalls)
	}
	t.Run("assistant.id when the call has none", func(t *testing.T) {
		body := []byte(`{"message":{"type":"hang","assistant":{"id":"` + o.assistant + `"}}}`)
		if got := e.handle(o.secret, body); got.Status != http.StatusOK {
			t.Errorf("got %d %s, want 200", got.Status, encode(t, got.Body))
		}
	})
	t.Run("odd field types are ignored", func(t *testing.T) {
		body := []byte(`{"message":{"type":"status-update","status":{"x":1},"durationSeconds":"long","timestamp":{"a":1},"call":{"id":7,"assistantId":"` + o.assistant + `"}}}`)
		if got := e.handle(o.secret, body); got.Status != http.StatusOK {
			t.Errorf("got %d %s, want 200", got.Status, encode(t, got.Body))
		}
	})
}

func TestStatsLatency(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("latency-secret-1234567")
	for range 20 {
		e.handle(o.secret, msg("hang", o.assistant, nil))
	}
	e.handle("wrong", msg("hang", o.assistant, nil))
	e.handle("wrong", []byte("nope")) // never reaches resolution: no sample
	s := e.h.Stats()
	l := s.Latency
	if l.Samples != 21 || l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max {
		t.Errorf("latency %+v, want 21 ordered samples", l)
	}
	if s.Outcomes[webhooks.OutcomeVerified] != 20 || s.Outcomes[webhooks.OutcomeInvalidSignature] != 1 || s.Outcomes[webhooks.OutcomeBadRequest] != 1 {
		t.Errorf("outcomes %v", s.Outcomes)
	}
	js := encode(t, s)
	for _, k := range []string{`"p50Ms"`, `"p99Ms"`, `"maxMs"`, `"stale_timestamp":0`, `"storeCalls"`} {
		if !strings.Contains(js, k) {
			t.Errorf("stats JSON %s lacks %s", js, k)
		}
	}
}
