package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/patrickmn/go-cache"
	"golang.org/x/sync/singleflight"

	"byoc/app"
	"byoc/app/orgcache"
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

// secretEntry is an org's cached webhook secret; own is false when the org
// has none (the default secret applies); unreadable is set when the org's
// stored Vapi credentials exist but cannot be decrypted; hmacOnly when only
// an HMAC signature authenticates the org's webhooks.
type secretEntry struct {
	own, unreadable, hmacOnly bool
	key                       secretKey
	// previous is the secret a rotation replaced, which verifies the
	// org's webhooks too before previousUntil (empty: none).
	previous      secretKey
	previousUntil time.Time
}

// orgKeys are what verifies one org's webhooks: its key, whether only an
// HMAC signature counts, and the key a rotation replaced with the end of
// its grace period (empty: none).
type orgKeys struct {
	key           secretKey
	hmacOnly      bool
	previous      secretKey
	previousUntil time.Time
}

// previousAt returns the replaced key when it still verifies at now.
func (k orgKeys) previousAt(now time.Time) (secretKey, bool) {
	return k.previous, k.previous.value != "" && now.Before(k.previousUntil)
}

// errSecretUnreadable refuses a delivery for an org whose stored webhook
// secret cannot be decrypted: its webhooks are never verified with the
// shared default secret instead.
var errSecretUnreadable = errors.New("the org's stored Vapi credentials cannot be decrypted, so its webhook secret is " +
	"unknown: the delivery is refused (503) until the operator restores the key (ENCRYPTION_KEY, " +
	"ENCRYPTION_KEYS_PREVIOUS) or the org saves its Vapi credentials again")

// table is a go-cache with hit and miss counts, for what no org owns (the
// deliveries already handled).
type table struct {
	*cache.Cache
	name         string
	hits, misses atomic.Uint64
}

func newTable(name string, ttl time.Duration) *table {
	return &table{Cache: cache.New(ttl, time.Minute), name: name}
}

// caches holds everything the warm path reads: assistant -> org (with
// short negative entries) and org -> webhook secret, both in the cache
// group that the credential service invalidates, owned by the org's Vapi
// credentials (so a change of them, here or on another instance, drops
// them, and a change of another org's credentials never does); then the
// deliveries already handled, and when each assistant's last_used_at was
// last written.
//
// Misses that reach the stores hold one of the group's lookup slots (see
// NewCacheGroup), so a flood of misses cannot exhaust the database pool.
// Whether an id is real is only known after its lookup, so no slot can be
// kept for real ids; instead ids that are not UUIDs never take a slot, an
// unknown id takes one at most once per NegativeTTL, a short queue of misses
// (a burst of first webhooks after a restart) waits its turn, and a miss
// that finds the queue full, or waits longer than LookupWait, fails (503:
// Vapi retries) instead of queueing behind a flood.
type caches struct {
	mappings   *orgcache.Cache[string, string]
	secrets    *orgcache.Cache[string, *secretEntry]
	deliveries *table
	touched    *cache.Cache
	lookups    singleflight.Group // deliveries handled once per instance

	fillMapping func(context.Context, string) (orgcache.Entry[string], error)
	fillSecret  func(context.Context, string) (orgcache.Entry[*secretEntry], error)
}

func newCaches(g *orgcache.Group, o Options) *caches {
	return &caches{
		mappings:   orgcache.New[string, string](g, "webhook_assistants", o.MappingTTL),
		secrets:    orgcache.New[string, *secretEntry](g, "webhook_secrets", o.SecretTTL),
		deliveries: newTable("delivery", o.DedupTTL),
		touched:    cache.New(o.TouchEvery, time.Minute),
	}
}

// resolve returns the org of a Vapi assistant, from the cache when it can.
// An id that is not a UUID (Vapi's ids are) is unknown without a lookup; an
// unknown id is remembered for NegativeTTL. It returns errUnknownAssistant,
// orgcache.ErrBusy when no lookup slot freed up in time, or an error (not
// cached) when the store cannot answer.
func (h *Handler) resolve(ctx context.Context, assistantID string) (string, error) {
	if !app.IsUUID(assistantID) {
		return "", errUnknownAssistant
	}
	orgID, known, err := h.caches.mappings.Load(ctx, assistantID, h.caches.fillMapping)
	if err != nil {
		return "", fmt.Errorf("resolve assistant: %w", err)
	}
	if !known {
		return "", errUnknownAssistant
	}
	return orgID, nil
}

// lookupMapping reads an assistant's org from the store.
func (h *Handler) lookupMapping(ctx context.Context, assistantID string) (orgcache.Entry[string], error) {
	h.stats.storeCalls.Add(1)
	m, err := h.deps.Mappings.ResolveAssistant(ctx, assistantID)
	switch {
	case err == nil:
		return orgcache.Entry[string]{Owner: orgcache.Owner{Org: m.OrgID, Provider: app.Vapi}, Value: m.OrgID}, nil
	case app.ErrorCode(err) == app.ENotFound:
		return orgcache.Entry[string]{Negative: true, TTL: h.opts.NegativeTTL}, nil
	}
	return orgcache.Entry[string]{}, err
}

