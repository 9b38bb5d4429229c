package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"byoc/app"
)

// AppendAudit writes one entry to the org's audit log. The log is
// append-only for tenants: nothing updates or deletes entries.
func (d *DB) AppendAudit(ctx context.Context, e app.AuditEntry) error {
	err := d.InOrg(ctx, e.OrgID, e.ActorID, func(tx pgx.Tx) error { return appendAudit(ctx, tx, e) })
	if err != nil {
		return fmt.Errorf("db: append audit: %w", err)
	}
	return nil
}

// appendAudits writes the entries of a change of orgID's data in tx, the
// change's own transaction, so the change and its entries commit or roll
// back together: a refused entry refuses the change. An entry of another
// org refuses it too.
func appendAudits(ctx context.Context, tx pgx.Tx, orgID string, entries []app.AuditEntry) error {
	for _, e := range entries {
		if e.OrgID != orgID {
			return fmt.Errorf("db: an audit entry of another org (%s) with a change of %s", e.OrgID, orgID)
		}
		if err := appendAudit(ctx, tx, e); err != nil {
			return fmt.Errorf("db: append audit: %w", err)
		}
	}
	return nil
}

// appendAudit writes e in tx, so a change and its audit entry commit or
// roll back together.
func appendAudit(ctx context.Context, tx pgx.Tx, e app.AuditEntry) error {
	_, err := tx.Exec(ctx, `insert into audit_log (org_id, actor_user_id, action, provider, outcome, detail)
		values ($1, nullif($2, '')::uuid, $3, nullif($4, ''), $5, nullif($6, ''))`,
		e.OrgID, e.ActorID, e.Action, string(e.Provider), e.Outcome, e.Detail)
	return err
}

// AuditLog returns the org's most recent audit entries, newest first, at
// most limit of them. It never returns nil.
func (d *DB) AuditLog(ctx context.Context, orgID string, limit int) ([]app.AuditEntry, error) {
	out := []app.AuditEntry{}
	err := d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `select org_id::text, coalesce(actor_user_id::text, ''), action, coalesce(provider, ''),
				outcome, coalesce(detail, ''), created_at
			from audit_log where org_id = $1 order by created_at desc, id desc limit $2`, orgID, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.AuditEntry, error) {
			var e app.AuditEntry
			var p string
			err := r.Scan(&e.OrgID, &e.ActorID, &e.Action, &p, &e.Outcome, &e.Detail, &e.At)
			e.Provider = app.Provider(p)
			return e, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("db: audit log: %w", err)
	}
	return out, nil
}
