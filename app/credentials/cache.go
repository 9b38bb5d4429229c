package credentials

import (
	"time"

	"byoc/app"
	"byoc/app/orgcache"
)

// Stats describes the service's two caches.
type Stats struct {
	Configs  CacheStats
	Statuses CacheStats
}

// CacheStats counts one cache's lookups since the service started and the
// entries it holds now (expired entries count until they are swept).
type CacheStats struct {
	Hits   uint64
	Misses uint64
	Items  int
}

// cacheLayer holds decrypted configs per (org, provider), owned by that
// provider's credentials, and statuses per org, owned by all of the org's
// credentials, in the service's cache group. A fill is stamped before it
// reads the store and is not kept if its own org's credentials changed
// meanwhile, so a read that raced a write never caches what the write
// replaced; writes to other orgs never discard it.
type cacheLayer struct {
	g        *orgcache.Group
	configs  *orgcache.Cache[orgcache.Owner, app.Config]
	statuses *orgcache.Cache[string, []app.Status]
}

func newCacheLayer(g *orgcache.Group, configTTL, statusTTL time.Duration) *cacheLayer {
	return &cacheLayer{
		g:        g,
		configs:  orgcache.New[orgcache.Owner, app.Config](g, "credential_configs", configTTL),
		statuses: orgcache.New[string, []app.Status](g, "credential_statuses", statusTTL),
	}
}

func configKey(orgID string, p app.Provider) orgcache.Owner {
	return orgcache.Owner{Org: orgID, Provider: p}
}

func (c *cacheLayer) getConfig(key orgcache.Owner) (app.Config, bool) {
	v, ok, _ := c.configs.Get(key)
	return v, ok
}

func (c *cacheLayer) putConfig(key orgcache.Owner, cfg app.Config, since orgcache.Stamp) {
	c.configs.Put(since, key, orgcache.Entry[app.Config]{Owner: key, Value: cfg})
}

func (c *cacheLayer) getStatuses(orgID string) ([]app.Status, bool) {
	v, ok, _ := c.statuses.Get(orgID)
	return v, ok
}

func (c *cacheLayer) putStatuses(orgID string, st []app.Status, since orgcache.Stamp) {
	c.statuses.Put(since, orgID, orgcache.Entry[[]app.Status]{Owner: orgcache.Owner{Org: orgID}, Value: st})
}

// Invalidate drops what every cache of the service's group holds for the
// org's provider (every provider when provider is "") — the decrypted
// configs and statuses here, and the webhook routing's mappings and secrets
// when it shares the group — and returns how many entries were dropped;
// provider app.StatusScope drops only the org's statuses. An empty orgID
// drops nothing. It is the one entry point of a credential
// change: the service's writes call it, and so does the database's
// invalidation listener for each notification.
func (s *Service) Invalidate(orgID, provider string) int {
	return s.cache.g.Invalidate(orgID, app.Provider(provider))
}

// Flush drops every entry of every cache of the group. The invalidation
// listener calls it after reconnecting, since notifications may have been
// missed.
func (s *Service) Flush() { s.cache.g.Flush() }

// Stats returns the hit and miss counts and current sizes of the caches.
func (s *Service) Stats() Stats {
	count := func(st orgcache.Stats) CacheStats {
		return CacheStats{Hits: st.Hits, Misses: st.Misses, Items: st.Items}
	}
	return Stats{Configs: count(s.cache.configs.Stats()), Statuses: count(s.cache.statuses.Stats())}
}
