package orgcache

import (
	"context"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"byoc/app"
)

const benchOrgs = 100_000

func orgName(i int) string { return "org-" + strconv.Itoa(i) }

// configsOf returns a cache in g holding a Vapi config for each of n orgs.
func configsOf(g *Group, n int) (*Cache[Owner, string], []Owner) {
	c := New[Owner, string](g, "configs", time.Hour)
	keys := make([]Owner, n)
	s := g.Stamp()
	for i := range keys {
		keys[i] = Owner{orgName(i), app.Vapi}
		c.Put(s, keys[i], Entry[string]{Owner: keys[i], Value: "config"})
	}
	return c, keys
}

// BenchmarkGetHit measures hits from every P at once: spread over 1,000 keys
// (which stay in the CPU caches) and 100,000 keys (each hit waits on main
// memory), and all on one key (one shard's lock).
func BenchmarkGetHit(b *testing.B) {
	g := NewGroup(Options{})
	c, keys := configsOf(g, benchOrgs)
	strs := New[string, string](g, "secrets", time.Hour)
	s := g.Stamp()
	for _, k := range keys {
		strs.Put(s, k.Org, Entry[string]{Owner: k, Value: "secret"})
	}
	b.Run("struct key, 1k keys", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(1000)
			for pb.Next() {
				i = (i + 7) % 1000
				if _, ok, _ := c.Get(keys[i]); !ok {
					b.Error("miss")
				}
			}
		})
	})
	b.Run("struct key, 100k keys", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(len(keys))
			for pb.Next() {
				i = (i + 7919) % len(keys)
				if _, ok, _ := c.Get(keys[i]); !ok {
					b.Error("miss")
				}
			}
		})
	})
	b.Run("string key, 100k keys", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(len(keys))
			for pb.Next() {
				i = (i + 7919) % len(keys)
				if _, ok, _ := strs.Get(keys[i].Org); !ok {
					b.Error("miss")
				}
			}
		})
	})
	b.Run("string key, one key", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, ok, _ := strs.Get("org-7"); !ok {
					b.Error("miss")
				}
			}
		})
	})
	b.Run("Load, struct key, 100k keys", func(b *testing.B) {
		fill := func(context.Context, Owner) (Entry[string], error) { panic("a fill on a warm cache") }
		ctx := context.Background()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(len(keys))
			for pb.Next() {
				i = (i + 7919) % len(keys)
				if _, ok, err := c.Load(ctx, keys[i], fill); !ok || err != nil {
					b.Error("miss")
				}
			}
		})
	})
}

// BenchmarkHitsUnderInvalidations reads random keys of 100,000 orgs through
// Load, quietly and while another goroutine invalidates 1,000 orgs a second:
// other orgs (which the readers never ask for), or the orgs the readers
// read. It reports the share of Loads answered from the cache (hits/op),
// and the invalidations per second actually sent.
func BenchmarkHitsUnderInvalidations(b *testing.B) {
	tests := []struct {
		name  string
		storm bool
		own   bool // the storm invalidates the orgs being read
	}{
		{"quiet", false, false},
		{"storm of other orgs", true, false},
		{"storm of the read orgs", true, true},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			g := NewGroup(Options{})
			c, keys := configsOf(g, benchOrgs)
			others := make([]string, 1000)
			s := g.Stamp()
			for i := range others {
				others[i] = "other-" + strconv.Itoa(i)
				o := Owner{others[i], app.Vapi}
				c.Put(s, o, Entry[string]{Owner: o, Value: "config"})
			}
			var fills atomic.Int64
			fill := func(_ context.Context, o Owner) (Entry[string], error) {
				fills.Add(1)
				return Entry[string]{Owner: o, Value: "config"}, nil
			}
			before := c.Stats()
			stop, stopped := make(chan struct{}), make(chan int)
			go func() {
				n := 0
				if tt.storm {
					// 1,000 a second on average: the goroutine may be
					// scheduled late, and then catches up.
					start := time.Now()
					for {
						select {
						case <-stop:
							stopped <- n
							return
						case <-time.After(time.Millisecond):
						}
						for due := int(time.Since(start) / time.Millisecond); n < due; n++ {
							if tt.own {
								g.Invalidate(orgName(rand.IntN(benchOrgs)), app.Vapi)
								continue
							}
							// Invalidated, and filled again, as the other
							// org's own requests would.
							o := Owner{others[n%len(others)], app.Vapi}
							g.Invalidate(o.Org, app.Vapi)
							c.Put(g.Stamp(), o, Entry[string]{Owner: o, Value: "config"})
						}
					}
				}
				<-stop
				stopped <- n
			}()
			ctx := context.Background()
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := rand.IntN(len(keys))
				for pb.Next() {
					i = (i + 7919) % len(keys)
					if _, _, err := c.Load(ctx, keys[i], fill); err != nil {
						b.Error(err)
					}
				}
			})
			b.StopTimer()
			close(stop)
			invalidations := <-stopped
			elapsed := time.Since(start)
			after := c.Stats()
			hits, misses := after.Hits-before.Hits, after.Misses-before.Misses
			b.ReportMetric(float64(hits)/float64(b.N), "hits/op")
			b.ReportMetric(float64(hits)/float64(hits+misses)*100, "hit%")
			b.ReportMetric(float64(invalidations)/elapsed.Seconds(), "inval/s")
			b.ReportMetric(float64(fills.Load())/float64(b.N), "fills/op")
		})
	}
}

// BenchmarkInvalidate measures one org's invalidation with 100,000 orgs
// cached in three caches: of an org with nothing cached, and of an org with
// three entries (filled again after each, as its next requests would).
func BenchmarkInvalidate(b *testing.B) {
	g := NewGroup(Options{})
	configs, keys := configsOf(g, benchOrgs)
	secrets := New[string, string](g, "secrets", time.Hour)
	statuses := New[string, string](g, "statuses", time.Hour)
	fill := func(org string) {
		s := g.Stamp()
		o := Owner{org, app.Vapi}
		configs.Put(s, o, Entry[string]{Owner: o, Value: "config"})
		secrets.Put(s, org, Entry[string]{Owner: o, Value: "secret"})
		statuses.Put(s, org, Entry[string]{Owner: Owner{Org: org}, Value: "statuses"})
	}
	for _, k := range keys {
		fill(k.Org)
	}
	b.Run("org with nothing cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g.Invalidate("no-such-org", "")
		}
	})
	b.Run("org with 3 entries, refilled", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			org := keys[i%len(keys)].Org
			if n := g.Invalidate(org, ""); n != 3 {
				b.Fatalf("dropped %d", n)
			}
			fill(org)
			i++
		}
	})
}

// BenchmarkMemoryPerEntry reports the heap one entry takes (a struct key of
// two strings, a string value, its owner and its row in the org index), the
// key and value strings themselves not counted.
func BenchmarkMemoryPerEntry(b *testing.B) {
	keys := make([]Owner, benchOrgs)
	for i := range keys {
		keys[i] = Owner{orgName(i), app.Vapi}
	}
	value := "config"
	var perEntry float64
	for b.Loop() {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		g := NewGroup(Options{})
		c := New[Owner, string](g, "configs", time.Hour)
		s := g.Stamp()
		for _, k := range keys {
			c.Put(s, k, Entry[string]{Owner: k, Value: value})
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		perEntry = float64(m1.HeapAlloc-m0.HeapAlloc) / benchOrgs
		runtime.KeepAlive(c)
	}
	b.ReportMetric(perEntry, "B/entry")
}
