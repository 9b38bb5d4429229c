// Package rlscheck verifies, against any PostgreSQL database, that row level
// security protects BYOC's tables the way the migrations set it up: enabled
// and forced on every table, exactly the expected policies (command, role,
// USING and WITH CHECK), the tenant functions they call unchanged, tenant
// roles that cannot bypass it and no privilege that goes around it
// (TRUNCATE, TRIGGER).
//
// Expected and ExpectedFunctions are the one description of that
// expectation: `byoc check-rls`
// holds a production database to it, and the catalog tests hold every
// database migrated in CI to it.
package rlscheck

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Roles as the migrations (and Supabase) name them.
const (
	RoleAuthenticated = "authenticated"
	RoleService       = "service_role"
	RoleAnon          = "anon"
)

// Policy is one expected row level security policy. Using and WithCheck are
// the expressions as PostgreSQL prints them in pg_policies ("" for none).
type Policy struct {
	Name      string
	Command   string // SELECT, INSERT, UPDATE, DELETE or ALL
	Role      string
	Using     string
	WithCheck string
}

// Table is one table of the public schema with row level security enabled
// and forced, exactly Policies (all permissive), and none of Denied held by
// a tenant role (authenticated, anon) besides TenantDenied.
type Table struct {
	Name     string
	Policies []Policy
	// Denied are privileges the authenticated role must not hold on the
	// table besides TenantDenied (such as UPDATE on an append-only log).
	Denied []string
}

// TenantDenied are the privileges neither tenant role (authenticated,
// anon) may hold on any table: row level security does not apply to
// TRUNCATE, and a trigger created by a tenant would see every org's rows
// as they are written.
var TenantDenied = []string{"TRUNCATE", "TRIGGER"}

// The tenant functions the policies call once per statement, in a
// sub-select, as PostgreSQL prints them.
const (
	orgCall  = "( SELECT auth.org_id() AS org_id)"
	userCall = "( SELECT auth.user_id() AS user_id)"
)

// eq is the expression "col = (SELECT fn())" as pg_policies prints it.
func eq(col, call string) string { return "(" + col + " = " + call + ")" }

// service is the policy giving service_role every row of table.
func service(table string) Policy {
	return Policy{Name: table + "_service", Command: "ALL", Role: RoleService, Using: "true", WithCheck: "true"}
}

// tenantTable is a table whose rows belong to the org in org_id:
// authenticated selects, inserts, updates and deletes its own org's rows.
func tenantTable(name string) Table {
	own := eq("org_id", orgCall)
	return Table{Name: name, Policies: []Policy{
		{Name: name + "_select", Command: "SELECT", Role: RoleAuthenticated, Using: own},
		{Name: name + "_insert", Command: "INSERT", Role: RoleAuthenticated, WithCheck: own},
		{Name: name + "_update", Command: "UPDATE", Role: RoleAuthenticated, Using: own, WithCheck: own},
		{Name: name + "_delete", Command: "DELETE", Role: RoleAuthenticated, Using: own},
		service(name),
	}}
}

