// Package orgcache holds the caches that front per-org data (decrypted
// configs, statuses, assistant mappings, webhook secrets) and keeps them
// honest against the writes that change that data.
//
// Several typed caches (Cache) share one Group. The Group is the single
// entry point for invalidations: Invalidate(org, provider) drops the org's
// entries in every cache, and Flush drops everything. Every cached entry has
// an Owner, the (org, provider) its value was read from, and a fill stores
// its answer only if nothing that answer depends on was invalidated since
// the fill started (see Stamp and Cache.Put): a read that raced a write never
// caches what the write replaced, and a write to one org never discards the
// fills of another.
//
// Invalidating one org costs O(that org's entries); hits take one shard's
// read lock and allocate nothing.
package orgcache

import (
	"sync"
	"sync/atomic"
	"time"

	"byoc/app"
)

// DefaultMaxFillAge is Options.MaxFillAge when it is zero.
const DefaultMaxFillAge = 10 * time.Second

// maxRemembered bounds how many invalidations a Group remembers, whatever
// their rate.
const maxRemembered = 1 << 16

// Owner is what a cached value was read from: an org's credentials for one
// provider, or with Provider "" anything of the org (an entry owned by
// (org, "") is dropped by every invalidation of the org).
type Owner struct {
	Org      string
	Provider app.Provider
}

// Options configures a Group.
type Options struct {
	// MaxFillAge bounds how long a fill may run: a fill that started longer
	// ago than this is not stored, and Load gives its fill this timeout.
	// The Group remembers each invalidation for this long (and at most the
	// last 65,536 of them: under a flood of invalidations, fills that started
	// before the oldest one it remembers are not stored either).
	// Zero means DefaultMaxFillAge.
	MaxFillAge time.Duration
	// Slots bounds how many of Load's fills run at once, across every cache
	// of the Group; zero means no bound.
	Slots int
	// SlotWait is how long a fill waits for a slot before Load gives up
	// with ErrBusy; zero means it does not wait.
	SlotWait time.Duration
	// MaxWaiting bounds how many fills wait for a slot at once: a fill that
	// finds that many waiting gives up with ErrBusy at once. A short queue
	// (a burst of first requests after a restart) is served, a flood is shed
	// without queueing. Zero means no bound but SlotWait.
	MaxWaiting int
	// Now is the clock for expiry and fill ages; nil means time.Now.
	Now func() time.Time
}

// Group ties caches to one invalidation stream. Its methods are safe for
// concurrent use.
type Group struct {
	maxFillAge time.Duration
	slots      chan struct{} // nil when unbounded
	slotWait   time.Duration
	maxWaiting int64
	waiting    atomic.Int64     // fills waiting for a slot now
	clock      func() time.Time // nil means time.Now
	start      time.Time

	// seq counts invalidations and flushes. It only changes under mu, but
	// Stamp and the negative entries' checks read it without mu.
	seq atomic.Uint64

	mu sync.Mutex // orders stores against invalidations; guards what follows and every cache's index
	// floor: fills stamped before it are refused (a Flush, or invalidations
	// forgotten because they are older than maxFillAge).
	floor   uint64
	byOwner map[Owner]uint64  // last Invalidate(org, provider), per (org, provider); provider "" included
	byOrg   map[string]uint64 // last Invalidate(org, any provider)
	recent  []invalidation    // in seq order, from head on: what byOwner and byOrg still remember
	head    int
	caches  []member
}

// invalidation is one remembered Invalidate call.
type invalidation struct {
	owner Owner
	seq   uint64
	at    time.Duration
}

// member is what the Group needs of each of its caches. Methods run with
// the Group's mu held.
type member interface {
	drop(org string, p app.Provider) int
	flush()
	stats() Stats
}

// Waiting is how many fills wait for a slot now.
func (g *Group) Waiting() int { return int(g.waiting.Load()) }

