package webhooks

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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

// errUnknownAssistant means no org has the assistant.
var errUnknownAssistant = errors.New("webhooks: unknown assistant")

// errLookupsBusy means every lookup slot stayed taken for LookupWait.
var errLookupsBusy = errors.New("webhooks: every store lookup slot is busy")

// mappingEntry is a cached resolution; orgID "" marks an unknown id.
type mappingEntry struct{ orgID string }

// secretEntry is an org's cached webhook secret; own is false when the org
// has none (the default secret applies); unreadable is set when the org's
// stored Vapi credentials exist but cannot be decrypted.
type secretEntry struct {
	own, unreadable bool
	key             secretKey
}

// errSecretUnreadable refuses a delivery for an org whose stored webhook
// secret cannot be decrypted: its webhooks are never verified with the
// shared default secret instead.
var errSecretUnreadable = errors.New("the org's stored Vapi credentials cannot be decrypted, so its webhook secret is " +
	"unknown: the delivery is refused (503) until the operator restores the key (ENCRYPTION_KEY, " +
	"ENCRYPTION_KEYS_PREVIOUS) or the org saves its Vapi credentials again")

// table is one cache and its hit and miss counts; name sets its shared
// lookups apart from those of the other tables.
type table struct {
	*cache.Cache
	name         string
	hits, misses atomic.Uint64
}

func newTable(name string, ttl time.Duration) *table {
	return &table{Cache: cache.New(ttl, time.Minute), name: name}
}

// caches holds everything the warm path reads: assistant -> org (with
// short negative entries), org -> webhook secret, deliveries already
// handled, and when each assistant's last_used_at was last written. A fill
// records the generation it started in and is dropped if an invalidation
// happened meanwhile, so a lookup that raced a disconnect never caches what
// the disconnect removed.
//
// Misses that reach the stores hold one of MaxConcurrentLookups slots, so a
// flood of misses cannot exhaust the database pool. Whether an id is real is
// only known after its lookup, so no slot can be kept for real ids; instead
// ids that are not UUIDs never take a slot, an unknown id takes one at most
// once per NegativeTTL, and a miss that finds every slot taken for
// LookupWait fails (503: Vapi retries) instead of queueing. The queue before
// the slots thus holds at most LookupWait of work and the slots keep serving
// at the database's pace: under a flood of random UUIDs every miss, real or
// not, gets a slot soon or is refused at once, rather than every miss
// waiting seconds behind the flood.
type caches struct {
	mu  sync.Mutex // orders fills against invalidations
	gen atomic.Uint64

	mappings   *table
	secrets    *table
	deliveries *table
	touched    *cache.Cache
	lookups    singleflight.Group
	sem        chan struct{} // bounds concurrent lookups that reach the stores
	lookupWait time.Duration

	mappingTTL, negativeTTL time.Duration
}

func newCaches(o Options) *caches {
	return &caches{
		mappings:    newTable("assistant", o.MappingTTL),
		secrets:     newTable("secret", o.SecretTTL),
		deliveries:  newTable("delivery", o.DedupTTL),
		touched:     cache.New(o.TouchEvery, time.Minute),
		sem:         make(chan struct{}, o.MaxConcurrentLookups),
		lookupWait:  o.LookupWait,
		mappingTTL:  o.MappingTTL,
		negativeTTL: o.NegativeTTL,
	}
}

// put stores v under key in t unless the generation moved since gen.
func (c *caches) put(t *table, key string, v any, ttl time.Duration, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() == gen {
		t.Set(key, v, ttl)
	}
}

// acquire takes a lookup slot. It fails with errLookupsBusy when none frees
// up within lookupWait, or when ctx ends first.
func (c *caches) acquire(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	default:
	}
	wait := time.NewTimer(c.lookupWait)
	defer wait.Stop()
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-wait.C:
		return errLookupsBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *caches) release() { <-c.sem }

// lookupTimeout bounds one shared lookup: it runs detached from the request
// that started it, since other requests wait for its answer.
const lookupTimeout = 5 * time.Second

