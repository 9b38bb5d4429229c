package reverify_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/integrations"
	"byoc/app/reverify"
	"byoc/db"
	"byoc/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// counter is a Checker that only counts which connections it was asked to
// check (the checks themselves are tested through the real service in
// system_test.go).
type counter struct {
	mu     sync.Mutex
	checks map[app.CheckClaim]int
}

func newCounter() *counter { return &counter{checks: map[app.CheckClaim]int{}} }

func (c *counter) Recheck(_ context.Context, orgID string, p app.Provider) (integrations.VerifyResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks[app.CheckClaim{OrgID: orgID, Provider: p}]++
	return integrations.VerifyResult{}, nil
}

func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.checks {
		n += v
	}
	return n
}

// reset drops every stored connection of the test database, so that each
// test claims only its own.
func reset(t *testing.T, d *db.DB) {
	t.Helper()
	if _, err := d.Pool.Exec(context.Background(), `delete from org_credentials`); err != nil {
		t.Fatal(err)
	}
}

// seed stores a connection of each provider for n new orgs, checked last
// at checked, and returns them.
func seed(t *testing.T, d *db.DB, n int, checked time.Time) []app.CheckClaim {
	t.Helper()
	var out []app.CheckClaim
	for i := 0; i < n; i++ {
		org := dbtest.SeedOrg(t, "reverify")
		for _, p := range app.Providers {
			if _, err := d.Pool.Exec(context.Background(), `
				insert into org_credentials (org_id, provider, encrypted_config, last_verified_at, last_checked_at)
				values ($1, $2, 'sealed', $3, $3)`, org, string(p), checked); err != nil {
				t.Fatal(err)
			}
			out = append(out, app.CheckClaim{OrgID: org, Provider: p})
		}
	}
	return out
}

// TestTwoSchedulersCheckEachConnectionOncePerInterval: two schedulers on
// one database, running at the same moments, check every connection once
// per interval between them, and none before it is due.
func TestTwoSchedulersCheckEachConnectionOncePerInterval(t *testing.T) {
	d := dbtest.DB(t)
	reset(t, d)
	const interval = 24 * time.Hour
	start := time.Now().UTC().Truncate(time.Second)
	clock := apptest.NewClock(start)
	conns := seed(t, d, 6, start.Add(-interval-time.Minute)) // 30 connections, all due
	// A connection switched off is never checked.
	off := seed(t, d, 1, start.Add(-interval-time.Minute))
	if _, err := d.Pool.Exec(context.Background(), `update org_credentials set is_active = false where org_id = $1`, off[0].OrgID); err != nil {
		t.Fatal(err)
	}

	checks := newCounter()
	a := reverify.New(d, checks, reverify.Options{Interval: interval, Batch: 3, Now: clock.Now})
	b := reverify.New(d, checks, reverify.Options{Interval: interval, Batch: 3, Now: clock.Now})
	round := func() int {
		t.Helper()
		var wg sync.WaitGroup
		var na, nb int
		var ea, eb error
		wg.Add(2)
		go func() { defer wg.Done(); na, ea = a.RunOnce(context.Background()) }()
		go func() { defer wg.Done(); nb, eb = b.RunOnce(context.Background()) }()
		wg.Wait()
		if ea != nil || eb != nil {
			t.Fatalf("RunOnce: %v, %v", ea, eb)
		}
		return na + nb
	}

	if n := round(); n != len(conns) {
		t.Fatalf("first round checked %d, want %d", n, len(conns))
	}
	for _, c := range conns {
		if got := checks.checks[c]; got != 1 {
			t.Fatalf("%v checked %d times in the first interval, want 1", c, got)
		}
	}
	for _, c := range off {
		if checks.checks[c] != 0 {
			t.Fatalf("a connection switched off was checked: %v", c)
		}
	}

	// Within the interval nothing is due again, however often they look.
	for _, step := range []time.Duration{time.Minute, time.Hour, interval - time.Second} {
		clock.Set(start.Add(step))
		if n := round(); n != 0 {
			t.Fatalf("%v after the first round %d connections were checked again", step, n)
		}
	}

	// After the interval and its jitter each is due once more.
	clock.Set(start.Add(interval + a.Jitter()))
	if n := round(); n != len(conns) {
		t.Fatalf("second round checked %d, want %d", n, len(conns))
	}
	for _, c := range conns {
		if got := checks.checks[c]; got != 2 {
			t.Fatalf("%v checked %d times after two intervals, want 2", c, got)
		}
	}
	if checks.total() != 2*len(conns) {
		t.Fatalf("%d checks in all, want %d", checks.total(), 2*len(conns))
	}
}

