package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/app"
)

// Queries of the attempt_counts table: the counts of the attempt limits,
// shared by every instance (see migrations/00006_attempt_limits.sql). Each
// method is one statement, run as the service role; every row it touches is
// found through the primary key or, for the sweep, the expiry index.
//
// CountAttempts and SettleAttempts lock their rows in one order, (kind,
// key), whatever the order of the keys they are given, so two of them never
// wait for each other in a cycle. The sweep skips locked rows and so never
// waits at all.

// CountAttempts counts one attempt under each key at now and returns each
// key's counts as they are afterwards. A key's fixed window starts with the
// first attempt; the first attempt a window or more after that opens the
// next window (the previous window's count moves to PreviousHits), and one
// two windows or more after it starts afresh. A clock that is behind the
// window's start counts in the current window. The keys must differ.
func (d *DB) CountAttempts(ctx context.Context, now time.Time, keys []app.AttemptKey) ([]app.AttemptCount, error) {
	kinds, hashes, windows := attemptColumns(keys)
	var out []app.AttemptCount
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			insert into attempt_counts as a (kind, key, span, window_start, hits, prev_hits, expires_at)
			select kind, key, span, $1::timestamptz, 1, 0, $1 + 2 * span
			from unnest($2::text[], $3::bytea[], $4::interval[]) as i(kind, key, span)
			order by kind collate "C", key
			on conflict (kind, key) do update set
				span = excluded.span,
				window_start = case
					when $1 < a.window_start + excluded.span then a.window_start
					when $1 < a.window_start + 2 * excluded.span then a.window_start + excluded.span
					else excluded.window_start end,
				prev_hits = case
					when $1 < a.window_start + excluded.span then a.prev_hits
					when $1 < a.window_start + 2 * excluded.span then a.hits
					else 0 end,
				hits = case
					when $1 < a.window_start + excluded.span then a.hits + 1
					else 1 end,
				expires_at = case
					when $1 < a.window_start + excluded.span then a.window_start + 2 * excluded.span
					when $1 < a.window_start + 2 * excluded.span then a.window_start + 3 * excluded.span
					else excluded.expires_at end
			returning kind, key, window_start, hits, prev_hits`,
			now, kinds, hashes, windows)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.AttemptCount, error) {
			var c app.AttemptCount
			err := r.Scan(&c.Kind, &c.Hash, &c.WindowStart, &c.Hits, &c.PreviousHits)
			return c, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("db: count attempts: %w", err)
	}
	return out, nil
}

// SettleAttempts takes back one attempt from each key in undo (its current
// window's count, never below zero) and clears both counts of each key in
// clear, in one statement. A key without a row gets an empty one, which
// expires like any other. The keys must differ.
func (d *DB) SettleAttempts(ctx context.Context, now time.Time, undo, clear []app.AttemptKey) error {
	keys := append(append([]app.AttemptKey{}, undo...), clear...)
	kinds, hashes, windows := attemptColumns(keys)
	clears := make([]bool, len(keys))
	for i := len(undo); i < len(keys); i++ {
		clears[i] = true
	}
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			with op as (
				select * from unnest($2::text[], $3::bytea[], $4::interval[], $5::boolean[]) as o(kind, key, span, clear)
			)
			insert into attempt_counts as a (kind, key, span, window_start, hits, prev_hits, expires_at)
			select kind, key, span, $1::timestamptz, 0, 0, $1 + 2 * span from op
			order by kind collate "C", key
			on conflict (kind, key) do update set
				hits = case when (select clear from op where op.kind = a.kind and op.key = a.key) then 0
					else greatest(a.hits - 1, 0) end,
				prev_hits = case when (select clear from op where op.kind = a.kind and op.key = a.key) then 0
					else a.prev_hits end`,
			now, kinds, hashes, windows, clears)
		return err
	})
	if err != nil {
		return fmt.Errorf("db: settle attempts: %w", err)
	}
	return nil
}

// SweepAttempts deletes at most limit counts that expired before now, the
// oldest first, and returns how many it deleted. Rows another transaction
// holds are left for the next sweep.
func (d *DB) SweepAttempts(ctx context.Context, now time.Time, limit int) (int, error) {
	var n int64
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			delete from attempt_counts a
			using (
				select kind, key from attempt_counts
				where expires_at < $1::timestamptz
				order by expires_at
				limit $2
				for update skip locked
			) old
			where a.kind = old.kind and a.key = old.key and a.expires_at < $1`,
			now, limit)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("db: sweep attempts: %w", err)
	}
	return int(n), nil
}

func attemptColumns(keys []app.AttemptKey) (kinds []string, hashes [][]byte, windows []time.Duration) {
	for _, k := range keys {
		kinds = append(kinds, k.Kind)
		hashes = append(hashes, k.Hash)
		windows = append(windows, k.Window)
	}
	return kinds, hashes, windows
}
