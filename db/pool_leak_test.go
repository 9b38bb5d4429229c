package db_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"byoc/db"
	"byoc/db/dbtest"
)

// A pool of two connections serves hundreds of units of work for different
// orgs, the service role and raw queries: no unit may see another's tenant
// context, and nothing of it may outlive its transaction.

// leakOrg is a seeded org and the id of its only credential.
type leakOrg struct{ id, credID string }

// errLeakBoom is what a failing unit of work returns.
var errLeakBoom = errors.New("unit of work failed")

func leakSeed(t *testing.T, ctx context.Context, d *db.DB, n int) []leakOrg {
	t.Helper()
	providers := []string{"vapi", "twilio", "google_calendar", "resend", "elevenlabs"}
	orgs := make([]leakOrg, n)
	err := pgx.BeginFunc(ctx, d.Pool, func(tx pgx.Tx) error {
		for i := range orgs {
			orgs[i].id = rlsNewID()
			if _, err := tx.Exec(ctx, `insert into orgs (id, name) values ($1, $2)`, orgs[i].id, fmt.Sprintf("leak org %d", i)); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `insert into org_credentials (org_id, provider, encrypted_config)
				values ($1, $2, '\x01'::bytea) returning id::text`, orgs[i].id, providers[i%len(providers)]).Scan(&orgs[i].credID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	return orgs
}

// leakLoginUser is the user the test database URL logs in as.
func leakLoginUser(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(dbtest.URL(t))
	if err != nil || u.User.Username() == "" {
		t.Fatal("cannot tell the login user from the test database URL")
	}
	return u.User.Username()
}

type leakQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// leakCheckClean reports any tenant context on the connection q uses: it
// must run as the login user with no role set, no claims and no org.
func leakCheckClean(ctx context.Context, q leakQuerier, login string) error {
	var cur, role string
	var claims, org *string
	err := q.QueryRow(ctx, `select current_user::text, current_setting('role'),
		current_setting('request.jwt.claims', true), auth.org_id()::text`).Scan(&cur, &role, &claims, &org)
	if err != nil {
		return err
	}
	switch {
	case cur != login:
		return fmt.Errorf("current_user %q, want the login user %q", cur, login)
	case role != "none":
		return fmt.Errorf("role setting %q survived, want none", role)
	case claims != nil && *claims != "":
		return fmt.Errorf("claims %q survived", *claims)
	case org != nil:
		return fmt.Errorf("auth.org_id() is %s outside any tenant transaction", *org)
	}
	return nil
}

// leakCheckAllConns holds every connection of the pool at once and checks
// each of them.
func leakCheckAllConns(ctx context.Context, d *db.DB, login string) error {
	var conns []*pgxpool.Conn
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range d.Pool.Config().MaxConns {
		c, err := d.Pool.Acquire(ctx)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		if err := leakCheckClean(ctx, c, login); err != nil {
			return fmt.Errorf("connection %d (pid %d): %w", i, c.Conn().PgConn().PID(), err)
		}
	}
	return nil
}

// leakTenantRead checks, inside a tenant transaction, that the transaction
// is org's and sees only org's credential.
func leakTenantRead(ctx context.Context, tx pgx.Tx, org leakOrg) error {
	var cur, got string
	if err := tx.QueryRow(ctx, `select current_user::text, auth.org_id()::text`).Scan(&cur, &got); err != nil {
		return err
	}
	if cur != db.RoleAuthenticated || got != org.id {
		return fmt.Errorf("tenant tx runs as %q for org %q, want %q for %s", cur, got, db.RoleAuthenticated, org.id)
	}
	rows, err := tx.Query(ctx, `select org_id::text, id::text from org_credentials`)
	if err != nil {
		return err
	}
	seen, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Org, ID string }])
	if err != nil {
		return err
	}
	if len(seen) != 1 || seen[0].Org != org.id || seen[0].ID != org.credID {
		return fmt.Errorf("org %s sees credentials %v, want only its own %s", org.id, seen, org.credID)
	}
	return nil
}

func leakWantCode(err error, code string) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != code {
		return fmt.Errorf("got error %v, want SQLSTATE %s", err, code)
	}
	return nil
}

