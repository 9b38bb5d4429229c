package webhooks_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/webhooks"
)

// countingRefusals counts the flushes that reach the store and can fail
// them.
type countingRefusals struct {
	inner interface {
		AddRefusals(ctx context.Context, tallies []app.RefusalTally) error
	}
	calls atomic.Int64
	fail  atomic.Bool
}

func (c *countingRefusals) AddRefusals(ctx context.Context, tallies []app.RefusalTally) error {
	c.calls.Add(1)
	if c.fail.Load() {
		return errors.New("test: the database is down")
	}
	return c.inner.AddRefusals(ctx, tallies)
}

func storedRefusals(t *testing.T, e *env, orgID string) map[string]int64 {
	t.Helper()
	rows, err := e.db.Pool.Query(context.Background(),
		`select reason, sum(count)::bigint from webhook_refusals where org_id = $1 group by reason`, orgID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var r string
		var n int64
		if err := rows.Scan(&r, &n); err != nil {
			t.Fatal(err)
		}
		out[r] = n
	}
	return out
}

// TestRefusalsCountedWithoutTheDatabase: refused deliveries naming an
// org's assistant add no statement on the warm path, however many; one
// flush stores all of them, and a failed flush keeps them for the next.
func TestRefusalsCountedWithoutTheDatabase(t *testing.T) {
	store := &countingRefusals{}
	e := newEnv(t, func(c *envConfig) { c.refusals = store })
	store.inner = e.db
	o := e.newOrg("refusals-secret-0123456789")
	if got := e.handle(o.secret, msg("hang", o.assistant, nil)); got.Status != http.StatusOK {
		t.Fatalf("warm-up: %d", got.Status)
	}

	before, calls := e.queries.n.Load(), e.h.Stats().StoreCalls
	for range 200 {
		if got := e.handle("forged-secret", msg("hang", o.assistant, nil)); got.Status != http.StatusUnauthorized {
			t.Fatalf("forged: %d", got.Status)
		}
	}
	stale := time.Now().Add(-time.Hour)
	for i := range 7 {
		body := msg("hang", o.assistant, map[string]any{"n": i})
		if got := e.h.Handle(context.Background(), req(body, hmacHeaders(o.secret, stale.Unix(), body), time.Now())); got.Status != http.StatusUnauthorized {
			t.Fatalf("stale: %d", got.Status)
		}
	}
	if n := e.queries.n.Load() - before; n != 0 {
		t.Errorf("refused deliveries sent %d statements to PostgreSQL, want 0", n)
	}
	if n := e.h.Stats().StoreCalls - calls; n != 0 {
		t.Errorf("refused deliveries made %d store calls", n)
	}
	// An unknown assistant is nobody's: not counted.
	e.handle("forged-secret", msg("hang", newUUID(t), nil))
	if store.calls.Load() != 0 {
		t.Fatal("a refusal reached the store before a flush")
	}

	store.fail.Store(true)
	if err := e.h.FlushRefusals(context.Background()); err == nil {
		t.Fatal("a failed flush reported no error")
	}
	store.fail.Store(false)
	if err := e.h.FlushRefusals(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := storedRefusals(t, e, o.id); got[app.RefusalBadSignature] != 200 || got[app.RefusalStaleTimestamp] != 7 || len(got) != 2 {
		t.Fatalf("stored %v, want 200 bad signatures and 7 stale timestamps", got)
	}
	if store.calls.Load() != 2 {
		t.Fatalf("%d flushes reached the store, want 2 (the failed one and the one that stored)", store.calls.Load())
	}
	// Nothing new: nothing written. Counts add up across flushes.
	if err := e.h.FlushRefusals(context.Background()); err != nil || store.calls.Load() != 2 {
		t.Fatalf("an empty flush: %v, %d calls", err, store.calls.Load())
	}
	e.handle("forged-secret", msg("hang", o.assistant, nil))
	if err := e.h.FlushRefusals(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := storedRefusals(t, e, o.id); got[app.RefusalBadSignature] != 201 {
		t.Fatalf("stored %v after a second flush", got)
	}
}

// TestRunRefusalFlushStoresOnStop: a stopping instance flushes what it
// counted.
func TestRunRefusalFlushStoresOnStop(t *testing.T) {
	store := &countingRefusals{}
	e := newEnv(t, func(c *envConfig) { c.refusals = store })
	store.inner = e.db
	o := e.newOrg("refusals-secret-stop-0123")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.h.RunRefusalFlush(ctx, time.Hour) }()
	for range 3 {
		e.handle("forged-secret", msg("hang", o.assistant, nil))
	}
	cancel()
	<-done
	if got := storedRefusals(t, e, o.id); got[app.RefusalBadSignature] != 3 {
		t.Fatalf("stored %v on stop, want 3 bad signatures", got)
	}
}

// TestToolOutcomeRecorded: a tool-calls delivery records whether its tools
// succeeded.
func TestToolOutcomeRecorded(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("tool-outcome-secret-012345")
	outcome := func(body []byte) string {
		t.Helper()
		results(t, e.handle(o.secret, body))
		var got string
		if err := e.db.Pool.QueryRow(context.Background(), `select outcome from call_events where org_id = $1
			order by id desc limit 1`, o.id).Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	ts := time.Now().UnixMilli()
	sms := tc{id: "c1", name: webhooks.ToolSendSMS, args: map[string]any{"to": "(202) 555-0123", "body": "Hi"}}
	if got := outcome(toolCallsBody(t, o.assistant, ts, sms)); got != app.DeliveryToolsFailed {
		t.Fatalf("send_sms without Twilio: %s", got)
	}
	e.setTwilio(o.id, orgTwilio)
	if got := outcome(toolCallsBody(t, o.assistant, ts+1, sms)); got != app.DeliveryToolsSucceeded {
		t.Fatalf("send_sms with Twilio: %s", got)
	}
	var assistant string
	if err := e.db.Pool.QueryRow(context.Background(), `select assistant_id from call_events where org_id = $1
		order by id desc limit 1`, o.id).Scan(&assistant); err != nil || assistant != o.assistant {
		t.Fatalf("recorded assistant %q, %v", assistant, err)
	}
}
