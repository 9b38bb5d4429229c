package db

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Per-org locks: PostgreSQL session advisory locks, so they hold across
// every instance, taken on a small pool of their own so that lock traffic
// never takes a connection from the work it guards.
//
// A holder pins one connection of the lock pool (at most LockMaxConns) for
// as long as its fn runs; fn itself queries through DB.Pool. A caller
// waiting for a taken lock holds no connection at all: it asks with
// pg_try_advisory_lock and, when the lock is taken, returns the connection
// to the lock pool and tries again after a short jittered pause. A lock taken
// inside fn (on the context fn is given) is taken on its caller's session
// connection, so nesting never waits for a connection of the lock pool.
//
// Advisory locks belong to a server session: they need a direct or
// session-mode connection, never a transaction-mode pooler.

// LockMaxConns is the size of the pool that holds WithOrgLock's advisory
// locks: how many (org, name) locks one DB holds at once. Further callers
// wait for a connection of it; the work pool is not involved.
const LockMaxConns int32 = 8

// Lock timings: the first pause between two tries for a taken lock, the
// longest pause, and how long a query on a session connection (releasing a
// lock, or taking a nested one) may take.
const (
	lockMinBackoff    = 5 * time.Millisecond
	lockMaxBackoff    = 200 * time.Millisecond
	lockUnlockTimeout = 5 * time.Second
)

var (
	errLockPoolClosed = errors.New("the DB is closed")
	errLockEnded      = errors.New("the enclosing lock was already released")
)

// lockPool is the DB's pool for advisory locks. Open builds it; a DB built
// without Open gets one from its work pool's settings on first use.
type lockPool struct {
	once sync.Once
	pool *pgxpool.Pool
	err  error
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

func (l *lockPool) init(p *pgxpool.Pool) { l.once.Do(func() { l.pool = p }) }

func (l *lockPool) get(ctx context.Context, d *DB) (*pgxpool.Pool, error) {
	l.once.Do(func() { l.pool, l.err = newLockPool(ctx, d.Pool.Config()) })
	return l.pool, l.err
}

func (l *lockPool) close() {
	l.once.Do(func() { l.err = errLockPoolClosed })
	if l.pool != nil {
		l.pool.Close()
	}
}

// lockSession is a held lock's connection of the lock pool, which nested
// locks share.
type lockSession struct {
	mu    sync.Mutex      // serializes the use of conn
	conn  *pgxpool.Conn   // nil once the outermost lock is released
	held  map[string]bool // keys locked on conn
	dirty bool            // a query failed: conn may hold locks nobody tracks
}

// sessionKey marks the context WithOrgLock hands to fn with its session.
type sessionKey struct{ d *DB }

// WithOrgLock runs fn while holding a PostgreSQL advisory lock named by
// (orgID, name), so the same work for the same org never runs twice at once,
// on this instance or any other. The lock is released when fn returns, also
// when fn fails or panics.
//
// Locks are held on a dedicated pool of LockMaxConns connections, so neither
// holders nor waiters take connections from DB.Pool, which fn uses. Waiting
// holds no connection: a taken lock is tried again after a jittered pause
// (5 ms, doubling up to 200 ms). When LockMaxConns locks are held, further
// callers wait for one to be released. A lock taken inside fn, on the
// context fn is given, is taken on its caller's connection and never waits
// for the lock pool; it must not name the same (orgID, name): that would
// wait for itself until ctx ends.
//
// It returns fn's error unchanged, or an error wrapping ctx.Err() when ctx
// ends while waiting, or a database error.
func (d *DB) WithOrgLock(ctx context.Context, orgID, name string, fn func(context.Context) error) error {
	key := orgID + "/" + name
	if s, ok := ctx.Value(sessionKey{d}).(*lockSession); ok {
		return s.withNested(ctx, key, name, fn)
	}
	pool, err := d.locks.get(ctx, d)
	if err != nil {
		return fmt.Errorf("db: lock %s: %w", name, err)
	}
	backoff := lockMinBackoff
	for {
		conn, err := tryLock(ctx, pool, key)
		if err != nil {
			return fmt.Errorf("db: lock %s: %w", name, err)
		}
		if conn != nil {
			s := &lockSession{conn: conn, held: map[string]bool{key: true}}
			defer s.end(ctx, key)
			return fn(context.WithValue(ctx, sessionKey{d}, s))
		}
		if !sleepCtx(ctx, jitter(backoff)) {
			return fmt.Errorf("db: lock %s: %w", name, ctx.Err())
		}
		backoff = min(2*backoff, lockMaxBackoff)
	}
}

// tryLock takes the advisory lock of key on a connection of pool and returns
// that connection, or nil (and no error) when another session holds it.
func tryLock(ctx context.Context, pool *pgxpool.Pool, key string) (*pgxpool.Conn, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	var got bool
	if err := conn.QueryRow(ctx, `select pg_try_advisory_lock(hashtextextended($1, 0))`, key).Scan(&got); err != nil {
		// The lock may have been taken without the answer arriving: the
		// connection must not go back to the pool holding it.
		discard(ctx, conn)
		return nil, err
	}
	if !got {
		conn.Release()
		return nil, nil
	}
	return conn, nil
}

// withNested runs fn holding the lock of key, taken on the session of an
// enclosing lock.
func (s *lockSession) withNested(ctx context.Context, key, name string, fn func(context.Context) error) error {
	backoff := lockMinBackoff
	for {
		got, err := s.tryNested(ctx, key)
		if err != nil {
			return fmt.Errorf("db: lock %s: %w", name, err)
		}
		if got {
			defer s.unlockNested(ctx, key)
			return fn(ctx)
		}
		if !sleepCtx(ctx, jitter(backoff)) {
			return fmt.Errorf("db: lock %s: %w", name, ctx.Err())
		}
		backoff = min(2*backoff, lockMaxBackoff)
	}
}

// tryNested takes the lock of key on the session, reporting false when
// another session, or another caller on this one, holds it. Session advisory
// locks are reentrant, so this session's own keys are checked here.
func (s *lockSession) tryNested(ctx context.Context, key string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return false, errLockEnded
	}
	if s.held[key] {
		return false, nil
	}
	// The connection holds the enclosing lock: a cancelled ctx must not
	// break it mid-query, so the query only has a timeout of its own.
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockUnlockTimeout)
	defer cancel()
	var got bool
	if err := s.conn.QueryRow(qctx, `select pg_try_advisory_lock(hashtextextended($1, 0))`, key).Scan(&got); err != nil {
		s.dirty = true
		return false, err
	}
	if got {
		s.held[key] = true
	}
	return got, nil
}

