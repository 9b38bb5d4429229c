package db_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"byoc/db"
	"byoc/db/dbtest"
)

// The isolation matrix: for every tenant table and every way a transaction
// can name (or fail to name) its org, row level security must keep org B's
// rows out of reach of a transaction acting for org A or for no org at all.
// Statements that target B's rows are committed, so a policy that let one
// through would also show up in the final comparison of B's rows.

// rlsSeed is two orgs, A and B, with a user each, a user in no org, and one
// row of every tenant table per org, written by the superuser.
type rlsSeed struct {
	orgA, orgB   string
	userA, userB string
	loner        string // a user who belongs to no org

	// Keys of each org's seeded rows, by org id.
	credID, mappingID, assistantID, dedupKey, stateHash map[string]string
	inviteID, inviteHash, resetHash                     map[string]string
	auditID, callEventID                                map[string]int64
	mailID                                              map[string]string
}

// rlsStmt builds a statement claimed for org (the org the tenant acts for,
// or A when it acts for none).
type rlsStmt struct {
	name  string
	build func(s *rlsSeed, org string) (string, []any)
}

// rlsTable describes one tenant table to the matrix.
type rlsTable struct {
	name string
	// set is a harmless assignment for UPDATE statements.
	set string
	// appendOnly: `authenticated` holds no UPDATE or DELETE privilege.
	appendOnly bool
	// clear runs as the tenant before the own-org insert, for tables that
	// hold one row per org (row level security limits it to own rows).
	clear string
	// insert adds a fresh row for org.
	insert func(s *rlsSeed, org string) (string, []any)
	// upserts are INSERT ... ON CONFLICT DO UPDATE statements whose conflict
	// is B's seeded row.
	upserts []rlsStmt
}

