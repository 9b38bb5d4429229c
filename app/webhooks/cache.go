package webhooks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patrickmn/go-cache"
	"golang.org/x/sync/singleflight"

	"byoc/app"
)

// Default cache lifetimes.
const (
	DefaultMappingTTL  = 10 * time.Minute
	DefaultNegativeTTL = 30 * time.Second
	DefaultSecretTTL   = 5 * time.Minute
	DefaultDedupTTL    = 10 * time.Minute
	DefaultTouchEvery  = time.Minute
)

// maxAssistantIDBytes bounds the ids worth looking up: Vapi's are UUIDs.
const maxAssistantIDBytes = 128

// errUnknownAssistant means no org has the assistant.
var errUnknownAssistant = errors.New("webhooks: unknown assistant")

// mappingEntry is a cached resolution; orgID "" marks an unknown id.
type mappingEntry struct{ orgID string }

// secretEntry is an org's cached webhook secret; own is false when the org
// has none (the default secret applies).
type secretEntry struct {
	own bool
	key secretKey
}

// caches holds everything the warm path reads: assistant -> org (with
// short negative entries), org -> webhook secret, deliveries already
// handled, and when each assistant's last_used_at was last written. A fill
// records the generation it started in and is dropped if an invalidation
// happened meanwhile, so a lookup that raced a disconnect never caches what
// the disconnect removed.
type caches struct {
	mu  sync.Mutex // orders fills against invalidations
	gen atomic.Uint64

	mappings   *cache.Cache
	secrets    *cache.Cache
	deliveries *cache.Cache
	touched    *cache.Cache
	lookups    singleflight.Group
	sem        chan struct{} // bounds concurrent lookups that reach the stores

	mappingTTL, negativeTTL time.Duration

	mappingHits, mappingMisses   atomic.Uint64
	secretHits, secretMisses     atomic.Uint64
	deliveryHits, deliveryMisses atomic.Uint64
}

func newCaches(o Options) *caches {
	return &caches{
		mappings:    cache.New(o.MappingTTL, time.Minute),
		secrets:     cache.New(o.SecretTTL, time.Minute),
		deliveries:  cache.New(o.DedupTTL, time.Minute),
		touched:     cache.New(o.TouchEvery, time.Minute),
		sem:         make(chan struct{}, o.MaxConcurrentLookups),
		mappingTTL:  o.MappingTTL,
		negativeTTL: o.NegativeTTL,
	}
}

// put stores v under key in c unless the generation moved since gen.
func (c *caches) put(cc *cache.Cache, key string, v any, ttl time.Duration, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() == gen {
		cc.Set(key, v, ttl)
	}
}

// acquire takes a lookup slot, or fails when ctx ends first.
func (c *caches) acquire(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *caches) release() { <-c.sem }

// lookupTimeout bounds one shared lookup: it runs detached from the request
// that started it, since other requests wait for its answer.
const lookupTimeout = 5 * time.Second

