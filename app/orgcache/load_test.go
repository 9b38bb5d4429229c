package orgcache

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"byoc/app"
)

// guard bounds every wait on another goroutine, so a bug shows up as a
// failure instead of a hung test. No test asserts how long anything takes.
const guard = 5 * time.Second

// store stands in for the database behind a fill: its first calls wait for
// release (each reports on entered first), later ones answer at once.
type store struct {
	blocking int32 // how many of the first calls wait
	entered  chan context.Context
	release  chan struct{}
	calls    atomic.Int32
	answer   func(call int32) (Entry[string], error)
}

func newStore(blocking int32, answer func(call int32) (Entry[string], error)) *store {
	return &store{blocking: blocking, entered: make(chan context.Context, 100), release: make(chan struct{}), answer: answer}
}

func (s *store) fill(ctx context.Context, _ string) (Entry[string], error) {
	n := s.calls.Add(1)
	if n <= s.blocking {
		s.entered <- ctx
		<-s.release
	}
	return s.answer(n)
}

// waitEntered returns the context of the next fill that reached the store.
func (s *store) waitEntered(t *testing.T) context.Context {
	t.Helper()
	select {
	case ctx := <-s.entered:
		return ctx
	case <-time.After(guard):
		t.Fatal("no fill reached the store")
		return nil
	}
}

func value(owner Owner, v string) func(int32) (Entry[string], error) {
	return func(int32) (Entry[string], error) { return Entry[string]{Owner: owner, Value: v}, nil }
}

type result struct {
	v   string
	ok  bool
	err error
}

// load runs c.Load in a goroutine.
func load(ctx context.Context, c *Cache[string, string], key string, fill func(context.Context, string) (Entry[string], error)) <-chan result {
	ch := make(chan result, 1)
	go func() {
		v, ok, err := c.Load(ctx, key, fill)
		ch <- result{v, ok, err}
	}()
	return ch
}

func receive(t *testing.T, ch <-chan result, what string) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(guard):
		t.Fatalf("%s: Load never returned", what)
		return result{}
	}
}

// waitFor waits until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(guard); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited in vain for %s", what)
		}
	}
}

func TestLoadSharesOneFill(t *testing.T) {
	const misses = 8
	f := newFixture(Options{})
	s := newStore(misses, value(Owner{"A", app.Vapi}, "A"))
	var results []<-chan result
	for range misses {
		results = append(results, load(context.Background(), f.mappings, "asst", s.fill))
	}
	s.waitEntered(t)
	waitFor(t, "every Load to miss", func() bool { return f.mappings.Stats().Misses == misses })
	close(s.release)
	for i, ch := range results {
		if r := receive(t, ch, "a shared Load"); r != (result{"A", true, nil}) {
			t.Errorf("Load %d: %+v", i, r)
		}
	}
	if n := s.calls.Load(); n != 1 {
		t.Errorf("%d fills for %d concurrent misses, want 1", n, misses)
	}
	if v, ok, _ := f.mappings.Get("asst"); !ok || v != "A" {
		t.Errorf("cached afterwards: %q, %v", v, ok)
	}
}