// rlsTenantTables are the tables that carry org_id. The catalog test fails
// when the schema has a table with org_id that is missing here.
var rlsTenantTables = []rlsTable{
	{
		name: "org_members",
		set:  "role = 'member'",
		insert: func(s *rlsSeed, org string) (string, []any) {
			return `insert into org_members (org_id, user_id, role) values ($1, $2, 'member')`, []any{org, s.loner}
		},
		upserts: []rlsStmt{{
			name: "B's org and user",
			build: func(s *rlsSeed, _ string) (string, []any) {
				return `insert into org_members (org_id, user_id, role) values ($1, $2, 'member')
					on conflict (org_id, user_id) do update set role = excluded.role`, []any{s.orgB, s.userB}
			},
		}},
	},
	{
		name: "org_credentials",
		set:  "is_active = false",
		insert: func(s *rlsSeed, org string) (string, []any) {
			return `insert into org_credentials (org_id, provider, encrypted_config) values ($1, 'twilio', '\x00'::bytea)`, []any{org}
		},
		upserts: []rlsStmt{
			{
				name: "own org with B's id",
				build: func(s *rlsSeed, org string) (string, []any) {
					return `insert into org_credentials (id, org_id, provider, encrypted_config) values ($1, $2, 'resend', '\x00'::bytea)
						on conflict (id) do update set org_id = excluded.org_id, encrypted_config = excluded.encrypted_config`,
						[]any{s.credID[s.orgB], org}
				},
			},
			{
				name: "B's org and provider",
				build: func(s *rlsSeed, _ string) (string, []any) {
					return `insert into org_credentials (org_id, provider, encrypted_config) values ($1, 'vapi', '\x00'::bytea)
						on conflict (org_id, provider) do update set encrypted_config = excluded.encrypted_config`, []any{s.orgB}
				},
			},
		},
	},
	{
		name: "assistant_org_mapping",
		set:  "name = 'pwned'",
		insert: func(s *rlsSeed, org string) (string, []any) {
			return `insert into assistant_org_mapping (vapi_assistant_id, org_id, assistant_role) values ($1, $2, 'outbound')`,
				[]any{"asst-new-" + rlsNewID(), org}
		},
		upserts: []rlsStmt{
			{
				name: "own org with B's assistant id",
				build: func(s *rlsSeed, org string) (string, []any) {
					return `insert into assistant_org_mapping (vapi_assistant_id, org_id, assistant_role) values ($1, $2, 'outbound')
						on conflict (vapi_assistant_id) do update set org_id = excluded.org_id, name = 'pwned'`,
						[]any{s.assistantID[s.orgB], org}
				},
			},
			{
				name: "own org with B's id",
				build: func(s *rlsSeed, org string) (string, []any) {
					return `insert into assistant_org_mapping (id, vapi_assistant_id, org_id, assistant_role) values ($1, $2, $3, 'outbound')
						on conflict (id) do update set org_id = excluded.org_id, name = 'pwned'`,
						[]any{s.mappingID[s.orgB], "asst-new-" + rlsNewID(), org}
				},
			},
			{
				name: "B's org and role",
				build: func(s *rlsSeed, _ string) (string, []any) {
					return `insert into assistant_org_mapping (vapi_assistant_id, org_id, assistant_role) values ($1, $2, 'inbound')
						on conflict (org_id, assistant_role) do update set vapi_assistant_id = excluded.vapi_assistant_id`,
						[]any{"asst-new-" + rlsNewID(), s.orgB}
				},
			},
		},
	},
	{
		name:  "outbound_agent_config",
		set:   "phone_number = '+15550000999'",
		clear: `delete from outbound_agent_config`,
		insert: func(s *rlsSeed, org string) (string, []any) {
			return `insert into outbound_agent_config (org_id, phone_number) values ($1, '+15550000111')`, []any{org}
		},
		upserts: []rlsStmt{{
			name: "B's org",
			build: func(s *rlsSeed, _ string) (string, []any) {
				return `insert into outbound_agent_config (org_id, phone_number) values ($1, '+15550000999')
					on conflict (org_id) do update set phone_number = excluded.phone_number`, []any{s.orgB}
			},
		}},
	},
	{
		name:       "audit_log",
		set:        "detail = 'pwned'",
		appendOnly: true,
		insert: func(s *rlsSeed, org string) (string, []any) {
			return `insert into audit_log (org_id, action, outcome) values ($1, 'rls.test', 'success')`, []any{org}
		},
		upserts: []rlsStmt{{
			name: "own org with B's id",
			build: func(s *rlsSeed, org string) (string, []any) {
				return `insert into audit_log (id, org_id, action, outcome) overriding system value values ($1, $2, 'rls.test', 'success')
					on conflict (id) do update set detail = 'pwned', org_id = excluded.org_id`, []any{s.auditID[s.orgB], org}
			},
		}},
	},
	{
		name: "call_events",
		set:  "status = 'pwned'",
		insert: func(s *rlsSeed, org string) (string, []any) {
			return `insert into call_events (org_id, call_id, event_type, dedup_key) values ($1, 'call-new', 'status-update', $2)`,
				[]any{org, "dedup-new-" + rlsNewID()}
		},
		upserts: []rlsStmt{
			{
				name: "own org with B's id",
				build: func(s *rlsSeed, org string) (string, []any) {
					return `insert into call_events (id, org_id, call_id, event_type, dedup_key) overriding system value
						values ($1, $2, 'call-new', 'status-update', $3)
						on conflict (id) do update set status = 'pwned', org_id = excluded.org_id`,
						[]any{s.callEventID[s.orgB], org, "dedup-new-" + rlsNewID()}
				},
			},
			{
				name: "B's org and dedup key",
				build: func(s *rlsSeed, _ string) (string, []any) {
					return `insert into call_events (org_id, call_id, event_type, dedup_key) values ($1, 'call-new', 'status-update', $2)
						on conflict (org_id, dedup_key) do update set status = 'pwned'`, []any{s.orgB, s.dedupKey[s.orgB]}
				},
			},
		},
	},
	{
		name:       "legacy_imports",
		set:        "imported_at = now() - interval '1 day'",
		appendOnly: true,
		insert: func(s *rlsSeed, org string) (string, []any) {
			return `insert into legacy_imports (org_id, kind, item) values ($1, 'credentials', $2)`, []any{org, rlsNewItem()}
		},
		upserts: []rlsStmt{{
			name: "B's org and item",
			build: func(s *rlsSeed, _ string) (string, []any) {
				return `insert into legacy_imports (org_id, kind, item) values ($1, 'credentials', 'vapi')
					on conflict (org_id, kind, item) do update set imported_at = now() - interval '1 day'`, []any{s.orgB}
			},
		}},
	},
	{
		name:       "mail_queue",
		set:        "status = 'sent'",
		appendOnly: true,
		insert: func(s *rlsSeed, org string) (string, []any) {
			return `insert into mail_queue (org_id, kind, provider, reason, recipient)
				values ($1, 'connection_broke', 'vapi', 'Vapi refused the key.', 'a@example.test')`, []any{org}
		},
		upserts: []rlsStmt{{
			name: "B's id",
			build: func(s *rlsSeed, org string) (string, []any) {
				return `insert into mail_queue (id, org_id, kind, provider, reason, recipient)
					values ($1, $2, 'connection_broke', 'vapi', 'x', 'a@example.test')
					on conflict (id) do update set org_id = excluded.org_id, status = 'sent'`, []any{s.mailID[s.orgB], org}
			},
		}},
	},
	{
		name: "webhook_refusals",
		set:  "count = count + 1000",
		insert: func(s *rlsSeed, org string) (string, []any) {
			return `insert into webhook_refusals (org_id, assistant_id, reason, hour, count)
				values ($1, $2, 'invalid_signature', date_trunc('hour', now()), 1)`, []any{org, "asst-new-" + rlsNewID()}
		},
		upserts: []rlsStmt{{
			name: "B's org, assistant, reason and hour",
			build: func(s *rlsSeed, _ string) (string, []any) {
				return `insert into webhook_refusals (org_id, assistant_id, reason, hour, count)
					values ($1, $2, 'invalid_signature', $3, 1)
					on conflict (org_id, assistant_id, reason, hour) do update set count = webhook_refusals.count + 1000`,
					[]any{s.orgB, s.assistantID[s.orgB], rlsRefusalHour}
			},
		}},
	},
	{
		name: "oauth_states",
		set:  "session_binding = 'pwned'",
		insert: func(s *rlsSeed, org string) (string, []any) {
			return `insert into oauth_states (state_hash, org_id, user_id, session_binding, code_verifier, expires_at)
				values ($1, $2, $3, 'binding', '\x00'::bytea, now() + interval '10 minutes')`, []any{rlsNewStateHash(), org, s.userA}
		},
		upserts: []rlsStmt{{
			name: "own org with B's state hash",
			build: func(s *rlsSeed, org string) (string, []any) {
				return `insert into oauth_states (state_hash, org_id, user_id, session_binding, code_verifier, expires_at)
					values ($1, $2, $3, 'pwned', '\x00'::bytea, now() + interval '10 minutes')
					on conflict (state_hash) do update set org_id = excluded.org_id, session_binding = excluded.session_binding,
						code_verifier = excluded.code_verifier`, []any{s.stateHash[s.orgB], org, s.userA}
			},
		}},
	},
	{
		name: "invites",
		set:  "role = 'admin'",
		insert: func(s *rlsSeed, org string) (string, []any) {
			return `insert into invites (org_id, email, role, token_hash, expires_at)
				values ($1, $2, 'member', $3, now() + interval '7 days')`, []any{org, "new-" + rlsNewID() + "@example.test", rlsNewStateHash()}
		},
		upserts: []rlsStmt{
			{
				name: "own org with B's id",
				build: func(s *rlsSeed, org string) (string, []any) {
					return `insert into invites (id, org_id, email, role, token_hash, expires_at)
						values ($1, $2, 'x@example.test', 'admin', $3, now() + interval '7 days')
						on conflict (id) do update set org_id = excluded.org_id, role = 'admin'`,
						[]any{s.inviteID[s.orgB], org, rlsNewStateHash()}
				},
			},
			{
				name: "own org with B's token hash",
				build: func(s *rlsSeed, org string) (string, []any) {
					return `insert into invites (org_id, email, role, token_hash, expires_at)
						values ($1, 'x@example.test', 'admin', $2, now() + interval '7 days')
						on conflict (token_hash) do update set org_id = excluded.org_id, role = 'admin'`,
						[]any{org, s.inviteHash[s.orgB]}
				},
			},
		},
	},
	{
		name: "password_resets",
		set:  "expires_at = now() + interval '1 year'",
		insert: func(s *rlsSeed, org string) (string, []any) {
			return `insert into password_resets (token_hash, org_id, user_id, expires_at)
				values ($1, $2, $3, now() + interval '30 minutes')`, []any{rlsNewStateHash(), org, s.userA}
		},
		upserts: []rlsStmt{{
			name: "own org with B's token hash",
			build: func(s *rlsSeed, org string) (string, []any) {
				return `insert into password_resets (token_hash, org_id, user_id, expires_at)
					values ($1, $2, $3, now() + interval '1 year')
					on conflict (token_hash) do update set org_id = excluded.org_id, user_id = excluded.user_id,
						expires_at = excluded.expires_at`, []any{s.resetHash[s.orgB], org, s.userA}
			},
		}},
	},
}

