package db_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/app"
	"byoc/db"
	"byoc/db/dbtest"
)

// TestQueryCount: every statement sent with a counting context is counted
// for it, transaction control and the role switch included, and nothing
// sent with another context is.
func TestQueryCount(t *testing.T) {
	d := dbtest.DB(t)
	ctx, count := app.WithQueryCount(t.Context())
	const orgID = "00000000-0000-4000-8000-000000000001" // no such org: RLS shows it nothing

	if err := d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error {
		var n int
		return tx.QueryRow(ctx, `select count(*) from org_credentials`).Scan(&n)
	}); err != nil {
		t.Fatal(err)
	}
	// begin, the role and claims, the select, commit.
	if got := count.Load(); got != 4 {
		t.Errorf("%d statements counted for one tenant transaction with one select, want 4", got)
	}

	if _, err := d.Pool.Exec(t.Context(), `select 1`); err != nil {
		t.Fatal(err)
	}
	if got := count.Load(); got != 4 {
		t.Errorf("a statement of another context was counted: %d", got)
	}

	// Counts of concurrent units stay apart.
	var wg sync.WaitGroup
	counts := make([]*app.QueryCount, 8)
	for i := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, n := app.WithQueryCount(t.Context())
			counts[i] = n
			for range i + 1 {
				if _, err := d.Pool.Exec(c, `select 1`); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for i, c := range counts {
		if c.Load() != int64(i+1) {
			t.Errorf("unit %d counted %d statements, want %d", i, c.Load(), i+1)
		}
	}
}

// TestErrorCounts: a statement the server refuses counts as a statement
// error; a duplicate key (the caller's answer, such as email_taken) and a
// statement whose caller gave up do not; a connection that cannot be had in
// time counts as a connect error.
func TestErrorCounts(t *testing.T) {
	ctx := t.Context()
	d, err := db.Open(ctx, dbtest.URL(t), db.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := d.Errors(); got != (db.Errors{}) {
		t.Fatalf("a new DB counts %+v", got)
	}

	if _, err := d.Pool.Exec(ctx, `select 1/0`); err == nil {
		t.Fatal("division by zero succeeded")
	}
	if got := d.Errors(); got.Statement != 1 || got.Connect != 0 {
		t.Errorf("after a refused statement: %+v, want 1 statement error", got)
	}

	if _, err := d.Pool.Exec(ctx, `create temporary table dup (id int primary key)`); err != nil {
		t.Fatal(err)
	}
	conn, err := d.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, err = conn.Exec(ctx, `insert into pg_temp.dup values (1)`)
	}
	if err == nil {
		t.Fatal("a duplicate key was accepted")
	}

	// The pool's one connection is taken: getting another times out.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, aerr := d.Pool.Exec(short, `select 1`)
	cancel()
	if !errors.Is(aerr, context.DeadlineExceeded) {
		t.Fatalf("acquiring from an exhausted pool: %v", aerr)
	}
	// A caller giving up on a running statement.
	gone, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := conn.Exec(gone, `select pg_sleep(5)`); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled statement: %v", err)
	}
	conn.Release()

	if got := d.Errors(); got.Statement != 1 || got.Connect != 1 {
		t.Errorf("after a duplicate key, an exhausted pool and a cancelled statement: %+v, want 1 statement and 1 connect error", got)
	}
}