// secret returns the key that verifies the org's webhooks and whether only
// an HMAC signature counts: its own webhook secret, or the default secret
// when it truly has none (no Vapi credentials, or credentials without a
// webhook secret). Stored credentials that cannot be decrypted fail closed
// with errSecretUnreadable: such an org may have a secret of its own, so
// the shared one must not stand in for it. The result, including "none",
// is cached for SecretTTL ("unreadable" for NegativeTTL), owned by the
// org's Vapi credentials, so a change of the secret or of the HMAC-only
// setting drops it.
//
// Each call is a credential read: counted in Options.Metrics and logged at
// debug level (the org, whether the cache answered, how long it took).
func (h *Handler) secret(ctx context.Context, orgID string) (key secretKey, hmacOnly bool, err error) {
	k, err := h.keys(ctx, orgID)
	return k.key, k.hmacOnly, err
}

// keys is secret with the replaced key of a rotation and its grace period.
func (h *Handler) keys(ctx context.Context, orgID string) (orgKeys, error) {
	var start time.Time
	debug := h.log.Enabled(ctx, slog.LevelDebug)
	if debug {
		start = time.Now()
	}
	e, _, hit, err := h.caches.secrets.LoadHit(ctx, orgID, h.caches.fillSecret)
	h.opts.Metrics.CredentialRead(hit)
	if debug {
		h.logRead(ctx, orgID, hit, start, err)
	}
	if err != nil {
		return orgKeys{}, fmt.Errorf("webhook secret: %w", err)
	}
	switch {
	case e.unreadable:
		return orgKeys{}, errSecretUnreadable
	case e.own:
		return orgKeys{key: e.key, hmacOnly: e.hmacOnly, previous: e.previous, previousUntil: e.previousUntil}, nil
	}
	return orgKeys{key: h.defaultKey, hmacOnly: e.hmacOnly}, nil
}

// logRead writes the debug line of one webhook secret read, as the
// credential service writes it for its reads. Never the secret.
func (h *Handler) logRead(ctx context.Context, orgID string, hit bool, start time.Time, err error) {
	cache := "miss"
	if hit {
		cache = "hit"
	}
	attrs := []slog.Attr{slog.String("org_id", orgID), slog.String("provider", string(app.Vapi)),
		slog.String("cache", cache), slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000)}
	if err != nil {
		attrs = append(attrs, slog.String("code", app.ErrorCode(err)))
	}
	h.log.LogAttrs(ctx, slog.LevelDebug, "credential read", attrs...)
}

// lookupSecret reads the org's webhook secret and HMAC-only setting from
// its credentials.
func (h *Handler) lookupSecret(ctx context.Context, orgID string) (orgcache.Entry[*secretEntry], error) {
	h.stats.storeCalls.Add(1)
	owner := orgcache.Owner{Org: orgID, Provider: app.Vapi}
	w, err := h.deps.Credentials.VapiWebhook(ctx, orgID)
	switch {
	case err == nil && !w.Secret.IsZero():
		e := &secretEntry{own: true, hmacOnly: w.HMACOnly, key: newSecretKey(w.Secret.Reveal())}
		switch {
		case !w.Previous.IsZero():
			e.previous, e.previousUntil = newSecretKey(w.Previous.Reveal()), w.PreviousUntil
		case !w.PreviousUntil.IsZero():
			// The org had no secret of its own before its rotation.
			e.previous, e.previousUntil = h.defaultKey, w.PreviousUntil
		}
		return orgcache.Entry[*secretEntry]{Owner: owner, Value: e}, nil
	case errors.Is(err, app.ErrUndecryptable):
		return orgcache.Entry[*secretEntry]{Owner: owner, Value: &secretEntry{unreadable: true}, TTL: h.opts.NegativeTTL}, nil
	case err == nil:
		return orgcache.Entry[*secretEntry]{Owner: owner, Value: &secretEntry{hmacOnly: w.HMACOnly}}, nil
	case app.ErrorCode(err) == app.ENotConfigured:
		return orgcache.Entry[*secretEntry]{Owner: owner, Value: &secretEntry{}}, nil
	}
	return orgcache.Entry[*secretEntry]{}, err
}

// CacheStats describes the handler's caches.
type CacheStats struct {
	// Mappings resolves assistant ids to orgs; NegativeItems of its Items
	// are ids known to be unknown.
	Mappings CacheCounts `json:"mappings"`
	// Secrets holds each org's webhook secret (or the fact it has none)
	// and HMAC-only setting.
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

func groupCounts(st orgcache.Stats) CacheCounts {
	return CacheCounts{Hits: st.Hits, Misses: st.Misses, HitRate: st.HitRate(), Items: st.Items, NegativeItems: st.NegativeItems}
}

// CacheStats returns the hit and miss counts and sizes of the caches.
func (h *Handler) CacheStats() CacheStats {
	c := h.caches
	return CacheStats{
		Mappings:   groupCounts(c.mappings.Stats()),
		Secrets:    groupCounts(c.secrets.Stats()),
		Deliveries: c.deliveries.counts(c.deliveries.ItemCount()),
	}
}
