package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/app"
)

// oauthStatesLockName names the transaction-scoped lock that orders the
// saves of one org's pending authorizations.
const oauthStatesLockName = "oauth-states"

// Queries of the oauth_states aggregate: pending OAuth authorizations, each
// used at most once. Both methods run in a tenant transaction of the org
// they are given and filter by that org in SQL as well.

// SaveOAuthState stores a pending authorization. In the same transaction it
// deletes the org's expired states, and then its oldest (by CreatedAt) until
// the org keeps at most app.MaxPendingOAuthStates, st always among them, so
// neither abandoned nor repeated flows pile up (row level security limits
// that cleanup to the org). Saves for one org run one at a time (a
// transaction-scoped advisory lock), so concurrent ones never leave more.
// st.ExpiresAt is required; a zero st.CreatedAt means now. Errors are
// internal (an invalid or unknown org or user id, a state hash that is not
// 64 lowercase hex characters, or a state hash already stored).
func (d *DB) SaveOAuthState(ctx context.Context, st app.OAuthState) error {
	if st.ExpiresAt.IsZero() {
		return errors.New("db: save oauth state: ExpiresAt is required")
	}
	var created *time.Time
	if !st.CreatedAt.IsZero() {
		created = &st.CreatedAt
	}
	err := d.InOrg(ctx, st.OrgID, st.UserID, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `select pg_advisory_xact_lock(hashtextextended($1, 0))`,
			st.OrgID+"/"+oauthStatesLockName); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `delete from oauth_states where org_id = $1 and expires_at < now()`, st.OrgID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			insert into oauth_states (state_hash, org_id, user_id, session_binding, code_verifier, created_at, expires_at)
			values ($1, $2, $3, $4, $5, coalesce($6, now()), $7)`,
			st.StateHash, st.OrgID, st.UserID, st.SessionBinding, st.CodeVerifier, created, st.ExpiresAt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
			delete from oauth_states where org_id = $1 and state_hash in (
				select state_hash from oauth_states where org_id = $1 and state_hash <> $2
				order by created_at desc, state_hash desc
				offset $3)`,
			st.OrgID, st.StateHash, app.MaxPendingOAuthStates-1)
		return err
	})
	if err != nil {
		return fmt.Errorf("db: save oauth state: %w", err)
	}
	return nil
}

// TakeOAuthState removes the org's pending authorization with the given
// state hash and returns it. The read and the removal are one statement
// (DELETE ... RETURNING), so of any number of concurrent takes, on any
// number of instances, exactly one gets the state. It returns ENotFound when
// the org has no such state, and also when the state has expired (the
// expired row is removed all the same). Other errors are internal.
func (d *DB) TakeOAuthState(ctx context.Context, orgID, stateHash string) (app.OAuthState, error) {
	var st app.OAuthState
	var expired bool
	err := d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `
			delete from oauth_states where org_id = $1 and state_hash = $2
			returning state_hash, org_id::text, user_id::text, session_binding, code_verifier, created_at, expires_at,
				expires_at <= now()`,
			orgID, stateHash).Scan(&st.StateHash, &st.OrgID, &st.UserID, &st.SessionBinding, &st.CodeVerifier,
			&st.CreatedAt, &st.ExpiresAt, &expired)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows) || (err == nil && expired):
		return app.OAuthState{}, app.Errorf(app.ENotFound, "This sign-in request is unknown, has expired or was already used.")
	case err != nil:
		return app.OAuthState{}, fmt.Errorf("db: take oauth state: %w", err)
	}
	return st, nil
}
