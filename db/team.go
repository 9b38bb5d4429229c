package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"byoc/app"
)

// Team: an org's members and its pending invitations. Every change runs as
// the acting user in their org, takes the org's row lock first (so two
// changes of one org's team never interleave, on any instance) and checks
// again under it that the actor is still an admin; each writes its audit
// entry in the same transaction. Accepting an invitation runs as the
// service role: nobody is signed in yet and only the token names the org.

// Team returns the org's members (oldest first) and its pending
// invitations (newest first), read as p in p's org.
func (d *DB) Team(ctx context.Context, p app.Principal) ([]app.Member, []app.Invite, error) {
	members, invites := []app.Member{}, []app.Invite{}
	err := d.InOrg(ctx, p.OrgID, p.UserID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			select m.user_id::text, u.email, m.role, m.created_at
			from org_members m join users u on u.id = m.user_id
			where m.org_id = $1
			order by m.created_at, u.email`, p.OrgID)
		if err != nil {
			return err
		}
		members, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.Member, error) {
			var m app.Member
			var role string
			err := r.Scan(&m.UserID, &m.Email, &role, &m.Joined)
			m.Role = app.Role(role)
			return m, err
		})
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `
			select id::text, org_id::text, email, role, coalesce(invited_by::text, ''), created_at, expires_at
			from invites where org_id = $1 and expires_at > now()
			order by created_at desc, id`, p.OrgID)
		if err != nil {
			return err
		}
		invites, err = pgx.CollectRows(rows, scanInvite)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("db: team: %w", err)
	}
	return members, invites, nil
}

func scanInvite(r pgx.CollectableRow) (app.Invite, error) {
	var in app.Invite
	var role string
	err := r.Scan(&in.ID, &in.OrgID, &in.Email, &role, &in.InvitedBy, &in.CreatedAt, &in.ExpiresAt)
	in.Role = app.Role(role)
	return in, err
}

// CreateInvite stores an invitation of email (normalised by the caller)
// with role to p's org, replacing a pending one for the same address, and
// audits it. It returns EForbidden when p is not (or no longer) an admin.
func (d *DB) CreateInvite(ctx context.Context, p app.Principal, email string, role app.Role, tokenHash string, expiresAt time.Time) (app.Invite, error) {
	var in app.Invite
	err := d.teamChange(ctx, p, func(tx pgx.Tx) error {
		// The address's pending invitation is replaced; the org's expired
		// ones go too, so they never pile up.
		if _, err := tx.Exec(ctx, `delete from invites where org_id = $1 and (lower(email) = lower($2) or expires_at <= now())`,
			p.OrgID, email); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			insert into invites (org_id, email, role, token_hash, invited_by, expires_at)
			values ($1, $2, $3, $4, $5, $6)
			returning id::text, org_id::text, email, role, coalesce(invited_by::text, ''), created_at, expires_at`,
			p.OrgID, email, string(role), tokenHash, p.UserID, expiresAt)
		if err != nil {
			return err
		}
		in, err = pgx.CollectExactlyOneRow(rows, scanInvite)
		if err != nil {
			return err
		}
		return appendAudit(ctx, tx, app.AuditEntry{OrgID: p.OrgID, ActorID: p.UserID, Action: app.AuditInviteCreate,
			Outcome: app.OutcomeSuccess, Detail: fmt.Sprintf("invited %s as %s", email, role)})
	})
	if err != nil {
		return app.Invite{}, err
	}
	return in, nil
}

// RevokeInvite deletes a pending invitation of p's org and audits it. It
// returns ENotFound when the org has no invitation with that id (another
// org's included) and EForbidden when p is not an admin.
func (d *DB) RevokeInvite(ctx context.Context, p app.Principal, inviteID string) error {
	if !app.IsUUID(inviteID) {
		return errNoInvite()
	}
	return d.teamChange(ctx, p, func(tx pgx.Tx) error {
		var email string
		err := tx.QueryRow(ctx, `delete from invites where id = $1 and org_id = $2 returning email`, inviteID, p.OrgID).Scan(&email)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNoInvite()
		}
		if err != nil {
			return err
		}
		return appendAudit(ctx, tx, app.AuditEntry{OrgID: p.OrgID, ActorID: p.UserID, Action: app.AuditInviteRevoke,
			Outcome: app.OutcomeSuccess, Detail: "revoked the invitation of " + email})
	})
}

