package orgcache

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"byoc/app"
)

// shardCount is how many independently locked parts each cache has.
const shardCount = 64

// maxSweepEvery bounds how long an expired entry may stay in memory while
// entries keep being stored.
const maxSweepEvery = time.Minute

// Entry is what a fill read: the value and the Owner it was read from, or
// with Negative set the fact that the key has no value (a negative entry
// belongs to no org; any invalidation drops it, and Value and Owner are
// ignored). TTL is how long it stays cached; zero means the cache's TTL.
type Entry[V any] struct {
	Owner    Owner
	Value    V
	TTL      time.Duration
	Negative bool
}

// Stats counts one cache's lookups since it was made and the entries it
// holds now (expired entries count until they are swept, at most a minute
// after they expire while entries keep being stored).
type Stats struct {
	Name   string
	Hits   uint64 // lookups answered from the cache, negative entries included
	Misses uint64
	// Items counts the entries held; NegativeItems of them are negative.
	Items, NegativeItems int
}

// HitRate is Hits / (Hits + Misses), or 0 before any lookup.
func (s Stats) HitRate() float64 {
	if s.Hits+s.Misses == 0 {
		return 0
	}
	return float64(s.Hits) / float64(s.Hits+s.Misses)
}

// Cache maps keys of type K to values of type V, each entry owned by an
// (org, provider) of its Group. Its methods are safe for concurrent use.
type Cache[K comparable, V any] struct {
	g          *Group
	name       string
	ttl        time.Duration
	seed       maphash.Seed
	shards     [shardCount]shard[K, V]
	sweepEvery time.Duration

	// Guarded by g.mu.
	index     map[string][]indexed[K] // org -> its keys held in items
	nextSweep time.Duration
	cursor    int
	visited   int // index rows Invalidate looked at, for the tests
}

// shard is one part of a cache. The maps change only with the Group's mu
// held as well as the shard's, so the index always matches them; lookups
// take only the shard's read lock.
type shard[K comparable, V any] struct {
	mu     sync.RWMutex
	items  map[K]item[V]
	neg    map[K]time.Duration // negative entries' expiry, valid while negSeq is the Group's seq
	negSeq uint64
	hits   atomic.Uint64
	misses atomic.Uint64

	fmu     sync.Mutex
	flights map[K]*flight[V]

	_ [48]byte // keeps neighbouring shards' counters off one cache line
}

type item[V any] struct {
	value   V
	owner   Owner
	expires time.Duration
}

// indexed is one of an org's keys, with the provider that owns it.
type indexed[K comparable] struct {
	key K
	p   app.Provider
}

