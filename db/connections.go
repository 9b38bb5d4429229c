package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"byoc/app"
)

// Provider connections: the sealed credentials of a provider together with
// the rows that only make sense with them (the org's Vapi assistants, its
// outbound agent). A save writes all of them in one tenant transaction, and
// a disconnect deletes them in one, so a failure leaves the previous
// connection as it was.

// SaveConnection stores rec as the org's credentials for rec.Provider
// (inserting the row or replacing its ciphertext, so concurrent saves leave
// one row; the row becomes active with rec's verification state), the given
// assistant mappings (each replacing the org's mapping of its role) and,
// when outbound is not nil, the outbound agent set-up (an empty field keeps
// the stored value), in one tenant transaction of rec.OrgID that also
// publishes the cache invalidation and appends the audit entries: either
// all of it is stored or none (an audit entry the log refuses stores
// nothing). It returns the stored credential row. Every row and entry must
// belong to rec.OrgID. It returns EConflict when an assistant id is mapped
// to another org; other errors are internal.
func (d *DB) SaveConnection(ctx context.Context, rec app.CredentialRecord, mappings []app.AssistantMapping,
	outbound *app.OutboundAgent, audit ...app.AuditEntry) (app.CredentialRecord, error) {
	if err := checkConnection(rec, mappings, outbound); err != nil {
		return app.CredentialRecord{}, err
	}
	var out app.CredentialRecord
	err := d.InOrg(ctx, rec.OrgID, "", func(tx pgx.Tx) error {
		for _, m := range mappings {
			if err := upsertAssistantMapping(ctx, tx, m); err != nil {
				return err
			}
		}
		if outbound != nil {
			if err := upsertOutboundAgent(ctx, tx, *outbound); err != nil {
				return err
			}
		}
		var err error
		if out, err = upsertCredential(ctx, tx, rec, rec.WebhookSecretNew); err != nil {
			return err
		}
		if err := appendAudits(ctx, tx, rec.OrgID, audit); err != nil {
			return err
		}
		return notifyCache(ctx, tx, rec.OrgID, string(rec.Provider))
	})
	if err != nil {
		return app.CredentialRecord{}, wrapConnectionErr("save", rec.Provider, err)
	}
	return out, nil
}

// DeleteConnection deletes the org's credentials for provider p and, with
// assistants set, every assistant mapping of the org and its outbound
// assistant (keeping the outbound number), in one tenant transaction that
// publishes the cache invalidation. It reports whether credentials were
// stored; the assistants are cleaned up either way (leftovers of an
// interrupted save go too). When credentials were deleted, the audit
// entries (each of orgID) are appended in the same transaction, and one
// the log refuses deletes nothing. Errors are internal.
func (d *DB) DeleteConnection(ctx context.Context, orgID string, p app.Provider, assistants bool,
	audit ...app.AuditEntry) (bool, error) {
	var deleted bool
	err := d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error {
		var err error
		if deleted, err = deleteCredential(ctx, tx, orgID, p); err != nil {
			return err
		}
		changed := deleted
		if deleted {
			if err := appendAudits(ctx, tx, orgID, audit); err != nil {
				return err
			}
		}
		if assistants {
			tag, err := tx.Exec(ctx, `delete from assistant_org_mapping where org_id = $1`, orgID)
			if err != nil {
				return err
			}
			cleared, err := tx.Exec(ctx, `update outbound_agent_config set vapi_assistant_id = null, updated_at = now()
				where org_id = $1 and vapi_assistant_id is not null`, orgID)
			if err != nil {
				return err
			}
			changed = changed || tag.RowsAffected() > 0 || cleared.RowsAffected() > 0
		}
		if !changed {
			return nil
		}
		return notifyCache(ctx, tx, orgID, string(p))
	})
	if err != nil {
		return false, wrapConnectionErr("delete", p, err)
	}
	return deleted, nil
}

func checkConnection(rec app.CredentialRecord, mappings []app.AssistantMapping, outbound *app.OutboundAgent) error {
	if outbound != nil && outbound.OrgID != rec.OrgID {
		return fmt.Errorf("db: save %s connection: the outbound agent belongs to another org", rec.Provider)
	}
	for _, m := range mappings {
		if m.OrgID != rec.OrgID {
			return fmt.Errorf("db: save %s connection: an assistant mapping belongs to another org", rec.Provider)
		}
	}
	return nil
}

func wrapConnectionErr(op string, p app.Provider, err error) error {
	var e *app.Error
	if err == nil || errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("db: %s %s connection: %w", op, p, err)
}

// upsertAssistantMapping records m as the org's assistant for m.Role. An
// assistant id already mapped to another org, or to the org's other role,
// gives EConflict.
func upsertAssistantMapping(ctx context.Context, tx pgx.Tx, m app.AssistantMapping) error {
	// The assistant id is unique across roles too: say so rather than
	// blaming another org when it is this org's other assistant.
	var role string
	err := tx.QueryRow(ctx, `
		select assistant_role from assistant_org_mapping
		where vapi_assistant_id = $1 and org_id = $2 and assistant_role <> $3`,
		m.VapiAssistantID, m.OrgID, string(m.Role)).Scan(&role)
	switch {
	case err == nil:
		return app.Errorf(app.EConflict, "This Vapi assistant is already the organization's %s assistant.", role)
	case !errors.Is(err, pgx.ErrNoRows):
		return err
	}
	_, err = tx.Exec(ctx, `
		insert into assistant_org_mapping (vapi_assistant_id, org_id, assistant_role, name)
		values ($1, $2, $3, nullif($4, ''))
		on conflict (org_id, assistant_role) do update set
			vapi_assistant_id = excluded.vapi_assistant_id,
			name              = excluded.name,
			created_at        = case when assistant_org_mapping.vapi_assistant_id = excluded.vapi_assistant_id
			                         then assistant_org_mapping.created_at else now() end`,
		m.VapiAssistantID, m.OrgID, string(m.Role), m.Name)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		if pgErr.ConstraintName == assistantIDKey {
			// The unique assistant id belongs to another org: RLS hides
			// the row, the constraint still sees it.
			return app.Errorf(app.EConflict, "This Vapi assistant is already connected to another organization.")
		}
		return fmt.Errorf("db: save assistant mapping: unique violation on %q: %w", pgErr.ConstraintName, err)
	}
	return err
}

// assistantIDKey is the unique constraint on assistant_org_mapping's
// vapi_assistant_id (migrations/00002_schema.sql).
const assistantIDKey = "assistant_org_mapping_vapi_assistant_id_key"

// upsertOutboundAgent records the org's outbound assistant and number; an
// empty field keeps the stored value.
func upsertOutboundAgent(ctx context.Context, tx pgx.Tx, a app.OutboundAgent) error {
	_, err := tx.Exec(ctx, `
		insert into outbound_agent_config (org_id, vapi_assistant_id, phone_number)
		values ($1, nullif($2, ''), nullif($3, ''))
		on conflict (org_id) do update set
			vapi_assistant_id = coalesce(excluded.vapi_assistant_id, outbound_agent_config.vapi_assistant_id),
			phone_number      = coalesce(excluded.phone_number, outbound_agent_config.phone_number),
			updated_at        = now()`,
		a.OrgID, a.VapiAssistantID, a.PhoneNumber)
	return err
}