// SetMemberRole gives a member of p's org the role and audits it. It
// returns ENotFound for a user who is not a member of the org, ELastAdmin
// when the change would leave the org without an admin, and EForbidden
// when p is not an admin.
func (d *DB) SetMemberRole(ctx context.Context, p app.Principal, userID string, role app.Role) (app.Member, error) {
	if !app.IsUUID(userID) {
		return app.Member{}, errNoMember()
	}
	var m app.Member
	err := d.teamChange(ctx, p, func(tx pgx.Tx) error {
		var err error
		if m, err = lockedMember(ctx, tx, p.OrgID, userID); err != nil {
			return err
		}
		if m.Role == role {
			return nil
		}
		if m.Role == app.RoleAdmin {
			if err := keepAnAdmin(ctx, tx, p.OrgID); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `update org_members set role = $3 where org_id = $1 and user_id = $2`,
			p.OrgID, userID, string(role)); err != nil {
			return err
		}
		m.Role = role
		return appendAudit(ctx, tx, app.AuditEntry{OrgID: p.OrgID, ActorID: p.UserID, Action: app.AuditMemberRole,
			Outcome: app.OutcomeSuccess, Detail: fmt.Sprintf("made %s %s", m.Email, role)})
	})
	if err != nil {
		return app.Member{}, err
	}
	return m, nil
}

// RemoveMember removes a member from p's org and audits it; the caller
// ends the removed user's sessions (BumpSessionVersion). The user row
// stays, so the audit trail keeps naming them, and the address may be
// invited again. Errors as SetMemberRole's.
func (d *DB) RemoveMember(ctx context.Context, p app.Principal, userID string) (app.Member, error) {
	if !app.IsUUID(userID) {
		return app.Member{}, errNoMember()
	}
	var m app.Member
	err := d.teamChange(ctx, p, func(tx pgx.Tx) error {
		var err error
		if m, err = lockedMember(ctx, tx, p.OrgID, userID); err != nil {
			return err
		}
		if m.Role == app.RoleAdmin {
			if err := keepAnAdmin(ctx, tx, p.OrgID); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `delete from org_members where org_id = $1 and user_id = $2`, p.OrgID, userID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `delete from oauth_states where org_id = $1 and user_id = $2`, p.OrgID, userID); err != nil {
			return err
		}
		return appendAudit(ctx, tx, app.AuditEntry{OrgID: p.OrgID, ActorID: p.UserID, Action: app.AuditMemberRemove,
			Outcome: app.OutcomeSuccess, Detail: "removed " + m.Email})
	})
	if err != nil {
		return app.Member{}, err
	}
	return m, nil
}

// teamChange runs fn as p in p's org after taking the org's row lock and
// checking, under it, that p is still an admin of the org (EForbidden
// otherwise). Domain errors from fn come back unchanged; others are
// wrapped.
func (d *DB) teamChange(ctx context.Context, p app.Principal, fn func(pgx.Tx) error) error {
	err := d.InOrg(ctx, p.OrgID, p.UserID, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `select 1 from orgs where id = $1 for update`, p.OrgID); err != nil {
			return err
		}
		var role string
		err := tx.QueryRow(ctx, `select role from org_members where org_id = $1 and user_id = $2`, p.OrgID, p.UserID).Scan(&role)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && app.Role(role) != app.RoleAdmin) {
			return errOnlyAdmins()
		}
		if err != nil {
			return err
		}
		return fn(tx)
	})
	if err != nil && !errors.As(err, new(*app.Error)) {
		return fmt.Errorf("db: team change: %w", err)
	}
	return err
}

// lockedMember reads a member of the org (the org's lock is held).
func lockedMember(ctx context.Context, tx pgx.Tx, orgID, userID string) (app.Member, error) {
	var m app.Member
	var role string
	err := tx.QueryRow(ctx, `
		select m.user_id::text, u.email, m.role, m.created_at
		from org_members m join users u on u.id = m.user_id
		where m.org_id = $1 and m.user_id = $2`, orgID, userID).Scan(&m.UserID, &m.Email, &role, &m.Joined)
	if errors.Is(err, pgx.ErrNoRows) {
		return app.Member{}, errNoMember()
	}
	m.Role = app.Role(role)
	return m, err
}

// keepAnAdmin returns ELastAdmin unless the org has another admin besides
// the one about to be demoted or removed (the org's lock is held, so the
// count cannot change before the caller's write commits).
func keepAnAdmin(ctx context.Context, tx pgx.Tx, orgID string) error {
	var admins int
	if err := tx.QueryRow(ctx, `select count(*) from org_members where org_id = $1 and role = 'admin'`, orgID).Scan(&admins); err != nil {
		return err
	}
	if admins <= 1 {
		return app.Errorf(app.ELastAdmin, "An organization needs at least one admin: make someone else an admin first.")
	}
	return nil
}

