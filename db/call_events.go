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
// with e.DedupKey (then it counts a duplicate on that event), and reports
// whether it inserted a row. Concurrent calls
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
		// A repeat counts itself on the row it repeats; xmax is zero only
		// on the row version an insert made.
		return tx.QueryRow(ctx, `
			insert into call_events (org_id, call_id, event_type, status, ended_reason, duration_seconds,
				dedup_key, occurred_at, received_at, assistant_id)
			values ($1, $2, $3, nullif($4, ''), nullif($5, ''), $6, $7, $8, coalesce($9::timestamptz, now()), nullif($10, ''))
			on conflict (org_id, dedup_key) do update set duplicates = call_events.duplicates + 1
			returning xmax = 0`,
			e.OrgID, e.CallID, e.Type, e.Status, e.EndedReason, e.DurationSeconds, e.DedupKey, e.OccurredAt, receivedAt,
			e.AssistantID).Scan(&inserted)
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

// SetCallEventOutcome records how the org's event with dedupKey was handled
// (one of the app.Delivery* outcomes). An event the org does not have is
// left alone.
func (d *DB) SetCallEventOutcome(ctx context.Context, orgID, dedupKey, outcome string) error {
	err := d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `update call_events set outcome = $3 where org_id = $1 and dedup_key = $2`,
			orgID, dedupKey, outcome)
		return err
	})
	if err != nil {
		return fmt.Errorf("db: set call event outcome: %w", err)
	}
	return nil
}
