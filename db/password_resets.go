package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/app"
)

// Password resets and changes. Resets run as the service role: the person
// asking is not signed in, and only the e-mail (to start) or the link's
// token (to finish) names the account.

// CreatePasswordReset stores a reset link's token digest for the member
// with that address (any letter case), valid until expiresAt, and drops
// the user's earlier links, so only the newest one works. It returns the
// user as a principal in their org; ENotFound when no member has that
// address.
func (d *DB) CreatePasswordReset(ctx context.Context, email, tokenHash string, expiresAt time.Time) (app.Principal, error) {
	var p app.Principal
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		var role string
		err := tx.QueryRow(ctx, `
			select u.id::text, u.email, o.id::text, o.name, m.role
			from users u join org_members m on m.user_id = u.id join orgs o on o.id = m.org_id
			where lower(u.email) = lower($1)
			order by o.created_at, o.id limit 1`, email).Scan(&p.UserID, &p.Email, &p.OrgID, &p.OrgName, &role)
		if err != nil {
			return err
		}
		p.Role = app.Role(role)
		if _, err := tx.Exec(ctx, `delete from password_resets where user_id = $1`, p.UserID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `insert into password_resets (token_hash, org_id, user_id, expires_at) values ($1, $2, $3, $4)`,
			tokenHash, p.OrgID, p.UserID, expiresAt)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return app.Principal{}, app.Errorf(app.ENotFound, "No such user.")
	}
	if err != nil {
		return app.Principal{}, fmt.Errorf("db: create password reset: %w", err)
	}
	return p, nil
}

// PasswordResetAccount returns the member a pending reset link belongs to
// (as a principal in their org, with the org's name), without using the
// link; ENotFound when the link is unknown, used or expired, or its user
// no longer belongs to the org.
func (d *DB) PasswordResetAccount(ctx context.Context, tokenHash string) (app.Principal, error) {
	var p app.Principal
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		var role string
		err := tx.QueryRow(ctx, `
			select u.id::text, u.email, o.id::text, o.name, m.role
			from password_resets r
			join org_members m on m.user_id = r.user_id and m.org_id = r.org_id
			join users u on u.id = r.user_id join orgs o on o.id = r.org_id
			where r.token_hash = $1 and r.expires_at > now()`, tokenHash).Scan(&p.UserID, &p.Email, &p.OrgID, &p.OrgName, &role)
		p.Role = app.Role(role)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return app.Principal{}, errNoReset()
	}
	if err != nil {
		return app.Principal{}, fmt.Errorf("db: password reset account: %w", err)
	}
	return p, nil
}

// ResetPassword uses a reset link: in one transaction it deletes every
// reset link of its user (this one included, so it works once), sets
// passwordHash, ends every session and token of the user and audits it.
// It returns the user's id and org and the new session version; ENotFound
// as PasswordResetAccount.
func (d *DB) ResetPassword(ctx context.Context, tokenHash, passwordHash string) (userID, orgID string, sessionVersion int, err error) {
	err = d.AsService(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			delete from password_resets r using org_members m
			where r.token_hash = $1 and r.expires_at > now() and m.user_id = r.user_id and m.org_id = r.org_id
			returning r.user_id::text, r.org_id::text`, tokenHash).Scan(&userID, &orgID)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNoReset()
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `delete from password_resets where user_id = $1`, userID); err != nil {
			return err
		}
		sessionVersion, err = setPassword(ctx, tx, userID, passwordHash)
		if err != nil {
			return err
		}
		return appendAudit(ctx, tx, app.AuditEntry{OrgID: orgID, ActorID: userID, Action: app.AuditPasswordReset,
			Outcome: app.OutcomeSuccess, Detail: "password reset by e-mail link"})
	})
	if err != nil && !errors.As(err, new(*app.Error)) {
		return "", "", 0, fmt.Errorf("db: reset password: %w", err)
	}
	if err != nil {
		return "", "", 0, err
	}
	return userID, orgID, sessionVersion, nil
}

// ChangePassword sets the signed-in user's new password hash, ends every
// session and token of the user and audits it in p's org. It returns the
// new session version (the caller signs the current client in again with
// it); ENotFound when the user does not exist.
func (d *DB) ChangePassword(ctx context.Context, p app.Principal, passwordHash string) (int, error) {
	if !app.IsUUID(p.UserID) || !app.IsUUID(p.OrgID) {
		return 0, app.Errorf(app.ENotFound, "No such user.")
	}
	var version int
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		var err error
		if version, err = setPassword(ctx, tx, p.UserID, passwordHash); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `delete from password_resets where user_id = $1`, p.UserID); err != nil {
			return err
		}
		return appendAudit(ctx, tx, app.AuditEntry{OrgID: p.OrgID, ActorID: p.UserID, Action: app.AuditPasswordChange,
			Outcome: app.OutcomeSuccess, Detail: "password changed"})
	})
	if err != nil && !errors.As(err, new(*app.Error)) {
		return 0, fmt.Errorf("db: change password: %w", err)
	}
	return version, err
}

// setPassword stores a new password hash and ends the user's sessions
// (bumpSessionVersion); it returns the new session version.
func setPassword(ctx context.Context, tx pgx.Tx, userID, passwordHash string) (int, error) {
	if _, err := tx.Exec(ctx, `update users set password_hash = $2 where id = $1`, userID, passwordHash); err != nil {
		return 0, err
	}
	if err := bumpSessionVersion(ctx, tx, userID); err != nil {
		return 0, err
	}
	var v int
	err := tx.QueryRow(ctx, `select session_version from users where id = $1`, userID).Scan(&v)
	return v, err
}

func errNoReset() error {
	return app.Errorf(app.ENotFound, "This password reset link is not valid: it was used or has expired. Ask for a new one.")
}