// TestLoadAfterInvalidationStartsItsOwnFill: a Load that starts after an
// invalidation of the org (or a Flush) never gets the answer of a fill that
// started before it and is still running; it fills on its own, without
// waiting for the older fill. The older answer is not cached.
func TestLoadAfterInvalidationStartsItsOwnFill(t *testing.T) {
	tests := []struct {
		name    string
		between func(g *Group)
	}{
		{"invalidation of the org", func(g *Group) { g.Invalidate("A", app.Vapi) }},
		{"invalidation of the org's every provider", func(g *Group) { g.Invalidate("A", "") }},
		{"Flush", func(g *Group) { g.Flush() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(Options{})
			s := newStore(1, func(call int32) (Entry[string], error) {
				if call == 1 {
					return Entry[string]{Owner: Owner{"A", app.Vapi}, Value: "old"}, nil
				}
				return Entry[string]{Owner: Owner{"A", app.Vapi}, Value: "new"}, nil
			})
			before := load(context.Background(), f.secrets, "A", s.fill)
			s.waitEntered(t)
			tt.between(f.g)
			after := load(context.Background(), f.secrets, "A", s.fill)
			var got result
			select {
			case got = <-after:
			case <-time.After(guard):
				close(s.release)
				got = receive(t, after, "after")
				t.Errorf("the Load after the invalidation waited for the fill before it")
			}
			if got != (result{"new", true, nil}) {
				t.Errorf("after the invalidation: %+v, want new", got)
			}
			select {
			case <-s.release:
			default:
				close(s.release)
			}
			if r := receive(t, before, "before"); r != (result{"old", true, nil}) {
				t.Errorf("the Load from before the invalidation: %+v, want old", r)
			}
			if v, _, _ := f.secrets.Get("A"); v != "new" {
				t.Errorf("cached: %q, want new (the old answer must not be cached)", v)
			}
		})
	}
}

// TestLoadLateOwner: a fill that finds out its owner only when it is done
// (an assistant id resolved to org X) is not cached when X was invalidated
// while it ran, and is when only others were.
func TestLoadLateOwner(t *testing.T) {
	tests := []struct {
		name    string
		between func(g *Group)
		cached  bool
	}{
		{"its org invalidated", func(g *Group) { g.Invalidate("X", app.Vapi) }, false},
		{"its org invalidated for every provider", func(g *Group) { g.Invalidate("X", "") }, false},
		{"Flush", func(g *Group) { g.Flush() }, false},
		{"another provider of its org", func(g *Group) { g.Invalidate("X", app.Twilio) }, true},
		{"other orgs", func(g *Group) {
			for i := range 100 {
				g.Invalidate("Y"+strconv.Itoa(i), "")
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(Options{})
			s := newStore(1, value(Owner{"X", app.Vapi}, "X"))
			ch := load(context.Background(), f.mappings, "asst", s.fill)
			s.waitEntered(t)
			tt.between(f.g)
			close(s.release)
			if r := receive(t, ch, "the Load"); r != (result{"X", true, nil}) {
				t.Errorf("Load: %+v, want X", r)
			}
			if _, ok, _ := f.mappings.Get("asst"); ok != tt.cached {
				t.Errorf("cached: %v, want %v", ok, tt.cached)
			}
		})
	}
}

func TestLoadSlots(t *testing.T) {
	tests := []struct {
		name     string
		slots    int
		wait     time.Duration
		blocked  int   // fills holding slots when the last Load starts
		lastErr  error // what that Load returns while they hold them
		released bool  // whether it waits for a slot
	}{
		{"no slots: no bound", 0, 0, 3, nil, false},
		{"every slot taken, no wait", 1, 0, 1, ErrBusy, false},
		{"every slot taken for the wait", 2, 10 * time.Millisecond, 2, ErrBusy, false},
		{"a slot freed within the wait", 2, time.Hour, 2, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(Options{Slots: tt.slots, SlotWait: tt.wait})
			s := newStore(int32(tt.blocked), value(Owner{"A", app.Vapi}, "v"))
			var held []<-chan result
			for i := range tt.blocked {
				held = append(held, load(context.Background(), f.secrets, "held"+strconv.Itoa(i), s.fill))
				s.waitEntered(t)
			}
			last := load(context.Background(), f.secrets, "last", s.fill)
			if tt.released {
				waitFor(t, "the last Load to miss", func() bool { return f.secrets.Stats().Misses == uint64(tt.blocked)+1 })
				close(s.release)
			}
			r := receive(t, last, "the last Load")
			if !errors.Is(r.err, tt.lastErr) || (tt.lastErr == nil && r.v != "v") {
				t.Errorf("the last Load: %+v, want error %v", r, tt.lastErr)
			}
			if tt.lastErr != nil {
				if app.ErrorCode(r.err) != app.EUnavailable {
					t.Errorf("error code %q, want %q", app.ErrorCode(r.err), app.EUnavailable)
				}
				if n := s.calls.Load(); n != int32(tt.blocked) {
					t.Errorf("%d fills reached the store, want %d", n, tt.blocked)
				}
			}
			if !tt.released {
				close(s.release)
			}
			for _, ch := range held {
				if r := receive(t, ch, "a held Load"); r.err != nil {
					t.Errorf("a held Load: %v", r.err)
				}
			}
			if v, ok, err := f.secrets.Load(context.Background(), "last", s.fill); err != nil || !ok || v != "v" {
				t.Errorf("the last Load again, once the slots are free: %q, %v, %v", v, ok, err)
			}
		})
	}
}

