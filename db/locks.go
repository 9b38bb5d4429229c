package db

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Per-org locks: PostgreSQL session advisory locks, so they hold across
// every instance, taken without ever letting lock traffic starve the pool.
//
// Two rules keep the work inside a lock supplied with connections. A caller
// waiting for a taken lock holds no connection: it asks with
// pg_try_advisory_lock and, when the lock is taken, returns the connection
// and tries again after a short jittered pause. And on each instance at most
// lockSlots(MaxConns) = max(1, MaxConns/4) locks are held (or being tried)
// at once; each holder pins one connection for its lock, so at least three
// quarters of the pool stay free for the work inside.

// Lock timings: the first pause between two tries for a taken lock, the
// longest pause, and how long releasing a lock may take.
const (
	lockMinBackoff    = 5 * time.Millisecond
	lockMaxBackoff    = 200 * time.Millisecond
	lockUnlockTimeout = 5 * time.Second
)

// orgLocks is the instance's budget of concurrently held locks, sized from
// the pool on first use (a DB built without Open gets one too).
type orgLocks struct {
	once  sync.Once
	slots chan struct{}
}

// lockSlots is how many locks a pool of maxConns connections may hold at
// once.
func lockSlots(maxConns int32) int { return max(1, int(maxConns)/4) }

func (d *DB) lockBudget() chan struct{} {
	d.locks.once.Do(func() {
		d.locks.slots = make(chan struct{}, lockSlots(d.Pool.Config().MaxConns))
	})
	return d.locks.slots
}

// holdsSlot marks the context WithOrgLock hands to fn, so a lock taken
// inside fn does not wait for a slot its own caller holds.
type holdsSlot struct{ d *DB }

// WithOrgLock runs fn while holding a PostgreSQL advisory lock named by
// (orgID, name), so the same work for the same org never runs twice at once,
// on this instance or any other. The lock is released when fn returns, also
// when fn fails or panics.
//
// Waiting never holds a connection: a taken lock is tried again after a
// jittered pause (5 ms, doubling up to 200 ms). At most max(1, MaxConns/4)
// locks are held at once per DB, so fn can always get connections of its
// own; further callers wait for a slot first. A lock taken inside fn, on the
// context fn is given, uses its caller's slot, but must not name the same
// (orgID, name): that would wait for itself until ctx ends.
//
// It returns fn's error unchanged, or an error wrapping ctx.Err() when ctx
// ends while waiting, or a database error.
func (d *DB) WithOrgLock(ctx context.Context, orgID, name string, fn func(context.Context) error) error {
	key := orgID + "/" + name
	nested := ctx.Value(holdsSlot{d}) != nil
	slots := d.lockBudget()
	backoff := lockMinBackoff
	for {
		if !nested {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return fmt.Errorf("db: lock %s: %w", name, ctx.Err())
			}
		}
		conn, err := d.tryLock(ctx, key)
		if conn != nil {
			if !nested {
				defer func() { <-slots }()
			}
			defer unlock(ctx, conn, key)
			return fn(context.WithValue(ctx, holdsSlot{d}, true))
		}
		if !nested {
			<-slots
		}
		if err != nil {
			return fmt.Errorf("db: lock %s: %w", name, err)
		}
		if !sleepCtx(ctx, jitter(backoff)) {
			return fmt.Errorf("db: lock %s: %w", name, ctx.Err())
		}
		backoff = min(2*backoff, lockMaxBackoff)
	}
}

// tryLock takes the advisory lock of key on a pooled connection and returns
// that connection, or nil (and no error) when another session holds it.
func (d *DB) tryLock(ctx context.Context, key string) (*pgxpool.Conn, error) {
	conn, err := d.Pool.Acquire(ctx)
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
