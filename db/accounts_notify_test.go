package db_test

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/app"
	"byoc/db"
	"byoc/db/dbtest"
)

// LoadSession reads in one pipelined implicit transaction: the tenant's role
// and claims apply to its query and end with it, so the pooled connection
// carries nothing to the next user of it.
func TestLoadSessionLeavesNothingOnTheConnection(t *testing.T) {
	dbtest.DB(t)
	ctx := context.Background()
	d, err := db.Open(ctx, dbtest.URL(t), db.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	orgID, userID, err := d.CreateOrgWithAdmin(ctx, "One Conn Dental", strings.ToLower(uniqueEmail(t)), "hash")
	if err != nil {
		t.Fatal(err)
	}
	var connUser string
	if err := d.Pool.QueryRow(ctx, `select current_user`).Scan(&connUser); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, _, role, _, err := d.LoadSession(ctx, userID, orgID); err != nil || role != app.RoleAdmin {
			t.Fatalf("LoadSession %d: %q, %v", i, role, err)
		}
		var user, claims string
		if err := d.Pool.QueryRow(ctx, `select current_user, coalesce(current_setting('request.jwt.claims', true), '')`).
			Scan(&user, &claims); err != nil {
			t.Fatal(err)
		}
		if user != connUser || claims != "" {
			t.Fatalf("after LoadSession the connection runs as %q with claims %q, want %q and none", user, claims, connUser)
		}
	}
	// A failing read (no such membership) leaves nothing either.
	if _, _, _, _, err := d.LoadSession(ctx, userID, dbtest.SeedOrg(t, "not theirs")); app.ErrorCode(err) != app.ENotFound {
		t.Fatalf("LoadSession in another org: %v, want not found", err)
	}
	var user string
	if err := d.Pool.QueryRow(ctx, `select current_user`).Scan(&user); err != nil || user != connUser {
		t.Fatalf("after a refused LoadSession: %q, %v", user, err)
	}
}

// Every change to what LoadSession reads is announced as app.AccountScope
// for each org concerned, by the database itself, once committed; inserts
// and rolled-back changes announce nothing.
func TestAccountChangesAreAnnounced(t *testing.T) {
	d := dbtest.DB(t)
	credNoListener(t, d)
	ctx := context.Background()
	first, user, err := d.CreateOrgWithAdmin(ctx, "First Notify", strings.ToLower(uniqueEmail(t)), "hash")
	if err != nil {
		t.Fatal(err)
	}
	second := dbtest.SeedOrg(t, "Second Notify")
	_, bystander, err := d.CreateOrgWithAdmin(ctx, "Bystander", strings.ToLower(uniqueEmail(t)), "hash")
	if err != nil {
		t.Fatal(err)
	}

	lctx, cancel := context.WithCancel(ctx)
	notes := make(chan string, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.ListenInvalidations(lctx, func(o, p string) {
			if p == string(app.AccountScope) {
				notes <- o
			}
		}, func() {})
	}()
	t.Cleanup(func() { cancel(); <-done })
	credListenerPID(t, d, 0)

	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := d.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(what string, orgs ...string) {
		t.Helper()
		var got []string
		deadline := time.After(5 * time.Second)
		for len(got) < len(orgs) {
			select {
			case o := <-notes:
				got = append(got, o)
			case <-deadline:
				t.Fatalf("%s: announced %v, want %v", what, got, orgs)
			}
		}
		select {
		case o := <-notes:
			t.Fatalf("%s: also announced %s", what, o)
		case <-time.After(150 * time.Millisecond):
		}
		sort.Strings(got)
		want := append([]string(nil), orgs...)
		sort.Strings(want)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("%s: announced %v, want %v", what, got, want)
		}
	}

	exec(`insert into org_members (org_id, user_id, role) values ($1, $2, 'member')`, second, user)
	expect("a new membership")

	if err := d.BumpSessionVersion(ctx, user); err != nil {
		t.Fatal(err)
	}
	expect("a logout", first, second)

	exec(`update org_members set role = 'admin' where org_id = $1 and user_id = $2`, second, user)
	expect("a role change", second)

	exec(`update orgs set name = 'Renamed' where id = $1`, first)
	expect("an org renamed", first)

	exec(`update users set email = $2 where id = $1`, user, strings.ToLower(uniqueEmail(t)))
	expect("an email changed", first, second)

	exec(`update users set session_version = session_version where id = $1`, user)
	expect("an update that changes nothing")

	errRollback := errors.New("roll back")
	if err := pgx.BeginFunc(ctx, d.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `delete from org_members where user_id = $1`, user); err != nil {
			return err
		}
		return errRollback
	}); !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	expect("a removal rolled back")

	exec(`delete from org_members where org_id = $1 and user_id = $2`, second, user)
	expect("a member removed", second)

	exec(`delete from users where id = $1`, bystander)
	var bystanderOrg string
	if err := d.Pool.QueryRow(ctx, `select id::text from orgs where name = 'Bystander'`).Scan(&bystanderOrg); err != nil {
		t.Fatal(err)
	}
	expect("a user deleted", bystanderOrg)

	exec(`delete from orgs where id = $1`, first)
	expect("an org deleted (and its memberships with it)", first)
}
