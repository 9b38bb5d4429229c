package rlscheck_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"byoc/db/dbtest"
	"byoc/db/rlscheck"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// The database the migrations built passes, without notes.
func TestMigratedDatabasePasses(t *testing.T) {
	d := dbtest.DB(t)
	rep, err := rlscheck.Check(t.Context(), d.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || len(rep.Notes) > 0 {
		t.Fatalf("a freshly migrated database fails the check:\n%s", rep)
	}
	if rep.Tables != len(rlscheck.Expected) || rep.Policies < 2*rep.Tables {
		t.Fatalf("checked %d tables and %d policies; want every expected table and its policies", rep.Tables, rep.Policies)
	}
	if !strings.Contains(rep.String(), ": ok") {
		t.Errorf("report of a passing check: %q", rep)
	}
}

// Each deliberate break of row level security, made in a transaction that
// is rolled back, is reported as exactly the problem it is.
func TestBrokenDatabaseFails(t *testing.T) {
	d := dbtest.DB(t)
	tests := []struct {
		name   string
		break_ []string
		want   []string // each must be a problem
		notes  []string // each must be a note, with no problem at all
	}{
		{name: "disabled",
			break_: []string{`alter table org_credentials disable row level security`},
			want:   []string{"table org_credentials: row level security is not enabled"}},
		{name: "not forced",
			break_: []string{`alter table assistant_org_mapping no force row level security`},
			want:   []string{"table assistant_org_mapping: row level security is not forced"}},
		{name: "a policy missing",
			break_: []string{`drop policy call_events_delete on call_events`},
			want:   []string{"table call_events: policy call_events_delete (DELETE for authenticated) is missing"}},
		{name: "an UPDATE policy without WITH CHECK",
			break_: []string{
				`drop policy org_members_update on org_members`,
				`create policy org_members_update on org_members for update to authenticated using (org_id = (select auth.org_id()))`,
			},
			want: []string{"table org_members: policy org_members_update (UPDATE) has no WITH CHECK"}},
		{name: "a policy that calls the tenant function once per row",
			break_: []string{
				`drop policy oauth_states_select on oauth_states`,
				`create policy oauth_states_select on oauth_states for select to authenticated using (org_id = auth.org_id())`,
			},
			want: []string{"table oauth_states: policy oauth_states_select: USING is (org_id = auth.org_id()), want (org_id = ( SELECT auth.org_id() AS org_id))"}},
		{name: "a policy for every role",
			break_: []string{
				`drop policy audit_log_select on audit_log`,
				`create policy audit_log_select on audit_log for select using (org_id = (select auth.org_id()))`,
			},
			want: []string{"table audit_log: policy audit_log_select applies to roles public, want only authenticated"}},
		{name: "a restrictive policy",
			break_: []string{
				`drop policy users_select on users`,
				`create policy users_select on users as restrictive for select to authenticated using (id = (select auth.user_id()))`,
			},
			want: []string{"table users: policy users_select is RESTRICTIVE, want PERMISSIVE"}},
		{name: "an extra policy that opens every row",
			break_: []string{`create policy org_credentials_peek on org_credentials for select to authenticated using (true)`},
			want:   []string{"table org_credentials: unexpected policy org_credentials_peek (SELECT for authenticated, USING true"}},
		{name: "TRUNCATE granted",
			break_: []string{`grant truncate on outbound_agent_config to authenticated`},
			want:   []string{"table outbound_agent_config: role authenticated holds TRUNCATE"}},
		{name: "TRIGGER granted to anon",
			break_: []string{`grant trigger on orgs to anon`},
			want:   []string{"table orgs: role anon holds TRIGGER"}},
		{name: "the audit log rewritable",
			break_: []string{`grant update on audit_log to authenticated`},
			want:   []string{"table audit_log: role authenticated holds UPDATE"}},
		{name: "the tenant function changed",
			break_: []string{`create or replace function auth.org_id() returns uuid language sql stable as $$ select '00000000-0000-0000-0000-000000000001'::uuid $$`},
			want:   []string{"function auth.org_id() is not the migrations' definition"}},
		{name: "a table dropped",
			break_: []string{`drop table oauth_states`},
			want:   []string{"table oauth_states does not exist"}},
		{name: "a tenant role that bypasses row level security",
			break_: []string{`alter role authenticated bypassrls`},
			want:   []string{"role authenticated has BYPASSRLS"}},
		{name: "service_role with BYPASSRLS, as on Supabase",
			break_: []string{`alter role service_role bypassrls`},
			notes:  []string{"role service_role has BYPASSRLS"}},
		{name: "another application's table with org_id",
			break_: []string{`create table integrations (org_id uuid, provider text, encrypted_config text)`},
			notes:  []string{"table integrations has an org_id column but is not one of BYOC's tables"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			rep := checkBroken(t, ctx, d.Pool, tt.break_)
			if len(tt.notes) > 0 {
				if !rep.OK() {
					t.Errorf("problems, want only notes:\n%s", rep)
				}
				for _, n := range tt.notes {
					if !containsPrefix(rep.Notes, n) {
						t.Errorf("no note %q in:\n%s", n, rep)
					}
				}
				return
			}
			if rep.OK() {
				t.Fatalf("the check passed a broken database:\n%s", rep)
			}
			for _, w := range tt.want {
				if !containsPrefix(rep.Problems, w) {
					t.Errorf("no problem %q in:\n%s", w, rep)
				}
			}
			if len(rep.Problems) != len(tt.want) {
				t.Errorf("%d problems, want %d:\n%s", len(rep.Problems), len(tt.want), rep)
			}
		})
	}
}

// The check reads only the catalog: a database it cannot reach is an
// error, not a pass.
func TestUnreadableCatalogIsAnError(t *testing.T) {
	d := dbtest.DB(t)
	ctx := t.Context()
	conn, err := d.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	// An aborted transaction answers nothing but errors.
	_, _ = tx.Exec(ctx, `select 1/0`)
	if rep, err := rlscheck.Check(ctx, tx); err == nil {
		t.Fatalf("no error from an aborted transaction; report:\n%s", rep)
	}
}

// checkBroken runs stmts and the check in one transaction and rolls it
// back, so the shared database stays intact.
func checkBroken(t *testing.T, ctx context.Context, pool interface {
	Begin(context.Context) (pgx.Tx, error)
}, stmts []string) rlscheck.Report {
	t.Helper()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	rep, err := rlscheck.Check(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}
