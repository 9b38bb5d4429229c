package attempts_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/attempts"
	"byoc/db"
	"byoc/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// secret is what the limiters of one test share; each test makes its own,
// so tests never see each other's counts.
func newSecret() []byte { return []byte(apptest.RandomHex(32)) }

func newLimiter(t *testing.T, d *db.DB, secret []byte, clock *apptest.Clock) *attempts.Limiter {
	t.Helper()
	l, err := attempts.New(d, secret, attempts.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var start = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func TestSlidingWindow(t *testing.T) {
	d := dbtest.DB(t)
	clock := apptest.NewClock(start)
	l := newLimiter(t, d, newSecret(), clock)
	rule := attempts.Rule{Kind: "test_sliding", Limit: 3, Window: time.Minute}
	steps := []struct {
		advance time.Duration
		subject string
		over    bool
	}{
		{0, "a", false},
		{time.Second, "a", false},
		{time.Second, "a", false},
		{time.Second, "a", true}, // the 4th within a minute
		{0, "b", false},          // subjects count apart
		{time.Second, "a", true}, // attempts over the limit count too
		// 66s after a's window opened: the sliding window still covers
		// most of the previous one (5 attempts * 54/60 + 1 > 3).
		{61 * time.Second, "a", true},
		// 2 minutes after the last attempt, a starts afresh.
		{2 * time.Minute, "a", false},
		{0, "a", false},
		{0, "a", false},
		{0, "a", true},
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		v, err := l.Count(t.Context(), rule.For(s.subject))
		if err != nil {
			t.Fatal(err)
		}
		if v[0].Over != s.over {
			t.Fatalf("step %d (%s): over %v, want %v", i, s.subject, v[0].Over, s.over)
		}
		if s.over && (v[0].RetryAfter < time.Second || v[0].RetryAfter > time.Minute) {
			t.Fatalf("step %d: retry after %v", i, v[0].RetryAfter)
		}
	}
}

func TestCountReturnsAVerdictPerKey(t *testing.T) {
	d := dbtest.DB(t)
	clock := apptest.NewClock(start)
	l := newLimiter(t, d, newSecret(), clock)
	tight := attempts.Rule{Kind: "test_tight", Limit: 1, Window: time.Minute}
	loose := attempts.Rule{Kind: "test_loose", Limit: 100, Window: time.Hour}
	for i, wantTight := range []bool{false, true, true} {
		v, err := l.Count(t.Context(), loose.For("x"), tight.For("x"))
		if err != nil {
			t.Fatal(err)
		}
		if v[0].Over || v[1].Over != wantTight {
			t.Fatalf("attempt %d: verdicts %+v, want loose under and tight over=%v", i+1, v, wantTight)
		}
	}
}

// Instances share the counts through the database: limiters with the same
// secret, counting at once, let exactly the limit through between them.
func TestCountsAreSharedAndExact(t *testing.T) {
	d := dbtest.DB(t)
	clock := apptest.NewClock(start)
	secret := newSecret()
	instances := []*attempts.Limiter{newLimiter(t, d, secret, clock), newLimiter(t, d, secret, clock)}
	rule := attempts.Rule{Kind: "test_shared", Limit: 10, Window: time.Minute}
	const n = 40
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := instances[i%2].Count(context.Background(), rule.For("203.0.113.7"))
			if err != nil {
				errs <- err
				return
			}
			if !v[0].Over {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if allowed != rule.Limit {
		t.Fatalf("%d of %d concurrent attempts on two instances allowed, want %d", allowed, n, rule.Limit)
	}

	// Another secret is another set of counts.
	other := newLimiter(t, d, newSecret(), clock)
	if v, err := other.Count(t.Context(), rule.For("203.0.113.7")); err != nil || v[0].Over {
		t.Fatalf("a limiter with another secret: %+v, %v", v, err)
	}
}

func TestSettle(t *testing.T) {
	d := dbtest.DB(t)
	clock := apptest.NewClock(start)
	l := newLimiter(t, d, newSecret(), clock)
	perIP := attempts.Rule{Kind: "test_ip", Limit: 3, Window: time.Minute}
	perPair := attempts.Rule{Kind: "test_pair", Limit: 3, Window: time.Minute}
	ip, pair := perIP.For("203.0.113.7"), perPair.For("owner@example.com\x00203.0.113.7")
	for range 3 {
		if _, err := l.Count(t.Context(), ip, pair); err != nil {
			t.Fatal(err)
		}
	}
	// The third attempt was a success: taken back from ip, pair cleared.
	if err := l.Settle(t.Context(), []attempts.Key{ip}, []attempts.Key{pair}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct{ ip, pair bool }{{false, false}, {true, false}, {true, false}, {true, true}} {
		v, err := l.Count(t.Context(), ip, pair)
		if err != nil {
			t.Fatal(err)
		}
		if v[0].Over != want.ip || v[1].Over != want.pair {
			t.Fatalf("attempt %d after the settle: ip over %v, pair over %v; want %v, %v", i+1, v[0].Over, v[1].Over, want.ip, want.pair)
		}
	}
	// Settling keys that have no count leaves empty counts.
	fresh := perIP.For("198.51.100.1")
	if err := l.Settle(t.Context(), []attempts.Key{fresh}, nil); err != nil {
		t.Fatal(err)
	}
	if v, err := l.Count(t.Context(), fresh); err != nil || v[0].Over {
		t.Fatalf("after settling an unknown key: %+v, %v", v, err)
	}
}

// Expired counts are deleted in bounded batches; counts that still matter
// stay.
func TestSweep(t *testing.T) {
	d := dbtest.DB(t)
	ctx := t.Context()
	clock := apptest.NewClock(start)
	l := newLimiter(t, d, newSecret(), clock)
	kind := "test_sweep"
	rows := func() int {
		t.Helper()
		var n int
		if err := d.Pool.QueryRow(ctx, `select count(*) from attempt_counts where kind = $1`, kind).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// More rows than one batch deletes, counted in one statement.
	const old = 2*attempts.SweepBatch + 500
	keys := make([]app.AttemptKey, old)
	for i := range keys {
		keys[i] = app.AttemptKey{Kind: kind, Hash: l.Hash(kind, fmt.Sprint("old-", i)), Window: time.Minute}
	}
	if _, err := d.CountAttempts(ctx, clock.Now(), keys); err != nil {
		t.Fatal(err)
	}
	clock.Advance(90 * time.Second)
	rule := attempts.Rule{Kind: kind, Limit: 5, Window: time.Minute}
	if _, err := l.Count(ctx, rule.For("recent")); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep before anything expired: %d, %v", n, err)
	}

	// Two windows after they opened the old counts no longer matter; the
	// recent one does. (The other tests' counts, in the same database,
	// may expire too.)
	clock.Advance(31 * time.Second)
	n, err := l.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n < old || rows() != 1 {
		t.Fatalf("swept %d, %d rows left; want at least %d swept and the recent count left", n, rows(), old)
	}
	clock.Advance(2 * time.Minute)
	if _, err := l.Sweep(ctx); err != nil || rows() != 0 {
		t.Fatalf("second sweep: %v, %d rows left", err, rows())
	}
}

// The table holds keyed hashes only: no subject in clear, and not the plain
// hash of one, which anyone could compute from a guess.
func TestNoSubjectInClear(t *testing.T) {
	d := dbtest.DB(t)
	ctx := t.Context()
	clock := apptest.NewClock(start)
	l := newLimiter(t, d, newSecret(), clock)
	email, addr := "Owner.Private@Example.com", "203.0.113.77"
	subjects := map[string]string{"test_clear_ip": addr, "test_clear_pair": email + "\x00" + addr, "test_clear_email": email}
	var keys []attempts.Key
	for kind, subject := range subjects {
		keys = append(keys, attempts.Rule{Kind: kind, Limit: 5, Window: time.Minute}.For(subject))
	}
	if _, err := l.Count(ctx, keys...); err != nil {
		t.Fatal(err)
	}
	rows, err := d.Pool.Query(ctx, `select kind, key, span::text, window_start::text, expires_at::text from attempt_counts where kind like 'test_clear_%'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var kind, span, started, expires string
		var key []byte
		if err := rows.Scan(&kind, &key, &span, &started, &expires); err != nil {
			t.Fatal(err)
		}
		seen++
		row := kind + " " + string(key) + " " + span + " " + started + " " + expires
		for _, clear := range []string{email, "owner.private", "example.com", addr, "203.0.113"} {
			if bytes.Contains(bytes.ToLower([]byte(row)), []byte(clear)) {
				t.Errorf("row of %s holds %q", kind, clear)
			}
		}
		plain := sha256.Sum256([]byte(kind + "\x00" + subjects[kind]))
		plainOnly := sha256.Sum256([]byte(subjects[kind]))
		if len(key) != 16 || bytes.Equal(key, plain[:16]) || bytes.Equal(key, plainOnly[:16]) {
			t.Errorf("key of %s is %x: want 16 bytes of a keyed hash", kind, key)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != len(subjects) {
		t.Fatalf("%d rows, want %d", seen, len(subjects))
	}
}

// What cannot be counted is refused.
func TestCountFailsClosed(t *testing.T) {
	l, err := attempts.New(failingStore{}, newSecret(), attempts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rule := attempts.Rule{Kind: "test_down", Limit: 5, Window: time.Minute}
	if _, err := l.Count(t.Context(), rule.For("x")); app.ErrorCode(err) != app.EUnavailable {
		t.Fatalf("Count with the store down: %v, want %s", err, app.EUnavailable)
	}
	if err := l.Settle(t.Context(), []attempts.Key{rule.For("x")}, nil); app.ErrorCode(err) != app.EUnavailable {
		t.Fatalf("Settle with the store down: %v, want %s", err, app.EUnavailable)
	}
	if _, err := attempts.New(failingStore{}, []byte("short"), attempts.Options{}); err == nil {
		t.Fatal("New accepted a 5-byte secret")
	}
}

type failingStore struct{}

var errDown = errors.New("connection refused")

func (failingStore) CountAttempts(context.Context, time.Time, []app.AttemptKey) ([]app.AttemptCount, error) {
	return nil, errDown
}
func (failingStore) SettleAttempts(context.Context, time.Time, []app.AttemptKey, []app.AttemptKey) error {
	return errDown
}
func (failingStore) SweepAttempts(context.Context, time.Time, int) (int, error) { return 0, errDown }
