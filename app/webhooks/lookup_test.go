package webhooks

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"byoc/app"
)

// gatedMappings knows one assistant; a lookup of any other id holds its
// lookup slot until release is closed, as a slow database would under a
// flood of unknown ids.
type gatedMappings struct {
	memDeps
	known   string
	entered chan string
	release chan struct{}
}

func (g *gatedMappings) ResolveAssistant(ctx context.Context, id string) (app.AssistantMapping, error) {
	if id == g.known {
		return app.AssistantMapping{VapiAssistantID: id, OrgID: fuzzOrg}, nil
	}
	g.entered <- id
	select {
	case <-g.release:
	case <-ctx.Done():
		return app.AssistantMapping{}, ctx.Err()
	}
	return app.AssistantMapping{}, app.Errorf(app.ENotFound, "Unknown assistant.")
}

// TestBusyLookupSlotsFailFast: while every lookup slot is held by lookups of
// unknown ids and the queue behind them is full, the first lookup of a real
// id (or of another unknown one) is answered 503 at once, so that Vapi
// retries, instead of queueing behind the flood (the wait for a slot here is
// an hour: any queueing would hang the test); ids that are not UUIDs are
// answered 404 without a slot. Once the slots free up, the real id
// resolves.
func TestBusyLookupSlotsFailFast(t *testing.T) {
	const slots, waiting = 2, 2
	real := "5b0a3c2e-1d4f-4a6b-9c8d-7e6f5a4b3c2d"
	g := &gatedMappings{known: real, entered: make(chan string, slots+waiting), release: make(chan struct{})}
	opts := Options{MaxConcurrentLookups: slots, MaxLookupsWaiting: waiting, LookupWait: time.Hour}
	caches := NewCacheGroup(opts)
	opts.Caches = caches
	h := New(Deps{Mappings: g, Credentials: memDeps{}, Events: memDeps{}}, opts)
	handle := func(id string) Response {
		body := fmt.Appendf(nil, `{"message":{"type":"hang","call":{"id":"c1","assistantId":%q}}}`, id)
		return h.Handle(context.Background(), Request{Header: http.Header{HeaderVapiSecret: {fuzzSecret}}.Get, Body: body})
	}

	var wg sync.WaitGroup
	for i := range slots + waiting {
		wg.Add(1)
		go func() {
			defer wg.Done()
			handle(fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
		}()
	}
	for range slots {
		select {
		case <-g.entered:
		case <-time.After(5 * time.Second):
			t.Fatal("the flood never took the lookup slots")
		}
	}
	for end := time.Now().Add(5 * time.Second); caches.Waiting() != waiting; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d lookups queued, want %d", caches.Waiting(), waiting)
		}
	}

	tests := []struct {
		name   string
		id     string
		status int
	}{
		{"a real id", real, http.StatusServiceUnavailable},
		{"another unknown id", "00000000-0000-4000-8000-999999999999", http.StatusServiceUnavailable},
		{"an id that is not a UUID", "asst-1", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := handle(tt.id); got.Status != tt.status {
				t.Errorf("status %d, want %d", got.Status, tt.status)
			}
		})
	}

	close(g.release)
	wg.Wait()
	if got := handle(real); got.Status != http.StatusOK {
		t.Errorf("the real id once the slots are free: %d, want 200", got.Status)
	}
}

// slowMappings answers every lookup after a delay, as a busy database
// would, with an org of its own per assistant.
type slowMappings struct {
	memDeps
	delay time.Duration
}

func (s slowMappings) ResolveAssistant(_ context.Context, id string) (app.AssistantMapping, error) {
	time.Sleep(s.delay)
	return app.AssistantMapping{VapiAssistantID: id, OrgID: "1" + id[1:]}, nil
}

// TestBurstOfFirstWebhooksWaitsItsTurn: after a restart every cache is
// empty, and the first webhooks of many orgs arrive together; each lookup
// is slower than a moment. A burst that queues behind the lookup slots is
// served in turn, none answered 503, where a flood (TestBusyLookupSlotsFailFast)
// is shed.
func TestBurstOfFirstWebhooksWaitsItsTurn(t *testing.T) {
	const slots, burst = 4, 16
	h := New(Deps{Mappings: slowMappings{delay: 60 * time.Millisecond}, Credentials: memDeps{}, Events: memDeps{}},
		Options{MaxConcurrentLookups: slots})
	statuses := make(chan int, burst)
	var wg sync.WaitGroup
	for i := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
			body := fmt.Appendf(nil, `{"message":{"type":"hang","call":{"id":"c1","assistantId":%q}}}`, id)
			statuses <- h.Handle(context.Background(), Request{Header: http.Header{HeaderVapiSecret: {fuzzSecret}}.Get, Body: body}).Status
		}()
	}
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != http.StatusOK {
			t.Errorf("a first webhook of the burst: %d, want 200", st)
		}
	}
}