// TestLoadWaitersBounded: with MaxWaiting, a short queue behind a busy slot
// waits its turn however long the fill in the slot takes (within
// SlotWait), while a fill that finds the queue full gives up at once.
func TestLoadWaitersBounded(t *testing.T) {
	f := newFixture(Options{Slots: 1, SlotWait: time.Hour, MaxWaiting: 1})
	s := newStore(1, value(Owner{"A", app.Vapi}, "v"))
	held := load(context.Background(), f.secrets, "held", s.fill)
	s.waitEntered(t)
	queued := load(context.Background(), f.secrets, "queued", s.fill)
	waitFor(t, "the second fill to queue", func() bool { return f.g.waiting.Load() == 1 })
	over := load(context.Background(), f.secrets, "over", s.fill)
	if r := receive(t, over, "the fill over the queue"); !errors.Is(r.err, ErrBusy) {
		t.Fatalf("the fill over the queue: %+v, want ErrBusy", r)
	}
	close(s.release)
	for name, ch := range map[string]<-chan result{"held": held, "queued": queued} {
		if r := receive(t, ch, name); r.err != nil || r.v != "v" {
			t.Errorf("%s: %+v, want v", name, r)
		}
	}
	if n := f.g.waiting.Load(); n != 0 {
		t.Errorf("%d fills still counted as waiting", n)
	}
}

// TestLoadCallerGivesUp: a caller whose context ends gets its error at once,
// while the fill goes on and caches its answer.
func TestLoadCallerGivesUp(t *testing.T) {
	tests := []struct {
		name string
		// ctx returns the caller's context and what ends it.
		ctx  func(t *testing.T) (context.Context, func())
		want error
	}{
		{"canceled", func(*testing.T) (context.Context, func()) {
			return context.WithCancel(context.Background())
		}, context.Canceled},
		{"deadline", func(t *testing.T) (context.Context, func()) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			t.Cleanup(cancel)
			return ctx, func() { <-ctx.Done() }
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(Options{MaxFillAge: time.Minute})
			s := newStore(1, value(Owner{"A", app.Vapi}, "v"))
			ctx, end := tt.ctx(t)
			ch := load(ctx, f.secrets, "A", s.fill)
			fctx := s.waitEntered(t)
			end()
			if r := receive(t, ch, "the Load"); !errors.Is(r.err, tt.want) || r.ok {
				t.Errorf("Load: %+v, want %v", r, tt.want)
			}
			if err := fctx.Err(); err != nil {
				t.Errorf("the fill's context ended with the caller's: %v", err)
			}
			if d, ok := fctx.Deadline(); !ok || time.Until(d) > time.Minute {
				t.Errorf("the fill's deadline: %v, %v; want at most MaxFillAge away", d, ok)
			}
			close(s.release)
			if v, ok, err := f.secrets.Load(context.Background(), "A", s.fill); err != nil || !ok || v != "v" {
				t.Errorf("Load afterwards: %q, %v, %v", v, ok, err)
			}
			if n := s.calls.Load(); n != 1 {
				t.Errorf("%d fills, want 1 (the first one's answer is shared or cached)", n)
			}
			if _, ok, _ := f.secrets.Get("A"); !ok {
				t.Error("the answer is not cached")
			}
		})
	}
}