// rlsRefusalHour is the hour of the seeded refusal counts.
var rlsRefusalHour = time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)

// rlsTenant is one way a transaction running as `authenticated` can be
// scoped: org is the org its claims name ("" for none), sub the user.
type rlsTenant struct {
	name string
	org  string
	sub  string
	// run runs fn in one transaction of this tenant and commits it when
	// commit is true and fn succeeds, else rolls it back.
	run func(ctx context.Context, commit bool, fn func(pgx.Tx) error) error
}

// errRLSRollback makes InOrg roll back a transaction whose checks passed.
var errRLSRollback = errors.New("rls test: roll back")

func rlsTenants(d *db.DB, s *rlsSeed) []rlsTenant {
	claims := func(c map[string]any) string {
		b, err := json.Marshal(c)
		if err != nil {
			panic(err)
		}
		return string(b)
	}
	raw := func(claims string) func(context.Context, bool, func(pgx.Tx) error) error {
		return func(ctx context.Context, commit bool, fn func(pgx.Tx) error) error {
			return rlsInRole(ctx, d.Pool, db.RoleAuthenticated, claims, commit, fn)
		}
	}
	return []rlsTenant{
		{
			name: "own org via InOrg", org: s.orgA, sub: s.userA,
			run: func(ctx context.Context, commit bool, fn func(pgx.Tx) error) error {
				err := d.InOrg(ctx, s.orgA, s.userA, func(tx pgx.Tx) error {
					if err := fn(tx); err != nil {
						return err
					}
					if !commit {
						return errRLSRollback
					}
					return nil
				})
				if errors.Is(err, errRLSRollback) {
					return nil
				}
				return err
			},
		},
		{
			name: "org_id in app_metadata", org: s.orgA, sub: s.userA,
			run: raw(claims(map[string]any{"sub": s.userA, "role": "authenticated", "app_metadata": map[string]any{"org_id": s.orgA}})),
		},
		{
			name: "claims without org_id", sub: s.userA,
			run: raw(claims(map[string]any{"sub": s.userA, "role": "authenticated"})),
		},
		{
			name: "org_id empty string", sub: s.userA,
			run: raw(claims(map[string]any{"sub": s.userA, "role": "authenticated", "org_id": ""})),
		},
		{
			name: "empty claims setting",
			run:  raw(""),
		},
	}
}

