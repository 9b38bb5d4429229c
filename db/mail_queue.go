package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/app"
)

// queueBreakNotice queues, in tx (acting for orgID), one notice per admin of
// the org that its connection to p broke because of reason, due at at. It
// runs in the transaction that records the break, so the decision and the
// messages are written together or not at all.
func queueBreakNotice(ctx context.Context, tx pgx.Tx, orgID string, p app.Provider, reason string, at time.Time) error {
	_, err := tx.Exec(ctx, `
		insert into mail_queue (org_id, kind, provider, reason, recipient, next_attempt_at, created_at)
		select m.org_id, $3, $2, left($4, 2000), u.email, $5, $5
		from org_members m join users u on u.id = m.user_id
		where m.org_id = $1 and m.role = 'admin'
		order by m.created_at, u.email`,
		orgID, string(p), app.MailKindConnectionBroke, reason, at)
	if err != nil {
		return fmt.Errorf("queue the break notice: %w", err)
	}
	return nil
}

// ClaimMail claims at most limit queued messages that are due at now,
// oldest due first, and returns them. Claiming counts the attempt and moves
// the message's next attempt to now + lease, in the statement that selects
// the rows, skipping rows another transaction holds: so two senders never
// hold one message at once, and a message whose sender stopped before
// settling it is due again once the lease is over.
func (d *DB) ClaimMail(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]app.QueuedMail, error) {
	if lease <= 0 || limit < 1 {
		return nil, fmt.Errorf("db: claim mail: lease %v, limit %d", lease, limit)
	}
	var out []app.QueuedMail
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			update mail_queue q
			set attempts = q.attempts + 1, next_attempt_at = $1::timestamptz + $2::interval
			from (
				select id from mail_queue
				where status = 'pending' and next_attempt_at <= $1
				order by next_attempt_at
				limit $3
				for update skip locked
			) due
			where q.id = due.id
			returning q.id::text, q.org_id::text, q.kind, q.provider, q.reason, q.recipient, q.attempts, q.created_at`,
			now, lease, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.QueuedMail, error) {
			var m app.QueuedMail
			var p string
			err := r.Scan(&m.ID, &m.OrgID, &m.Kind, &p, &m.Reason, &m.Recipient, &m.Attempt, &m.CreatedAt)
			m.Provider = app.Provider(p)
			return m, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("db: claim mail: %w", err)
	}
	return out, nil
}

// SettleMail records what became of attempt number attempt at the queued
// message id (see app.MailSettlement). It reports false, changing nothing,
// when the message is no longer held by that attempt: settled already, or
// claimed again by another sender after the lease ran out.
func (d *DB) SettleMail(ctx context.Context, id string, attempt int, s app.MailSettlement) (bool, error) {
	if !app.IsUUID(id) {
		return false, fmt.Errorf("db: settle mail: malformed id")
	}
	var sql string
	args := []any{id, attempt, s.At, s.Error}
	switch s.Status {
	case app.MailSent:
		sql = `update mail_queue set status = 'sent', finished_at = $3, last_error = null
			where id = $1 and attempts = $2 and status = 'pending'`
		args = args[:3]
	case app.MailFailed:
		sql = `update mail_queue set status = 'failed', finished_at = $3, last_error = nullif(left($4, 2000), '')
			where id = $1 and attempts = $2 and status = 'pending'`
	case app.MailPending:
		if !s.RetryAt.After(s.At) {
			return false, fmt.Errorf("db: settle mail: retry at %v is not after %v", s.RetryAt, s.At)
		}
		sql = `update mail_queue set next_attempt_at = $3, last_error = nullif(left($4, 2000), '')
			where id = $1 and attempts = $2 and status = 'pending'`
		args = []any{id, attempt, s.RetryAt, s.Error}
	default:
		return false, fmt.Errorf("db: settle mail: unknown status %q", s.Status)
	}
	var n int64
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, sql, args...)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("db: settle mail: %w", err)
	}
	return n == 1, nil
}

// PurgeMail deletes at most limit queued messages that were settled (sent
// or failed) before before, and returns how many it deleted. A pending
// message is never deleted.
func (d *DB) PurgeMail(ctx context.Context, before time.Time, limit int) (int64, error) {
	if limit < 1 {
		return 0, fmt.Errorf("db: purge mail: limit %d", limit)
	}
	var n int64
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			delete from mail_queue where id in (
				select id from mail_queue
				where status <> 'pending' and finished_at < $1
				limit $2
				for update skip locked
			)`, before, limit)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("db: purge mail: %w", err)
	}
	return n, nil
}
