package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/app"
)

// ClaimChecks claims at most limit active connections that are due for a
// re-check at now and returns them. A connection is due when its
// next_check_at has come, or, never claimed yet, when it was last checked
// (or stored) at least interval ago. Claiming moves next_check_at to now +
// interval + a random part of jitter (each row its own), in the statement
// that selects the rows, skipping rows another transaction holds: so each
// connection is claimed once per interval across every instance on the
// database, and a claim survives the claimer's crash (the connection is
// simply checked an interval later). Connections never claimed come first,
// then the others in the order they became due: the walk follows the
// next-check index, so a claim costs well under a millisecond however
// many connections are stored or due.
func (d *DB) ClaimChecks(ctx context.Context, now time.Time, interval, jitter time.Duration, limit int) ([]app.CheckClaim, error) {
	if interval <= 0 || jitter < 0 || limit < 1 {
		return nil, fmt.Errorf("db: claim checks: interval %v, jitter %v, limit %d", interval, jitter, limit)
	}
	var out []app.CheckClaim
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			update org_credentials c
			set next_check_at = $1::timestamptz + $2::interval + random() * $3::interval
			from (
				select id from org_credentials
				where is_active and (next_check_at <= $1
					or (next_check_at is null and coalesce(last_checked_at, created_at) <= $1::timestamptz - $2::interval))
				order by next_check_at nulls first
				limit $4
				for update skip locked
			) due
			where c.id = due.id
			returning c.org_id::text, c.provider`,
			now, interval, jitter, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.CheckClaim, error) {
			var c app.CheckClaim
			var p string
			err := r.Scan(&c.OrgID, &p)
			c.Provider = app.Provider(p)
			return c, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("db: claim checks: %w", err)
	}
	return out, nil
}

// OrgAdminEmails returns the e-mail addresses of the org's admins, in the
// order they joined. Read as the service role: a background job acts for
// no signed-in user, and tenants read only their own account.
func (d *DB) OrgAdminEmails(ctx context.Context, orgID string) ([]string, error) {
	if !app.IsUUID(orgID) {
		return nil, ErrNoOrg
	}
	var out []string
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			select u.email from org_members m join users u on u.id = m.user_id
			where m.org_id = $1 and m.role = 'admin'
			order by m.created_at, u.email`, orgID)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("db: org admins: %w", err)
	}
	return out, nil
}
