//go:build !e2e

package drills

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/db"
)

var (
	fullRun = flag.Bool("drills.full", false, "run the full drills (make drills): a 10 s outage and more load")
	outFile = flag.String("drills.out", "", "also write the table of figures to this file")
)

// plan is the size of a run: the short form for `make test`, the full one
// for `make drills`.
type plan struct {
	outage        time.Duration // how long PostgreSQL stays stopped
	steady        time.Duration // load before the stop
	workers       int           // load workers per kind of request
	slowFor       time.Duration // how long the slow-database load runs
	slowDelay     time.Duration // the delay added to every answer of the database
	slowDeadline  time.Duration // the request deadline of the slow-database instance
	saves         int           // concurrent Vapi saves of one org
	recoveryBound time.Duration // the generous bound recovery must meet (the target is reported)
}

func currentPlan() plan {
	if *fullRun {
		return plan{outage: 10 * time.Second, steady: 2 * time.Second, workers: 4, slowFor: 8 * time.Second,
			slowDelay: 50 * time.Millisecond, slowDeadline: time.Second, saves: 50, recoveryBound: 30 * time.Second}
	}
	return plan{outage: 3 * time.Second, steady: time.Second, workers: 2, slowFor: 3 * time.Second,
		slowDelay: 50 * time.Millisecond, slowDeadline: time.Second, saves: 50, recoveryBound: 30 * time.Second}
}

func TestMain(m *testing.M) {
	flag.Parse()
	// The invalidation listeners log to the default logger; the drills
	// make them reconnect on purpose.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	code := m.Run()
	if cluster != nil {
		if err := cluster.pg("stop"); err != nil {
			fmt.Fprintln(os.Stderr, "drills: stopping the drills' PostgreSQL:", err)
			code = max(code, 1)
		}
	}
	if out := report.String(); out != "" {
		fmt.Println(out)
		if *outFile != "" {
			if err := os.MkdirAll(filepath.Dir(*outFile), 0o755); err == nil {
				err = os.WriteFile(*outFile, []byte(out), 0o644)
			}
		}
	}
	os.Exit(code)
}

// drillCluster is db/pg.sh's "drills" cluster of this checkout, on a port
// chosen when it first starts.
type drillCluster struct {
	script string   // db/pg.sh
	env    []string // what selects the cluster
	url    string   // the drills' database (byoc_drills_<random>)
	admin  string   // the cluster's postgres database, as the superuser
}

var (
	cluster     *drillCluster
	clusterErr  error
	clusterOnce sync.Once
)

// needCluster starts the drills' cluster and creates and migrates the
// drills' database, once per run. The short form runs where the database
// tests run: without DATABASE_URL (no `make test`) it is skipped like them,
// and fails under CI=true. The full form (`make drills`) always runs.
func needCluster(t *testing.T) *drillCluster {
	t.Helper()
	if os.Getenv("DATABASE_URL") == "" && !*fullRun {
		if os.Getenv("CI") == "true" {
			t.Fatal("DATABASE_URL is not set: run the drills with `make test` or `make drills`")
		}
		t.Skip("DATABASE_URL is not set: run the drills with `make test` or `make drills`")
	}
	clusterOnce.Do(func() { cluster, clusterErr = startCluster() })
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	return cluster
}

func startCluster() (*drillCluster, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return nil, err
	}
	script := filepath.Join(root, "db", "pg.sh")
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("db/pg.sh not found: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &drillCluster{script: script, env: []string{
		"BYOC_PG_CLUSTER=drills", "BYOC_PG_PORT=" + strconv.Itoa(port), "BYOC_PG_DB=postgres",
		// Commits are durable as PostgreSQL promises them: the drills
		// stop the server the way a crash does and count on every
		// acknowledged write being there afterwards.
		"BYOC_PG_FAST=0", "BYOC_PG_STATEMENTS=0",
	}}
	// A cluster left running by an interrupted run may listen on another
	// port: stop it first.
	if err := c.pg("stop"); err != nil {
		return nil, err
	}
	if err := c.pg("start"); err != nil {
		return c, err
	}
	c.admin = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.admin)
	if err != nil {
		return c, err
	}
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "byoc_drills_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()); err != nil {
		return c, err
	}
	u, _ := url.Parse(c.admin)
	u.Path = "/" + name
	c.url = u.String()
	d, err := db.Open(ctx, c.url, db.Options{MaxConns: 2})
	if err != nil {
		return c, err
	}
	defer d.Close()
	return c, d.MigrateUp(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// pg runs db/pg.sh on the drills' cluster; extra is more environment.
func (c *drillCluster) pg(command string, extra ...string) error {
	cmd := exec.Command("bash", c.script, command)
	cmd.Env = append(append(os.Environ(), c.env...), extra...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("db/pg.sh %s: %w\n%s", command, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// crash stops PostgreSQL the way a crash does (no checkpoint, sessions cut).
func (c *drillCluster) crash() error { return c.pg("stop", "BYOC_PG_STOP_MODE=immediate") }

// start starts PostgreSQL again (recovering from its WAL after a crash).
func (c *drillCluster) start() error { return c.pg("start") }

// running reports whether the server accepts connections.
func (c *drillCluster) running() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.admin)
	if err != nil {
		return false
	}
	_ = conn.Close(ctx)
	return true
}

// query runs sql on the drills' database as the superuser (row level
// security does not apply) and scans its one row into dest.
func (c *drillCluster) query(t *testing.T, sql string, args []any, dest ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, sql, args...).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