// rlsInRole runs fn in a raw transaction that switches to role with the
// given claims, both transaction-locally, as InOrg does.
func rlsInRole(ctx context.Context, pool *pgxpool.Pool, role, claims string, commit bool, fn func(pgx.Tx) error) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.Exec(ctx, `select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)`, role, claims); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	if commit {
		return tx.Commit(ctx)
	}
	return nil
}

// rlsExec runs prep (if any) and one statement as the tenant and returns the
// rows the statement affected.
func rlsExec(ctx context.Context, tn rlsTenant, commit bool, prep, sql string, args ...any) (int64, error) {
	var n int64
	err := tn.run(ctx, commit, func(tx pgx.Tx) error {
		if prep != "" {
			if _, err := tx.Exec(ctx, prep); err != nil {
				return fmt.Errorf("prep: %w", err)
			}
		}
		tag, err := tx.Exec(ctx, sql, args...)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

// rlsStrings runs a one-column query as the tenant.
func rlsStrings(ctx context.Context, tn rlsTenant, sql string, args ...any) ([]string, error) {
	var got []string
	err := tn.run(ctx, false, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		got, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	return got, err
}

// Messages of the two refusals, both SQLSTATE 42501.
const (
	rlsByPolicy    = "row-level security policy"
	rlsByPrivilege = "permission denied"
)

// rlsWantDenied fails the test unless err is SQLSTATE 42501 whose message
// contains want ("" accepts either refusal).
func rlsWantDenied(t *testing.T, err error, want string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.Fatalf("got error %v, want SQLSTATE 42501 (%s)", err, want)
	}
	if pgErr.Code != "42501" || !strings.Contains(pgErr.Message, want) {
		t.Fatalf("got %s %q, want SQLSTATE 42501 (%s)", pgErr.Code, pgErr.Message, want)
	}
}

// rlsNewStateHash returns a random 64-character lowercase hex string, the
// shape of an oauth_states key.
func rlsNewStateHash() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b[:])
}

// rlsNewItem returns a random legacy_imports item name (lower-case
// letters).
func rlsNewItem() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = 'a' + c%26
	}
	return string(out)
}