func TestPoolCarriesNoTenantContext(t *testing.T) {
	admin := dbtest.DB(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	login := leakLoginUser(t)
	d, err := db.Open(ctx, dbtest.URL(t), db.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	orgs := leakSeed(t, ctx, admin, 8)
	orgIDs := make([]string, len(orgs))
	for i, o := range orgs {
		orgIDs[i] = o.id
	}

	// Five kinds of unit, so with eight orgs every org meets every kind.
	kinds := []struct {
		name string
		run  func(ctx context.Context, org leakOrg) error
	}{
		{"tenant sees only its own org", func(ctx context.Context, org leakOrg) error {
			return d.InOrg(ctx, org.id, "", func(tx pgx.Tx) error { return leakTenantRead(ctx, tx, org) })
		}},
		{"raw pool query has no tenant context", func(ctx context.Context, _ leakOrg) error {
			return leakCheckClean(ctx, d.Pool, login)
		}},
		{"tenant unit that fails rolls back", func(ctx context.Context, org leakOrg) error {
			err := d.InOrg(ctx, org.id, "", func(tx pgx.Tx) error {
				if err := leakTenantRead(ctx, tx, org); err != nil {
					return err
				}
				return errLeakBoom
			})
			if !errors.Is(err, errLeakBoom) {
				return fmt.Errorf("got %v, want the unit's own error", err)
			}
			return nil
		}},
		{"service role sees every org", func(ctx context.Context, _ leakOrg) error {
			return d.AsService(ctx, func(tx pgx.Tx) error {
				var cur string
				var org *string
				var n int
				if err := tx.QueryRow(ctx, `select current_user::text, auth.org_id()::text,
					(select count(*) from org_credentials where org_id = any($1::uuid[]))`, orgIDs).Scan(&cur, &org, &n); err != nil {
					return err
				}
				if cur != db.RoleService || org != nil || n != len(orgIDs) {
					return fmt.Errorf("service tx: role %q, org %v, sees %d of %d credentials", cur, org, n, len(orgIDs))
				}
				return nil
			})
		}},
		{"tenant unit whose statement fails rolls back", func(ctx context.Context, org leakOrg) error {
			err := d.InOrg(ctx, org.id, "", func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `select 1 / 0`)
				return err
			})
			return leakWantCode(err, "22012")
		}},
	}

	const units = 400
	type tally struct {
		ran  int
		errs []error
	}
	tallies := make([]tally, len(kinds))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range units {
		wg.Go(func() {
			k := i % len(kinds)
			err := kinds[k].run(ctx, orgs[i%len(orgs)])
			mu.Lock()
			defer mu.Unlock()
			tallies[k].ran++
			if err != nil {
				tallies[k].errs = append(tallies[k].errs, fmt.Errorf("unit %d: %w", i, err))
			}
		})
	}
	wg.Wait()

	for k, kind := range kinds {
		t.Run(kind.name, func(t *testing.T) {
			tl := tallies[k]
			if tl.ran != units/len(kinds) {
				t.Fatalf("ran %d units, want %d", tl.ran, units/len(kinds))
			}
			for i, err := range tl.errs {
				if i == 5 {
					t.Errorf("... and %d more", len(tl.errs)-i)
					break
				}
				t.Error(err)
			}
		})
	}

	// Hundreds of units shared two connections, so each one was reused by
	// every kind of unit above.
	t.Run("two connections served every unit", func(t *testing.T) {
		st := d.Pool.Stat()
		if st.MaxConns() != 2 || st.TotalConns() > 2 || st.AcquireCount() < units {
			t.Fatalf("max %d, total %d, acquired %d: want max 2, at most 2 open, at least %d acquisitions",
				st.MaxConns(), st.TotalConns(), st.AcquireCount(), units)
		}
	})

	t.Run("every pooled connection is clean afterwards", func(t *testing.T) {
		if err := leakCheckAllConns(ctx, d, login); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPoolCleanAfterEachKindOfUnit runs one unit of each kind at a time and
// then checks every connection of the pool, so the connection that served it
// is certainly among those checked.
func TestPoolCleanAfterEachKindOfUnit(t *testing.T) {
	admin := dbtest.DB(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	login := leakLoginUser(t)
	d, err := db.Open(ctx, dbtest.URL(t), db.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	org := leakSeed(t, ctx, admin, 1)[0]

	tests := []struct {
		name string
		run  func(ctx context.Context) error // returns nil when the unit ended as expected
	}{
		{"tenant unit commits", func(ctx context.Context) error {
			return d.InOrg(ctx, org.id, rlsNewID(), func(tx pgx.Tx) error { return leakTenantRead(ctx, tx, org) })
		}},
		{"tenant unit returns an error", func(ctx context.Context) error {
			err := d.InOrg(ctx, org.id, "", func(tx pgx.Tx) error {
				if err := leakTenantRead(ctx, tx, org); err != nil {
					return err
				}
				return errLeakBoom
			})
			if !errors.Is(err, errLeakBoom) {
				return fmt.Errorf("got %v, want the unit's own error", err)
			}
			return nil
		}},
		{"tenant unit whose statement fails", func(ctx context.Context) error {
			err := d.InOrg(ctx, org.id, "", func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `select 1 / 0`)
				return err
			})
			return leakWantCode(err, "22012")
		}},
		{"tenant unit refused by a policy", func(ctx context.Context) error {
			err := d.InOrg(ctx, org.id, "", func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `insert into org_credentials (org_id, provider, encrypted_config) values ($1, 'resend', '\x00'::bytea)`, rlsNewID())
				return err
			})
			return leakWantCode(err, "42501")
		}},
		{"tenant unit cancelled mid-statement", func(ctx context.Context) error {
			short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			err := d.InOrg(short, org.id, "", func(tx pgx.Tx) error {
				_, err := tx.Exec(short, `select pg_sleep(5)`)
				return err
			})
			if err == nil {
				return errors.New("the cancelled unit succeeded")
			}
			return nil
		}},
		{"service unit commits", func(ctx context.Context) error {
			return d.AsService(ctx, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `select count(*) from org_credentials`)
				return err
			})
		}},
		{"service unit returns an error", func(ctx context.Context) error {
			err := d.AsService(ctx, func(pgx.Tx) error { return errLeakBoom })
			if !errors.Is(err, errLeakBoom) {
				return fmt.Errorf("got %v, want the unit's own error", err)
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run(ctx); err != nil {
				t.Fatal(err)
			}
			if err := leakCheckAllConns(ctx, d, login); err != nil {
				t.Fatal(err)
			}
		})
	}
}