// Expected is every BYOC table and its row level security, as the
// migrations leave them. A migration that adds a table or changes a policy
// changes this list in the same commit; the catalog tests fail until it
// does.
var Expected = []Table{
	{Name: "orgs", Policies: []Policy{
		{Name: "orgs_select", Command: "SELECT", Role: RoleAuthenticated, Using: eq("id", orgCall)},
		{Name: "orgs_update", Command: "UPDATE", Role: RoleAuthenticated, Using: eq("id", orgCall), WithCheck: eq("id", orgCall)},
		service("orgs"),
	}},
	{Name: "users", Policies: []Policy{
		{Name: "users_select", Command: "SELECT", Role: RoleAuthenticated, Using: eq("id", userCall)},
		// Teammates: the members of the org the tenant acts for.
		{Name: "users_select_teammates", Command: "SELECT", Role: RoleAuthenticated,
			Using: "(id IN ( SELECT m.user_id\n   FROM org_members m\n  WHERE (m.org_id = " + orgCall + ")))"},
		service("users"),
	}},
	tenantTable("org_members"),
	tenantTable("org_credentials"),
	tenantTable("assistant_org_mapping"),
	tenantTable("outbound_agent_config"),
	{Name: "audit_log", Denied: []string{"UPDATE", "DELETE"}, Policies: []Policy{
		{Name: "audit_log_select", Command: "SELECT", Role: RoleAuthenticated, Using: eq("org_id", orgCall)},
		{Name: "audit_log_insert", Command: "INSERT", Role: RoleAuthenticated, WithCheck: eq("org_id", orgCall)},
		service("audit_log"),
	}},
	tenantTable("call_events"),
	tenantTable("oauth_states"),
	{Name: "attempt_counts", Policies: []Policy{service("attempt_counts")}},
	tenantTable("invites"),
	tenantTable("password_resets"),
	{Name: "legacy_imports", Denied: []string{"UPDATE", "DELETE"}, Policies: []Policy{
		{Name: "legacy_imports_select", Command: "SELECT", Role: RoleAuthenticated, Using: eq("org_id", orgCall)},
		{Name: "legacy_imports_insert", Command: "INSERT", Role: RoleAuthenticated, WithCheck: eq("org_id", orgCall)},
		service("legacy_imports"),
	}},
	tenantTable("webhook_refusals"),
	{Name: "mail_queue", Denied: []string{"UPDATE", "DELETE"}, Policies: []Policy{
		{Name: "mail_queue_select", Command: "SELECT", Role: RoleAuthenticated, Using: eq("org_id", orgCall)},
		{Name: "mail_queue_insert", Command: "INSERT", Role: RoleAuthenticated, WithCheck: eq("org_id", orgCall)},
		service("mail_queue"),
	}},
}

// Function is an expected SQL function of the tenant policies: every one
// of them calls it, so its body decides isolation as much as the policies.
// Body is the function's source as the migrations write it; whitespace
// does not count.
type Function struct {
	Name string // schema-qualified, without arguments
	Body string
}

// ExpectedFunctions are the functions the policies of Expected call
// (migrations/00001_roles.sql).
var ExpectedFunctions = []Function{
	{Name: "auth.org_id", Body: `SELECT nullif(
		coalesce(
			nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'org_id',
			nullif(current_setting('request.jwt.claims', true), '')::jsonb -> 'app_metadata' ->> 'org_id'
		),
		''
	)::uuid`},
	{Name: "auth.user_id", Body: `SELECT nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', '')::uuid`},
}

// Querier runs a query: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Report is the outcome of a check.
type Report struct {
	// Tables and Policies count what was compared with the expectation.
	Tables, Policies int
	// Problems are the ways the database differs from the expectation;
	// each says which table, policy or role and what is wrong.
	Problems []string
	// Notes are findings that do not weaken BYOC's isolation but differ
	// from a database the migrations built on a plain PostgreSQL (such as
	// a table of another application with an org_id column, or Supabase's
	// service_role with BYPASSRLS).
	Notes []string
}

// OK reports whether the check found no problem.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// String is the report for a person: a summary line, then one line per
// problem and note.
func (r Report) String() string {
	var b strings.Builder
	verdict := "ok"
	if !r.OK() {
		verdict = fmt.Sprintf("%d problem(s)", len(r.Problems))
	}
	fmt.Fprintf(&b, "row level security: %d tables and %d policies checked: %s\n", r.Tables, r.Policies, verdict)
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  problem: %s\n", p)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	return b.String()
}

// Check compares the database q reaches with Expected. It returns an error
// only when the catalog cannot be read; what differs is in the report.
func Check(ctx context.Context, q Querier) (Report, error) {
	return CheckTables(ctx, q, Expected)
}

// CheckTables is Check against the expectation want.
func CheckTables(ctx context.Context, q Querier, want []Table) (Report, error) {
	var r Report
	if err := checkRoles(ctx, q, &r); err != nil {
		return r, err
	}
	if err := checkFunctions(ctx, q, &r); err != nil {
		return r, err
	}
	tables, err := readTables(ctx, q)
	if err != nil {
		return r, err
	}
	policies, err := readPolicies(ctx, q)
	if err != nil {
		return r, err
	}
	for _, t := range want {
		r.Tables++
		r.Policies += len(t.Policies)
		got, ok := tables[t.Name]
		if !ok {
			r.problem("table %s does not exist (are the migrations applied to this database?)", t.Name)
			continue
		}
		if !got.enabled {
			r.problem("table %s: row level security is not enabled (ALTER TABLE %s ENABLE ROW LEVEL SECURITY)", t.Name, t.Name)
		}
		if !got.forced {
			r.problem("table %s: row level security is not forced, so the table's owner bypasses it (ALTER TABLE %s FORCE ROW LEVEL SECURITY)", t.Name, t.Name)
		}
		checkPolicies(&r, t, policies[t.Name])
		if err := checkPrivileges(ctx, q, &r, t); err != nil {
			return r, err
		}
	}
	for name, tb := range tables {
		if tb.orgID && !slices.ContainsFunc(want, func(t Table) bool { return t.Name == name }) {
			r.note("table %s has an org_id column but is not one of BYOC's tables: not checked (row level security enabled %v, forced %v)",
				name, tb.enabled, tb.forced)
		}
	}
	slices.Sort(r.Notes)
	return r, nil
}

