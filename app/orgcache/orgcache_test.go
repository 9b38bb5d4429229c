package orgcache

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"byoc/app"
)

// testClock is a settable clock for Options.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a Group with the four kinds of cache the app keeps: decrypted
// configs per (org, provider), statuses per org (owned by all of the org's
// providers), webhook secrets per org (owned by its Vapi credentials) and
// assistant -> org mappings (owned by the org's Vapi credentials, found out
// by the fill).
type fixture struct {
	clock    *testClock
	g        *Group
	configs  *Cache[Owner, string]
	statuses *Cache[string, string]
	secrets  *Cache[string, string]
	mappings *Cache[string, string]
}

const testTTL = time.Minute

func newFixture(o Options) *fixture {
	f := &fixture{clock: newTestClock()}
	if o.Now == nil {
		o.Now = f.clock.Now
	}
	f.g = NewGroup(o)
	f.configs = New[Owner, string](f.g, "configs", testTTL)
	f.statuses = New[string, string](f.g, "statuses", testTTL)
	f.secrets = New[string, string](f.g, "secrets", testTTL)
	f.mappings = New[string, string](f.g, "mappings", testTTL)
	return f
}

// fillOrg caches everything of the org: its Vapi and Twilio configs, its
// statuses, its secret and its assistant "asst-<org>".
func (f *fixture) fillOrg(t testing.TB, org string) {
	t.Helper()
	s := f.g.Stamp()
	ok := f.configs.Put(s, Owner{org, app.Vapi}, Entry[string]{Owner: Owner{org, app.Vapi}, Value: "vapi-" + org}) &&
		f.configs.Put(s, Owner{org, app.Twilio}, Entry[string]{Owner: Owner{org, app.Twilio}, Value: "twilio-" + org}) &&
		f.statuses.Put(s, org, Entry[string]{Owner: Owner{Org: org}, Value: "statuses-" + org}) &&
		f.secrets.Put(s, org, Entry[string]{Owner: Owner{org, app.Vapi}, Value: "secret-" + org}) &&
		f.mappings.Put(s, "asst-"+org, Entry[string]{Owner: Owner{org, app.Vapi}, Value: org})
	if !ok {
		t.Fatalf("filling %s: a Put was refused", org)
	}
}

// cached lists which of the org's five entries are cached, in fillOrg's
// order.
func (f *fixture) cached(org string) [5]bool {
	var out [5]bool
	_, out[0], _ = f.configs.Get(Owner{org, app.Vapi})
	_, out[1], _ = f.configs.Get(Owner{org, app.Twilio})
	_, out[2], _ = f.statuses.Get(org)
	_, out[3], _ = f.secrets.Get(org)
	_, out[4], _ = f.mappings.Get("asst-" + org)
	return out
}

var all = [5]bool{true, true, true, true, true}

func TestInvalidate(t *testing.T) {
	tests := []struct {
		name     string
		org      string
		provider app.Provider
		want     int
		a        [5]bool // what stays cached of org A (vapi, twilio, statuses, secret, mapping)
	}{
		{"one provider", "A", app.Twilio, 2, [5]bool{true, false, false, true, true}},
		{"vapi", "A", app.Vapi, 4, [5]bool{false, true, false, false, false}},
		{"a provider the org has nothing cached of", "A", app.Resend, 1, [5]bool{true, true, false, true, true}},
		{"every provider", "A", "", 5, [5]bool{}},
		{"an org with nothing cached", "C", "", 0, all},
		{"no org", "", "", 0, all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(Options{})
			f.fillOrg(t, "A")
			f.fillOrg(t, "B")
			if n := f.g.Invalidate(tt.org, tt.provider); n != tt.want {
				t.Errorf("Invalidate(%q, %q) = %d, want %d", tt.org, tt.provider, n, tt.want)
			}
			if got := f.cached("A"); got != tt.a {
				t.Errorf("A cached afterwards: %v, want %v", got, tt.a)
			}
			if got := f.cached("B"); got != all {
				t.Errorf("B cached afterwards: %v, want all", got)
			}
			if n := f.g.Invalidate(tt.org, tt.provider); n != 0 {
				t.Errorf("the same Invalidate again dropped %d entries, want 0", n)
			}
		})
	}
}

