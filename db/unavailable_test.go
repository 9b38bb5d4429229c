package db_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/db"
	"byoc/db/dbtest"
)

// A database that cannot be used makes every unit of work fail with
// EUnavailable (503, try again), at once; what a statement or fn itself
// refused keeps its own error.

// closedDB is a DB whose pool points at a local port nothing listens on.
func closedDB(t *testing.T) *db.DB {
	t.Helper()
	addr := strings.TrimPrefix(apptest.ClosedURL(t), "http://")
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@"+addr+"/byoc?sslmode=disable&connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	d := &db.DB{Pool: pool}
	t.Cleanup(d.Close)
	return d
}

func wantUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	if code := app.ErrorCode(err); code != app.EUnavailable {
		t.Fatalf("%s: code %q (%v), want %q", what, code, err, app.EUnavailable)
	}
	if msg := app.ErrorMessage(err); strings.Contains(msg, "127.0.0.1") || strings.Contains(strings.ToLower(msg), "postgres") {
		t.Errorf("%s: the message %q tells how the server is built", what, msg)
	}
}

func TestUnavailableWhenNoServerAnswers(t *testing.T) {
	d := closedDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := d.AsService(ctx, func(tx pgx.Tx) error { return nil })
	wantUnavailable(t, "AsService", err)
	if !errors.As(err, new(*pgconn.ConnectError)) {
		t.Errorf("the cause is lost: %v", err)
	}
	err = d.InOrg(ctx, rlsNewID(), "", func(tx pgx.Tx) error { return nil })
	wantUnavailable(t, "InOrg", err)
	err = d.WithOrgLock(ctx, rlsNewID(), "save", func(context.Context) error {
		t.Error("fn ran without its lock")
		return nil
	})
	wantUnavailable(t, "WithOrgLock", err)
	// The one-round-trip read of a sign-in too.
	_, _, _, _, err = d.LoadSession(ctx, rlsNewID(), rlsNewID())
	wantUnavailable(t, "LoadSession", err)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a refused connection took %v to report", took)
	}
}

func TestUnavailableWhenTheConnectionIsKilled(t *testing.T) {
	ctx := context.Background()
	d, err := db.Open(ctx, dbtest.URL(t), db.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	err = d.AsService(ctx, func(tx pgx.Tx) error {
		var pid uint32
		if err := tx.QueryRow(ctx, `select pg_backend_pid()`).Scan(&pid); err != nil {
			return err
		}
		// Another session ends this one, as a server shutting down does.
		if _, err := dbtest.DB(t).Pool.Exec(ctx, `select pg_terminate_backend($1)`, pid); err != nil {
			t.Fatal(err)
		}
		_, err := tx.Exec(ctx, `select 1`)
		return err
	})
	wantUnavailable(t, "a statement on a terminated session", err)
	// The pool replaces the connection: the next unit of work succeeds.
	if err := d.AsService(ctx, func(tx pgx.Tx) error { _, err := tx.Exec(ctx, `select 1`); return err }); err != nil {
		t.Fatalf("after the session ended: %v", err)
	}
}

func TestUnavailableWhenTheDeadlinePasses(t *testing.T) {
	d := dbtest.DB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `select pg_sleep(10)`)
		return err
	})
	wantUnavailable(t, "a statement past its deadline", err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the cause is lost: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the statement held the caller %v past a 200 ms deadline", took)
	}
}

func TestStatementErrorsStayTheirOwn(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `select 1/0`)
		return err
	})
	if code := app.ErrorCode(err); code != app.EInternal {
		t.Errorf("division by zero: code %q, want %q (a fault of ours, not of the database)", code, app.EInternal)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "22012" {
		t.Errorf("the statement's error is lost: %v", err)
	}
	// A domain error of fn passes unchanged, even wrapping a lost connection.
	mine := &app.Error{Code: app.ENotFound, Message: "No such thing.", Cause: pgconn.ErrConnClosed}
	if err := d.AsService(ctx, func(tx pgx.Tx) error { return mine }); err != mine {
		t.Errorf("fn's domain error came back as %v", err)
	}
}
