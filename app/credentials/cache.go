package credentials

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/patrickmn/go-cache"

	"byoc/app"
)

// Stats describes the service's two caches.
type Stats struct {
	Configs  CacheStats
	Statuses CacheStats
}

// CacheStats counts one cache's lookups since the service started and the
// entries it holds now (expired entries count until the next cleanup).
type CacheStats struct {
	Hits   uint64
	Misses uint64
	Items  int
}

// cacheLayer holds decrypted configs per (org, provider) and statuses per
// org. A fill records the generation it started in and is dropped if an
// invalidation happened meanwhile, so a read that raced a write never
// caches what the write replaced.
type cacheLayer struct {
	mu       sync.Mutex // orders fills against invalidations
	gen      atomic.Uint64
	configs  *cache.Cache
	statuses *cache.Cache

	configHits, configMisses, statusHits, statusMisses atomic.Uint64
}

func newCacheLayer(configTTL, statusTTL time.Duration) *cacheLayer {
	return &cacheLayer{
		configs:  cache.New(configTTL, configTTL),
		statuses: cache.New(statusTTL, statusTTL),
	}
}

func configKey(orgID string, p app.Provider) string { return orgID + "/" + string(p) }

func (c *cacheLayer) generation() uint64 { return c.gen.Load() }

func (c *cacheLayer) getConfig(key string) (app.Config, bool) {
	if v, ok := c.configs.Get(key); ok {
		c.configHits.Add(1)
		return v.(app.Config), true
	}
	c.configMisses.Add(1)
	return nil, false
}

func (c *cacheLayer) putConfig(key string, cfg app.Config, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() == gen {
		c.configs.SetDefault(key, cfg)
	}
}

func (c *cacheLayer) getStatuses(orgID string) ([]app.Status, bool) {
	if v, ok := c.statuses.Get(orgID); ok {
		c.statusHits.Add(1)
		return v.([]app.Status), true
	}
	c.statusMisses.Add(1)
	return nil, false
}

func (c *cacheLayer) putStatuses(orgID string, st []app.Status, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() == gen {
		c.statuses.SetDefault(orgID, st)
	}
}

// Invalidate drops the cached config of the org's provider (every provider
// when provider is "") and the org's cached statuses, then tells every
// subscriber (Options.Subscribers), and returns how many entries were
// dropped in all. An empty orgID drops nothing. It is the one entry point of
// a credential change: the service's writes call it, and so does the
// database's invalidation listener for each notification.
func (s *Service) Invalidate(orgID, provider string) int {
	if orgID == "" {
		return 0
	}
	n := s.cache.invalidate(orgID, app.Provider(provider))
	for _, sub := range s.subscribers {
		n += sub.Invalidate(orgID, provider)
	}
	return n
}

func (c *cacheLayer) invalidate(orgID string, provider app.Provider) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	n := 0
	drop := func(cc *cache.Cache, key string) {
		if _, ok := cc.Get(key); ok {
			n++
		}
		cc.Delete(key)
	}
	if provider == "" {
		for _, p := range app.Providers {
			drop(c.configs, configKey(orgID, p))
		}
	} else {
		drop(c.configs, configKey(orgID, provider))
	}
	drop(c.statuses, orgID)
	return n
}

// Flush drops every cached entry, here and in every subscriber. The
// invalidation listener calls it after reconnecting, since notifications
// may have been missed.
func (s *Service) Flush() {
	c := s.cache
	c.mu.Lock()
	c.gen.Add(1)
	c.configs.Flush()
	c.statuses.Flush()
	c.mu.Unlock()
	for _, sub := range s.subscribers {
		sub.Flush()
	}
}

// Stats returns the hit and miss counts and current sizes of the caches.
func (s *Service) Stats() Stats {
	c := s.cache
	return Stats{
		Configs:  CacheStats{Hits: c.configHits.Load(), Misses: c.configMisses.Load(), Items: c.configs.ItemCount()},
		Statuses: CacheStats{Hits: c.statusHits.Load(), Misses: c.statusMisses.Load(), Items: c.statuses.ItemCount()},
	}
}