// TestInvalidateTouchesOnlyTheOrg: with 100,000 orgs cached, invalidating
// one looks at that org's entries and nothing else.
func TestInvalidateTouchesOnlyTheOrg(t *testing.T) {
	const orgs = 100_000
	g := NewGroup(Options{})
	secrets := New[string, string](g, "secrets", time.Hour)
	configs := New[Owner, string](g, "configs", time.Hour)
	s := g.Stamp()
	for i := range orgs {
		org := "org-" + strconv.Itoa(i)
		secrets.Put(s, org, Entry[string]{Owner: Owner{org, app.Vapi}, Value: "x"})
		configs.Put(s, Owner{org, app.Vapi}, Entry[string]{Owner: Owner{org, app.Vapi}, Value: "x"})
	}
	configs.Put(s, Owner{"org-7", app.Twilio}, Entry[string]{Owner: Owner{"org-7", app.Twilio}, Value: "x"})

	tests := []struct {
		name            string
		provider        app.Provider
		dropped, looked int
	}{
		{"one provider", app.Twilio, 1, 3}, // looks at org-7's secret, vapi and twilio configs
		{"every provider", "", 2, 2},       // what is left of org-7
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := secrets.visited + configs.visited
			if n := g.Invalidate("org-7", tt.provider); n != tt.dropped {
				t.Errorf("dropped %d entries, want %d", n, tt.dropped)
			}
			if n := secrets.visited + configs.visited - before; n != tt.looked {
				t.Errorf("looked at %d index rows, want %d (the org's own)", n, tt.looked)
			}
		})
	}
	if st := secrets.Stats(); st.Items != orgs-1 {
		t.Errorf("secrets hold %d entries, want %d", st.Items, orgs-1)
	}
	if st := configs.Stats(); st.Items != orgs-1 {
		t.Errorf("configs hold %d entries, want %d", st.Items, orgs-1)
	}
	if _, ok := configs.index["org-7"]; ok {
		t.Error("the index still lists org-7")
	}
	if len(configs.index) != orgs-1 || len(secrets.index) != orgs-1 {
		t.Errorf("the indexes list %d and %d orgs, want %d", len(configs.index), len(secrets.index), orgs-1)
	}
}

// TestOwnerMoves: a key stored again under another org is dropped by that
// org's invalidations, not by its former org's.
func TestOwnerMoves(t *testing.T) {
	f := newFixture(Options{})
	f.fillOrg(t, "A")
	if !f.mappings.Put(f.g.Stamp(), "asst-A", Entry[string]{Owner: Owner{"B", app.Vapi}, Value: "B"}) {
		t.Fatal("Put refused")
	}
	if n := f.g.Invalidate("A", app.Vapi); n != 3 {
		t.Errorf("Invalidate(A) dropped %d, want 3 (configs, statuses, secret)", n)
	}
	if v, ok, _ := f.mappings.Get("asst-A"); !ok || v != "B" {
		t.Errorf("after Invalidate(A) the moved mapping is %q, %v; want B", v, ok)
	}
	if n := f.g.Invalidate("B", ""); n != 1 {
		t.Errorf("Invalidate(B) dropped %d, want 1", n)
	}
	if _, _, hit := f.mappings.Get("asst-A"); hit {
		t.Error("Invalidate(B) kept the mapping")
	}
}