// unlockNested releases the nested lock of key. If that fails the session is
// marked so that its connection is closed, not pooled, once the enclosing
// lock ends; closing it now would drop the enclosing lock while its fn runs.
func (s *lockSession) unlockNested(ctx context.Context, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, key)
	if s.conn == nil {
		return
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockUnlockTimeout)
	defer cancel()
	var released bool
	err := s.conn.QueryRow(uctx, `select pg_advisory_unlock(hashtextextended($1, 0))`, key).Scan(&released)
	if err != nil || !released {
		s.dirty = true
	}
}

// end releases the outermost lock of key and gives the session's connection
// back, or closes it when it may hold anything else.
func (s *lockSession) end(ctx context.Context, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	conn := s.conn
	s.conn = nil
	delete(s.held, key)
	if s.dirty || len(s.held) > 0 {
		discard(ctx, conn)
		return
	}
	unlock(ctx, conn, key)
}

// unlock releases the advisory lock of key held on conn and returns conn to
// the pool. It runs even when ctx is done; if unlocking fails the connection
// is closed, and the lock ends with its session.
func unlock(ctx context.Context, conn *pgxpool.Conn, key string) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockUnlockTimeout)
	defer cancel()
	var released bool
	err := conn.QueryRow(uctx, `select pg_advisory_unlock(hashtextextended($1, 0))`, key).Scan(&released)
	if err != nil || !released {
		discard(uctx, conn)
		return
	}
	conn.Release()
}

// discard takes conn out of the pool and closes it.
func discard(ctx context.Context, conn *pgxpool.Conn) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = conn.Hijack().Close(cctx)
}
