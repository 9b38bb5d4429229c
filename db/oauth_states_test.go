package db_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"byoc/app"
	"byoc/db"
	"byoc/db/dbtest"
)

// oauthSeed inserts an org with one user (through the raw pool) and returns
// their ids.
func oauthSeed(t *testing.T, d *db.DB) (orgID, userID string) {
	t.Helper()
	ctx := context.Background()
	if err := d.Pool.QueryRow(ctx, `insert into orgs (name) values ('oauth states test') returning id::text`).Scan(&orgID); err != nil {
		t.Fatal(err)
	}
	email := "oauth-" + rlsNewID() + "@example.test"
	if err := d.Pool.QueryRow(ctx, `insert into users (email, password_hash) values ($1, 'x') returning id::text`, email).Scan(&userID); err != nil {
		t.Fatal(err)
	}
	return orgID, userID
}

// oauthHash returns a fresh random state hash.
func oauthHash() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	sum := sha256.Sum256(b[:])
	return hex.EncodeToString(sum[:])
}

func oauthState(org, user string, expiresIn time.Duration) app.OAuthState {
	now := time.Now().Truncate(time.Microsecond)
	return app.OAuthState{
		StateHash: oauthHash(), OrgID: org, UserID: user, SessionBinding: "binding-" + oauthHash()[:8],
		CodeVerifier: []byte("sealed-verifier"), CreatedAt: now.Add(-time.Minute), ExpiresAt: now.Add(expiresIn),
	}
}