func TestNegativeEntries(t *testing.T) {
	const (
		miss = iota
		negative
		value
	)
	tests := []struct {
		name string
		// between runs between the negative fill's Stamp and its Put.
		between func(f *fixture)
		// after runs once the negative entry is stored.
		after  func(f *fixture)
		stored bool
		want   int // what Get finds afterwards
		items  int // Stats' NegativeItems afterwards
	}{
		{"kept without invalidations", func(*fixture) {}, func(*fixture) {}, true, negative, 1},
		{"dropped by an invalidation of an unrelated org", func(*fixture) {},
			func(f *fixture) {
				f.g.Invalidate("org with nothing cached", app.Twilio)
				if _, ok, _ := f.mappings.Get("asst-A"); !ok {
					t.Error("the invalidation dropped an unrelated org's mapping")
				}
			}, true, miss, 0},
		{"dropped by Flush", func(*fixture) {}, func(f *fixture) { f.g.Flush() }, true, miss, 0},
		{"expired", func(*fixture) {}, func(f *fixture) { f.clock.Advance(testTTL) }, true, miss, 1}, // until swept
		{"replaced by a value", func(*fixture) {}, func(f *fixture) {
			f.mappings.Put(f.g.Stamp(), "asst-new", Entry[string]{Owner: Owner{"A", app.Vapi}, Value: "A"})
		}, true, value, 0},
		{"refused after an invalidation of any org", func(f *fixture) { f.g.Invalidate("Z", app.Resend) },
			func(*fixture) {}, false, miss, 0},
		{"refused after Flush", func(f *fixture) { f.g.Flush() }, func(*fixture) {}, false, miss, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(Options{})
			f.fillOrg(t, "A")
			s := f.g.Stamp()
			tt.between(f)
			if got := f.mappings.Put(s, "asst-new", Entry[string]{Negative: true, Value: "ignored"}); got != tt.stored {
				t.Fatalf("Put of the negative entry: %v, want %v", got, tt.stored)
			}
			tt.after(f)
			v, ok, hit := f.mappings.Get("asst-new")
			got := miss
			switch {
			case hit && ok:
				got = value
			case hit:
				got = negative
				if v != "" {
					t.Errorf("a negative entry returned the value %q", v)
				}
			}
			if got != tt.want {
				t.Errorf("Get found %d (%q, %v, %v), want %d (0 miss, 1 negative, 2 value)", got, v, ok, hit, tt.want)
			}
			if st := f.mappings.Stats(); st.NegativeItems != tt.items {
				t.Errorf("Stats: %d negative items, want %d", st.NegativeItems, tt.items)
			}
		})
	}
}

// TestPutAfterInvalidation: a fill's Put is refused when, since its Stamp,
// something its entry depends on was invalidated, and only then.
func TestPutAfterInvalidation(t *testing.T) {
	tests := []struct {
		name    string
		owner   Owner
		between func(f *fixture)
		stored  bool
	}{
		{"nothing happened", Owner{"A", app.Vapi}, func(*fixture) {}, true},
		{"its own provider", Owner{"A", app.Vapi}, func(f *fixture) { f.g.Invalidate("A", app.Vapi) }, false},
		{"every provider of its org", Owner{"A", app.Vapi}, func(f *fixture) { f.g.Invalidate("A", "") }, false},
		{"another provider of its org", Owner{"A", app.Vapi}, func(f *fixture) { f.g.Invalidate("A", app.Twilio) }, true},
		{"an org-wide entry, one provider", Owner{Org: "A"}, func(f *fixture) { f.g.Invalidate("A", app.Twilio) }, false},
		{"an org-wide entry, another org", Owner{Org: "A"}, func(f *fixture) { f.g.Invalidate("B", "") }, true},
		{"another org", Owner{"A", app.Vapi}, func(f *fixture) { f.g.Invalidate("B", app.Vapi) }, true},
		{"many other orgs", Owner{"A", app.Vapi}, func(f *fixture) {
			for i := range 1000 {
				f.g.Invalidate("other-"+strconv.Itoa(i), "")
			}
		}, true},
		{"Flush", Owner{"A", app.Vapi}, func(f *fixture) { f.g.Flush() }, false},
		{"the fill ran for MaxFillAge", Owner{"A", app.Vapi}, func(f *fixture) { f.clock.Advance(time.Second) }, true},
		{"the fill ran longer than MaxFillAge", Owner{"A", app.Vapi},
			func(f *fixture) { f.clock.Advance(time.Second + time.Nanosecond) }, false},
		{"its org invalidated, forgotten, the clock set back", Owner{"A", app.Vapi}, func(f *fixture) {
			f.g.Invalidate("A", app.Vapi)
			f.clock.Advance(2 * time.Second)
			f.g.Invalidate("B", "") // forgets A's invalidation
			f.clock.Advance(-2 * time.Second)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(Options{MaxFillAge: time.Second})
			f.g.Invalidate("A", "") // an invalidation before the Stamp changes nothing
			s := f.g.Stamp()
			tt.between(f)
			e := Entry[string]{Owner: tt.owner, Value: "v"}
			if got := f.secrets.Put(s, "key", e); got != tt.stored {
				t.Errorf("Put: %v, want %v", got, tt.stored)
			}
			if _, ok, _ := f.secrets.Get("key"); ok != tt.stored {
				t.Errorf("cached: %v, want %v", ok, tt.stored)
			}
		})
	}
	t.Run("an entry with no org", func(t *testing.T) {
		f := newFixture(Options{})
		if f.secrets.Put(f.g.Stamp(), "key", Entry[string]{Owner: Owner{Provider: app.Vapi}, Value: "v"}) {
			t.Error("Put stored an entry with no org")
		}
	})
}

