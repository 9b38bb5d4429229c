package auth_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"byoc/app"
	"byoc/app/auth"
	"byoc/app/orgcache"
	"byoc/db"
	"byoc/db/dbtest"
)

// countingStore is the real database, counting the sign-in reads that reach
// it.
type countingStore struct {
	auth.Store
	loads atomic.Int64
}

func (s *countingStore) LoadSession(ctx context.Context, userID, orgID string) (string, string, app.Role, int, error) {
	s.loads.Add(1)
	return s.Store.LoadSession(ctx, userID, orgID)
}

// instance is one server's accounts: its own cache group and sign-in cache,
// fed by its own invalidation listener, on the shared database.
type instance struct {
	svc    *auth.Service
	cache  *auth.SessionCache
	store  *countingStore
	heard  chan string // orgs whose sign-ins an announced change dropped
	live   chan bool
	cancel context.CancelFunc
	done   chan struct{}
}

func newInstance(t *testing.T, d *db.DB, clock func() time.Time) *instance {
	t.Helper()
	tk, err := auth.NewTokens(testSecret, auth.TokenOptions{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	g := orgcache.NewGroup(orgcache.Options{})
	in := &instance{store: &countingStore{Store: d}, heard: make(chan string, 64), live: make(chan bool, 64),
		done: make(chan struct{})}
	in.cache = auth.NewSessionCache(in.store, g, time.Minute)
	in.svc = auth.NewService(in.cache, tk, auth.Options{BcryptCost: bcrypt.MinCost})
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	go func() {
		defer close(in.done)
		d.ListenInvalidationsReporting(ctx, func(org, provider string) {
			g.Invalidate(org, app.Provider(provider))
			if provider == string(app.AccountScope) {
				select {
				case in.heard <- org:
				default:
				}
			}
		}, g.Flush, func(on bool) {
			in.cache.Listening(on)
			select {
			case in.live <- on:
			default:
			}
		})
	}()
	t.Cleanup(in.stop)
	in.waitLive(t, true)
	return in
}

func (in *instance) stop() {
	in.cancel()
	<-in.done
}

func (in *instance) waitLive(t *testing.T, want bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case on := <-in.live:
			if on == want {
				return
			}
		case <-deadline:
			t.Fatalf("the listener never reported listening = %v", want)
		}
	}
}

// waitHeard waits until the instance's listener delivered a change of org.
func (in *instance) waitHeard(t *testing.T, org string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case o := <-in.heard:
			if o == org {
				return
			}
		case <-deadline:
			t.Fatalf("the change of org %s never reached the listener", org)
		}
	}
}

// noListener waits until no listener of an earlier test is left on the
// test database (a closed connection's backend lingers for a moment).
func noListener(t *testing.T, d *db.DB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		if err := d.Pool.QueryRow(context.Background(), `select count(*) from pg_stat_activity
			where datname = current_database() and application_name = $1`, db.ListenerApplicationName).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("a listener of an earlier test is still connected")
}