// rlsNewID returns a random UUID (version 4).
func rlsNewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// rlsSeedOrgs writes orgs A and B and their rows through the superuser pool,
// which row level security does not apply to.
func rlsSeedOrgs(t *testing.T, ctx context.Context, d *db.DB) *rlsSeed {
	t.Helper()
	s := &rlsSeed{
		orgA: rlsNewID(), orgB: rlsNewID(), userA: rlsNewID(), userB: rlsNewID(), loner: rlsNewID(),
		credID: map[string]string{}, mappingID: map[string]string{}, assistantID: map[string]string{},
		dedupKey: map[string]string{}, stateHash: map[string]string{}, auditID: map[string]int64{}, callEventID: map[string]int64{},
		inviteID: map[string]string{}, inviteHash: map[string]string{}, resetHash: map[string]string{}, mailID: map[string]string{},
	}
	err := pgx.BeginFunc(ctx, d.Pool, func(tx pgx.Tx) error {
		for _, u := range []string{s.userA, s.userB, s.loner} {
			if _, err := tx.Exec(ctx, `insert into users (id, email, password_hash) values ($1, $2, 'x')`,
				u, "rls-"+u+"@example.test"); err != nil {
				return err
			}
		}
		for _, o := range []struct{ org, user, name string }{{s.orgA, s.userA, "A"}, {s.orgB, s.userB, "B"}} {
			var credID, mappingID string
			var auditID, callID int64
			s.assistantID[o.org] = "asst-" + o.org
			s.dedupKey[o.org] = "dedup-" + o.org
			if _, err := tx.Exec(ctx, `insert into orgs (id, name) values ($1, $2)`, o.org, "RLS org "+o.name); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `insert into org_members (org_id, user_id, role) values ($1, $2, 'admin')`, o.org, o.user); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `insert into org_credentials (org_id, provider, encrypted_config)
				values ($1, 'vapi', '\x01'::bytea) returning id::text`, o.org).Scan(&credID); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `insert into assistant_org_mapping (vapi_assistant_id, org_id, assistant_role, name)
				values ($1, $2, 'inbound', 'seed') returning id::text`, s.assistantID[o.org], o.org).Scan(&mappingID); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `insert into outbound_agent_config (org_id, vapi_assistant_id, phone_number)
				values ($1, 'asst-out', '+15550000001')`, o.org); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `insert into audit_log (org_id, actor_user_id, action, provider, outcome)
				values ($1, $2, 'credential.save', 'vapi', 'success') returning id`, o.org, o.user).Scan(&auditID); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `insert into call_events (org_id, call_id, event_type, status, dedup_key)
				values ($1, 'call-1', 'status-update', 'ended', $2) returning id`, o.org, s.dedupKey[o.org]).Scan(&callID); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `insert into legacy_imports (org_id, kind, item) values ($1, 'credentials', 'vapi')`, o.org); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `insert into webhook_refusals (org_id, assistant_id, reason, hour, count)
				values ($1, $2, 'invalid_signature', $3, 5)`, o.org, s.assistantID[o.org], rlsRefusalHour); err != nil {
				return err
			}
			var mailID string
			if err := tx.QueryRow(ctx, `insert into mail_queue (org_id, kind, provider, reason, recipient)
				values ($1, 'connection_broke', 'vapi', 'Vapi refused the key.', $2) returning id::text`,
				o.org, "admin-"+o.name+"@example.test").Scan(&mailID); err != nil {
				return err
			}
			s.mailID[o.org] = mailID
			s.stateHash[o.org] = rlsNewStateHash()
			if _, err := tx.Exec(ctx, `insert into oauth_states (state_hash, org_id, user_id, session_binding, code_verifier, expires_at)
				values ($1, $2, $3, 'seed-binding', '\x01'::bytea, now() + interval '10 minutes')`, s.stateHash[o.org], o.org, o.user); err != nil {
				return err
			}
			s.inviteHash[o.org], s.resetHash[o.org] = rlsNewStateHash(), rlsNewStateHash()
			var inviteID string
			if err := tx.QueryRow(ctx, `insert into invites (org_id, email, role, token_hash, invited_by, expires_at)
				values ($1, $2, 'member', $3, $4, now() + interval '7 days') returning id::text`,
				o.org, "invitee-"+o.name+"@example.test", s.inviteHash[o.org], o.user).Scan(&inviteID); err != nil {
				return err
			}
			s.inviteID[o.org] = inviteID
			if _, err := tx.Exec(ctx, `insert into password_resets (token_hash, org_id, user_id, expires_at)
				values ($1, $2, $3, now() + interval '30 minutes')`, s.resetHash[o.org], o.org, o.user); err != nil {
				return err
			}
			s.credID[o.org], s.mappingID[o.org], s.auditID[o.org], s.callEventID[o.org] = credID, mappingID, auditID, callID
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	return s
}

// rlsSnapshot renders every row of both orgs (and of the seeded users),
// table by table, through the superuser pool.
func rlsSnapshot(t *testing.T, ctx context.Context, d *db.DB, s *rlsSeed) map[string]string {
	t.Helper()
	type part struct{ table, col string }
	parts := []part{{"orgs", "id"}, {"users", "id"}}
	for _, tb := range rlsTenantTables {
		parts = append(parts, part{tb.name, "org_id"})
	}
	ids := []string{s.orgA, s.orgB, s.userA, s.userB, s.loner}
	snap := map[string]string{}
	for _, p := range parts {
		var text string
		q := fmt.Sprintf(`select coalesce(string_agg(x::text, E'\n' order by x::text), '') from %s x where x.%s = any($1::uuid[])`,
			p.table, p.col)
		if err := d.Pool.QueryRow(ctx, q, ids).Scan(&text); err != nil {
			t.Fatalf("snapshot %s: %v", p.table, err)
		}
		if text == "" {
			t.Fatalf("snapshot %s: no seeded rows", p.table)
		}
		snap[p.table] = text
	}
	return snap
}

