package orgcache

import (
	"context"
	"time"

	"byoc/app"
)

// ErrBusy is what Load returns when every fill slot of the Group stayed
// taken for its SlotWait. It is an EUnavailable error: the request can be
// retried shortly.
var ErrBusy error = &app.Error{Code: app.EUnavailable, Message: "The server is busy. Please try again shortly."}

// flight is one fill that concurrent misses of a key share. Its results are
// written before done is closed.
type flight[V any] struct {
	stamp Stamp
	done  chan struct{}
	value V
	ok    bool
	err   error
}

// Load returns the entry cached under key, or fills it with fill(ctx, key):
// ok is false when the entry is negative (the key is known to have no
// value).
//
// Concurrent misses of a key share one fill as long as no invalidation (of
// any org: the key's owner is only known once the fill is done) and no
// Flush came between them; a miss never shares a fill that started before
// an invalidation it comes after. The fill runs detached from ctx (keeping
// its values) with the Group's MaxFillAge as its timeout, holding one of the
// Group's slots when it has them. Its entry is stored as Put stores it, and
// every miss that shares it gets its answer, stored or not. Hits allocate
// nothing when fill is a func value made once (not a new closure per call).
//
// Load returns fill's error (nothing is stored), ErrBusy, or ctx's error
// when ctx ends first (the fill goes on, and stores its entry).
func (c *Cache[K, V]) Load(ctx context.Context, key K, fill func(context.Context, K) (Entry[V], error)) (V, bool, error) {
	v, ok, _, err := c.LoadHit(ctx, key, fill)
	return v, ok, err
}

// LoadHit is Load that also reports whether the lookup counted as a hit in
// Stats: the cache held the entry when asked. A miss was answered by a
// fill (its own or one it shared), or by the entry a fill stored just then.
func (c *Cache[K, V]) LoadHit(ctx context.Context, key K, fill func(context.Context, K) (Entry[V], error)) (V, bool, bool, error) {
	sh := c.shard(key)
	v, ok, hit := c.lookup(sh, key)
	sh.count(hit)
	if hit {
		return v, ok, true, nil
	}
	if err := ctx.Err(); err != nil {
		return v, false, false, err
	}
	s := c.g.Stamp()
	sh.fmu.Lock()
	f := sh.flights[key]
	if f == nil || f.stamp.seq < s.seq {
		// The fill that stored the entry may have ended between the miss
		// and now: it leaves flights only after storing.
		if v, ok, hit := c.lookup(sh, key); hit {
			sh.fmu.Unlock()
			return v, ok, false, nil
		}
		f = &flight[V]{stamp: s, done: make(chan struct{})}
		if sh.flights == nil {
			sh.flights = map[K]*flight[V]{}
		}
		sh.flights[key] = f
		go c.run(context.WithoutCancel(ctx), sh, key, f, fill)
	}
	sh.fmu.Unlock()
	select {
	case <-f.done:
		return f.value, f.ok, false, f.err
	case <-ctx.Done():
		return *new(V), false, false, ctx.Err()
	}
}

// run calls fill for the flight f, stores its entry, and then ends the
// flight.
func (c *Cache[K, V]) run(ctx context.Context, sh *shard[K, V], key K, f *flight[V], fill func(context.Context, K) (Entry[V], error)) {
	ctx, cancel := context.WithTimeout(ctx, c.g.maxFillAge)
	defer cancel()
	f.err = c.g.acquire(ctx)
	if f.err == nil {
		var e Entry[V]
		e, f.err = fill(ctx, key)
		c.g.release()
		if f.err == nil {
			c.Put(f.stamp, key, e)
			f.value, f.ok = e.Value, !e.Negative
			if e.Negative {
				f.value = *new(V)
			}
		}
	}
	sh.fmu.Lock()
	if sh.flights[key] == f {
		delete(sh.flights, key)
	}
	sh.fmu.Unlock()
	close(f.done)
}

// acquire takes a fill slot, if the Group has them. It fails with ErrBusy
// when maxWaiting fills wait already, or when none frees up within
// slotWait, and with ctx's error when ctx ends first.
func (g *Group) acquire(ctx context.Context) error {
	if g.slots == nil {
		return nil
	}
	select {
	case g.slots <- struct{}{}:
		return nil
	default:
	}
	if g.slotWait <= 0 {
		return ErrBusy
	}
	if n := g.waiting.Add(1); g.maxWaiting > 0 && n > g.maxWaiting {
		g.waiting.Add(-1)
		return ErrBusy
	}
	defer g.waiting.Add(-1)
	wait := time.NewTimer(g.slotWait)
	defer wait.Stop()
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-wait.C:
		return ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *Group) release() {
	if g.slots != nil {
		<-g.slots
	}
}
