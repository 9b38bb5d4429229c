package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/app"
)

// Queries of the activity page: pages of the audit log and of the recorded
// webhook deliveries, newest first, and the refused deliveries counted per
// org, assistant, reason and hour (webhook_refusals). The pages run as the
// org, so row level security keeps each org to its own rows whatever
// position a caller asks for.

// RefusalRetention is how long refusal counts are kept.
const RefusalRetention = 48 * time.Hour

// AuditPage returns up to q.Limit entries of q.OrgID's audit log matching
// q's provider and action, newest first, strictly before q.Before when set.
// An actor who is no longer a member of the org has no e-mail. It never
// returns nil.
func (d *DB) AuditPage(ctx context.Context, q app.AuditQuery) ([]app.AuditRecord, error) {
	var beforeAt *time.Time
	var beforeID int64
	if q.Before != nil {
		beforeAt, beforeID = &q.Before.At, q.Before.ID
	}
	out := []app.AuditRecord{}
	err := d.InOrg(ctx, q.OrgID, "", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			select a.id, coalesce(a.actor_user_id::text, ''), coalesce(u.email, ''), a.action, coalesce(a.provider, ''),
				a.outcome, coalesce(a.detail, ''), a.created_at
			from audit_log a
			left join org_members m on m.org_id = a.org_id and m.user_id = a.actor_user_id
			left join users u on u.id = m.user_id
			where a.org_id = $1
				and ($2 = '' or a.provider = $2)
				and ($3 = '' or a.action = $3)
				and ($4::timestamptz is null or (a.created_at, a.id) < ($4, $5))
			order by a.created_at desc, a.id desc
			limit $6`, q.OrgID, string(q.Provider), q.Action, beforeAt, beforeID, q.Limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.AuditRecord, error) {
			e := app.AuditRecord{AuditEntry: app.AuditEntry{OrgID: q.OrgID}}
			var p string
			err := r.Scan(&e.ID, &e.ActorID, &e.ActorEmail, &e.Action, &p, &e.Outcome, &e.Detail, &e.At)
			e.Provider = app.Provider(p)
			return e, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("db: audit page: %w", err)
	}
	if out == nil {
		out = []app.AuditRecord{}
	}
	return out, nil
}

// Deliveries returns up to limit of the org's recorded webhook deliveries,
// newest first, strictly before before when set, each with its assistant's
// role at the org now. It never returns nil.
func (d *DB) Deliveries(ctx context.Context, orgID string, before *app.Position, limit int) ([]app.Delivery, error) {
	var beforeAt *time.Time
	var beforeID int64
	if before != nil {
		beforeAt, beforeID = &before.At, before.ID
	}
	out := []app.Delivery{}
	err := d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			select e.id, e.received_at, e.event_type, e.call_id, coalesce(e.assistant_id, ''),
				coalesce(m.assistant_role, ''), e.outcome, e.duplicates
			from call_events e
			left join assistant_org_mapping m on m.org_id = e.org_id and m.vapi_assistant_id = e.assistant_id
			where e.org_id = $1
				and ($2::timestamptz is null or (e.received_at, e.id) < ($2, $3))
			order by e.received_at desc, e.id desc
			limit $4`, orgID, beforeAt, beforeID, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.Delivery, error) {
			var v app.Delivery
			var role string
			err := r.Scan(&v.ID, &v.ReceivedAt, &v.Type, &v.CallID, &v.AssistantID, &role, &v.Outcome, &v.Duplicates)
			v.AssistantRole = app.AssistantRole(role)
			return v, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("db: deliveries: %w", err)
	}
	if out == nil {
		out = []app.Delivery{}
	}
	return out, nil
}

// LastDelivery returns when the org's most recent delivery was recorded,
// and false when it has none.
func (d *DB) LastDelivery(ctx context.Context, orgID string) (time.Time, bool, error) {
	var at *time.Time
	err := d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `select max(received_at) from call_events where org_id = $1`, orgID).Scan(&at)
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("db: last delivery: %w", err)
	}
	if at == nil {
		return time.Time{}, false, nil
	}
	return *at, true, nil
}

// RefusalCounts sums the org's refused deliveries since since, per
// assistant and reason (with the assistant's role at the org now, "" when
// it has none), most first. It never returns nil.
func (d *DB) RefusalCounts(ctx context.Context, orgID string, since time.Time) ([]app.RefusalCount, error) {
	out := []app.RefusalCount{}
	err := d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			select r.assistant_id, coalesce(m.assistant_role, ''), r.reason, sum(r.count)::bigint
			from webhook_refusals r
			left join assistant_org_mapping m on m.org_id = r.org_id and m.vapi_assistant_id = r.assistant_id
			where r.org_id = $1 and r.hour >= date_trunc('hour', $2::timestamptz)
			group by r.assistant_id, m.assistant_role, r.reason
			order by 4 desc, r.assistant_id, r.reason`, orgID, since)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.RefusalCount, error) {
			var c app.RefusalCount
			var role string
			err := r.Scan(&c.AssistantID, &role, &c.Reason, &c.Count)
			c.AssistantRole = app.AssistantRole(role)
			return c, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("db: refusal counts: %w", err)
	}
	if out == nil {
		out = []app.RefusalCount{}
	}
	return out, nil
}

// AddRefusals adds the tallies to the stored counts in one statement (as
// the service role: a flush holds the tallies of many orgs) and deletes the
// counts older than RefusalRetention. Tallies of an org that no longer
// exists are dropped.
func (d *DB) AddRefusals(ctx context.Context, tallies []app.RefusalTally) error {
	if len(tallies) == 0 {
		return nil
	}
	orgs := make([]string, len(tallies))
	assistants := make([]string, len(tallies))
	reasons := make([]string, len(tallies))
	hours := make([]time.Time, len(tallies))
	counts := make([]int64, len(tallies))
	for i, t := range tallies {
		orgs[i], assistants[i], reasons[i], hours[i], counts[i] = t.OrgID, t.AssistantID, t.Reason, t.Hour, t.Count
	}
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			insert into webhook_refusals (org_id, assistant_id, reason, hour, count)
			select t.org_id, t.assistant_id, t.reason, date_trunc('hour', t.hour), sum(t.count)
			from unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[])
				as t(org_id, assistant_id, reason, hour, count)
			where exists (select 1 from orgs o where o.id = t.org_id)
			group by 1, 2, 3, 4
			on conflict (org_id, assistant_id, reason, hour)
				do update set count = webhook_refusals.count + excluded.count`,
			orgs, assistants, reasons, hours, counts); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `delete from webhook_refusals where hour < $1`, time.Now().Add(-RefusalRetention))
		return err
	})
	if err != nil {
		return fmt.Errorf("db: add refusals: %w", err)
	}
	return nil
}