// rlsCompare fails unless every table holds the rows it held in before.
func rlsCompare(t *testing.T, ctx context.Context, d *db.DB, s *rlsSeed, before map[string]string) {
	t.Helper()
	after := rlsSnapshot(t, ctx, d, s)
	for table, want := range before {
		t.Run(table, func(t *testing.T) {
			if got := after[table]; got != want {
				t.Fatalf("rows changed:\nbefore:\n%s\nafter:\n%s", want, got)
			}
		})
	}
}

func rlsCount(t *testing.T, ctx context.Context, d *db.DB, table, org string) int {
	t.Helper()
	var n int
	if err := d.Pool.QueryRow(ctx, `select count(*) from `+table+` where org_id = $1`, org).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRLSTenantTables(t *testing.T) {
	d := dbtest.DB(t)
	ctx := t.Context()
	s := rlsSeedOrgs(t, ctx, d)
	before := rlsSnapshot(t, ctx, d, s)
	tenants := rlsTenants(d, s)

	for _, tb := range rlsTenantTables {
		t.Run(tb.name, func(t *testing.T) {
			// The statements below are well formed and B's rows exist: the
			// service role reaches them (and rolls back).
			t.Run("control: service_role reaches B's rows", func(t *testing.T) {
				err := d.AsService(ctx, func(tx pgx.Tx) error {
					for _, q := range []string{
						`update ` + tb.name + ` set ` + tb.set + ` where org_id = $1`,
						`delete from ` + tb.name + ` where org_id = $1`,
					} {
						tag, err := tx.Exec(ctx, q, s.orgB)
						if err != nil {
							return err
						}
						if tag.RowsAffected() == 0 {
							return fmt.Errorf("%q affected no row of B", q)
						}
					}
					return errRLSRollback
				})
				if !errors.Is(err, errRLSRollback) {
					t.Fatal(err)
				}
			})

			for _, tn := range tenants {
				acting := tn.org // the org the statements claim
				if acting == "" {
					acting = s.orgA
				}
				t.Run(tn.name, func(t *testing.T) {
					t.Run("select sees only own rows", func(t *testing.T) {
						got, err := rlsStrings(ctx, tn, `select org_id::text from `+tb.name)
						if err != nil {
							t.Fatal(err)
						}
						want := 0
						if tn.org != "" {
							want = rlsCount(t, ctx, d, tb.name, tn.org)
							if want == 0 {
								t.Fatal("own org has no seeded row")
							}
						}
						for _, org := range got {
							if org != tn.org {
								t.Errorf("sees a row of org %s (acting for %q)", org, tn.org)
							}
						}
						if len(got) != want {
							t.Errorf("sees %d rows, want %d", len(got), want)
						}
					})

					t.Run("insert for own org", func(t *testing.T) {
						q, args := tb.insert(s, acting)
						n, err := rlsExec(ctx, tn, false, tb.clear, q, args...)
						if tn.org == "" {
							rlsWantDenied(t, err, rlsByPolicy)
							return
						}
						if err != nil || n != 1 {
							t.Fatalf("inserted %d rows, err %v; want 1 row", n, err)
						}
					})

					t.Run("insert for org B refused", func(t *testing.T) {
						q, args := tb.insert(s, s.orgB)
						_, err := rlsExec(ctx, tn, true, "", q, args...)
						rlsWantDenied(t, err, rlsByPolicy)
					})

					t.Run("update of B's rows", func(t *testing.T) {
						n, err := rlsExec(ctx, tn, true, "", `update `+tb.name+` set `+tb.set+` where org_id = $1`, s.orgB)
						if tb.appendOnly {
							rlsWantDenied(t, err, rlsByPrivilege)
							return
						}
						if err != nil || n != 0 {
							t.Fatalf("updated %d of B's rows, err %v; want 0", n, err)
						}
					})

					// Without a WHERE clause the statement reads no column, so
					// only the UPDATE policy's WITH CHECK stands in the way
					// (with one, the SELECT policy would refuse it as well).
					t.Run("update moving own rows to org B refused", func(t *testing.T) {
						n, err := rlsExec(ctx, tn, false, "", `update `+tb.name+` set org_id = $1`, s.orgB)
						switch {
						case tb.appendOnly:
							rlsWantDenied(t, err, rlsByPrivilege)
						case tn.org != "":
							rlsWantDenied(t, err, rlsByPolicy)
						case err != nil || n != 0:
							t.Fatalf("moved %d rows, err %v; want 0 (no org, no rows)", n, err)
						}
					})

					t.Run("delete of B's rows", func(t *testing.T) {
						n, err := rlsExec(ctx, tn, true, "", `delete from `+tb.name+` where org_id = $1`, s.orgB)
						if tb.appendOnly {
							rlsWantDenied(t, err, rlsByPrivilege)
							return
						}
						if err != nil || n != 0 {
							t.Fatalf("deleted %d of B's rows, err %v; want 0", n, err)
						}
					})

					if tb.appendOnly {
						// Append-only means append-only: not even the tenant's
						// own history can be rewritten.
						t.Run("update of own rows denied", func(t *testing.T) {
							_, err := rlsExec(ctx, tn, false, "", `update `+tb.name+` set `+tb.set+` where org_id = $1`, acting)
							rlsWantDenied(t, err, rlsByPrivilege)
						})
						t.Run("delete of own rows denied", func(t *testing.T) {
							_, err := rlsExec(ctx, tn, false, "", `delete from `+tb.name+` where org_id = $1`, acting)
							rlsWantDenied(t, err, rlsByPrivilege)
						})
					} else {
						// Without a WHERE clause only the UPDATE and DELETE
						// policies' USING decide which rows are reached (a
						// WHERE clause would add the SELECT policy): exactly
						// the own rows, and not none of them.
						for _, st := range []struct{ name, sql string }{
							{"update without WHERE reaches only own rows", `update ` + tb.name + ` set ` + tb.set},
							{"delete without WHERE reaches only own rows", `delete from ` + tb.name},
						} {
							t.Run(st.name, func(t *testing.T) {
								n, err := rlsExec(ctx, tn, false, "", st.sql)
								want := int64(0)
								if tn.org != "" {
									want = int64(rlsCount(t, ctx, d, tb.name, tn.org))
								}
								if err != nil || n != want {
									t.Fatalf("reached %d rows, err %v; want %d", n, err, want)
								}
							})
						}
					}

					for _, u := range tb.upserts {
						t.Run("upsert onto "+u.name, func(t *testing.T) {
							q, args := u.build(s, acting)
							n, err := rlsExec(ctx, tn, true, "", q, args...)
							if err != nil {
								rlsWantDenied(t, err, "")
								return
							}
							if n != 0 {
								t.Fatalf("upsert onto B's row affected %d rows and was not refused", n)
							}
						})
					}
				})
			}
		})
	}

	t.Run("rows of both orgs unchanged", func(t *testing.T) {
		rlsCompare(t, ctx, d, s, before)
	})
}

func TestRLSOrgs(t *testing.T) {
	d := dbtest.DB(t)
	ctx := t.Context()
	s := rlsSeedOrgs(t, ctx, d)
	before := rlsSnapshot(t, ctx, d, s)

	for _, tn := range rlsTenants(d, s) {
		t.Run(tn.name, func(t *testing.T) {
			t.Run("select sees only own org", func(t *testing.T) {
				got, err := rlsStrings(ctx, tn, `select id::text from orgs`)
				if err != nil {
					t.Fatal(err)
				}
				var want []string
				if tn.org != "" {
					want = []string{tn.org}
				}
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Fatalf("sees orgs %v, want %v", got, want)
				}
			})
			t.Run("rename without WHERE reaches only own org", func(t *testing.T) {
				n, err := rlsExec(ctx, tn, false, "", `update orgs set name = 'renamed'`)
				want := int64(0)
				if tn.org != "" {
					want = 1
				}
				if err != nil || n != want {
					t.Fatalf("renamed %d orgs, err %v; want %d", n, err, want)
				}
			})
			t.Run("update of org B", func(t *testing.T) {
				n, err := rlsExec(ctx, tn, true, "", `update orgs set name = 'pwned' where id = $1`, s.orgB)
				if err != nil || n != 0 {
					t.Fatalf("updated %d orgs, err %v; want 0", n, err)
				}
			})
			t.Run("changing own id to B's refused", func(t *testing.T) {
				n, err := rlsExec(ctx, tn, false, "", `update orgs set id = $1`, s.orgB)
				if tn.org != "" {
					rlsWantDenied(t, err, rlsByPolicy)
					return
				}
				if err != nil || n != 0 {
					t.Fatalf("updated %d orgs, err %v; want 0", n, err)
				}
			})
			t.Run("creating an org refused", func(t *testing.T) {
				_, err := rlsExec(ctx, tn, true, "", `insert into orgs (id, name) values ($1, 'new')`, rlsNewID())
				rlsWantDenied(t, err, rlsByPolicy)
			})
			t.Run("delete of org B", func(t *testing.T) {
				n, err := rlsExec(ctx, tn, true, "", `delete from orgs where id = $1`, s.orgB)
				if err != nil || n != 0 {
					t.Fatalf("deleted %d orgs, err %v; want 0", n, err)
				}
			})
			t.Run("delete without WHERE reaches no org", func(t *testing.T) {
				n, err := rlsExec(ctx, tn, false, "", `delete from orgs`)
				if err != nil || n != 0 {
					t.Fatalf("deleted %d orgs, err %v; want 0 (deleting orgs is the service role's job)", n, err)
				}
			})
		})
	}

	t.Run("rows of both orgs unchanged", func(t *testing.T) {
		rlsCompare(t, ctx, d, s, before)
	})
}

