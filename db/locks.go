package db

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Per-org locks: PostgreSQL session advisory locks, so they hold across
// every instance, taken on a small pool of their own so that lock traffic
// never takes a connection from the work it guards.
//
// A session holds any number of advisory locks, so the lock connections are
// shared: a caller borrows one for the query that takes its lock and again
// for the one that releases it, and holds none while its fn runs. However
// many orgs hold a lock, and however long their fn takes (a provider that
// answers slowly), callers for other orgs get theirs at once. A caller
// waiting for a taken lock holds no connection either: it asks with
// pg_try_advisory_lock and, when the lock is taken, tries again after a
// short jittered pause.
//
// Advisory locks belong to a server session: they need a direct or
// session-mode connection, never a transaction-mode pooler. When a lock
// connection breaks, PostgreSQL ends its session and every lock it held, as
// it would for a connection pinned by one holder.

// LockMaxConns is the most connections the pool that holds WithOrgLock's
// advisory locks opens. Each of them holds any number of locks; more than
// one only spreads the queries that take and release them.
const LockMaxConns int32 = 8

// Lock timings: the first pause between two tries for a taken lock, the
// longest pause, and how long a query on a lock connection (taking or
// releasing a lock, including the wait for its turn on the connection)
// may take.
const (
	lockMinBackoff    = 5 * time.Millisecond
	lockMaxBackoff    = 200 * time.Millisecond
	lockUnlockTimeout = 5 * time.Second
)

var (
	errLockPoolClosed = errors.New("the DB is closed")
	errLockNoTurn     = errors.New("no turn on the lock connection")
)

// Queries of the lock connections.
const (
	sqlTryLock = `select pg_try_advisory_lock(hashtextextended($1, 0))`
	sqlUnlock  = `select pg_advisory_unlock(hashtextextended($1, 0))`
)

// lockPool is the DB's pool for advisory locks and the record of which of
// its connections holds which key. Open builds the pool; a DB built without
// Open gets one from its work pool's settings on first use.
type lockPool struct {
	once sync.Once
	pool *pgxpool.Pool
	err  error

	mu sync.Mutex
	// conns are the connections taken from pool: each holds locks or runs
	// (or waits to run) a query.
	conns []*lockConn
	// owners maps each key this DB holds, or is asking for, to its
	// connection (nil while a connection is being acquired for it).
	owners map[string]*lockConn
	// opening counts the connections being acquired.
	opening int32
}

// lockConn is a connection of the lock pool shared by the locks it holds.
type lockConn struct {
	turn chan struct{} // holds a token while a query runs on conn
	conn *pgxpool.Conn
	// The fields below are guarded by lockPool.mu.
	locks  int  // keys held on conn
	users  int  // callers running or waiting to run a query on conn
	broken bool // a query failed: conn may hold locks nobody tracks; never chosen again, closed once unused
}

// newLockPool builds the lock pool from the work pool's settings.
func newLockPool(ctx context.Context, cfg *pgxpool.Config) (*pgxpool.Pool, error) {
	c := cfg.Copy()
	c.MaxConns = LockMaxConns
	c.MinConns = 0
	c.MinIdleConns = 0
	if name := c.ConnConfig.RuntimeParams["application_name"]; name != "" {
		c.ConnConfig.RuntimeParams["application_name"] = name + "-locks"
	}
	return pgxpool.NewWithConfig(ctx, c)
}

// LockStat returns the figures of the pool that holds WithOrgLock's
// advisory locks (AcquiredConns counts the connections holding a lock or
// running a lock query), or nil when that pool cannot be made.
func (d *DB) LockStat() *pgxpool.Stat {
	if d.locks.get(context.Background(), d) != nil {
		return nil
	}
	return d.locks.pool.Stat()
}

func (l *lockPool) init(p *pgxpool.Pool) { l.once.Do(func() { l.pool = p }) }

func (l *lockPool) get(ctx context.Context, d *DB) error {
	l.once.Do(func() { l.pool, l.err = newLockPool(ctx, d.Pool.Config()) })
	return l.err
}