// resolve returns the org of a Vapi assistant, from the cache when it can.
// Concurrent misses for one id share a single store query; an unknown id is
// remembered for NegativeTTL. It returns errUnknownAssistant, or the store's
// error (not cached).
func (h *Handler) resolve(ctx context.Context, assistantID string) (string, error) {
	c := h.caches
	if len(assistantID) > maxAssistantIDBytes {
		return "", errUnknownAssistant
	}
	if v, ok := c.mappings.Get(assistantID); ok {
		c.mappingHits.Add(1)
		return orgOf(v.(*mappingEntry))
	}
	c.mappingMisses.Add(1)
	ch := c.lookups.DoChan("a\x00"+assistantID, func() (any, error) {
		// Checked again: the flight that filled the cache may have ended
		// between the miss above and this call.
		if v, ok := c.mappings.Get(assistantID); ok {
			return v, nil
		}
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
		defer cancel()
		if err := c.acquire(lctx); err != nil {
			return nil, err
		}
		defer c.release()
		gen := c.gen.Load()
		h.stats.storeCalls.Add(1)
		m, err := h.deps.Mappings.ResolveAssistant(lctx, assistantID)
		switch {
		case err == nil:
			e := &mappingEntry{orgID: m.OrgID}
			c.put(c.mappings, assistantID, e, c.mappingTTL, gen)
			return e, nil
		case app.ErrorCode(err) == app.ENotFound:
			e := &mappingEntry{}
			c.put(c.mappings, assistantID, e, c.negativeTTL, gen)
			return e, nil
		}
		return nil, err
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return "", fmt.Errorf("resolve assistant: %w", res.Err)
		}
		return orgOf(res.Val.(*mappingEntry))
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func orgOf(e *mappingEntry) (string, error) {
	if e.orgID == "" {
		return "", errUnknownAssistant
	}
	return e.orgID, nil
}

// secret returns the key that verifies the org's webhooks: its own webhook
// secret, or the default secret when it has none (ENotConfigured counts as
// none). The result, including "none", is cached for SecretTTL.
func (h *Handler) secret(ctx context.Context, orgID string) (secretKey, error) {
	c := h.caches
	if v, ok := c.secrets.Get(orgID); ok {
		c.secretHits.Add(1)
		return h.keyOf(v.(*secretEntry)), nil
	}
	c.secretMisses.Add(1)
	ch := c.lookups.DoChan("s\x00"+orgID, func() (any, error) {
		if v, ok := c.secrets.Get(orgID); ok {
			return v, nil
		}
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
		defer cancel()
		if err := c.acquire(lctx); err != nil {
			return nil, err
		}
		defer c.release()
		gen := c.gen.Load()
		h.stats.storeCalls.Add(1)
		cfg, err := h.deps.Credentials.Vapi(lctx, orgID)
		e := &secretEntry{}
		switch {
		case err == nil:
			if !cfg.WebhookSecret.IsZero() {
				e = &secretEntry{own: true, key: newSecretKey(cfg.WebhookSecret.Reveal())}
			}
		case app.ErrorCode(err) == app.ENotConfigured:
		default:
			return nil, err
		}
		c.put(c.secrets, orgID, e, cache.DefaultExpiration, gen)
		return e, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return secretKey{}, fmt.Errorf("webhook secret: %w", res.Err)
		}
		return h.keyOf(res.Val.(*secretEntry)), nil
	case <-ctx.Done():
		return secretKey{}, ctx.Err()
	}
}

func (h *Handler) keyOf(e *secretEntry) secretKey {
	if e.own {
		return e.key
	}
	return h.defaultKey
}

// InvalidateOrg drops what the handler caches for the org: its assistant
// mappings and its webhook secret, and with them every negative entry (an
// id unknown a moment ago may just have been mapped to this org). It returns
// how many entries it dropped. Call it when the org's Vapi credentials or
// assistants change, here or on another instance (see Invalidate).
// Deliveries already handled stay remembered.
func (h *Handler) InvalidateOrg(orgID string) int {
	if orgID == "" {
		return 0
	}
	c := h.caches
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	n := 0
	for id, it := range c.mappings.Items() {
		if e := it.Object.(*mappingEntry); e.orgID == orgID || e.orgID == "" {
			c.mappings.Delete(id)
			n++
		}
	}
	if _, ok := c.secrets.Get(orgID); ok {
		n++
	}
	c.secrets.Delete(orgID)
	return n
}

// Invalidate applies a cache invalidation as the database announces it
// (org, provider): one for provider "vapi" or "" (every provider) drops the
// org's entries, as InvalidateOrg; others change nothing here. It returns
// how many entries it dropped.
func (h *Handler) Invalidate(orgID, provider string) int {
	if provider != "" && provider != string(app.Vapi) {
		return 0
	}
	return h.InvalidateOrg(orgID)
}

// Flush drops every cached mapping and secret, as after the invalidation
// listener reconnects (notifications may have been missed). Deliveries
// already handled stay remembered.
func (h *Handler) Flush() {
	c := h.caches
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	c.mappings.Flush()
	c.secrets.Flush()
}

// CacheStats describes the handler's caches.
type CacheStats struct {
	// Mappings resolves assistant ids to orgs; NegativeItems of its Items
	// are ids known to be unknown.
	Mappings CacheCounts `json:"mappings"`
	// Secrets holds each org's webhook secret (or the fact it has none).
	Secrets CacheCounts `json:"secrets"`
	// Deliveries remembers deliveries already handled: a hit is a duplicate
	// caught without the database.
	Deliveries CacheCounts `json:"deliveries"`
}

// CacheCounts counts one cache's lookups since the handler started and the
// entries it holds now (expired entries count until the next cleanup, at
// most a minute later).
type CacheCounts struct {
	Hits          uint64  `json:"hits"`
	Misses        uint64  `json:"misses"`
	HitRate       float64 `json:"hitRate"` // hits / (hits + misses); 0 before any lookup
	Items         int     `json:"items"`
	NegativeItems int     `json:"negativeItems,omitempty"`
}

func counts(hits, misses uint64, items int) CacheCounts {
	cc := CacheCounts{Hits: hits, Misses: misses, Items: items}
	if hits+misses > 0 {
		cc.HitRate = float64(hits) / float64(hits+misses)
	}
	return cc
}

// CacheStats returns the hit and miss counts and sizes of the caches.
func (h *Handler) CacheStats() CacheStats {
	c := h.caches
	items := c.mappings.Items()
	m := counts(c.mappingHits.Load(), c.mappingMisses.Load(), len(items))
	for _, it := range items {
		if it.Object.(*mappingEntry).orgID == "" {
			m.NegativeItems++
		}
	}
	return CacheStats{
		Mappings:   m,
		Secrets:    counts(c.secretHits.Load(), c.secretMisses.Load(), c.secrets.ItemCount()),
		Deliveries: counts(c.deliveryHits.Load(), c.deliveryMisses.Load(), c.deliveries.ItemCount()),
	}
}