func TestRLSUsers(t *testing.T) {
	d := dbtest.DB(t)
	ctx := t.Context()
	s := rlsSeedOrgs(t, ctx, d)
	before := rlsSnapshot(t, ctx, d, s)

	for _, tn := range rlsTenants(d, s) {
		t.Run(tn.name, func(t *testing.T) {
			t.Run("select sees only the signed-in user", func(t *testing.T) {
				got, err := rlsStrings(ctx, tn, `select id::text from users`)
				if err != nil {
					t.Fatal(err)
				}
				var want []string
				if tn.sub != "" {
					want = []string{tn.sub}
				}
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Fatalf("sees users %v, want %v", got, want)
				}
			})
			t.Run("update of another user", func(t *testing.T) {
				n, err := rlsExec(ctx, tn, true, "", `update users set password_hash = 'pwned', session_version = 0 where id = $1`, s.userB)
				if err != nil || n != 0 {
					t.Fatalf("updated %d users, err %v; want 0", n, err)
				}
			})
			t.Run("creating a user refused", func(t *testing.T) {
				id := rlsNewID()
				_, err := rlsExec(ctx, tn, true, "", `insert into users (id, email, password_hash) values ($1, $2, 'x')`, id, "rls-"+id+"@example.test")
				rlsWantDenied(t, err, rlsByPolicy)
			})
			for _, st := range []struct{ name, sql string }{
				{"update without WHERE reaches no user", `update users set password_hash = 'pwned'`},
				{"delete without WHERE reaches no user", `delete from users`},
			} {
				t.Run(st.name, func(t *testing.T) {
					n, err := rlsExec(ctx, tn, false, "", st.sql)
					if err != nil || n != 0 {
						t.Fatalf("reached %d users, err %v; want 0 (accounts are the service role's job)", n, err)
					}
				})
			}
			t.Run("delete of another user", func(t *testing.T) {
				n, err := rlsExec(ctx, tn, true, "", `delete from users where id = $1`, s.userB)
				if err != nil || n != 0 {
					t.Fatalf("deleted %d users, err %v; want 0", n, err)
				}
			})
		})
	}

	t.Run("rows of both orgs unchanged", func(t *testing.T) {
		rlsCompare(t, ctx, d, s, before)
	})
}