func (r *Report) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// checkRoles requires the roles the policies name, and that the tenant
// roles are subject to row level security.
func checkRoles(ctx context.Context, q Querier, r *Report) error {
	type role struct {
		Name          string
		Super, Bypass bool
	}
	rows, err := q.Query(ctx, `select rolname::text, rolsuper, rolbypassrls from pg_roles where rolname = any($1)`,
		[]string{RoleAuthenticated, RoleAnon, RoleService})
	if err != nil {
		return fmt.Errorf("rlscheck: read roles: %w", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[role])
	if err != nil {
		return fmt.Errorf("rlscheck: read roles: %w", err)
	}
	for _, name := range []string{RoleAuthenticated, RoleAnon, RoleService} {
		i := slices.IndexFunc(got, func(x role) bool { return x.Name == name })
		if i < 0 {
			r.problem("role %s does not exist", name)
			continue
		}
		switch ro := got[i]; {
		case ro.Super:
			r.problem("role %s is a superuser: row level security does not apply to it", name)
		case ro.Bypass && name == RoleService:
			r.note("role %s has BYPASSRLS (Supabase creates it so): harmless here, its policies allow every row anyway", name)
		case ro.Bypass:
			r.problem("role %s has BYPASSRLS: row level security does not apply to it (ALTER ROLE %s NOBYPASSRLS)", name, name)
		}
	}
	return nil
}

// checkFunctions requires each of ExpectedFunctions, without arguments,
// with its expected body.
func checkFunctions(ctx context.Context, q Querier, r *Report) error {
	for _, f := range ExpectedFunctions {
		schema, name, _ := strings.Cut(f.Name, ".")
		rows, err := q.Query(ctx, `
			select p.prosrc from pg_proc p join pg_namespace n on n.oid = p.pronamespace
			where n.nspname = $1 and p.proname = $2 and p.pronargs = 0`, schema, name)
		if err != nil {
			return fmt.Errorf("rlscheck: read functions: %w", err)
		}
		src, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("rlscheck: read functions: %w", err)
		}
		switch {
		case len(src) == 0:
			r.problem("function %s() does not exist: the tenant policies call it", f.Name)
		case strings.Join(strings.Fields(src[0]), " ") != strings.Join(strings.Fields(f.Body), " "):
			r.problem("function %s() is not the migrations' definition: every tenant policy calls it (source now: %s)",
				f.Name, clip(strings.Join(strings.Fields(src[0]), " ")))
		}
	}
	return nil
}

// clip shortens a quoted SQL text.
func clip(s string) string {
	if len(s) > 160 {
		return s[:160] + "..."
	}
	return s
}

type tableState struct{ enabled, forced, orgID bool }

