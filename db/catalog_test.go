package db_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"byoc/db/dbtest"
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

func TestCatalogRowSecurityForcedOnTenantTables(t *testing.T) {
	d := dbtest.DB(t)
	ctx := t.Context()
	tables := append(catTenantTables(t), "orgs", "users")

	for _, table := range tables {
		t.Run(table, func(t *testing.T) {
			var enabled, forced bool
			err := d.Pool.QueryRow(ctx, `
				select c.relrowsecurity, c.relforcerowsecurity
				from pg_class c join pg_namespace n on n.oid = c.relnamespace
				where n.nspname = 'public' and c.relname = $1`, table).Scan(&enabled, &forced)
			if err != nil {
				t.Fatal(err)
			}
			if !enabled || !forced {
				t.Fatalf("relrowsecurity %v, relforcerowsecurity %v; want both true", enabled, forced)
			}
		})
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

func TestCatalogAppRolesCannotBypassRLS(t *testing.T) {
	d := dbtest.DB(t)
	for _, role := range []string{"authenticated", "service_role", "anon"} {
		t.Run(role, func(t *testing.T) {
			var super, bypass bool
			err := d.Pool.QueryRow(t.Context(), `select rolsuper, rolbypassrls from pg_roles where rolname = $1`, role).Scan(&super, &bypass)
			if err == pgx.ErrNoRows {
				t.Fatalf("role %s does not exist", role)
			}
			if err != nil {
				t.Fatal(err)
			}
			if super || bypass {
				t.Fatalf("rolsuper %v, rolbypassrls %v; want both false", super, bypass)
			}
		})
	}
}

func TestCatalogTenantPolicies(t *testing.T) {
	d := dbtest.DB(t)
	ctx := t.Context()

	// The function each table's tenant policies must call, once per
	// statement: PostgreSQL prints (SELECT auth.org_id()) this way.
	wantCall := map[string]string{"orgs": "auth.org_id()", "users": "auth.user_id()"}
	for _, table := range catTenantTables(t) {
		wantCall[table] = "auth.org_id()"
	}
	// Policies that call another function than their table's: users'
	// teammates policy reads the members of the tenant's org.
	wantCallOf := map[string]string{"users/users_select_teammates": "auth.org_id()"}

	type policy struct {
		Table, Name, Cmd string
		Roles            []string
		Qual, WithCheck  *string
	}
	rows, err := d.Pool.Query(ctx, `
		select tablename::text, policyname::text, cmd, roles::text[], qual, with_check
		from pg_policies where schemaname = 'public' order by 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	policies, err := pgx.CollectRows(rows, pgx.RowToStructByPos[policy])
	if err != nil {
		t.Fatal(err)
	}

	covered := map[string]bool{}
	for _, p := range policies {
		t.Run(p.Table+"/"+p.Name, func(t *testing.T) {
			// A policy for PUBLIC (or anon) would apply to every role.
			for _, r := range p.Roles {
				if r == "public" || r == "anon" {
					t.Errorf("policy applies to role %s; tenant policies must name authenticated", r)
				}
			}
			if (p.Cmd == "UPDATE" || p.Cmd == "ALL") && p.WithCheck == nil {
				t.Errorf("%s policy without WITH CHECK", p.Cmd)
			}
			call, tenant := wantCall[p.Table]
			if !tenant || !slices.Contains(p.Roles, "authenticated") {
				return
			}
			if c, ok := wantCallOf[p.Table+"/"+p.Name]; ok {
				call = c
			}
			var exprs []string
			for _, e := range []*string{p.Qual, p.WithCheck} {
				if e != nil {
					exprs = append(exprs, *e)
				}
			}
			if len(exprs) == 0 {
				t.Fatal("policy has neither USING nor WITH CHECK")
			}
			name := strings.TrimSuffix(strings.TrimPrefix(call, "auth."), "()")
			wrapped := "( SELECT " + call + " AS " + name + ")"
			for _, e := range exprs {
				if !strings.Contains(e, wrapped) {
					t.Errorf("expression %q does not contain %q", e, wrapped)
				}
				if strings.Count(e, call) != strings.Count(e, wrapped) {
					t.Errorf("expression %q calls %s outside a sub-select (evaluated once per row)", e, call)
				}
			}
			covered[p.Table] = true
		})
	}

	t.Run("every tenant table has a policy for authenticated", func(t *testing.T) {
		for table := range wantCall {
			if !covered[table] {
				t.Errorf("table %s: no policy for authenticated", table)
			}
		}
	})

	// Row level security does not apply to TRUNCATE: a tenant role holding
	// it could empty a table for every org.
	t.Run("no tenant role may truncate", func(t *testing.T) {
		rows, err := d.Pool.Query(ctx, `
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
	})

	t.Run("audit_log is append-only for authenticated", func(t *testing.T) {
		for _, priv := range []string{"UPDATE", "DELETE"} {
			var has bool
			if err := d.Pool.QueryRow(ctx, `select has_table_privilege('authenticated', 'public.audit_log', $1)`, priv).Scan(&has); err != nil {
				t.Fatal(err)
			}
			if has {
				t.Errorf("authenticated holds %s on audit_log", priv)
			}
		}
	})
}