// TestClaimsAreJittered: a claim puts the next check between one interval
// and one interval plus the jitter (a tenth of it) later, each connection
// at its own time; and a connection never claimed becomes due an interval
// after its last check.
func TestClaimsAreJittered(t *testing.T) {
	d := dbtest.DB(t)
	reset(t, d)
	const interval = 10 * time.Hour
	now := time.Now().UTC().Truncate(time.Second)
	clock := apptest.NewClock(now)
	due := seed(t, d, 8, now.Add(-interval))
	recent := seed(t, d, 1, now.Add(-interval+time.Minute))

	s := reverify.New(d, newCounter(), reverify.Options{Interval: interval, Now: clock.Now})
	if s.Jitter() != interval/10 {
		t.Fatalf("jitter %v, want a tenth of the interval", s.Jitter())
	}
	n, err := s.RunOnce(context.Background())
	if err != nil || n != len(due) {
		t.Fatalf("RunOnce: %d, %v; want %d due connections checked (a recent one not)", n, err, len(due))
	}
	rows, err := d.Pool.Query(context.Background(), `select org_id::text, next_check_at from org_credentials`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	distinct := map[time.Time]bool{}
	recentOrg := recent[0].OrgID
	for rows.Next() {
		var org string
		var next *time.Time
		if err := rows.Scan(&org, &next); err != nil {
			t.Fatal(err)
		}
		if org == recentOrg {
			if next != nil {
				t.Fatalf("a connection not yet due was claimed (next check %v)", next)
			}
			continue
		}
		if next == nil {
			t.Fatal("a claimed connection has no next check")
		}
		if next.Before(now.Add(interval)) || next.After(now.Add(interval+s.Jitter())) {
			t.Fatalf("next check %v is outside [%v, %v]", next, now.Add(interval), now.Add(interval+s.Jitter()))
		}
		distinct[*next] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(distinct) < len(due)/2 {
		t.Fatalf("%d claims share %d next-check times: not spread", len(due), len(distinct))
	}
}

// TestIntervalZeroIsOff: with no interval nothing is claimed or checked,
// and Run returns at once.
func TestIntervalZeroIsOff(t *testing.T) {
	d := dbtest.DB(t)
	reset(t, d)
	seed(t, d, 1, time.Now().Add(-1000*time.Hour))
	checks := newCounter()
	s := reverify.New(d, checks, reverify.Options{Interval: 0})
	done := make(chan struct{})
	go func() { s.Run(context.Background()); close(done) }()
	<-done // Run with a context that never ends returns only when off.
	if n, err := s.RunOnce(context.Background()); n != 0 || err != nil {
		t.Fatalf("RunOnce when off: %d, %v", n, err)
	}
	var claimed int
	if err := d.Pool.QueryRow(context.Background(), `select count(*) from org_credentials where next_check_at is not null`).Scan(&claimed); err != nil {
		t.Fatal(err)
	}
	if claimed != 0 || checks.total() != 0 {
		t.Fatalf("off, yet %d claimed and %d checked", claimed, checks.total())
	}
}

// TestRunStopsWithItsContext: Run checks what is due when it starts, and
// returns when its context ends.
func TestRunStopsWithItsContext(t *testing.T) {
	d := dbtest.DB(t)
	reset(t, d)
	conns := seed(t, d, 1, time.Now().Add(-48*time.Hour))
	checks := newCounter()
	s := reverify.New(d, checks, reverify.Options{Interval: 24 * time.Hour, Poll: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	for deadline := time.Now().Add(30 * time.Second); checks.total() < len(conns); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Run checked %d of %d due connections", checks.total(), len(conns))
		}
	}
	cancel()
	<-done
}
