package db_test

import (
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"byoc/db/dbtest"
	"byoc/db/rlscheck"
)

// The catalog tests read what the migrations left in pg_catalog, so a new
// table or policy that forgets row level security fails here even before a
// query reaches it.

// catTenantTables lists the public tables with an org_id column.
func catTenantTables(t *testing.T) []string {
	t.Helper()
	d := dbtest.DB(t)
	rows, err := d.Pool.Query(t.Context(), `
		select c.relname::text
		from pg_class c
		join pg_namespace n on n.oid = c.relnamespace
		join pg_attribute a on a.attrelid = c.oid
		where n.nspname = 'public' and c.relkind in ('r', 'p')
		  and a.attname = 'org_id' and a.attnum > 0 and not a.attisdropped
		order by 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) == 0 || !slices.Contains(tables, "org_credentials") {
		t.Fatalf("tables with org_id: %v; want a list that includes org_credentials", tables)
	}
	return tables
}

// The expectation itself lives in db/rlscheck, shared with `byoc
// check-rls`: the database the migrations built must match it exactly, with
// no note (no unknown table with org_id, no role with BYPASSRLS).
func TestCatalogRowLevelSecurity(t *testing.T) {
	d := dbtest.DB(t)
	rep, err := rlscheck.Check(t.Context(), d.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || len(rep.Notes) > 0 {
		t.Fatalf("the migrated database differs from rlscheck.Expected:\n%s", rep)
	}

	// A tenant table the isolation matrix does not know is a table nobody
	// has shown to be isolated.
	t.Run("every tenant table is in the isolation matrix", func(t *testing.T) {
		for _, table := range catTenantTables(t) {
			if !slices.ContainsFunc(rlsTenantTables, func(tb rlsTable) bool { return tb.name == table }) {
				t.Errorf("table %s has org_id but is not in rlsTenantTables (rls_matrix_test.go)", table)
			}
		}
	})
}

// Row level security does not apply to TRUNCATE: a tenant role holding it
// on any table, BYOC's or not (goose's version table), could empty it for
// every org. rlscheck covers BYOC's tables; this covers the rest.
func TestCatalogNoTenantTruncate(t *testing.T) {
	d := dbtest.DB(t)
	rows, err := d.Pool.Query(t.Context(), `
		select r.rolname::text || ' on ' || c.relname::text
		from pg_class c
		join pg_namespace n on n.oid = c.relnamespace
		cross join (values ('authenticated'), ('anon')) r (rolname)
		where n.nspname = 'public' and c.relkind in ('r', 'p')
		  and has_table_privilege(r.rolname, c.oid, 'TRUNCATE')
		order by 1`)
	if err != nil {
		t.Fatal(err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Fatalf("TRUNCATE granted: %v", found)
	}
}