// TestForget: the Group remembers invalidations only for MaxFillAge, and
// fills that would need them to be judged are refused.
func TestForget(t *testing.T) {
	f := newFixture(Options{MaxFillAge: time.Second})
	old := f.g.Stamp()
	for i := range 1000 {
		f.g.Invalidate("org-"+strconv.Itoa(i), app.Vapi)
	}
	recent := f.g.Stamp()
	f.clock.Advance(time.Second + 1)
	f.g.Invalidate("B", "")
	if len(f.g.byOrg) != 1 || len(f.g.byOwner) != 1 || len(f.g.recent)-f.g.head != 1 {
		t.Errorf("remembered %d orgs, %d owners, %d invalidations; want 1 of each",
			len(f.g.byOrg), len(f.g.byOwner), len(f.g.recent)-f.g.head)
	}
	tests := []struct {
		name   string
		s      Stamp
		owner  Owner
		stored bool
	}{
		{"stamped before what was forgotten", old, Owner{"A", app.Vapi}, false},
		{"stamped after it, another org", recent, Owner{"org-1", app.Vapi}, false}, // older than MaxFillAge
		{"stamped now", f.g.Stamp(), Owner{"org-1", app.Vapi}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := f.secrets.Put(tt.s, tt.name, Entry[string]{Owner: tt.owner, Value: "v"}); got != tt.stored {
				t.Errorf("Put: %v, want %v", got, tt.stored)
			}
		})
	}
}

func TestFlush(t *testing.T) {
	f := newFixture(Options{})
	f.fillOrg(t, "A")
	f.fillOrg(t, "B")
	s := f.g.Stamp()
	f.g.Flush()
	for _, org := range []string{"A", "B"} {
		if got := f.cached(org); got != [5]bool{} {
			t.Errorf("%s cached after Flush: %v", org, got)
		}
	}
	for _, st := range f.g.Stats() {
		if st.Items != 0 {
			t.Errorf("%s holds %d entries after Flush", st.Name, st.Items)
		}
	}
	if f.secrets.Put(s, "A", Entry[string]{Owner: Owner{"A", app.Vapi}, Value: "v"}) {
		t.Error("a fill stamped before Flush was stored")
	}
	f.fillOrg(t, "A")
	if n := f.g.Invalidate("A", ""); n != 5 {
		t.Errorf("Invalidate after Flush and refill dropped %d, want 5", n)
	}
}

func TestTTL(t *testing.T) {
	tests := []struct {
		name  string
		e     Entry[string]
		ttl   time.Duration // how long the entry lives
		value bool
	}{
		{"the cache's TTL", Entry[string]{Owner: Owner{"A", app.Vapi}, Value: "v"}, testTTL, true},
		{"the entry's TTL", Entry[string]{Owner: Owner{"A", app.Vapi}, Value: "v", TTL: time.Second}, time.Second, true},
		{"a negative entry", Entry[string]{Negative: true, TTL: 5 * time.Second}, 5 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(Options{})
			f.secrets.Put(f.g.Stamp(), "k", tt.e)
			f.clock.Advance(tt.ttl - 1)
			if _, ok, hit := f.secrets.Get("k"); !hit || ok != tt.value {
				t.Errorf("just before expiry: ok %v, hit %v; want %v, true", ok, hit, tt.value)
			}
			f.clock.Advance(1)
			if v, ok, hit := f.secrets.Get("k"); hit || ok || v != "" {
				t.Errorf("at expiry: %q, ok %v, hit %v; want a miss", v, ok, hit)
			}
		})
	}
}