// TestRLSAnonSeesNothing: `anon`, even carrying A's claims, reads and
// changes nothing in any table of the public schema.
func TestRLSAnonSeesNothing(t *testing.T) {
	d := dbtest.DB(t)
	ctx := t.Context()
	s := rlsSeedOrgs(t, ctx, d)
	claims := fmt.Sprintf(`{"sub": %q, "org_id": %q, "role": "anon"}`, s.userA, s.orgA)

	rows, err := d.Pool.Query(ctx, `select tablename from pg_tables where schemaname = 'public' order by 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(","+strings.Join(tables, ",")+",", ",org_credentials,") {
		t.Fatalf("public tables %v do not include org_credentials", tables)
	}

	for _, table := range tables {
		quoted := pgx.Identifier{table}.Sanitize()
		t.Run(table, func(t *testing.T) {
			for _, st := range []struct{ name, sql string }{
				{"select", `select count(*) from ` + quoted},
				{"delete", `delete from ` + quoted},
			} {
				t.Run(st.name, func(t *testing.T) {
					var n int64
					err := rlsInRole(ctx, d.Pool, "anon", claims, false, func(tx pgx.Tx) error {
						if st.name == "select" {
							return tx.QueryRow(ctx, st.sql).Scan(&n)
						}
						tag, err := tx.Exec(ctx, st.sql)
						n = tag.RowsAffected()
						return err
					})
					if err != nil {
						rlsWantDenied(t, err, rlsByPrivilege)
						return
					}
					if n != 0 {
						t.Fatalf("anon: %s reached %d rows", st.name, n)
					}
				})
			}
		})
	}
}