func TestLoadAnswers(t *testing.T) {
	errStore := errors.New("store down")
	tests := []struct {
		name   string
		answer func(int32) (Entry[string], error)
		want   result
		fills  int32 // after two Loads
	}{
		{"a value is cached", value(Owner{"A", app.Vapi}, "v"), result{"v", true, nil}, 1},
		{"a negative entry is cached", func(int32) (Entry[string], error) {
			return Entry[string]{Negative: true, Value: "ignored"}, nil
		}, result{"", false, nil}, 1},
		{"an error is not", func(int32) (Entry[string], error) { return Entry[string]{}, errStore }, result{"", false, errStore}, 2},
		{"an entry with no org is not", value(Owner{}, "v"), result{"v", true, nil}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(Options{})
			s := newStore(0, tt.answer)
			for i := range 2 {
				v, ok, err := f.mappings.Load(context.Background(), "k", s.fill)
				if got := (result{v, ok, err}); got != tt.want {
					t.Errorf("Load %d: %+v, want %+v", i, got, tt.want)
				}
			}
			if n := s.calls.Load(); n != tt.fills {
				t.Errorf("%d fills, want %d", n, tt.fills)
			}
		})
	}
}

// TestNeverServesReplacedValues runs writers, readers and flushes at once:
// a Load that starts after a write's invalidation returned never answers
// with what the write replaced, whether the key names its org (secrets) or
// the fill finds it out (mappings).
func TestNeverServesReplacedValues(t *testing.T) {
	const (
		orgs    = 8
		readers = 4
		rounds  = 2000
	)
	f := newFixture(Options{Now: time.Now})
	var version, invalidated [orgs]atomic.Int64
	fill := func(org int) func(context.Context, string) (Entry[string], error) {
		return func(context.Context, string) (Entry[string], error) {
			v := version[org].Load()
			runtime.Gosched() // lets writes in between the read and the Put
			return Entry[string]{Owner: Owner{strconv.Itoa(org), app.Vapi}, Value: strconv.FormatInt(v, 10)}, nil
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			org := i % orgs
			v := version[org].Add(1)
			f.g.Invalidate(strconv.Itoa(org), app.Vapi)
			invalidated[org].Store(v)
			if i%97 == 0 {
				f.g.Flush()
			}
		}
	})
	var errs atomic.Int32
	var readersWG sync.WaitGroup
	for r := range readers {
		readersWG.Go(func() {
			for i := range rounds {
				org := (i + r) % orgs
				c, key := f.secrets, strconv.Itoa(org)
				if i%2 == 1 {
					c, key = f.mappings, "asst-"+key
				}
				want := invalidated[org].Load()
				v, _, err := c.Load(context.Background(), key, fill(org))
				got, _ := strconv.ParseInt(v, 10, 64)
				if err != nil || got < want {
					if errs.Add(1) <= 5 {
						t.Errorf("%s: Load %q, %v after version %d was invalidated", c.name, v, err, want)
					}
				}
			}
		})
	}
	readersWG.Wait()
	stop()
	wg.Wait()
}

// TestLoadEndedContext: a miss whose context has already ended starts no
// fill.
func TestLoadEndedContext(t *testing.T) {
	f := newFixture(Options{})
	s := newStore(0, value(Owner{"A", app.Vapi}, "v"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := f.secrets.Load(ctx, "A", s.fill); !errors.Is(err, context.Canceled) {
		t.Errorf("Load: %v, want %v", err, context.Canceled)
	}
	if n := s.calls.Load(); n != 0 {
		t.Errorf("%d fills, want none", n)
	}
}
