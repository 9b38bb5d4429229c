// Package dbtest gives each test binary a fresh PostgreSQL database,
// migrated from the real migrations, on the server named by DATABASE_URL
// (the private cluster that `make test` starts). Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }
//
// and get the database in a test with dbtest.DB(t).
//
// Without DATABASE_URL the tests that need a database are skipped, except
// under CI=true, where that is a failure.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/db"
)

var (
	shared    *db.DB
	sharedURL string
	setupErr  error
)

// Run creates and migrates a database named byoc_test_<random>, runs the
// tests, drops the database and returns the exit code for os.Exit.
func Run(m *testing.M) int {
	admin := os.Getenv("DATABASE_URL")
	if admin == "" {
		setupErr = errNoDatabase
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	name, u, err := create(ctx, admin)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dbtest:", err)
		return 1
	}
	sharedURL = u
	d, err := db.Open(context.Background(), u, db.Options{MaxConns: 16})
	if err == nil {
		err = d.MigrateUp(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dbtest:", err)
		dropDB(admin, name)
		return 1
	}
	shared = d
	code := m.Run()
	d.Close()
	dropDB(admin, name)
	return code
}

var errNoDatabase = fmt.Errorf("DATABASE_URL is not set: run the tests with `make test` (it starts a private PostgreSQL)")

// DB returns this test binary's database. It skips the test when no server
// is configured (fails under CI=true) and fails it when TestMain did not
// call Run.
func DB(t testing.TB) *db.DB {
	t.Helper()
	if setupErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(setupErr)
		}
		t.Skip(setupErr)
	}
	if shared == nil {
		t.Fatal("dbtest: TestMain must call dbtest.Run")
	}
	return shared
}

// URL returns the connection string of this test binary's database, for
// tests that need a pool of their own (for example with a given size).
func URL(t testing.TB) string {
	t.Helper()
	DB(t)
	return sharedURL
}

// Create makes an empty database on the server named by DATABASE_URL and
// returns its connection string and a function that drops it. Browser tests
// use it to give the real server a database of its own.
func Create(ctx context.Context) (dbURL string, drop func(), err error) {
	admin := os.Getenv("DATABASE_URL")
	if admin == "" {
		return "", nil, errNoDatabase
	}
	name, u, err := create(ctx, admin)
	if err != nil {
		return "", nil, err
	}
	return u, func() { dropDB(admin, name) }, nil
}

func create(ctx context.Context, admin string) (name, dbURL string, err error) {
	u, err := url.Parse(admin)
	if err != nil {
		return "", "", fmt.Errorf("parse DATABASE_URL: invalid URL")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name = "byoc_test_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", "", fmt.Errorf("connect to DATABASE_URL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", "", fmt.Errorf("create test database: %w", err)
	}
	u.Path = "/" + name
	return name, u.String(), nil
}

func dropDB(admin, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dbtest: drop:", err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		fmt.Fprintln(os.Stderr, "dbtest: drop:", err)
	}
}

// SeedOrg inserts an org named name into this test binary's database
// through the raw pool and returns its id.
func SeedOrg(t testing.TB, name string) string {
	t.Helper()
	var id string
	if err := DB(t).Pool.QueryRow(context.Background(),
		`insert into orgs (name) values ($1) returning id::text`, name).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}
