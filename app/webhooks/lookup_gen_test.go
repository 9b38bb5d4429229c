package webhooks

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"byoc/app"
)

// slowFirstStore answers the first lookup of a mapping or a secret only
// once release is closed, with what the org had before it disconnected
// Vapi (the assistant mapped, its own secret); every later lookup answers
// at once with what it has after (the assistant unknown, no secret).
type slowFirstStore struct {
	memDeps
	calls   atomic.Int32
	entered chan struct{}
	release chan struct{}
}

func newSlowFirstStore() *slowFirstStore {
	return &slowFirstStore{entered: make(chan struct{}, 1), release: make(chan struct{})}
}

// first reports whether this is the first lookup, and then holds it until
// release is closed.
func (s *slowFirstStore) first() bool {
	if s.calls.Add(1) != 1 {
		return false
	}
	s.entered <- struct{}{}
	<-s.release
	return true
}

func (s *slowFirstStore) ResolveAssistant(_ context.Context, id string) (app.AssistantMapping, error) {
	if s.first() {
		return app.AssistantMapping{VapiAssistantID: id, OrgID: fuzzOrg}, nil
	}
	return app.AssistantMapping{}, app.Errorf(app.ENotFound, "Unknown assistant.")
}

func (s *slowFirstStore) VapiWebhook(context.Context, string) (app.VapiWebhook, error) {
	if s.first() {
		return app.VapiWebhook{Secret: app.NewSecret("old-secret")}, nil
	}
	return app.VapiWebhook{}, nil
}

// TestLookupAfterInvalidationDoesNotShareOlderLookup: a lookup that starts
// after an invalidation of the org never gets the answer of a lookup that started before
// it and is still in flight (the mapping or secret the invalidation
// removed); it asks the store itself. The older lookup's answer is not
// cached either.
func TestLookupAfterInvalidationDoesNotShareOlderLookup(t *testing.T) {
	type result struct {
		v   string
		err error
	}
	tests := []struct {
		name   string
		lookup func(h *Handler) (string, error)
		old    string // the answer from before the invalidation
		want   result // the answer after it
	}{
		{"assistant mapping", func(h *Handler) (string, error) { return h.resolve(context.Background(), fuzzAssistant) },
			fuzzOrg, result{"", errUnknownAssistant}},
		{"webhook secret", func(h *Handler) (string, error) {
			k, _, err := h.secret(context.Background(), fuzzOrg)
			return k.value, err
		}, "old-secret", result{"default", nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSlowFirstStore()
			g := NewCacheGroup(Options{})
			h := New(Deps{Mappings: s, Credentials: s, Events: memDeps{}}, Options{DefaultSecret: app.NewSecret("default"), Caches: g})
			lookup := func() <-chan result {
				ch := make(chan result, 1)
				go func() {
					v, err := tt.lookup(h)
					ch <- result{v, err}
				}()
				return ch
			}

			before := lookup()
			select {
			case <-s.entered:
			case <-time.After(5 * time.Second):
				t.Fatal("the first lookup never reached the store")
			}
			g.Invalidate(fuzzOrg, app.Vapi) // Vapi disconnected while the lookup is in flight
			after := lookup()

			var got result
			select {
			case got = <-after:
			case <-time.After(2 * time.Second):
				// It joined the older lookup: let that one finish to see
				// what it would have been told.
				close(s.release)
				got = <-after
				t.Errorf("the lookup after the invalidation waited for the one before it")
			}
			if got.v == tt.old || got.v != tt.want.v || !errors.Is(got.err, tt.want.err) {
				t.Errorf("after the invalidation: %q, %v; want %q, %v (the old answer must not be shared)",
					got.v, got.err, tt.want.v, tt.want.err)
			}
			select {
			case <-s.release:
			default:
				close(s.release)
			}
			if r := <-before; r.v != tt.old {
				t.Errorf("the lookup from before the invalidation: %q, %v; want the old answer", r.v, r.err)
			}
			if v, err := tt.lookup(h); v != tt.want.v || !errors.Is(err, tt.want.err) {
				t.Errorf("later: %q, %v; want %q, %v (the old answer must not be cached)", v, err, tt.want.v, tt.want.err)
			}
		})
	}
}
