package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"byoc/app"
)

// Queries of the call_events aggregate: Vapi call events recorded by the
// webhook route, at most once per (org, dedup key) whichever instance
// receives the delivery. A tool-calls delivery is recorded too (event type
// "tool-calls") before its tools run: the insert is its claim. They run as
// the org (a webhook acting for it), so row level security applies.

const callEventColumns = `org_id::text, call_id, event_type, coalesce(status, ''), coalesce(ended_reason, ''),
	duration_seconds, dedup_key, occurred_at, received_at`

// RecordCallEvent stores e for e.OrgID unless the org already has an event
// with e.DedupKey, and reports whether it inserted a row. Concurrent calls
// with the same key (on any number of instances) insert exactly one row. An
// empty Status or EndedReason is stored as NULL; a zero ReceivedAt means now.
// Errors are internal (an invalid org id gives ErrNoOrg in the chain).
func (d *DB) RecordCallEvent(ctx context.Context, e app.CallEvent) (bool, error) {
	var receivedAt any
	if !e.ReceivedAt.IsZero() {
		receivedAt = e.ReceivedAt
	}
	var inserted bool
	err := d.InOrg(ctx, e.OrgID, "", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			insert into call_events (org_id, call_id, event_type, status, ended_reason, duration_seconds,
				dedup_key, occurred_at, received_at)
			values ($1, $2, $3, nullif($4, ''), nullif($5, ''), $6, $7, $8, coalesce($9::timestamptz, now()))
			on conflict (org_id, dedup_key) do nothing`,
			e.OrgID, e.CallID, e.Type, e.Status, e.EndedReason, e.DurationSeconds, e.DedupKey, e.OccurredAt, receivedAt)
		inserted = tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("db: record call event: %w", err)
	}
	return inserted, nil
}

// CallEvents returns the org's most recently received call events, newest
// first, at most limit of them (limit <= 0 or above 1000 means 1000). It
// never returns nil.
func (d *DB) CallEvents(ctx context.Context, orgID string, limit int) ([]app.CallEvent, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	out := []app.CallEvent{}
	err := d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `select `+callEventColumns+` from call_events
			where org_id = $1 order by received_at desc, id desc limit $2`, orgID, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.CallEvent, error) {
			var e app.CallEvent
			err := r.Scan(&e.OrgID, &e.CallID, &e.Type, &e.Status, &e.EndedReason, &e.DurationSeconds,
				&e.DedupKey, &e.OccurredAt, &e.ReceivedAt)
			return e, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("db: call events: %w", err)
	}
	if out == nil {
		out = []app.CallEvent{}
	}
	return out, nil
}