// New returns an empty cache in g whose entries live for ttl unless a fill
// says otherwise. name tells it apart in Stats.
func New[K comparable, V any](g *Group, name string, ttl time.Duration) *Cache[K, V] {
	c := &Cache[K, V]{
		g:          g,
		name:       name,
		ttl:        ttl,
		seed:       maphash.MakeSeed(),
		index:      map[string][]indexed[K]{},
		sweepEvery: min(max(ttl, time.Second), maxSweepEvery),
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.caches = append(g.caches, c)
	return c
}

func (c *Cache[K, V]) shard(key K) *shard[K, V] {
	return &c.shards[maphash.Comparable(c.seed, key)%shardCount]
}

// Get returns the entry cached under key. hit is false when there is none
// (or it expired); for a negative entry hit is true and ok false; otherwise
// both are true and v is the value.
func (c *Cache[K, V]) Get(key K) (v V, ok, hit bool) {
	sh := c.shard(key)
	v, ok, hit = c.lookup(sh, key)
	sh.count(hit)
	return v, ok, hit
}

func (sh *shard[K, V]) count(hit bool) {
	if hit {
		sh.hits.Add(1)
	} else {
		sh.misses.Add(1)
	}
}

// lookup is Get without the counting.
func (c *Cache[K, V]) lookup(sh *shard[K, V], key K) (v V, ok, hit bool) {
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if it, found := sh.items[key]; found {
		if it.expires > c.g.now() {
			return it.value, true, true
		}
		return v, false, false
	}
	if sh.negSeq == c.g.seq.Load() {
		if exp, found := sh.neg[key]; found && exp > c.g.now() {
			return v, false, true
		}
	}
	return v, false, false
}

// Put stores e under key, replacing what was there, and reports whether it
// did. It does not when the fill stamped s is outdated: it started longer
// ago than the Group's MaxFillAge, a Flush came after s, or after s an
// invalidation dropped what e depends on (for a negative entry: any
// invalidation at all). A non-negative entry with no Owner.Org is never
// stored.
func (c *Cache[K, V]) Put(s Stamp, key K, e Entry[V]) bool {
	if e.Negative {
		e.Owner, e.Value = Owner{}, *new(V)
	} else if e.Owner.Org == "" {
		return false
	}
	ttl := e.TTL
	if ttl <= 0 {
		ttl = c.ttl
	}
	g := c.g
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if !g.current(s, e.Owner, e.Negative, now) {
		return false
	}
	c.sweep(now)

	sh := c.shard(key)
	sh.mu.Lock()
	old, had := sh.items[key]
	if e.Negative {
		delete(sh.items, key)
		if seq := g.seq.Load(); sh.negSeq != seq || sh.neg == nil {
			sh.neg, sh.negSeq = map[K]time.Duration{}, seq
		}
		sh.neg[key] = now + ttl
	} else {
		delete(sh.neg, key)
		if sh.items == nil {
			sh.items = map[K]item[V]{}
		}
		sh.items[key] = item[V]{value: e.Value, owner: e.Owner, expires: now + ttl}
	}
	sh.mu.Unlock()

	if had && old.owner == e.Owner {
		return true
	}
	if had {
		c.unindex(old.owner.Org, key)
	}
	if !e.Negative {
		c.index[e.Owner.Org] = append(c.index[e.Owner.Org], indexed[K]{key: key, p: e.Owner.Provider})
	}
	return true
}

// unindex removes key from the org's keys. Called with g.mu held.
func (c *Cache[K, V]) unindex(org string, key K) {
	keys := c.index[org]
	for i := range keys {
		if keys[i].key == key {
			last := len(keys) - 1
			keys[i] = keys[last]
			keys[last] = indexed[K]{}
			keys = keys[:last]
			break
		}
	}
	if len(keys) == 0 {
		delete(c.index, org)
	} else {
		c.index[org] = keys
	}
}

// drop removes the org's entries that depend on p. Called with g.mu held.
func (c *Cache[K, V]) drop(org string, p app.Provider) int {
	keys, ok := c.index[org]
	if !ok {
		return 0
	}
	kept := keys[:0]
	for _, k := range keys {
		c.visited++
		if p != "" && k.p != "" && k.p != p {
			kept = append(kept, k)
			continue
		}
		sh := c.shard(k.key)
		sh.mu.Lock()
		delete(sh.items, k.key)
		sh.mu.Unlock()
	}
	n := len(keys) - len(kept)
	clear(keys[len(kept):])
	if len(kept) == 0 {
		delete(c.index, org)
	} else {
		c.index[org] = kept
	}
	return n
}

// flush drops every entry. Called with g.mu held.
func (c *Cache[K, V]) flush() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		sh.items, sh.neg = nil, nil
		sh.mu.Unlock()
	}
	c.index = map[string][]indexed[K]{}
}

// sweep removes the expired entries of one shard when it is that shard's
// turn: each shard gets one every sweepEvery while entries are being
// stored. Called with g.mu held.
func (c *Cache[K, V]) sweep(now time.Duration) {
	if now < c.nextSweep {
		return
	}
	c.nextSweep = now + c.sweepEvery/shardCount
	sh := &c.shards[c.cursor]
	c.cursor = (c.cursor + 1) % shardCount
	sh.mu.Lock()
	for k, it := range sh.items {
		if it.expires <= now {
			delete(sh.items, k)
			c.unindex(it.owner.Org, k)
		}
	}
	if sh.negSeq != c.g.seq.Load() {
		sh.neg = nil
	}
	for k, exp := range sh.neg {
		if exp <= now {
			delete(sh.neg, k)
		}
	}
	sh.mu.Unlock()
}

// Stats returns the cache's counts.
func (c *Cache[K, V]) Stats() Stats {
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	return c.stats()
}

// stats is Stats with g.mu held.
func (c *Cache[K, V]) stats() Stats {
	s := Stats{Name: c.name}
	seq := c.g.seq.Load()
	for i := range c.shards {
		sh := &c.shards[i]
		s.Hits += sh.hits.Load()
		s.Misses += sh.misses.Load()
		sh.mu.RLock()
		s.Items += len(sh.items)
		if sh.negSeq == seq {
			s.NegativeItems += len(sh.neg)
		}
		sh.mu.RUnlock()
	}
	s.Items += s.NegativeItems
	return s
}