// NewGroup returns an empty Group with the given options.
func NewGroup(o Options) *Group {
	g := &Group{
		maxFillAge: o.MaxFillAge,
		slotWait:   o.SlotWait,
		maxWaiting: int64(o.MaxWaiting),
		clock:      o.Now,
		byOwner:    map[Owner]uint64{},
		byOrg:      map[string]uint64{},
	}
	if g.maxFillAge <= 0 {
		g.maxFillAge = DefaultMaxFillAge
	}
	if o.Slots > 0 {
		g.slots = make(chan struct{}, o.Slots)
	}
	if g.clock != nil {
		g.start = g.clock()
	} else {
		g.start = time.Now()
	}
	return g
}

// now is the time since the Group was made, on its clock (monotonic by
// default).
func (g *Group) now() time.Duration {
	if g.clock != nil {
		return g.clock().Sub(g.start)
	}
	return time.Since(g.start)
}

// Stamp marks when a fill started. Take it before reading the store and
// hand it to Cache.Put with what was read. The zero Stamp counts as taken
// when the Group was made.
type Stamp struct {
	seq uint64
	at  time.Duration
}

// Stamp returns the current Stamp.
func (g *Group) Stamp() Stamp { return Stamp{seq: g.seq.Load(), at: g.now()} }

// Invalidate drops the org's entries that depend on provider p in every
// cache of the Group: those owned by (org, p) or (org, ""), or with p ""
// all of the org's entries. It also drops every negative entry (a key
// unknown a moment ago may now belong to the org), and makes sure no fill
// that started before it stores such an entry. It returns how many entries
// (not counting negative ones) it dropped. An empty org changes nothing.
// It costs O(the org's entries).
func (g *Group) Invalidate(org string, p app.Provider) int {
	if org == "" {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	g.forget(now)
	seq := g.seq.Add(1)
	o := Owner{Org: org, Provider: p}
	g.byOwner[o] = seq
	g.byOrg[org] = seq
	g.recent = append(g.recent, invalidation{owner: o, seq: seq, at: now})
	n := 0
	for _, c := range g.caches {
		n += c.drop(org, p)
	}
	return n
}

// forget drops the invalidations older than maxFillAge, and the oldest
// beyond maxRemembered, raising the floor past them: fills that started
// before them can no longer be judged, and are refused.
func (g *Group) forget(now time.Duration) {
	for g.head < len(g.recent) && (now-g.recent[g.head].at > g.maxFillAge || len(g.recent)-g.head >= maxRemembered) {
		inv := g.recent[g.head]
		g.recent[g.head] = invalidation{}
		g.head++
		if g.byOwner[inv.owner] == inv.seq {
			delete(g.byOwner, inv.owner)
		}
		if g.byOrg[inv.owner.Org] == inv.seq {
			delete(g.byOrg, inv.owner.Org)
		}
		g.floor = max(g.floor, inv.seq)
	}
	if g.head > 0 && g.head >= len(g.recent)/2 {
		g.recent = append(g.recent[:0], g.recent[g.head:]...)
		clear(g.recent[len(g.recent):cap(g.recent)])
		g.head = 0
	}
}

// Flush drops every entry of every cache of the Group, and makes sure no
// fill that started before it stores anything. The invalidation listener
// calls it after reconnecting, since notifications may have been missed.
func (g *Group) Flush() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.floor = g.seq.Add(1)
	g.byOwner = map[Owner]uint64{}
	g.byOrg = map[string]uint64{}
	g.recent, g.head = nil, 0
	for _, c := range g.caches {
		c.flush()
	}
}

// Stats returns the Stats of every cache of the Group, in the order they
// were made.
func (g *Group) Stats() []Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Stats, len(g.caches))
	for i, c := range g.caches {
		out[i] = c.stats()
	}
	return out
}

// current reports whether an entry read by a fill stamped s may be stored
// now: the fill is not older than maxFillAge, no Flush came after s, and
// nothing the entry depends on was invalidated after s (for a negative
// entry: nothing at all). Called with mu held.
func (g *Group) current(s Stamp, owner Owner, negative bool, now time.Duration) bool {
	switch {
	case s.seq < g.floor, now-s.at > g.maxFillAge:
		return false
	case negative:
		return g.seq.Load() == s.seq
	case owner.Provider == "":
		return g.byOrg[owner.Org] <= s.seq
	}
	return g.byOwner[owner] <= s.seq && g.byOwner[Owner{Org: owner.Org}] <= s.seq
}