// JoinByInvite uses the invitation whose token hashes to tokenHash: in one
// transaction it deletes the invitation (so it works once), creates the
// user with passwordHash, or takes over the row of a former member who now
// belongs to no org (new password, sessions ended), adds the membership
// with the invitation's role, and audits it. It returns ENotFound for an
// unknown, used, revoked or expired invitation and EEmailTaken when the
// address belongs to a member of any org (the invitation is then kept).
func (d *DB) JoinByInvite(ctx context.Context, tokenHash, passwordHash string) (orgID, userID string, err error) {
	err = d.AsService(ctx, func(tx pgx.Tx) error {
		var email, role string
		err := tx.QueryRow(ctx, `delete from invites where token_hash = $1 and expires_at > now()
			returning org_id::text, email, role`, tokenHash).Scan(&orgID, &email, &role)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNoInvite()
		}
		if err != nil {
			return err
		}
		var member bool
		err = tx.QueryRow(ctx, `select u.id::text, exists (select 1 from org_members m where m.user_id = u.id)
			from users u where lower(u.email) = lower($1) for update`, email).Scan(&userID, &member)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			err = tx.QueryRow(ctx, `insert into users (email, password_hash) values ($1, $2) returning id::text`,
				email, passwordHash).Scan(&userID)
			if isUniqueViolation(err, "users_email_lower_key") {
				return errEmailTaken()
			}
		case err != nil:
		case member:
			return errEmailTaken()
		default:
			_, err = tx.Exec(ctx, `update users set password_hash = $2 where id = $1`, userID, passwordHash)
			if err == nil {
				err = bumpSessionVersion(ctx, tx, userID)
			}
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `insert into org_members (org_id, user_id, role) values ($1, $2, $3)`, orgID, userID, role); err != nil {
			return err
		}
		return appendAudit(ctx, tx, app.AuditEntry{OrgID: orgID, ActorID: userID, Action: app.AuditInviteAccept,
			Outcome: app.OutcomeSuccess, Detail: fmt.Sprintf("%s joined as %s", email, role)})
	})
	if err != nil && !errors.As(err, new(*app.Error)) {
		return "", "", fmt.Errorf("db: join by invite: %w", err)
	}
	if err != nil {
		return "", "", err
	}
	return orgID, userID, nil
}

// InviteByToken returns the pending invitation whose token hashes to
// tokenHash and the org's name, without using it; ENotFound when there is
// none (or it expired).
func (d *DB) InviteByToken(ctx context.Context, tokenHash string) (app.Invite, string, error) {
	var in app.Invite
	var orgName string
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		var role string
		err := tx.QueryRow(ctx, `
			select i.id::text, i.org_id::text, i.email, i.role, coalesce(i.invited_by::text, ''), i.created_at, i.expires_at, o.name
			from invites i join orgs o on o.id = i.org_id
			where i.token_hash = $1 and i.expires_at > now()`, tokenHash).
			Scan(&in.ID, &in.OrgID, &in.Email, &role, &in.InvitedBy, &in.CreatedAt, &in.ExpiresAt, &orgName)
		in.Role = app.Role(role)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return app.Invite{}, "", errNoInvite()
	}
	if err != nil {
		return app.Invite{}, "", fmt.Errorf("db: invite by token: %w", err)
	}
	return in, orgName, nil
}

// EmailHasAccount reports whether a user with that address (in any letter
// case) is a member of any org: such an address can be neither invited nor
// signed up again.
func (d *DB) EmailHasAccount(ctx context.Context, email string) (bool, error) {
	var has bool
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `select exists (select 1 from users u join org_members m on m.user_id = u.id
			where lower(u.email) = lower($1))`, email).Scan(&has)
	})
	if err != nil {
		return false, fmt.Errorf("db: email has account: %w", err)
	}
	return has, nil
}

func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}

func errNoInvite() error {
	return app.Errorf(app.ENotFound, "This invitation is not valid: it was used, revoked or has expired. Ask an admin for a new one.")
}

func errNoMember() error { return app.Errorf(app.ENotFound, "No such member of this organization.") }

func errOnlyAdmins() error {
	return app.Errorf(app.EForbidden, "Only an admin can change the team.")
}

func errEmailTaken() error {
	return &app.Error{Code: app.EEmailTaken, Message: "An account with this email address already exists.",
		Fields: map[string]string{"email": "An account with this email address already exists."}}
}