func (l *lockPool) close() {
	l.once.Do(func() { l.err = errLockPoolClosed })
	if l.pool != nil {
		l.pool.Close()
	}
}

// WithOrgLock runs fn while holding a PostgreSQL advisory lock named by
// (orgID, name), so the same work for the same org never runs twice at once,
// on this instance or any other. The lock is released when fn returns, also
// when fn fails or panics.
//
// Locks are held on a dedicated pool of at most LockMaxConns connections,
// each holding the locks of any number of callers, so neither holders nor
// waiters take connections from DB.Pool, which fn uses, and a holder whose
// fn takes long never delays callers for other orgs or names. Waiting holds
// no connection: a taken lock is tried again after a jittered pause (5 ms,
// doubling up to 200 ms). A lock may be taken inside fn for another
// (orgID, name); the same one would wait for itself until ctx ends.
//
// It returns fn's error unchanged, or an EUnavailable error wrapping
// ctx.Err() when ctx ends while waiting, or a database error (EUnavailable
// when the database cannot be used). It never waits for the database past
// ctx's end: a lock query still running then finishes (and its lock is
// released) in the background.
func (d *DB) WithOrgLock(ctx context.Context, orgID, name string, fn func(context.Context) error) error {
	key := orgID + "/" + name
	if err := d.locks.get(ctx, d); err != nil {
		return unavailable(fmt.Errorf("db: lock %s: %w", name, err))
	}
	backoff := lockMinBackoff
	for {
		lc, err := d.locks.tryLockWithin(ctx, key)
		if err != nil {
			return unavailable(fmt.Errorf("db: lock %s: %w", name, err))
		}
		if lc != nil {
			defer d.locks.unlockWithin(ctx, lc, key)
			return fn(ctx)
		}
		if !sleepCtx(ctx, jitter(backoff)) {
			return unavailable(fmt.Errorf("db: lock %s: %w", name, ctx.Err()))
		}
		backoff = min(2*backoff, lockMaxBackoff)
	}
}

// tryLockWithin is tryLock within ctx's time: when ctx ends first, it
// returns ctx's error at once, and a lock the query still takes is released
// as soon as it is taken. (The query itself is not cancelled: that would
// break the connection and end every lock held on it.)
func (l *lockPool) tryLockWithin(ctx context.Context, key string) (*lockConn, error) {
	type result struct {
		lc  *lockConn
		err error
	}
	done := make(chan result, 1)
	go func() {
		lc, err := l.tryLock(ctx, key)
		done <- result{lc, err}
	}()
	select {
	case r := <-done:
		return r.lc, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.lc != nil {
				l.unlock(ctx, r.lc, key)
			}
		}()
		return nil, ctx.Err()
	}
}

// unlockWithin is unlock, waited for only while ctx lasts: when ctx ends
// first, the lock is released in the background (within lockUnlockTimeout)
// and the caller goes on, so a slow database never holds a request past
// its deadline. Until then, a caller asking for the same lock waits as for
// any taken lock.
func (l *lockPool) unlockWithin(ctx context.Context, lc *lockConn, key string) {
	released := make(chan struct{})
	go func() {
		defer close(released)
		l.unlock(ctx, lc, key)
	}()
	select {
	case <-released:
	case <-ctx.Done():
	}
}

// tryLock takes the advisory lock of key and returns the connection that
// holds it, or nil (and no error) when this DB or another session holds it.
func (l *lockPool) tryLock(ctx context.Context, key string) (*lockConn, error) {
	lc, ok, err := l.reserve(ctx, key)
	if err != nil || !ok {
		return nil, err
	}
	got, err := lc.query(ctx, sqlTryLock, key)
	l.mu.Lock()
	lc.users--
	switch {
	case err == nil && got:
		lc.locks++
	case err != nil && !errors.Is(err, errLockNoTurn):
		// The lock may have been taken without the answer arriving: the
		// connection must not hand it to anyone, nor go back to the pool.
		lc.broken = true
		fallthrough
	default:
		delete(l.owners, key)
	}
	done := l.settle(lc)
	l.mu.Unlock()
	done()
	if err != nil {
		return nil, err
	}
	if !got {
		return nil, nil
	}
	return lc, nil
}

