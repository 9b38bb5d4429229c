package db_test

import (
	"context"
	"errors"
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
	const poolSize = 4
	tests := []struct {
		name string
		// orgs returns the org of each concurrent caller.
		orgs func(t *testing.T, d *db.DB) []string
		// wantMax is the most callers that may be inside at once.
		wantMax int32
	}{
		{"eight callers for one org", func(t *testing.T, d *db.DB) []string {
			org := asstSeedOrg(t, d)
			return []string{org, org, org, org, org, org, org, org}
		}, 1},
		{"six different orgs", func(t *testing.T, d *db.DB) []string {
			out := make([]string, 6)
			for i := range out {
				out[i] = asstSeedOrg(t, d)
			}
			return out
		}, poolSize - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := smallPool(t, poolSize)
			orgs := tt.orgs(t, dbtest.DB(t))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
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

func TestWithOrgLockHoldersLeaveConnectionsForTheirWork(t *testing.T) {
	// With every slot of a small pool's lock budget taken by holders that
	// wait, the pool still serves other work, and waiters for a held lock
	// do not take connections while they wait.
	d := smallPool(t, 4)
	seed := dbtest.DB(t)
	orgA, orgB := asstSeedOrg(t, seed), asstSeedOrg(t, seed)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	entered, release := make(chan struct{}), make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	defer releaseOnce() // also when the test fails early
	holder := make(chan error, 1)
	go func() {
		holder <- d.WithOrgLock(ctx, orgA, "test", func(context.Context) error {
			close(entered)
			<-release
			return nil
		})
	}()
	<-entered
	// Waiters for the held lock, and callers for another org that find the
	// lock budget of this pool used up.
	waiters := make(chan error, 8)
	for i := range 8 {
		org := orgA
		if i%2 == 1 {
			org = orgB
		}
		go func() {
			waiters <- d.WithOrgLock(ctx, org, "test", func(ctx context.Context) error { return lockWork(ctx, d, org) })
		}()
	}
	time.Sleep(300 * time.Millisecond)
	// The holder pins one connection; waiters poll only briefly, so the rest
	// of the pool answers at once.
	for i := range 3 {
		qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
		err := lockWork(qctx, d, orgB)
		qcancel()
		if err != nil {
			t.Fatalf("query %d while the lock is contended: %v", i, err)
		}
	}
	releaseOnce()
	if err := <-holder; err != nil {
		t.Fatal(err)
	}
	for range 8 {
		if err := <-waiters; err != nil {
			t.Errorf("waiter: %v", err)
		}
	}
}

func TestWithOrgLockWaitsHonourTheContext(t *testing.T) {
	// On a pool of 4 only one lock may be held at a time: a caller for
	// another org waits for that slot, and gives up when its context ends.
	d := smallPool(t, 4)
	seed := dbtest.DB(t)
	orgA, orgB := asstSeedOrg(t, seed), asstSeedOrg(t, seed)
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
	for _, org := range []string{orgA, orgB} {
		wctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
		began := time.Now()
		err := d.WithOrgLock(wctx, org, "test", func(context.Context) error {
			t.Errorf("org %s ran while the pool's only lock slot was taken", org)
			return nil
		})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("org %s: err = %v, want the context's deadline", org, err)
		}
		if waited := time.Since(began); waited > 2*time.Second {
			t.Errorf("org %s: gave up after %v", org, waited)
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := d.WithOrgLock(qctx, orgB, "test", func(context.Context) error { return nil }); err != nil {
		t.Errorf("the slot was not released: %v", err)
	}
}

func TestWithOrgLockNested(t *testing.T) {
	// A lock taken inside another (on fn's context) does not wait for a slot
	// its own caller holds.
	d := smallPool(t, 4)
	seed := dbtest.DB(t)
	orgA, orgB := asstSeedOrg(t, seed), asstSeedOrg(t, seed)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ran := false
	err := d.WithOrgLock(ctx, orgA, "outer", func(ctx context.Context) error {
		return d.WithOrgLock(ctx, orgB, "inner", func(context.Context) error {
			ran = true
			return nil
		})
	})
	if err != nil || !ran {
		t.Fatalf("nested lock: ran %v, err %v", ran, err)
	}
}

func TestWithOrgLockExcludesAcrossPools(t *testing.T) {
	// Two pools stand in for two instances: the lock is PostgreSQL's, so
	// callers of both never overlap.
	d1, d2 := smallPool(t, 4), smallPool(t, 4)
	org := asstSeedOrg(t, dbtest.DB(t))
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
