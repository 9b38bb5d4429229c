// Package db is BYOC's PostgreSQL adapter: the connection pool, the two kinds
// of transaction every query runs in, the migrations and one file of queries
// per aggregate.
//
// Tenant isolation is enforced twice: every tenant query filters by org in
// Go, and each tenant-scoped transaction runs as the `authenticated` role with
// the org's claims set transaction-locally, so row level security applies
// underneath. Nothing of a tenant's context outlives its transaction.
package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"byoc/app"
)

// Roles the application switches to inside a transaction. Neither is a
// superuser nor BYPASSRLS; see migrations/00001_roles.sql.
const (
	RoleAuthenticated = "authenticated"
	RoleService       = "service_role"
)

// DB is a pool of connections to the application database. It is safe for
// concurrent use.
//
// Besides Pool, which every query uses, a DB keeps a second, small pool of
// at most LockMaxConns connections that only hold WithOrgLock's advisory
// locks, so lock holders and waiters never take connections from the work
// they guard.
type DB struct {
	Pool *pgxpool.Pool

	locks lockPool // see WithOrgLock
	trace *tracer  // counts statements per unit of work, and failures (see Errors)
}

// DefaultMaxConns is the pool size Open uses when neither Options.MaxConns
// nor the connection string's pool_max_conns sets one: room for a web
// server's concurrent requests and the webhook traffic (pgx's own default,
// the larger of 4 and the CPU count, is far too small for that). Keep it plus
// LockMaxConns below the server's max_connections divided by the number of
// instances.
const DefaultMaxConns int32 = 20

// Options tunes Open. The zero value is sensible.
type Options struct {
	// MaxConns caps the pool. 0 means the connection string's
	// pool_max_conns when it has one, else DefaultMaxConns.
	MaxConns int32
}

// Open connects to url and pings the server. The caller closes the DB.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("db: parse DATABASE_URL: %w", errRedactedURL)
	}
	switch {
	case opts.MaxConns > 0:
		cfg.MaxConns = opts.MaxConns
	case !strings.Contains(url, "pool_max_conns"):
		cfg.MaxConns = DefaultMaxConns
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "byoc"
	trace := &tracer{}
	cfg.ConnConfig.Tracer = trace
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("db: connect: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("db: ping: %w", err)
	}
	lp, err := newLockPool(ctx, cfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("db: connect: %w", err)
	}
	d := &DB{Pool: pool, trace: trace}
	d.locks.init(lp)
	return d, nil
}

// Close closes every connection of both pools.
func (d *DB) Close() {
	d.locks.close()
	d.Pool.Close()
}

// Ping reports whether the database answers; readiness checks use it.
func (d *DB) Ping(ctx context.Context) error { return d.Pool.Ping(ctx) }

// ErrNoOrg is returned by InOrg when it is given no valid org id: a tenant
// transaction without a tenant is always a bug.
var ErrNoOrg = errors.New("db: tenant transaction without a valid org id")

// InOrg runs fn in one transaction as the `authenticated` role with the
// claims {"sub": userID, "org_id": orgID, "role": "authenticated"} set
// transaction-locally, so row level security limits every statement to the
// org. userID may be empty (a webhook acting for the org). The transaction
// commits when fn returns nil and rolls back otherwise; either way the role
// and the claims end with it, so the pooled connection carries nothing over.
// When the database cannot be used (down, restarting, the connection lost,
// or ctx's deadline passed while waiting for it) the error is EUnavailable,
// whatever fn made of it, unless fn returned a domain error; AsService does
// the same.
func (d *DB) InOrg(ctx context.Context, orgID, userID string, fn func(pgx.Tx) error) error {
	if !app.IsUUID(orgID) || (userID != "" && !app.IsUUID(userID)) {
		return ErrNoOrg
	}
	claims := map[string]string{"org_id": orgID, "role": RoleAuthenticated}
	if userID != "" {
		claims["sub"] = userID
	}
	return d.inRole(ctx, RoleAuthenticated, claims, fn)
}

// AsService runs fn in one transaction as `service_role`: the cross-org role
// for signup, login, webhook resolution and background jobs. Use it only
// where no single org is known yet or the work spans orgs.
func (d *DB) AsService(ctx context.Context, fn func(pgx.Tx) error) error {
	return d.inRole(ctx, RoleService, map[string]string{"role": RoleService}, fn)
}

func (d *DB) inRole(ctx context.Context, role string, claims map[string]string, fn func(pgx.Tx) error) error {
	raw, err := json.Marshal(claims)
	if err != nil {
		return err
	}
	return unavailable(pgx.BeginFunc(ctx, d.Pool, func(tx pgx.Tx) error {
		// One round trip sets both, and `true` makes them transaction-local.
		if _, err := tx.Exec(ctx,
			`select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)`,
			role, string(raw)); err != nil {
			return fmt.Errorf("db: enter %s: %w", role, err)
		}
		return fn(tx)
	}))
}

// readInOrg reads one row as InOrg would, in one round trip instead of four
// (begin, enter the role, query, commit): the role, the claims and the query
// go to the server as one pipeline ended by a single Sync, which PostgreSQL
// runs as one implicit transaction, so the transaction-local role and claims
// apply to the query and end with it, exactly as in InOrg. The row is scanned
// into dest; no row is pgx.ErrNoRows. Use it for hot single-row reads only:
// anything that writes or reads more than once belongs in InOrg.
func (d *DB) readInOrg(ctx context.Context, orgID, userID, sql string, args []any, dest ...any) error {
	if !app.IsUUID(orgID) || (userID != "" && !app.IsUUID(userID)) {
		return ErrNoOrg
	}
	claims := map[string]string{"org_id": orgID, "role": RoleAuthenticated}
	if userID != "" {
		claims["sub"] = userID
	}
	raw, err := json.Marshal(claims)
	if err != nil {
		return err
	}
	var b pgx.Batch
	b.Queue(`select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)`,
		RoleAuthenticated, string(raw)).Exec(func(pgconn.CommandTag) error { return nil })
	b.Queue(sql, args...).QueryRow(func(row pgx.Row) error { return row.Scan(dest...) })
	return unavailable(d.Pool.SendBatch(ctx, &b).Close())
}

// errRedactedURL replaces pgx's parse errors, which may quote the connection
// string and its password.
var errRedactedURL = errors.New("invalid connection string (the value is not shown because it may contain a password)")