// TestSweep: expired entries leave memory (and the index) as entries keep
// being stored.
func TestSweep(t *testing.T) {
	f := newFixture(Options{})
	s := f.g.Stamp()
	for i := range 1000 {
		org := "org-" + strconv.Itoa(i)
		f.secrets.Put(s, org, Entry[string]{Owner: Owner{org, app.Vapi}, Value: "v", TTL: time.Second})
		f.secrets.Put(s, "neg-"+org, Entry[string]{Negative: true, TTL: time.Second})
	}
	f.secrets.Put(s, "lasting", Entry[string]{Owner: Owner{"L", app.Vapi}, Value: "v"})
	if st := f.secrets.Stats(); st.Items != 2001 || st.NegativeItems != 1000 {
		t.Fatalf("before expiry: %+v", st)
	}
	f.clock.Advance(time.Second)
	// Each Put sweeps one shard once its turn comes.
	for range shardCount {
		f.clock.Advance(f.secrets.sweepEvery / shardCount)
		f.secrets.Put(f.g.Stamp(), "lasting", Entry[string]{Owner: Owner{"L", app.Vapi}, Value: "v"})
	}
	if st := f.secrets.Stats(); st.Items != 1 || st.NegativeItems != 0 {
		t.Errorf("after the sweeps: %d items, %d negative; want 1, 0", st.Items, st.NegativeItems)
	}
	if len(f.secrets.index) != 1 {
		t.Errorf("the index lists %d orgs, want 1", len(f.secrets.index))
	}
}

func TestStats(t *testing.T) {
	f := newFixture(Options{})
	f.fillOrg(t, "A")
	f.mappings.Put(f.g.Stamp(), "unknown", Entry[string]{Negative: true})
	for _, k := range []string{"asst-A", "asst-A", "unknown", "asst-B"} {
		f.mappings.Get(k)
	}
	want := Stats{Name: "mappings", Hits: 3, Misses: 1, Items: 2, NegativeItems: 1}
	if got := f.mappings.Stats(); got != want {
		t.Errorf("Stats: %+v, want %+v", got, want)
	}
	if r := want.HitRate(); r != 0.75 {
		t.Errorf("HitRate %v, want 0.75", r)
	}
	if r := (Stats{}).HitRate(); r != 0 {
		t.Errorf("HitRate before any lookup %v, want 0", r)
	}
	f.g.Invalidate("A", app.Vapi)
	want = Stats{Name: "mappings", Hits: 3, Misses: 1}
	if got := f.mappings.Stats(); got != want {
		t.Errorf("Stats after Invalidate: %+v, want %+v", got, want)
	}
	names := []string{}
	for _, st := range f.g.Stats() {
		names = append(names, st.Name)
	}
	if got := len(names); got != 4 || names[0] != "configs" || names[3] != "mappings" {
		t.Errorf("Group.Stats names: %v", names)
	}
}

// TestForgetBeyondMaxRemembered: however fast invalidations come, the Group
// remembers at most maxRemembered of them, and refuses the fills that
// started before the oldest one it remembers.
func TestForgetBeyondMaxRemembered(t *testing.T) {
	f := newFixture(Options{})
	old := f.g.Stamp()
	for i := range maxRemembered + 10 {
		f.g.Invalidate("org-"+strconv.Itoa(i), app.Vapi)
	}
	if n := len(f.g.recent) - f.g.head; n > maxRemembered {
		t.Errorf("remembers %d invalidations, want at most %d", n, maxRemembered)
	}
	if len(f.g.byOrg) > maxRemembered || len(f.g.byOwner) > maxRemembered {
		t.Errorf("remembers %d orgs and %d owners, want at most %d", len(f.g.byOrg), len(f.g.byOwner), maxRemembered)
	}
	tests := []struct {
		name   string
		s      Stamp
		stored bool
	}{
		{"stamped before the oldest remembered", old, false},
		{"stamped now", f.g.Stamp(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Entry[string]{Owner: Owner{"never invalidated", app.Vapi}, Value: "v"}
			if got := f.secrets.Put(tt.s, tt.name, e); got != tt.stored {
				t.Errorf("Put: %v, want %v", got, tt.stored)
			}
		})
	}
}