// readTables reads the row level security flags of the public schema's
// tables, and which of them have an org_id column.
func readTables(ctx context.Context, q Querier) (map[string]tableState, error) {
	rows, err := q.Query(ctx, `
		select c.relname::text, c.relrowsecurity, c.relforcerowsecurity,
		       exists (select 1 from pg_attribute a
		               where a.attrelid = c.oid and a.attname = 'org_id' and a.attnum > 0 and not a.attisdropped)
		from pg_class c join pg_namespace n on n.oid = c.relnamespace
		where n.nspname = 'public' and c.relkind in ('r', 'p')`)
	if err != nil {
		return nil, fmt.Errorf("rlscheck: read tables: %w", err)
	}
	out := map[string]tableState{}
	var name string
	var st tableState
	_, err = pgx.ForEachRow(rows, []any{&name, &st.enabled, &st.forced, &st.orgID}, func() error {
		out[name] = st
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rlscheck: read tables: %w", err)
	}
	return out, nil
}

type foundPolicy struct {
	Table, Name, Permissive, Command string
	Roles                            []string
	Using, WithCheck                 *string
}

// readPolicies reads the public schema's policies by table.
func readPolicies(ctx context.Context, q Querier) (map[string][]foundPolicy, error) {
	rows, err := q.Query(ctx, `
		select tablename::text, policyname::text, permissive, cmd, roles::text[], qual, with_check
		from pg_policies where schemaname = 'public' order by 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("rlscheck: read policies: %w", err)
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[foundPolicy])
	if err != nil {
		return nil, fmt.Errorf("rlscheck: read policies: %w", err)
	}
	out := map[string][]foundPolicy{}
	for _, p := range list {
		out[p.Table] = append(out[p.Table], p)
	}
	return out, nil
}

// checkPolicies compares a table's policies with the expected ones: each
// must exist as described, and no other may exist (permissive policies add
// up, so one more can open every row).
func checkPolicies(r *Report, t Table, found []foundPolicy) {
	for _, want := range t.Policies {
		i := slices.IndexFunc(found, func(p foundPolicy) bool { return p.Name == want.Name })
		if i < 0 {
			r.problem("table %s: policy %s (%s for %s) is missing", t.Name, want.Name, want.Command, want.Role)
			continue
		}
		got := found[i]
		where := fmt.Sprintf("table %s: policy %s", t.Name, want.Name)
		if got.Command != want.Command {
			r.problem("%s is for %s, want %s", where, got.Command, want.Command)
		}
		if len(got.Roles) != 1 || got.Roles[0] != want.Role {
			r.problem("%s applies to roles %s, want only %s", where, strings.Join(got.Roles, ", "), want.Role)
		}
		if got.Permissive != "PERMISSIVE" {
			r.problem("%s is %s, want PERMISSIVE", where, got.Permissive)
		}
		if (got.Command == "UPDATE" || got.Command == "ALL") && got.WithCheck == nil {
			r.problem("%s (%s) has no WITH CHECK: a tenant could move rows to another org", where, got.Command)
		} else if text(got.WithCheck) != want.WithCheck {
			r.problem("%s: WITH CHECK is %s, want %s", where, shown(got.WithCheck), shownText(want.WithCheck))
		}
		if text(got.Using) != want.Using {
			r.problem("%s: USING is %s, want %s", where, shown(got.Using), shownText(want.Using))
		}
	}
	for _, got := range found {
		if !slices.ContainsFunc(t.Policies, func(p Policy) bool { return p.Name == got.Name }) {
			r.problem("table %s: unexpected policy %s (%s for %s, USING %s, WITH CHECK %s): policies add up, so it may open rows to another org",
				t.Name, got.Name, got.Command, strings.Join(got.Roles, ", "), shown(got.Using), shown(got.WithCheck))
		}
	}
}

// checkPrivileges refuses the privileges that go around row level
// security for the tenant roles.
func checkPrivileges(ctx context.Context, q Querier, r *Report, t Table) error {
	type grant struct{ role, priv string }
	var asks []grant
	for _, role := range []string{RoleAuthenticated, RoleAnon} {
		for _, p := range TenantDenied {
			asks = append(asks, grant{role, p})
		}
	}
	for _, p := range t.Denied {
		asks = append(asks, grant{RoleAuthenticated, p})
	}
	for _, a := range asks {
		// A missing role or table is reported elsewhere; has_table_privilege
		// would fail on it.
		rows, err := q.Query(ctx, `
			select has_table_privilege(r.oid, c.oid, $3)
			from pg_roles r, pg_class c join pg_namespace n on n.oid = c.relnamespace
			where r.rolname = $1 and n.nspname = 'public' and c.relname = $2`, a.role, t.Name, a.priv)
		if err != nil {
			return fmt.Errorf("rlscheck: read privileges: %w", err)
		}
		held, err := pgx.CollectRows(rows, pgx.RowTo[bool])
		if err != nil {
			return fmt.Errorf("rlscheck: read privileges: %w", err)
		}
		if len(held) == 1 && held[0] {
			r.problem("table %s: role %s holds %s, which row level security does not cover (REVOKE %s ON %s FROM %s)",
				t.Name, a.role, a.priv, a.priv, t.Name, a.role)
		}
	}
	return nil
}

func text(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func shown(s *string) string { return shownText(text(s)) }

func shownText(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
