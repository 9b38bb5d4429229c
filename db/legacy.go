package db

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/app"
)

// The legacy backfill: reading the old platform's tables (integrations,
// agents; not BYOC's, so they are found by name on the search path and read
// as the connecting role, read-only) and adding what it brings over to
// BYOC's tables in one service transaction per batch.

// legacyShape says which legacy tables exist and whether agents has a role
// column.
type legacyShape struct {
	integrations, agents, agentRole bool
}

func (s legacyShape) tables() []string {
	var out []string
	if s.integrations {
		out = append(out, "integrations")
	}
	if s.agents {
		out = append(out, "agents")
	}
	return out
}

// legacyColumns are the columns each legacy table must have.
var legacyColumns = map[string][]string{
	"integrations": {"org_id", "provider", "encrypted_config"},
	"agents":       {"org_id", "vapi_assistant_id"},
}

// readLegacy runs fn in a read-only transaction as the connecting role,
// with the shape of the legacy tables.
func (d *DB) readLegacy(ctx context.Context, fn func(tx pgx.Tx, s legacyShape) error) error {
	return pgx.BeginTxFunc(ctx, d.Pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			select t.name, a.attname
			from unnest(array['integrations', 'agents']) as t(name)
			join pg_attribute a on a.attrelid = to_regclass(t.name) and a.attnum > 0 and not a.attisdropped`)
		if err != nil {
			return err
		}
		cols := map[string]map[string]bool{}
		var table, col string
		if _, err := pgx.ForEachRow(rows, []any{&table, &col}, func() error {
			if cols[table] == nil {
				cols[table] = map[string]bool{}
			}
			cols[table][col] = true
			return nil
		}); err != nil {
			return err
		}
		for _, t := range slices.Sorted(maps.Keys(cols)) {
			for _, c := range legacyColumns[t] {
				if !cols[t][c] {
					return fmt.Errorf("the legacy table %s has no column %s", t, c)
				}
			}
		}
		s := legacyShape{integrations: cols["integrations"] != nil, agents: cols["agents"] != nil,
			agentRole: cols["agents"]["role"]}
		return fn(tx, s)
	})
}

// LegacyOrgIDs returns which of the old platform's tables (integrations,
// agents) exist and the distinct org ids of their rows as text ("" for
// NULL), in order. Neither table existing is no error.
func (d *DB) LegacyOrgIDs(ctx context.Context) ([]string, []string, error) {
	var tables, ids []string
	err := d.readLegacy(ctx, func(tx pgx.Tx, s legacyShape) error {
		tables = s.tables()
		var parts []string
		if s.integrations {
			parts = append(parts, `select coalesce(org_id::text, '') from integrations`)
		}
		if s.agents {
			parts = append(parts, `select coalesce(org_id::text, '') from agents`)
		}
		if len(parts) == 0 {
			return nil
		}
		q := parts[0]
		if len(parts) == 2 {
			q += " union " + parts[1]
		}
		rows, err := tx.Query(ctx, `select o from (`+q+`) as u(o) order by o collate "C"`)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("db: legacy org ids: %w", err)
	}
	return tables, ids, nil
}

// LegacyRows returns the rows of the old platform's tables whose org id (as
// text, "" for NULL) is one of orgIDs, and the agents of other orgs that
// name one of their assistants (in any letter case); an agent without a
// role column or value has Role "".
func (d *DB) LegacyRows(ctx context.Context, orgIDs []string) ([]app.LegacyIntegration, []app.LegacyAgent, error) {
	var ints []app.LegacyIntegration
	var agents []app.LegacyAgent
	err := d.readLegacy(ctx, func(tx pgx.Tx, s legacyShape) error {
		if s.integrations {
			rows, err := tx.Query(ctx, `
				select coalesce(org_id::text, ''), coalesce(provider::text, ''), coalesce(encrypted_config::text, '')
				from integrations where coalesce(org_id::text, '') = any($1::text[])
				order by 1, 2`, orgIDs)
			if err != nil {
				return err
			}
			var in app.LegacyIntegration
			var cfg string
			if _, err := pgx.ForEachRow(rows, []any{&in.OrgID, &in.Provider, &cfg}, func() error {
				in.Config = app.NewSecret(cfg)
				ints = append(ints, in)
				return nil
			}); err != nil {
				return err
			}
		}
		if s.agents {
			role := `''`
			if s.agentRole {
				role = `coalesce(role::text, '')`
			}
			rows, err := tx.Query(ctx, `
				select coalesce(org_id::text, ''), coalesce(vapi_assistant_id::text, ''), `+role+`
				from agents where coalesce(org_id::text, '') = any($1::text[])
					or lower(vapi_assistant_id::text) in (select lower(vapi_assistant_id::text) from agents
						where coalesce(org_id::text, '') = any($1::text[]))
				order by 1, 2`, orgIDs)
			if err != nil {
				return err
			}
			var a app.LegacyAgent
			if _, err := pgx.ForEachRow(rows, []any{&a.OrgID, &a.AssistantID, &a.Role}, func() error {
				agents = append(agents, a)
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("db: legacy rows: %w", err)
	}
	return ints, agents, nil
}

// ImportState returns, as service_role, which of orgIDs exist, their
// stored credentials, the assistant mappings of those orgs and of
// assistantIDs (whatever their org), and the items already imported for
// them. Every id must be a UUID.
func (d *DB) ImportState(ctx context.Context, orgIDs, assistantIDs []string) (app.ImportState, error) {
	st := app.ImportState{}
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `select id::text from orgs where id = any($1::uuid[])`, orgIDs)
		if err != nil {
			return err
		}
		if st.Orgs, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `select `+credentialColumns+` from org_credentials where org_id = any($1::uuid[])`, orgIDs)
		if err != nil {
			return err
		}
		if st.Credentials, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.CredentialRecord, error) {
			return scanCredential(r)
		}); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `select `+mappingColumns+` from assistant_org_mapping
			where org_id = any($1::uuid[]) or vapi_assistant_id = any($2::text[])`, orgIDs, assistantIDs)
		if err != nil {
			return err
		}
		if st.Mappings, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.AssistantMapping, error) {
			return scanMapping(r)
		}); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `select org_id::text, kind, item from legacy_imports where org_id = any($1::uuid[])`, orgIDs)
		if err != nil {
			return err
		}
		st.Items, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.ImportItem, error) {
			var it app.ImportItem
			return it, r.Scan(&it.OrgID, &it.Kind, &it.Item)
		})
		return err
	})
	if err != nil {
		return app.ImportState{}, fmt.Errorf("db: import state: %w", err)
	}
	return st, nil
}

// ImportRows adds rows in one service transaction and returns the
// credentials and mappings it added. Nothing stored is replaced: a
// credential row of the same org and provider, or a mapping of the same
// assistant or org and role, already there is left alone (and not
// returned). The outbound agent set-up gets an assistant only with the
// outbound mapping added now and a number only with the Twilio credentials
// added now, and only where it has none. Items are recorded (once). The
// orgs it changed are announced to the caches in the same transaction, per
// provider, as few notifications as fit them: a row already in place is
// neither written nor announced.
func (d *DB) ImportRows(ctx context.Context, rows app.ImportRows) (app.ImportRows, error) {
	var out app.ImportRows
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		var err error
		if out.Credentials, err = importCredentials(ctx, tx, rows.Credentials); err != nil {
			return err
		}
		if out.Mappings, err = importMappings(ctx, tx, rows.Mappings); err != nil {
			return err
		}
		if err := importOutbound(ctx, tx, rows.Outbound, out); err != nil {
			return err
		}
		if err := importItems(ctx, tx, rows.Items); err != nil {
			return err
		}
		changed := map[app.Provider][]string{}
		for _, rec := range out.Credentials {
			changed[rec.Provider] = append(changed[rec.Provider], rec.OrgID)
		}
		for _, m := range out.Mappings {
			// The mappings belong to the Vapi connection.
			changed[app.Vapi] = append(changed[app.Vapi], m.OrgID)
		}
		for _, p := range slices.Sorted(maps.Keys(changed)) {
			orgs := slices.Compact(slices.Sorted(slices.Values(changed[p])))
			if err := notifyCacheOrgs(ctx, tx, orgs, string(p)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return app.ImportRows{}, fmt.Errorf("db: import rows: %w", err)
	}
	return out, nil
}

func importCredentials(ctx context.Context, tx pgx.Tx, recs []app.CredentialRecord) ([]app.CredentialRecord, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	orgs := make([]string, len(recs))
	providers := make([]string, len(recs))
	sealed := make([][]byte, len(recs))
	verified := make([]*time.Time, len(recs))
	for i, r := range recs {
		orgs[i], providers[i], sealed[i], verified[i] = r.OrgID, string(r.Provider), r.Ciphertext, r.LastVerifiedAt
	}
	rows, err := tx.Query(ctx, `
		insert into org_credentials (org_id, provider, encrypted_config, is_active, last_verified_at, webhook_hmac_only)
		select o, p, c, true, v, false from unnest($1::uuid[], $2::text[], $3::bytea[], $4::timestamptz[]) as t(o, p, c, v)
		on conflict (org_id, provider) do nothing
		returning `+credentialColumns, orgs, providers, sealed, verified)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.CredentialRecord, error) { return scanCredential(r) })
}

func importMappings(ctx context.Context, tx pgx.Tx, ms []app.AssistantMapping) ([]app.AssistantMapping, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	ids := make([]string, len(ms))
	orgs := make([]string, len(ms))
	roles := make([]string, len(ms))
	for i, m := range ms {
		ids[i], orgs[i], roles[i] = m.VapiAssistantID, m.OrgID, string(m.Role)
	}
	// Either unique key (the assistant id, or the org and role) already
	// taken leaves the row out.
	rows, err := tx.Query(ctx, `
		insert into assistant_org_mapping (vapi_assistant_id, org_id, assistant_role)
		select a, o, r from unnest($1::text[], $2::uuid[], $3::text[]) as t(a, o, r)
		on conflict do nothing
		returning `+mappingColumns, ids, orgs, roles)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.AssistantMapping, error) { return scanMapping(r) })
}

// importOutbound fills in the empty fields of the outbound agent set-ups of
// agents with what added brought (see ImportRows).
func importOutbound(ctx context.Context, tx pgx.Tx, agents []app.OutboundAgent, added app.ImportRows) error {
	twilio := map[string]bool{}
	for _, rec := range added.Credentials {
		if rec.Provider == app.Twilio {
			twilio[rec.OrgID] = true
		}
	}
	outbound := map[string]string{}
	for _, m := range added.Mappings {
		if m.Role == app.Outbound {
			outbound[m.OrgID] = m.VapiAssistantID
		}
	}
	var orgs, assistants, numbers []string
	for _, a := range agents {
		id, number := "", ""
		if outbound[a.OrgID] == a.VapiAssistantID {
			id = a.VapiAssistantID
		}
		if twilio[a.OrgID] {
			number = a.PhoneNumber
		}
		if id != "" || number != "" {
			orgs, assistants, numbers = append(orgs, a.OrgID), append(assistants, id), append(numbers, number)
		}
	}
	if len(orgs) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `
		insert into outbound_agent_config (org_id, vapi_assistant_id, phone_number)
		select o, nullif(a, ''), nullif(n, '') from unnest($1::uuid[], $2::text[], $3::text[]) as t(o, a, n)
		on conflict (org_id) do update set
			vapi_assistant_id = coalesce(outbound_agent_config.vapi_assistant_id, excluded.vapi_assistant_id),
			phone_number      = coalesce(outbound_agent_config.phone_number, excluded.phone_number),
			updated_at        = now()
		where (outbound_agent_config.vapi_assistant_id is null and excluded.vapi_assistant_id is not null)
		   or (outbound_agent_config.phone_number is null and excluded.phone_number is not null)`,
		orgs, assistants, numbers)
	return err
}

func importItems(ctx context.Context, tx pgx.Tx, items []app.ImportItem) error {
	if len(items) == 0 {
		return nil
	}
	orgs := make([]string, len(items))
	kinds := make([]string, len(items))
	names := make([]string, len(items))
	for i, it := range items {
		orgs[i], kinds[i], names[i] = it.OrgID, it.Kind, it.Item
	}
	_, err := tx.Exec(ctx, `
		insert into legacy_imports (org_id, kind, item)
		select o, k, i from unnest($1::uuid[], $2::text[], $3::text[]) as t(o, k, i)
		on conflict do nothing`, orgs, kinds, names)
	return err
}
