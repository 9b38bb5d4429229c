package db_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/db"
	"byoc/db/dbtest"
)

// The deadlock the review found: lock waiters pinned pooled connections
// while they waited, and holders of many orgs pinned the rest, so the work
// inside a lock (which needs connections of its own) never got one.

// smallPool opens a pool of n connections on this test binary's database.
func smallPool(t *testing.T, n int32) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), dbtest.URL(t), db.Options{MaxConns: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// lockWork is what a caller does while holding the lock: a few tenant
// transactions, each needing a connection of its own, and a pause standing
// in for a provider call.
func lockWork(ctx context.Context, d *db.DB, orgID string) error {
	for range 3 {
		err := d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error {
			var n int
			return tx.QueryRow(ctx, `select count(*) from assistant_org_mapping where org_id = $1`, orgID).Scan(&n)
		})
		if err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// maxGauge tracks how many callers are inside at once and the most ever.
type maxGauge struct{ cur, max atomic.Int32 }

func (g *maxGauge) enter() {
	n := g.cur.Add(1)
	for {
		m := g.max.Load()
		if n <= m || g.max.CompareAndSwap(m, n) {
			return
		}
	}
}

func (g *maxGauge) leave() { g.cur.Add(-1) }

// runLocked runs one WithOrgLock per org in orgs, all at once, each doing
// lockWork inside, and returns their errors.
func runLocked(ctx context.Context, d *db.DB, orgs []string, g *maxGauge) []error {
	errs := make([]error, len(orgs))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, org := range orgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = d.WithOrgLock(ctx, org, "test", func(ctx context.Context) error {
				g.enter()
				defer g.leave()
				return lockWork(ctx, d, org)
			})
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

func TestWithOrgLockOnASmallPool(t *testing.T) {
	// Locks are held on a pool of their own: many callers on a work pool of
	// two connections all finish, one per org at a time.
	const poolSize = 2
	tests := []struct {
		name string
		// orgs returns the org of each concurrent caller.
		orgs func(t *testing.T) []string
		// wantMax is the most callers that may be inside at once.
		wantMax int32
	}{
		{"eight callers for one org", func(t *testing.T) []string {
			org := dbtest.SeedOrg(t, "assistants test")
			return []string{org, org, org, org, org, org, org, org}
		}, 1},
		{"twenty different orgs", func(t *testing.T) []string {
			out := make([]string, 20)
			for i := range out {
				out[i] = dbtest.SeedOrg(t, "assistants test")
			}
			return out
		}, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := smallPool(t, poolSize)
			orgs := tt.orgs(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var g maxGauge
			for i, err := range runLocked(ctx, d, orgs, &g) {
				if err != nil {
					t.Errorf("caller %d: %v", i, err)
				}
			}
			if got := g.max.Load(); got > tt.wantMax || got < 1 {
				t.Errorf("%d callers were inside at once, want 1..%d", got, tt.wantMax)
			}
			if st := d.Pool.Stat(); st.AcquiredConns() != 0 {
				t.Errorf("%d connections still acquired afterwards", st.AcquiredConns())
			}
		})
	}
}

func TestWithOrgLockSlowHoldersDoNotSerializeOtherOrgs(t *testing.T) {
	// The old per-instance budget (MaxConns/4 locks) ran everything one at a
	// time on small pools: holders of different orgs that each wait for the
	// others to be inside must now all be inside together.
	d := smallPool(t, 4)
	const n = 4
	orgs := make([]string, n)
	for i := range orgs {
		orgs[i] = dbtest.SeedOrg(t, "assistants test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var inside sync.WaitGroup
	inside.Add(n)
	errs := make(chan error, n)
	for _, org := range orgs {
		go func() {
			errs <- d.WithOrgLock(ctx, org, "test", func(ctx context.Context) error {
				inside.Done()
				inside.Wait() // every other org's holder is inside too
				return lockWork(ctx, d, org)
			})
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("holder: %v", err)
		}
	}
}

func TestWithOrgLockHoldersPinNoLockConnection(t *testing.T) {
	// Holders once pinned a lock connection each while their fn ran (a Vapi
	// call up to PROVIDER_TIMEOUT): LockMaxConns slow orgs made every other
	// org wait. Now three times as many holders of different orgs are all
	// inside together, and one more org still gets its lock meanwhile.
	d := smallPool(t, 2)
	n := 3 * int(db.LockMaxConns)
	orgs := make([]string, n)
	for i := range orgs {
		orgs[i] = dbtest.SeedOrg(t, "assistants test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var inside sync.WaitGroup
	inside.Add(n)
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	defer releaseOnce()
	errs := make(chan error, n)
	for _, org := range orgs {
		go func() {
			errs <- d.WithOrgLock(ctx, org, "test", func(ctx context.Context) error {
				inside.Done()
				select {
				case <-release:
					return nil
				case <-ctx.Done():
					return errors.New("still holding when the test gave up")
				}
			})
		}()
	}
	allInside := make(chan struct{})
	go func() { inside.Wait(); close(allInside) }()
	select {
	case <-allInside:
	case <-ctx.Done():
		t.Fatalf("the holders of %d orgs were never inside together", n)
	}
	other := dbtest.SeedOrg(t, "assistants test")
	if err := d.WithOrgLock(ctx, other, "test", func(ctx context.Context) error { return lockWork(ctx, d, other) }); err != nil {
		t.Fatalf("another org while %d orgs hold their locks: %v", n, err)
	}
	releaseOnce()
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("holder: %v", err)
		}
	}
	// Released: another pool (another instance) takes every one of them.
	d2 := smallPool(t, 1)
	for _, org := range orgs {
		qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
		err := d2.WithOrgLock(qctx, org, "test", func(context.Context) error { return nil })
		qcancel()
		if err != nil {
			t.Fatalf("org %s: the lock was not released: %v", org, err)
		}
	}
}

func TestWithOrgLockSurvivesABrokenLockConnection(t *testing.T) {
	// The lock connections are shared: when one breaks (here: its server
	// process is ended while a holder is inside), it is dropped once its
	// holders leave, never handed to a later caller, and every lock, the
	// broken holder's included, can be taken again.
	d := smallPool(t, 2)
	orgA, orgB := dbtest.SeedOrg(t, "assistants test"), dbtest.SeedOrg(t, "assistants test")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := d.WithOrgLock(ctx, orgA, "test", func(ctx context.Context) error {
		// The session holding this lock (a bigint advisory key is split
		// into classid and objid).
		var killed int
		if err := d.Pool.QueryRow(ctx, `select count(pg_terminate_backend(pid)) from pg_locks
			where locktype = 'advisory' and objsubid = 1 and granted
			and database = (select oid from pg_database where datname = current_database())
			and ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0)`, orgA+"/test").Scan(&killed); err != nil {
			return err
		}
		if killed != 1 {
			return fmt.Errorf("ended %d sessions, want the one holding this lock", killed)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, org := range []string{orgA, orgB, orgA} {
		err := d.WithOrgLock(ctx, org, "test", func(context.Context) error { return nil })
		if err != nil {
			t.Fatalf("org %s after the lock connection broke: %v", org, err)
		}
	}
}

func TestWithOrgLockWaitersHoldNoWorkConnection(t *testing.T) {
	// While a holder sleeps, waiters for its (org, name) poll the lock pool
	// only: the work pool's acquired connections stay at the holder's
	// (none while it sleeps), other work gets the whole pool, and every
	// waiter gets the lock in turn, one at a time.
	d := smallPool(t, 2)
	orgA, orgB := dbtest.SeedOrg(t, "assistants test"), dbtest.SeedOrg(t, "assistants test")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var inside, peak, turns atomic.Int32
	enter := func() {
		if n := inside.Add(1); n > 1 {
			peak.Store(n)
		}
		turns.Add(1)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	defer releaseOnce() // also when the test fails early
	holder := make(chan error, 1)
	go func() {
		holder <- d.WithOrgLock(ctx, orgA, "test", func(context.Context) error {
			enter()
			defer inside.Add(-1)
			close(entered)
			<-release
			return nil
		})
	}()
	<-entered
	const waiters = 8
	done := make(chan error, waiters)
	for range waiters {
		go func() {
			done <- d.WithOrgLock(ctx, orgA, "test", func(ctx context.Context) error {
				enter()
				defer inside.Add(-1)
				return lockWork(ctx, d, orgA)
			})
		}()
	}
	// Sample the work pool while the waiters poll (their pauses reach
	// 200 ms, so this spans several tries each).
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if n := d.Pool.Stat().AcquiredConns(); n != 0 {
			t.Fatalf("%d work connections acquired while the holder sleeps and waiters poll, want 0", n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if got := turns.Load(); got != 1 {
		t.Fatalf("%d callers got the held lock, want only the holder", got)
	}
	// The whole work pool answers meanwhile, even queries of both
	// connections at once.
	var wg sync.WaitGroup
	for _, org := range []string{orgB, orgB} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
			defer qcancel()
			if err := lockWork(qctx, d, org); err != nil {
				t.Errorf("work while the lock is contended: %v", err)
			}
		}()
	}
	wg.Wait()

	releaseOnce()
	if err := <-holder; err != nil {
		t.Fatal(err)
	}
	for range waiters {
		if err := <-done; err != nil {
			t.Errorf("waiter: %v", err)
		}
	}
	if got := turns.Load(); got != waiters+1 {
		t.Errorf("%d turns, want %d", got, waiters+1)
	}
	if p := peak.Load(); p != 0 {
		t.Errorf("%d callers were inside at once, want 1", p)
	}
	if st := d.Pool.Stat(); st.AcquiredConns() != 0 {
		t.Errorf("%d work connections still acquired afterwards", st.AcquiredConns())
	}
}

func TestWithOrgLockWaitsHonourTheContext(t *testing.T) {
	// A caller waiting for a held lock gives up promptly when its context
	// ends, cancelled or past its deadline; callers for other orgs and names
	// do not wait at all.
	d := smallPool(t, 2)
	orgA, orgB := dbtest.SeedOrg(t, "assistants test"), dbtest.SeedOrg(t, "assistants test")
	ctx := context.Background()

	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- d.WithOrgLock(ctx, orgA, "test", func(context.Context) error {
			close(entered)
			<-release
			return nil
		})
	}()
	<-entered
	mustNotRun := func(context.Context) error {
		t.Error("ran while the lock was held")
		return nil
	}

	wctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	began := time.Now()
	err := d.WithOrgLock(wctx, orgA, "test", mustNotRun)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: err = %v, want the context's deadline", err)
	}
	if waited := time.Since(began); waited > time.Second {
		t.Errorf("deadline: gave up after %v", waited)
	}

	cctx, cancel := context.WithCancel(ctx)
	res := make(chan error, 1)
	go func() { res <- d.WithOrgLock(cctx, orgA, "test", mustNotRun) }()
	time.Sleep(300 * time.Millisecond) // well into the backoff
	cancelled := time.Now()
	cancel()
	select {
	case err := <-res:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancel: err = %v, want context.Canceled", err)
		}
		if waited := time.Since(cancelled); waited > time.Second {
			t.Errorf("cancel: returned %v after the cancellation", waited)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("cancel: still waiting 2 s after the cancellation")
	}

	for _, c := range []struct{ org, name string }{{orgB, "test"}, {orgA, "other"}} {
		qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
		ran := false
		err := d.WithOrgLock(qctx, c.org, c.name, func(context.Context) error { ran = true; return nil })
		qcancel()
		if err != nil || !ran {
			t.Errorf("%s/%s while another lock is held: ran %v, err %v", c.org, c.name, ran, err)
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWithOrgLockNested(t *testing.T) {
	// A lock taken inside another (on fn's context) never waits for the
	// lock pool: even with LockMaxConns outer holders inside at once, every
	// one of them nests. Nested locks still exclude one another, across
	// sessions too.
	d := smallPool(t, 2)
	orgs := make([]string, db.LockMaxConns)
	for i := range orgs {
		orgs[i] = dbtest.SeedOrg(t, "assistants test")
	}
	shared := dbtest.SeedOrg(t, "assistants test")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var inside sync.WaitGroup
	inside.Add(len(orgs))
	var g maxGauge
	errs := make(chan error, len(orgs))
	for _, org := range orgs {
		go func() {
			errs <- d.WithOrgLock(ctx, org, "outer", func(ctx context.Context) error {
				inside.Done()
				inside.Wait() // the whole lock pool is held
				if err := d.WithOrgLock(ctx, org, "inner", func(ctx context.Context) error {
					return lockWork(ctx, d, org)
				}); err != nil {
					return err
				}
				// Every outer holder nests the same (shared, inner) lock.
				return d.WithOrgLock(ctx, shared, "inner", func(ctx context.Context) error {
					g.enter()
					defer g.leave()
					time.Sleep(5 * time.Millisecond)
					return nil
				})
			})
		}()
	}
	for range orgs {
		if err := <-errs; err != nil {
			t.Errorf("nested: %v", err)
		}
	}
	if got := g.max.Load(); got != 1 {
		t.Errorf("%d callers were inside the shared nested lock at once, want 1", got)
	}

	// Two goroutines of one holder nesting the same lock exclude each other
	// too (session advisory locks are reentrant, so this is WithOrgLock's).
	var g2 maxGauge
	err := d.WithOrgLock(ctx, shared, "outer", func(ctx context.Context) error {
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- d.WithOrgLock(ctx, shared, "inner", func(context.Context) error {
					g2.enter()
					defer g2.leave()
					time.Sleep(20 * time.Millisecond)
					return nil
				})
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := g2.max.Load(); got != 1 {
		t.Errorf("%d goroutines of one holder were inside at once, want 1", got)
	}
	// Released: another session takes it.
	if err := smallPool(t, 1).WithOrgLock(ctx, shared, "inner", func(context.Context) error { return nil }); err != nil {
		t.Errorf("nested lock not released: %v", err)
	}
}

func TestWithOrgLockExcludesAcrossPools(t *testing.T) {
	// Two pools stand in for two instances: the lock is PostgreSQL's, so
	// callers of both never overlap.
	d1, d2 := smallPool(t, 4), smallPool(t, 4)
	org := dbtest.SeedOrg(t, "assistants test")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var g maxGauge
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 12 {
		d := d1
		if i%2 == 1 {
			d = d2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- d.WithOrgLock(ctx, org, "test", func(ctx context.Context) error {
				g.enter()
				defer g.leave()
				return lockWork(ctx, d, org)
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := g.max.Load(); got != 1 {
		t.Errorf("%d callers were inside at once, want 1", got)
	}
}

func TestOpenDefaultPoolSize(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		query string
		opts  db.Options
		want  int32
	}{
		{"default", "", db.Options{}, db.DefaultMaxConns},
		{"given", "", db.Options{MaxConns: 7}, 7},
		{"from the URL", "pool_max_conns=5", db.Options{}, 5},
		{"given beats the URL", "pool_max_conns=5", db.Options{MaxConns: 3}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := dbtest.URL(t)
			if tt.query != "" {
				sep := "?"
				if strings.Contains(u, "?") {
					sep = "&"
				}
				u += sep + tt.query
			}
			d, err := db.Open(ctx, u, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if got := d.Pool.Config().MaxConns; got != tt.want {
				t.Errorf("MaxConns = %d, want %d", got, tt.want)
			}
		})
	}
}
