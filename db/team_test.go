package db_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/app"
	"byoc/db"
	"byoc/db/dbtest"
)

// teamOrg creates an org with its admin and returns the admin.
func teamOrg(t *testing.T, d *db.DB) app.Principal {
	t.Helper()
	email := strings.ToLower(uniqueEmail(t))
	orgID, userID, err := d.CreateOrgWithAdmin(t.Context(), "Team Org", email, "hash")
	if err != nil {
		t.Fatal(err)
	}
	return app.Principal{UserID: userID, OrgID: orgID, OrgName: "Team Org", Email: email, Role: app.RoleAdmin}
}

// teamJoin invites a new address to admin's org with role and accepts it.
func teamJoin(t *testing.T, d *db.DB, admin app.Principal, role app.Role) app.Principal {
	t.Helper()
	email := strings.ToLower(uniqueEmail(t))
	token := app.NewLinkToken()
	if _, err := d.CreateInvite(t.Context(), admin, email, role, app.LinkTokenHash(token), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	orgID, userID, err := d.JoinByInvite(t.Context(), app.LinkTokenHash(token), "hash-joined")
	if err != nil {
		t.Fatal(err)
	}
	return app.Principal{UserID: userID, OrgID: orgID, OrgName: admin.OrgName, Email: email, Role: role}
}

func TestInviteIsSingleUseAndExpires(t *testing.T) {
	d := dbtest.DB(t)
	ctx := t.Context()
	admin := teamOrg(t, d)

	token := app.NewLinkToken()
	in, err := d.CreateInvite(ctx, admin, "new@example.com", app.RoleMember, app.LinkTokenHash(token), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got, orgName, err := d.InviteByToken(ctx, app.LinkTokenHash(token))
	if err != nil || got.ID != in.ID || orgName != "Team Org" || got.Role != app.RoleMember {
		t.Fatalf("InviteByToken: %+v %q %v", got, orgName, err)
	}
	orgID, userID, err := d.JoinByInvite(ctx, app.LinkTokenHash(token), "hash-1")
	if err != nil || orgID != admin.OrgID {
		t.Fatalf("JoinByInvite: %q %q %v", orgID, userID, err)
	}
	_, _, role, _, err := d.LoadSession(ctx, userID, orgID)
	if err != nil || role != app.RoleMember {
		t.Fatalf("the joined user: role %q, err %v", role, err)
	}
	if _, _, err := d.JoinByInvite(ctx, app.LinkTokenHash(token), "hash-2"); app.ErrorCode(err) != app.ENotFound {
		t.Fatalf("second use: %v, want not_found", err)
	}

	expired := app.NewLinkToken()
	if _, err := d.CreateInvite(ctx, admin, "late@example.com", app.RoleMember, app.LinkTokenHash(expired), time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.JoinByInvite(ctx, app.LinkTokenHash(expired), "hash"); app.ErrorCode(err) != app.ENotFound {
		t.Fatalf("expired invitation: %v, want not_found", err)
	}
	_, invites, err := d.Team(ctx, admin)
	if err != nil || len(invites) != 0 {
		t.Fatalf("pending invitations %+v, err %v; want none (used and expired ones are not pending)", invites, err)
	}
}

func TestJoinByInviteRefusesAnAddressWithAnAccount(t *testing.T) {
	d := dbtest.DB(t)
	ctx := t.Context()
	admin := teamOrg(t, d)
	other := teamOrg(t, d)

	token := app.NewLinkToken()
	if _, err := d.CreateInvite(ctx, admin, strings.ToUpper(other.Email), app.RoleMember, app.LinkTokenHash(token), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.JoinByInvite(ctx, app.LinkTokenHash(token), "hash"); app.ErrorCode(err) != app.EEmailTaken {
		t.Fatalf("JoinByInvite: %v, want email_taken", err)
	}
	if _, _, err := d.InviteByToken(ctx, app.LinkTokenHash(token)); err != nil {
		t.Fatalf("the refused invitation was used up: %v", err)
	}
	if has, err := d.EmailHasAccount(ctx, strings.ToUpper(other.Email)); err != nil || !has {
		t.Fatalf("EmailHasAccount: %v %v", has, err)
	}
}

func TestRemovedMemberCanBeInvitedAgain(t *testing.T) {
	d := dbtest.DB(t)
	ctx := t.Context()
	admin := teamOrg(t, d)
	m := teamJoin(t, d, admin, app.RoleMember)
	if _, err := d.RemoveMember(ctx, admin, m.UserID); err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, err := d.LoadSession(ctx, m.UserID, m.OrgID); app.ErrorCode(err) != app.ENotFound {
		t.Fatalf("the removed member's session: %v, want not_found", err)
	}
	if has, _ := d.EmailHasAccount(ctx, m.Email); has {
		t.Fatal("a removed member's address still counts as having an account")
	}
	token := app.NewLinkToken()
	if _, err := d.CreateInvite(ctx, admin, m.Email, app.RoleAdmin, app.LinkTokenHash(token), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, userID, err := d.JoinByInvite(ctx, app.LinkTokenHash(token), "hash-new")
	if err != nil || userID != m.UserID {
		t.Fatalf("rejoin: user %q, err %v; want the same user row %q", userID, err, m.UserID)
	}
	_, _, hash, version, err := d.FindUserByEmail(ctx, m.Email)
	if err != nil || hash != "hash-new" || version < 2 {
		t.Fatalf("rejoined: hash %q version %d err %v; want the new hash and a raised version", hash, version, err)
	}
}

func TestTeamChangesNeedAnAdminAndKeepOne(t *testing.T) {
	d := dbtest.DB(t)
	ctx := t.Context()
	admin := teamOrg(t, d)
	member := teamJoin(t, d, admin, app.RoleMember)
	outsider := teamOrg(t, d)

	t.Run("a member may not change the team", func(t *testing.T) {
		if _, err := d.SetMemberRole(ctx, member, admin.UserID, app.RoleMember); app.ErrorCode(err) != app.EForbidden {
			t.Fatalf("SetMemberRole by a member: %v", err)
		}
		if _, err := d.CreateInvite(ctx, member, "x@example.com", app.RoleAdmin, app.LinkTokenHash(app.NewLinkToken()), time.Now().Add(time.Hour)); app.ErrorCode(err) != app.EForbidden {
			t.Fatalf("CreateInvite by a member: %v", err)
		}
	})
	t.Run("another org's member is not found", func(t *testing.T) {
		if _, err := d.RemoveMember(ctx, outsider, member.UserID); app.ErrorCode(err) != app.ENotFound {
			t.Fatalf("RemoveMember across orgs: %v", err)
		}
		members, _, err := d.Team(ctx, outsider)
		if err != nil || len(members) != 1 || members[0].UserID != outsider.UserID {
			t.Fatalf("the outsider's team: %+v %v", members, err)
		}
	})
	t.Run("the last admin stays", func(t *testing.T) {
		if _, err := d.SetMemberRole(ctx, admin, admin.UserID, app.RoleMember); app.ErrorCode(err) != app.ELastAdmin {
			t.Fatalf("demoting the last admin: %v", err)
		}
		if _, err := d.RemoveMember(ctx, admin, admin.UserID); app.ErrorCode(err) != app.ELastAdmin {
			t.Fatalf("removing the last admin: %v", err)
		}
	})
	t.Run("audited", func(t *testing.T) {
		entries, err := d.AuditLog(ctx, admin.OrgID, 50)
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, e := range entries {
			actions = append(actions, e.Action)
		}
		if !strings.Contains(strings.Join(actions, ","), app.AuditInviteCreate) || !strings.Contains(strings.Join(actions, ","), app.AuditInviteAccept) {
			t.Fatalf("audit actions %v; want the invitation and the join", actions)
		}
	})
}

// TestConcurrentDemotionsLeaveAnAdmin: two admins demoting each other (and
// themselves) at the same moment, many times over, always leave one admin.
func TestConcurrentDemotionsLeaveAnAdmin(t *testing.T) {
	d := dbtest.DB(t)
	ctx := t.Context()
	for round := range 10 {
		a := teamOrg(t, d)
		b := teamJoin(t, d, a, app.RoleAdmin)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		start := make(chan struct{})
		for i, pair := range [][2]app.Principal{{a, b}, {b, a}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				target := pair[1].UserID
				if round%2 == 1 {
					target = pair[0].UserID // each demotes themself
				}
				_, errs[i] = d.SetMemberRole(ctx, pair[0], target, app.RoleMember)
			}()
		}
		close(start)
		wg.Wait()
		members, _, err := d.Team(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		admins := 0
		for _, m := range members {
			if m.Role == app.RoleAdmin {
				admins++
			}
		}
		if admins != 1 {
			t.Fatalf("round %d: %d admins left (errors %v), want 1", round, admins, errs)
		}
		codes := app.ErrorCode(errs[0]) + "," + app.ErrorCode(errs[1])
		if codes != ",forbidden" && codes != "forbidden," && codes != ",last_admin" && codes != "last_admin," {
			t.Fatalf("round %d: errors %v; want one change to pass and the other refused", round, errs)
		}
	}
}

func TestPasswordResetIsSingleUseAndEndsSessions(t *testing.T) {
	d := dbtest.DB(t)
	ctx := t.Context()
	admin := teamOrg(t, d)

	if _, err := d.CreatePasswordReset(ctx, "nobody@example.com", app.LinkTokenHash(app.NewLinkToken()), time.Now().Add(time.Hour)); app.ErrorCode(err) != app.ENotFound {
		t.Fatalf("reset for an unknown address: %v", err)
	}
	first, second := app.NewLinkToken(), app.NewLinkToken()
	for _, tok := range []string{first, second} {
		p, err := d.CreatePasswordReset(ctx, strings.ToUpper(admin.Email), app.LinkTokenHash(tok), time.Now().Add(30*time.Minute))
		if err != nil || p.UserID != admin.UserID {
			t.Fatalf("CreatePasswordReset: %+v %v", p, err)
		}
	}
	if _, err := d.PasswordResetAccount(ctx, app.LinkTokenHash(first)); app.ErrorCode(err) != app.ENotFound {
		t.Fatalf("an older link still works: %v", err)
	}
	userID, orgID, version, err := d.ResetPassword(ctx, app.LinkTokenHash(second), "hash-reset")
	if err != nil || userID != admin.UserID || orgID != admin.OrgID || version != 2 {
		t.Fatalf("ResetPassword: %q %q %d %v", userID, orgID, version, err)
	}
	if _, _, _, err := d.ResetPassword(ctx, app.LinkTokenHash(second), "hash-again"); app.ErrorCode(err) != app.ENotFound {
		t.Fatalf("second use: %v", err)
	}
	expired := app.NewLinkToken()
	if _, err := d.CreatePasswordReset(ctx, admin.Email, app.LinkTokenHash(expired), time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := d.ResetPassword(ctx, app.LinkTokenHash(expired), "hash"); app.ErrorCode(err) != app.ENotFound {
		t.Fatalf("expired link: %v", err)
	}
	_, _, hash, v, err := d.FindUserByEmail(ctx, admin.Email)
	if err != nil || hash != "hash-reset" || v != 2 {
		t.Fatalf("after reset: hash %q version %d err %v", hash, v, err)
	}
}

// TestRLSTeammates: a tenant reads the user rows of its own org's members,
// never another org's, and never a password hash.
func TestRLSTeammates(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	admin := teamOrg(t, d)
	member := teamJoin(t, d, admin, app.RoleMember)
	other := teamOrg(t, d)

	members, _, err := d.Team(ctx, admin)
	if err != nil || len(members) != 2 {
		t.Fatalf("team: %+v %v", members, err)
	}
	var seen []string
	err = d.InOrg(ctx, admin.OrgID, admin.UserID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `select id::text from users order by email`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			seen = append(seen, id)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || strings.Contains(strings.Join(seen, ","), other.UserID) ||
		!strings.Contains(strings.Join(seen, ","), member.UserID) {
		t.Fatalf("tenant sees users %v; want exactly its two members", seen)
	}
	err = d.InOrg(ctx, admin.OrgID, admin.UserID, func(tx pgx.Tx) error {
		var h string
		return tx.QueryRow(ctx, `select password_hash from users where id = $1`, admin.UserID).Scan(&h)
	})
	rlsWantDenied(t, err, rlsByPrivilege)
}
