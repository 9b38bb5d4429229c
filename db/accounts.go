package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"byoc/app"
)

// Accounts: orgs, users and memberships. Signup, login and session
// invalidation run as the service role, because they happen before anyone
// knows which org a request belongs to; LoadSession, which runs on every
// signed-in request and knows both, runs as that user in that org.

// CreateOrgWithAdmin creates an org, a user with the given (already hashed)
// password and the user's admin membership in one transaction, and returns
// the new ids. The email is stored as given; callers normalise it.
// It returns EEmailTaken when a user with the same email in any letter case
// exists.
func (d *DB) CreateOrgWithAdmin(ctx context.Context, orgName, email, passwordHash string) (orgID, userID string, err error) {
	err = d.AsService(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx,
			`insert into orgs (name) values ($1) returning id::text`, orgName).Scan(&orgID); err != nil {
			return fmt.Errorf("db: insert org: %w", err)
		}
		if err := tx.QueryRow(ctx,
			`insert into users (email, password_hash) values ($1, $2) returning id::text`,
			email, passwordHash).Scan(&userID); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "users_email_lower_key" {
				return &app.Error{Code: app.EEmailTaken, Message: "An account with this email address already exists.",
					Fields: map[string]string{"email": "An account with this email address already exists."}}
			}
			return fmt.Errorf("db: insert user: %w", err)
		}
		if _, err := tx.Exec(ctx,
			`insert into org_members (org_id, user_id, role) values ($1, $2, $3)`,
			orgID, userID, string(app.RoleAdmin)); err != nil {
			return fmt.Errorf("db: insert membership: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	return orgID, userID, nil
}

// FindUserByEmail looks a user up by email, ignoring letter case, and
// returns the user as a principal in their first org (the oldest org they
// belong to), the org's name, the password hash and the session version.
// It returns ENotFound when no user has that email or the user belongs to no
// org.
func (d *DB) FindUserByEmail(ctx context.Context, email string) (p app.Principal, orgName, passwordHash string, sessionVersion int, err error) {
	err = d.AsService(ctx, func(tx pgx.Tx) error {
		var role string
		err := tx.QueryRow(ctx, `
			select u.id::text, u.email, u.password_hash, u.session_version, o.id::text, o.name, m.role
			from users u
			join org_members m on m.user_id = u.id
			join orgs o on o.id = m.org_id
			where lower(u.email) = lower($1)
			order by o.created_at, o.id
			limit 1`, email).
			Scan(&p.UserID, &p.Email, &passwordHash, &sessionVersion, &p.OrgID, &orgName, &role)
		p.Role = app.Role(role)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return app.Principal{}, "", "", 0, app.Errorf(app.ENotFound, "No such user.")
	}
	if err != nil {
		return app.Principal{}, "", "", 0, fmt.Errorf("db: find user by email: %w", err)
	}
	return p, orgName, passwordHash, sessionVersion, nil
}

// LoadSession returns what validating a signed-in request needs: the user's
// email, the org's name, the user's role in the org and the current session
// version. It runs as the user in the org (row level security lets a tenant
// read its own org, its members and its own user row), in one round trip
// (see readInOrg). It returns ENotFound when the user does not exist or is
// not a member of the org (malformed ids included).
//
// What it returns is announced as changed (app.AccountScope, for every org
// concerned) by triggers on users, orgs and org_members (migration 00010),
// so a cache of it is dropped by any write, made through any code path.
func (d *DB) LoadSession(ctx context.Context, userID, orgID string) (email, orgName string, role app.Role, sessionVersion int, err error) {
	if !app.IsUUID(userID) || !app.IsUUID(orgID) {
		return "", "", "", 0, app.Errorf(app.ENotFound, "No such membership.")
	}
	var r string
	err = d.readInOrg(ctx, orgID, userID, `
			select u.email, o.name, m.role, u.session_version
			from org_members m
			join users u on u.id = m.user_id
			join orgs o on o.id = m.org_id
			where m.user_id = $1 and m.org_id = $2`, []any{userID, orgID},
		&email, &orgName, &r, &sessionVersion)
	role = app.Role(r)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", "", 0, app.Errorf(app.ENotFound, "No such membership.")
	}
	if errors.As(err, new(*app.Error)) {
		return "", "", "", 0, err
	}
	if err != nil {
		return "", "", "", 0, fmt.Errorf("db: load session: %w", err)
	}
	return email, orgName, role, sessionVersion, nil
}

// BumpSessionVersion increments the user's session version, so every session
// cookie and token carrying an older version is refused from now on.
// It returns ENotFound when the user does not exist.
func (d *DB) BumpSessionVersion(ctx context.Context, userID string) error {
	if !app.IsUUID(userID) {
		return app.Errorf(app.ENotFound, "No such user.")
	}
	err := d.AsService(ctx, func(tx pgx.Tx) error { return bumpSessionVersion(ctx, tx, userID) })
	return err
}

// bumpSessionVersion is the one way a user's sessions and tokens end:
// logout, a removed membership, a password reset or change all come
// through here, in the transaction of the change. ENotFound when the user
// does not exist.
func bumpSessionVersion(ctx context.Context, tx pgx.Tx, userID string) error {
	tag, err := tx.Exec(ctx, `update users set session_version = session_version + 1 where id = $1`, userID)
	if err != nil {
		return fmt.Errorf("db: bump session version: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return app.Errorf(app.ENotFound, "No such user.")
	}
	return nil
}
