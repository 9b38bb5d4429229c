package auth

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"byoc/app"
	"byoc/app/orgcache"
)

// DefaultSessionTTL is how long SessionCache keeps a sign-in when nothing
// drops it earlier: the bound on how long a change could go unseen if a
// notification were lost without the listener noticing (a silent network
// failure is found by its health check within 30 s).
const DefaultSessionTTL = 10 * time.Second

// SessionCache is a Store that answers LoadSession from memory, so a
// signed-in request makes no database round trip while its sign-in is
// cached. Every other method is the wrapped Store's.
//
// A sign-in changed anywhere stops being served as soon as this instance
// hears of the change:
//   - The database announces every change of what LoadSession reads (a
//     membership or role, a user's session version or email, an org's name)
//     on the cache channel as app.AccountScope for each org concerned, by
//     triggers, whatever code made the change, when it commits. The
//     invalidation listener passes it to the cache group, which drops the
//     org's sign-ins (on every instance, typically within a millisecond or
//     two of the commit).
//   - The cache is used only while that listener receives (Listening(true)):
//     before it first listens, and from the moment its connection is found
//     lost until it listens again (the group is flushed then), every
//     LoadSession reads the database. Fail closed: no listener, no cache.
//   - A fill is stored only if no change of its org was announced since it
//     started (orgcache.Stamp), and entries expire after the TTL.
//   - A logout made through this instance (BumpSessionVersion) refuses the
//     user's cached sign-ins here at once, before its notification arrives.
//
// Not-found answers are never cached.
type SessionCache struct {
	Store
	g         *orgcache.Group
	rows      *orgcache.Cache[sessionKey, sessionRow]
	listening atomic.Bool
	ttl       time.Duration

	// revoked holds when each user's sessions were last revoked through
	// this instance (time.Time, monotonic), for ttl after it: a cached row
	// read before that is not served.
	revoked   sync.Map
	revokedMu sync.Mutex // serializes pruning
}

type sessionKey struct{ user, org string }

type sessionRow struct {
	email, orgName string
	role           app.Role
	version        int
	read           time.Time // when the fill that read it started
}

// NewSessionCache returns store with its sign-ins cached in g (the group
// the invalidation listener invalidates) for ttl (0: DefaultSessionTTL).
// It serves nothing from memory until Listening(true).
func NewSessionCache(store Store, g *orgcache.Group, ttl time.Duration) *SessionCache {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	return &SessionCache{
		Store: store,
		g:     g,
		rows:  orgcache.New[sessionKey, sessionRow](g, "sessions", ttl),
		ttl:   ttl,
	}
}

// Listening tells the cache whether the invalidation listener receives
// notifications now (see db.DB.ListenInvalidationsReporting).
func (c *SessionCache) Listening(on bool) { c.listening.Store(on) }

// LoadSession is Store.LoadSession, from memory when the sign-in is cached
// and the cache may be used.
func (c *SessionCache) LoadSession(ctx context.Context, userID, orgID string) (email, orgName string, role app.Role, sessionVersion int, err error) {
	if !c.listening.Load() {
		return c.Store.LoadSession(ctx, userID, orgID)
	}
	key := sessionKey{user: userID, org: orgID}
	if r, ok, _ := c.rows.Get(key); ok && !c.revokedSince(userID, r.read) {
		return r.email, r.orgName, r.role, r.version, nil
	}
	stamp, read := c.g.Stamp(), time.Now()
	email, orgName, role, sessionVersion, err = c.Store.LoadSession(ctx, userID, orgID)
	if err == nil && c.listening.Load() {
		c.rows.Put(stamp, key, orgcache.Entry[sessionRow]{
			Owner: orgcache.Owner{Org: orgID, Provider: app.AccountScope},
			Value: sessionRow{email: email, orgName: orgName, role: role, version: sessionVersion, read: read},
		})
	}
	return email, orgName, role, sessionVersion, err
}

// BumpSessionVersion is Store.BumpSessionVersion; from the moment it is
// called, no sign-in of the user cached before is served by this instance
// (other instances drop theirs when the change's notification reaches them).
func (c *SessionCache) BumpSessionVersion(ctx context.Context, userID string) error {
	c.revoke(userID)
	err := c.Store.BumpSessionVersion(ctx, userID)
	c.revoke(userID) // a fill that read the old version meanwhile is refused too
	return err
}

// revoke records that the user's sessions were revoked now, and forgets
// revocations older than the TTL (every row read before them has expired).
func (c *SessionCache) revoke(userID string) {
	now := time.Now()
	c.revoked.Store(userID, now)
	if !c.revokedMu.TryLock() {
		return
	}
	defer c.revokedMu.Unlock()
	c.revoked.Range(func(k, v any) bool {
		if now.Sub(v.(time.Time)) > c.ttl+time.Second {
			c.revoked.CompareAndDelete(k, v)
		}
		return true
	})
}

// revokedSince reports whether the user's sessions were revoked through this
// instance at or after read.
func (c *SessionCache) revokedSince(userID string, read time.Time) bool {
	v, ok := c.revoked.Load(userID)
	return ok && !v.(time.Time).Before(read)
}

// CacheStats counts the sign-in lookups the cache answered (Hits) and those
// that read the database while it could be used (Misses) since it was made,
// and the sign-ins it holds now.
type CacheStats struct {
	Hits, Misses uint64
	Items        int
}

// Stats returns the cache's counts.
func (c *SessionCache) Stats() CacheStats {
	st := c.rows.Stats()
	return CacheStats{Hits: st.Hits, Misses: st.Misses, Items: st.Items}
}