// load returns the entry cached in t under key, or fills it: concurrent
// misses of one key in one cache generation share a single call of fill,
// which runs detached from ctx (at most lookupTimeout) while holding a lookup
// slot, and whose entry is cached for the TTL it returns unless an
// invalidation happened meanwhile. A miss after an invalidation never shares
// the answer of a fill that started before it. It returns fill's error (not
// cached), errLookupsBusy, or ctx's error.
func load[E any](ctx context.Context, c *caches, t *table, key string, fill func(context.Context) (E, time.Duration, error)) (E, error) {
	var none E
	if v, ok := t.Get(key); ok {
		t.hits.Add(1)
		return v.(E), nil
	}
	t.misses.Add(1)
	// The shared lookup is keyed by the generation too: a miss that comes
	// after an invalidation never joins a lookup that started before it
	// (whose answer may be what the invalidation removed), but starts its
	// own. A lookup only caches its answer if the generation it is keyed by
	// is still current.
	gen := c.gen.Load()
	ch := c.lookups.DoChan(t.name+"\x00"+strconv.FormatUint(gen, 10)+"\x00"+key, func() (any, error) {
		// Checked again: the flight that filled the cache may have ended
		// between the miss above and this call.
		if v, ok := t.Get(key); ok {
			return v, nil
		}
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
		defer cancel()
		if err := c.acquire(lctx); err != nil {
			return nil, err
		}
		defer c.release()
		e, ttl, err := fill(lctx)
		if err != nil {
			return nil, err
		}
		c.put(t, key, e, ttl, gen)
		return e, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return none, res.Err
		}
		return res.Val.(E), nil
	case <-ctx.Done():
		return none, ctx.Err()
	}
}

// resolve returns the org of a Vapi assistant, from the cache when it can.
// An id that is not a UUID (Vapi's ids are) is unknown without a lookup; an
// unknown id is remembered for NegativeTTL. It returns errUnknownAssistant,
// or an error (not cached) when the store cannot answer.
func (h *Handler) resolve(ctx context.Context, assistantID string) (string, error) {
	if !app.IsUUID(assistantID) {
		return "", errUnknownAssistant
	}
	c := h.caches
	e, err := load(ctx, c, c.mappings, assistantID, func(ctx context.Context) (*mappingEntry, time.Duration, error) {
		h.stats.storeCalls.Add(1)
		m, err := h.deps.Mappings.ResolveAssistant(ctx, assistantID)
		switch {
		case err == nil:
			return &mappingEntry{orgID: m.OrgID}, c.mappingTTL, nil
		case app.ErrorCode(err) == app.ENotFound:
			return &mappingEntry{}, c.negativeTTL, nil
		}
		return nil, 0, err
	})
	if err != nil {
		return "", fmt.Errorf("resolve assistant: %w", err)
	}
	if e.orgID == "" {
		return "", errUnknownAssistant
	}
	return e.orgID, nil
}

// secret returns the key that verifies the org's webhooks: its own webhook
// secret, or the default secret when it truly has none (no Vapi credentials,
// or credentials without a webhook secret). Stored credentials that cannot
// be decrypted fail closed with errSecretUnreadable: such an org may have a
// secret of its own, so the shared one must not stand in for it. The
// result, including "none", is cached for SecretTTL ("unreadable" for
// NegativeTTL).
func (h *Handler) secret(ctx context.Context, orgID string) (secretKey, error) {
	c := h.caches
	e, err := load(ctx, c, c.secrets, orgID, func(ctx context.Context) (*secretEntry, time.Duration, error) {
		h.stats.storeCalls.Add(1)
		cfg, err := h.deps.Credentials.Vapi(ctx, orgID)
		switch {
		case err == nil && !cfg.WebhookSecret.IsZero():
			return &secretEntry{own: true, key: newSecretKey(cfg.WebhookSecret.Reveal())}, cache.DefaultExpiration, nil
		case errors.Is(err, app.ErrUndecryptable):
			return &secretEntry{unreadable: true}, c.negativeTTL, nil
		case err == nil || app.ErrorCode(err) == app.ENotConfigured:
			return &secretEntry{}, cache.DefaultExpiration, nil
		}
		return nil, 0, err
	})
	if err != nil {
		return secretKey{}, fmt.Errorf("webhook secret: %w", err)
	}
	if e.unreadable {
		return secretKey{}, errSecretUnreadable
	}
	if e.own {
		return e.key, nil
	}
	return h.defaultKey, nil
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

func (t *table) counts(items int) CacheCounts {
	cc := CacheCounts{Hits: t.hits.Load(), Misses: t.misses.Load(), Items: items}
	if cc.Hits+cc.Misses > 0 {
		cc.HitRate = float64(cc.Hits) / float64(cc.Hits+cc.Misses)
	}
	return cc
}

// CacheStats returns the hit and miss counts and sizes of the caches.
func (h *Handler) CacheStats() CacheStats {
	c := h.caches
	items := c.mappings.Items()
	m := c.mappings.counts(len(items))
	for _, it := range items {
		if it.Object.(*mappingEntry).orgID == "" {
			m.NegativeItems++
		}
	}
	return CacheStats{
		Mappings:   m,
		Secrets:    c.secrets.counts(c.secrets.ItemCount()),
		Deliveries: c.deliveries.counts(c.deliveries.ItemCount()),
	}
}