func signup(t *testing.T, svc *auth.Service) auth.Account {
	t.Helper()
	a, err := svc.Signup(context.Background(), auth.SignupInput{OrgName: "Cache Dental", Email: uniqueEmail(), Password: goodPassword})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func issue(t *testing.T, svc *auth.Service, a auth.Account) string {
	t.Helper()
	tok, err := svc.IssueToken(a)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Value
}

// A warm sign-in is answered from memory; one that is not cached reads the
// database once.
func TestSessionCacheServesWarmSignIns(t *testing.T) {
	d := dbtest.DB(t)
	noListener(t, d)
	first := newInstance(t, d, nil)
	second := newInstance(t, d, nil)
	ctx := context.Background()
	a := signup(t, first.svc)
	tok := issue(t, first.svc, a)
	for range 20 {
		got, err := second.svc.ResolveToken(ctx, tok)
		if err != nil || got.Principal != a.Principal {
			t.Fatalf("ResolveToken: %+v, %v", got, err)
		}
	}
	if n := second.store.loads.Load(); n != 1 {
		t.Fatalf("20 requests read the sign-in %d times, want 1", n)
	}
}

// Fail closed: without a listener, or while it has lost its connection,
// every sign-in is read from the database; after it listens again, what was
// cached before is gone.
func TestSessionCacheNeedsTheListener(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	noListener(t, d)
	in := newInstance(t, d, nil)
	a := signup(t, in.svc)
	tok := issue(t, in.svc, a)
	if _, err := in.svc.ResolveToken(ctx, tok); err != nil {
		t.Fatal(err)
	}

	// The listener's connection killed: no cache until it listens again.
	var pid int
	if err := d.Pool.QueryRow(ctx, `select pid from pg_stat_activity where datname = current_database()
		and application_name = $1`, db.ListenerApplicationName).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	// Revoke the sign-in behind the listener's back, while it is down: the
	// notification is lost, so only the flush on reconnect can drop the entry.
	if _, err := d.Pool.Exec(ctx, `select pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	in.waitLive(t, false)
	if _, err := d.Pool.Exec(ctx, `update users set session_version = session_version + 1 where id = $1`, a.Principal.UserID); err != nil {
		t.Fatal(err)
	}
	before := in.store.loads.Load()
	if _, err := in.svc.ResolveToken(ctx, tok); app.ErrorCode(err) != app.EUnauthorized {
		t.Fatalf("a revoked token while the listener was down: %v, want unauthorized", err)
	}
	if in.store.loads.Load() == before {
		t.Fatal("the sign-in was not read from the database while the listener was down")
	}
	in.waitLive(t, true)
	if _, err := in.svc.ResolveToken(ctx, tok); app.ErrorCode(err) != app.EUnauthorized {
		t.Fatalf("a revoked token after the listener came back: %v, want unauthorized", err)
	}

	// No listener at all: never cached.
	cold := auth.NewSessionCache(&countingStore{Store: d}, orgcache.NewGroup(orgcache.Options{}), time.Minute)
	tk, _ := auth.NewTokens(testSecret, auth.TokenOptions{})
	svc := auth.NewService(cold, tk, auth.Options{})
	fresh := signup(t, in.svc)
	for range 3 {
		if _, err := svc.ResolveSession(ctx, fresh.Principal.UserID, fresh.Principal.OrgID, fresh.SessionVersion); err != nil {
			t.Fatal(err)
		}
	}
	if n := cold.Store.(*countingStore).loads.Load(); n != 3 {
		t.Fatalf("without a listener 3 requests read the database %d times, want 3", n)
	}
}

// The attacks: a token or cookie used after its logout (on the instance
// that logged out, at once, and on another one), a token naming an org its
// user is not a member of, a member removed or demoted on another instance,
// and an expired token, each while the sign-in is cached.
func TestSessionCacheAttacks(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	a, b := newInstance(t, d, clock), newInstance(t, d, clock)

	warm := func(t *testing.T, tok string) {
		t.Helper()
		for _, in := range []*instance{a, b} {
			if _, err := in.svc.ResolveToken(ctx, tok); err != nil {
				t.Fatalf("warming up: %v", err)
			}
		}
	}
	refused := func(t *testing.T, in *instance, what, tok string) {
		t.Helper()
		if got, err := in.svc.ResolveToken(ctx, tok); app.ErrorCode(err) != app.EUnauthorized {
			t.Fatalf("%s: %+v, %v; want unauthorized", what, got, err)
		}
	}

	t.Run("token after logout", func(t *testing.T) {
		acct := signup(t, a.svc)
		tok := issue(t, a.svc, acct)
		warm(t, tok)
		if err := a.svc.Logout(ctx, acct.Principal.UserID); err != nil {
			t.Fatal(err)
		}
		refused(t, a, "on the instance that logged out, at once", tok)
		if _, err := a.svc.ResolveSession(ctx, acct.Principal.UserID, acct.Principal.OrgID, acct.SessionVersion); app.ErrorCode(err) != app.EUnauthorized {
			t.Fatalf("the session cookie on the instance that logged out: %v", err)
		}
		b.waitHeard(t, acct.Principal.OrgID)
		refused(t, b, "on another instance", tok)
		if _, err := b.svc.ResolveSession(ctx, acct.Principal.UserID, acct.Principal.OrgID, acct.SessionVersion); app.ErrorCode(err) != app.EUnauthorized {
			t.Fatalf("the session cookie on another instance: %v", err)
		}
	})

	t.Run("token of another org", func(t *testing.T) {
		acct, other := signup(t, a.svc), signup(t, a.svc)
		warm(t, issue(t, a.svc, acct))
		warm(t, issue(t, a.svc, other))
		p := acct.Principal
		p.OrgID = other.Principal.OrgID
		forged := issue(t, a.svc, auth.Account{Principal: p, SessionVersion: acct.SessionVersion})
		refused(t, a, "the user's token naming another org", forged)
		refused(t, b, "the same on another instance", forged)
	})

	t.Run("member removed or demoted", func(t *testing.T) {
		admin := signup(t, a.svc)
		member := signup(t, a.svc)
		// The member joins the admin's org too.
		if _, err := d.Pool.Exec(ctx, `insert into org_members (org_id, user_id, role) values ($1, $2, 'admin')`,
			admin.Principal.OrgID, member.Principal.UserID); err != nil {
			t.Fatal(err)
		}
		p := member.Principal
		p.OrgID = admin.Principal.OrgID
		tok := issue(t, a.svc, auth.Account{Principal: p, SessionVersion: member.SessionVersion})
		warm(t, tok)
		if _, err := d.Pool.Exec(ctx, `update org_members set role = 'member' where org_id = $1 and user_id = $2`,
			admin.Principal.OrgID, member.Principal.UserID); err != nil {
			t.Fatal(err)
		}
		for _, in := range []*instance{a, b} {
			in.waitHeard(t, admin.Principal.OrgID)
			got, err := in.svc.ResolveToken(ctx, tok)
			if err != nil || got.Principal.Role != app.RoleMember {
				t.Fatalf("after the demotion: %+v, %v; want the member role", got.Principal, err)
			}
		}
		if _, err := d.Pool.Exec(ctx, `delete from org_members where org_id = $1 and user_id = $2`,
			admin.Principal.OrgID, member.Principal.UserID); err != nil {
			t.Fatal(err)
		}
		for _, in := range []*instance{a, b} {
			in.waitHeard(t, admin.Principal.OrgID)
			refused(t, in, "after the removal", tok)
		}
		// Their own org is untouched.
		if _, err := b.svc.ResolveToken(ctx, issue(t, a.svc, member)); err != nil {
			t.Fatalf("the removed member in their own org: %v", err)
		}
	})

	t.Run("expired token", func(t *testing.T) {
		acct := signup(t, a.svc)
		tok := issue(t, a.svc, acct)
		warm(t, tok)
		now = now.Add(auth.DefaultTokenTTL + auth.DefaultLeeway + time.Second)
		defer func() { now = time.Now() }()
		refused(t, a, "expired, its sign-in cached", tok)
		refused(t, b, "expired, on another instance", tok)
	})

	t.Run("org renamed", func(t *testing.T) {
		acct := signup(t, a.svc)
		tok := issue(t, a.svc, acct)
		warm(t, tok)
		if _, err := d.Pool.Exec(ctx, `update orgs set name = 'Renamed Dental' where id = $1`, acct.Principal.OrgID); err != nil {
			t.Fatal(err)
		}
		b.waitHeard(t, acct.Principal.OrgID)
		if got, err := b.svc.ResolveToken(ctx, tok); err != nil || got.OrgName != "Renamed Dental" {
			t.Fatalf("after the rename: %q, %v", got.OrgName, err)
		}
	})
}

// Many requests at once while the user logs out on the same instance: every
// request that starts after Logout returned is refused, none before it
// fails for another reason (run under -race too).
func TestSessionCacheConcurrentLogout(t *testing.T) {
	d := dbtest.DB(t)
	noListener(t, d)
	in := newInstance(t, d, nil)
	ctx := context.Background()
	acct := signup(t, in.svc)
	tok := issue(t, in.svc, acct)
	var loggedOut atomic.Bool
	errs := make(chan error, 64)
	done := make(chan struct{})
	for range 8 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				after := loggedOut.Load()
				_, err := in.svc.ResolveToken(ctx, tok)
				switch {
				case after && app.ErrorCode(err) != app.EUnauthorized:
					errs <- fmt.Errorf("a request after the logout: %v, want unauthorized", err)
					return
				case !after && err != nil && app.ErrorCode(err) != app.EUnauthorized:
					errs <- fmt.Errorf("a request around the logout: %v", err)
					return
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	if err := in.svc.Logout(ctx, acct.Principal.UserID); err != nil {
		t.Fatal(err)
	}
	loggedOut.Store(true)
	time.Sleep(100 * time.Millisecond)
	close(done)
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