// reserve records key as being taken by this DB and returns the connection
// to take it on: one no query is using, else a new one while the pool has
// room, else the one with the fewest queries waiting. It reports false when
// this DB already holds or is taking key, or when every connection is still
// being opened or is broken (the caller tries again, as for a taken lock).
func (l *lockPool) reserve(ctx context.Context, key string) (*lockConn, bool, error) {
	l.mu.Lock()
	if _, taken := l.owners[key]; taken {
		l.mu.Unlock()
		return nil, false, nil
	}
	lc, open := l.choose()
	if lc == nil && !open {
		l.mu.Unlock()
		return nil, false, nil
	}
	if l.owners == nil {
		l.owners = map[string]*lockConn{}
	}
	l.owners[key] = lc
	if lc != nil {
		lc.users++
		l.mu.Unlock()
		return lc, true, nil
	}
	l.opening++
	l.mu.Unlock()

	conn, err := l.pool.Acquire(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.opening--
	if err != nil {
		delete(l.owners, key)
		return nil, false, err
	}
	lc = &lockConn{turn: make(chan struct{}, 1), conn: conn, users: 1}
	l.conns = append(l.conns, lc)
	l.owners[key] = lc
	return lc, true, nil
}

// choose returns the connection for the next query, or open true when a
// new one is to be acquired, or neither when none can be used now. The
// caller holds l.mu.
func (l *lockPool) choose() (lc *lockConn, open bool) {
	var best *lockConn
	for _, c := range l.conns {
		if c.broken {
			continue
		}
		if c.users == 0 {
			return c, false
		}
		if best == nil || c.users < best.users {
			best = c
		}
	}
	if int32(len(l.conns))+l.opening < LockMaxConns {
		return nil, true
	}
	return best, false
}

// unlock releases the advisory lock of key held on lc. It runs even when
// ctx is done; if releasing fails the connection is closed once no other
// lock is held on it, and the lock ends with its session.
func (l *lockPool) unlock(ctx context.Context, lc *lockConn, key string) {
	l.mu.Lock()
	lc.users++
	l.mu.Unlock()
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockUnlockTimeout)
	defer cancel()
	released, err := lc.query(uctx, sqlUnlock, key)
	l.mu.Lock()
	lc.users--
	lc.locks--
	delete(l.owners, key)
	if err != nil || !released {
		lc.broken = true
	}
	done := l.settle(lc)
	l.mu.Unlock()
	done()
}

// settle takes lc out of use when it holds no lock and no query uses it:
// back to the pool, or closed when broken. It returns what is left to do
// once the caller, which holds l.mu, releases it.
func (l *lockPool) settle(lc *lockConn) func() {
	if lc.users > 0 || lc.locks > 0 {
		return func() {}
	}
	l.conns = slices.DeleteFunc(l.conns, func(c *lockConn) bool { return c == lc })
	if lc.broken {
		return func() { discard(context.Background(), lc.conn) }
	}
	lc.conn.Release()
	return func() {}
}

// query runs a lock query on lc once it is lc's turn. Waiting for the turn
// ends with ctx (errLockNoTurn); the query itself runs without ctx's
// cancellation, with a timeout of its own, because cancelling it would
// break the connection and so end every lock held on it.
func (lc *lockConn) query(ctx context.Context, sql, key string) (bool, error) {
	select {
	case lc.turn <- struct{}{}:
	case <-ctx.Done():
		return false, fmt.Errorf("%w: %w", errLockNoTurn, ctx.Err())
	}
	defer func() { <-lc.turn }()
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockUnlockTimeout)
	defer cancel()
	var ok bool
	err := lc.conn.QueryRow(qctx, sql, key).Scan(&ok)
	return ok, err
}

// discard takes conn out of the pool and closes it.
func discard(ctx context.Context, conn *pgxpool.Conn) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = conn.Hijack().Close(cctx)
}