func oauthRows(t *testing.T, d *db.DB, stateHash string) int {
	t.Helper()
	var n int
	if err := d.Pool.QueryRow(context.Background(), `select count(*) from oauth_states where state_hash = $1`, stateHash).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOAuthStateSaveAndTake(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org, user := oauthSeed(t, d)
	st := oauthState(org, user, 10*time.Minute)

	if err := d.SaveOAuthState(ctx, st); err != nil {
		t.Fatal(err)
	}
	got, err := d.TakeOAuthState(ctx, org, st.StateHash)
	if err != nil {
		t.Fatal(err)
	}
	if got.StateHash != st.StateHash || got.OrgID != org || got.UserID != user || got.SessionBinding != st.SessionBinding ||
		string(got.CodeVerifier) != string(st.CodeVerifier) || !got.CreatedAt.Equal(st.CreatedAt) || !got.ExpiresAt.Equal(st.ExpiresAt) {
		t.Fatalf("took %+v, saved %+v", got, st)
	}
	if n := oauthRows(t, d, st.StateHash); n != 0 {
		t.Fatalf("%d rows left after the take, want 0", n)
	}
	if _, err := d.TakeOAuthState(ctx, org, st.StateHash); app.ErrorCode(err) != app.ENotFound {
		t.Fatalf("second take: got %v, want %s", err, app.ENotFound)
	}

	t.Run("created_at defaults to now", func(t *testing.T) {
		st := oauthState(org, user, 10*time.Minute)
		st.CreatedAt = time.Time{}
		if err := d.SaveOAuthState(ctx, st); err != nil {
			t.Fatal(err)
		}
		got, err := d.TakeOAuthState(ctx, org, st.StateHash)
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(got.CreatedAt) > time.Minute || time.Since(got.CreatedAt) < -time.Minute {
			t.Fatalf("created_at %v, want about now", got.CreatedAt)
		}
	})
}

func TestOAuthStateRefusals(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org, user := oauthSeed(t, d)
	for _, tc := range []struct {
		name   string
		change func(*app.OAuthState)
	}{
		{"no expiry", func(st *app.OAuthState) { st.ExpiresAt = time.Time{} }},
		{"hash not hex", func(st *app.OAuthState) { st.StateHash = "not-a-sha256-digest" }},
		{"raw state instead of its hash", func(st *app.OAuthState) { st.StateHash = "ABCDEF" + st.StateHash[6:] }},
		{"unknown user", func(st *app.OAuthState) { st.UserID = rlsNewID() }},
		{"malformed org", func(st *app.OAuthState) { st.OrgID = "not-a-uuid" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := oauthState(org, user, 10*time.Minute)
			tc.change(&st)
			if err := d.SaveOAuthState(ctx, st); err == nil {
				t.Fatal("saved; want an error")
			}
			if n := oauthRows(t, d, st.StateHash); n != 0 {
				t.Fatalf("%d rows stored, want 0", n)
			}
		})
	}
	t.Run("same hash twice", func(t *testing.T) {
		st := oauthState(org, user, 10*time.Minute)
		if err := d.SaveOAuthState(ctx, st); err != nil {
			t.Fatal(err)
		}
		if err := d.SaveOAuthState(ctx, st); err == nil {
			t.Fatal("saved the same state hash twice")
		}
	})
}

func TestOAuthStateSingleUseUnderConcurrency(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org, user := oauthSeed(t, d)
	st := oauthState(org, user, 10*time.Minute)
	if err := d.SaveOAuthState(ctx, st); err != nil {
		t.Fatal(err)
	}

	const takers = 10
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, takers)
	for i := range takers {
		wg.Go(func() {
			<-start
			_, errs[i] = d.TakeOAuthState(ctx, org, st.StateHash)
		})
	}
	close(start)
	wg.Wait()

	won := 0
	for i, err := range errs {
		switch app.ErrorCode(err) {
		case "":
			won++
		case app.ENotFound:
		default:
			t.Errorf("taker %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent takes succeeded, want exactly 1", won, takers)
	}
}

func TestOAuthStateExpiry(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org, user := oauthSeed(t, d)

	t.Run("an expired state is absent, and removed", func(t *testing.T) {
		st := oauthState(org, user, -time.Second)
		st.CreatedAt = st.ExpiresAt.Add(-10 * time.Minute)
		if err := d.SaveOAuthState(ctx, st); err != nil {
			t.Fatal(err)
		}
		if _, err := d.TakeOAuthState(ctx, org, st.StateHash); app.ErrorCode(err) != app.ENotFound {
			t.Fatalf("take of an expired state: got %v, want %s", err, app.ENotFound)
		}
		if n := oauthRows(t, d, st.StateHash); n != 0 {
			t.Fatalf("%d rows left, want 0", n)
		}
	})

	t.Run("saving cleans up the org's expired states only", func(t *testing.T) {
		otherOrg, otherUser := oauthSeed(t, d)
		stale := oauthState(org, user, -time.Minute)
		stale.CreatedAt = stale.ExpiresAt.Add(-10 * time.Minute)
		otherStale := oauthState(otherOrg, otherUser, -time.Minute)
		otherStale.CreatedAt = otherStale.ExpiresAt.Add(-10 * time.Minute)
		live := oauthState(org, user, 10*time.Minute)
		for _, st := range []app.OAuthState{stale, otherStale, live} {
			if err := d.SaveOAuthState(ctx, st); err != nil {
				t.Fatal(err)
			}
		}
		// stale went when live was saved; otherStale waits for its own org.
		if n := oauthRows(t, d, stale.StateHash); n != 0 {
			t.Errorf("expired state of the org still stored (%d rows)", n)
		}
		if n := oauthRows(t, d, otherStale.StateHash); n != 1 {
			t.Errorf("another org's state: %d rows, want 1 (cleanup stays within the org)", n)
		}
		if n := oauthRows(t, d, live.StateHash); n != 1 {
			t.Errorf("live state: %d rows, want 1", n)
		}
	})
}

func TestOAuthStateOrgIsolation(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	orgA, userA := oauthSeed(t, d)
	orgB, userB := oauthSeed(t, d)
	st := oauthState(orgA, userA, 10*time.Minute)
	if err := d.SaveOAuthState(ctx, st); err != nil {
		t.Fatal(err)
	}

	if _, err := d.TakeOAuthState(ctx, orgB, st.StateHash); app.ErrorCode(err) != app.ENotFound {
		t.Fatalf("take by another org: got %v, want %s", err, app.ENotFound)
	}
	if n := oauthRows(t, d, st.StateHash); n != 1 {
		t.Fatalf("another org's take removed the state (%d rows left)", n)
	}
	t.Run("B's state is out of A's reach", func(t *testing.T) {
		other := oauthState(orgB, userB, 10*time.Minute)
		if err := d.SaveOAuthState(ctx, other); err != nil {
			t.Fatal(err)
		}
		if _, err := d.TakeOAuthState(ctx, orgA, other.StateHash); app.ErrorCode(err) != app.ENotFound {
			t.Fatalf("A took B's state: %v", err)
		}
		if got, err := d.TakeOAuthState(ctx, orgB, other.StateHash); err != nil || got.OrgID != orgB {
			t.Fatalf("B's own take: %+v, %v", got, err)
		}
	})
	if _, err := d.TakeOAuthState(ctx, orgA, st.StateHash); err != nil {
		t.Fatalf("take by its own org after the refusal: %v", err)
	}
}

// oauthOrgRows counts the org's stored states.
func oauthOrgRows(t *testing.T, d *db.DB, orgID string) int {
	t.Helper()
	var n int
	if err := d.Pool.QueryRow(context.Background(), `select count(*) from oauth_states where org_id = $1`, orgID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOAuthStatesPerOrgAreCapped(t *testing.T) {
	// 200 connect starts once made 200 rows: an org keeps its newest
	// app.MaxPendingOAuthStates, the one just saved always among them.
	d := dbtest.DB(t)
	ctx := context.Background()

	t.Run("one after another", func(t *testing.T) {
		org, user := oauthSeed(t, d)
		otherOrg, otherUser := oauthSeed(t, d)
		other := oauthState(otherOrg, otherUser, 10*time.Minute)
		if err := d.SaveOAuthState(ctx, other); err != nil {
			t.Fatal(err)
		}
		base := time.Now().Truncate(time.Microsecond)
		const starts = 3 * app.MaxPendingOAuthStates
		saved := make([]app.OAuthState, starts)
		for i := range saved {
			saved[i] = oauthState(org, user, 10*time.Minute)
			saved[i].CreatedAt = base.Add(time.Duration(i) * time.Second)
			if err := d.SaveOAuthState(ctx, saved[i]); err != nil {
				t.Fatal(err)
			}
			if n := oauthOrgRows(t, d, org); n > app.MaxPendingOAuthStates {
				t.Fatalf("after %d starts the org has %d states, want at most %d", i+1, n, app.MaxPendingOAuthStates)
			}
		}
		if n := oauthOrgRows(t, d, org); n != app.MaxPendingOAuthStates {
			t.Fatalf("the org has %d states, want %d", n, app.MaxPendingOAuthStates)
		}
		for i, st := range saved {
			_, err := d.TakeOAuthState(ctx, org, st.StateHash)
			newest := i >= starts-app.MaxPendingOAuthStates
			if newest && err != nil {
				t.Errorf("state %d of %d (among the newest): %v", i+1, starts, err)
			}
			if !newest && app.ErrorCode(err) != app.ENotFound {
				t.Errorf("state %d of %d (among the oldest): %v, want %s", i+1, starts, err, app.ENotFound)
			}
		}
		if n := oauthRows(t, d, other.StateHash); n != 1 {
			t.Errorf("another org's state: %d rows, want 1 (the cap is per org)", n)
		}
	})

	t.Run("the state just saved stays, even when older by its clock", func(t *testing.T) {
		org, user := oauthSeed(t, d)
		for range app.MaxPendingOAuthStates {
			if err := d.SaveOAuthState(ctx, oauthState(org, user, 10*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		late := oauthState(org, user, 10*time.Minute)
		late.CreatedAt = late.CreatedAt.Add(-time.Hour)
		if err := d.SaveOAuthState(ctx, late); err != nil {
			t.Fatal(err)
		}
		if n := oauthRows(t, d, late.StateHash); n != 1 {
			t.Fatalf("the state just saved: %d rows, want 1", n)
		}
		if n := oauthOrgRows(t, d, org); n != app.MaxPendingOAuthStates {
			t.Fatalf("the org has %d states, want %d", n, app.MaxPendingOAuthStates)
		}
	})

	t.Run("all at once", func(t *testing.T) {
		org, user := oauthSeed(t, d)
		const starts = 4 * app.MaxPendingOAuthStates
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, starts)
		for i := range starts {
			wg.Go(func() {
				<-start
				errs[i] = d.SaveOAuthState(ctx, oauthState(org, user, 10*time.Minute))
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("save %d: %v", i, err)
			}
		}
		if n := oauthOrgRows(t, d, org); n != app.MaxPendingOAuthStates {
			t.Fatalf("the org has %d states after %d concurrent starts, want %d", n, starts, app.MaxPendingOAuthStates)
		}
	})
}
