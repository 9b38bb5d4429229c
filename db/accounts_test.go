package db_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"byoc/app"
	"byoc/db/dbtest"
)

// uniqueEmail returns an email no other test uses, with mixed letter case.
func uniqueEmail(t *testing.T) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "User." + hex.EncodeToString(b[:]) + "@Example.COM"
}

func TestCreateOrgWithAdminAndFind(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	email := uniqueEmail(t)

	orgID, userID, err := d.CreateOrgWithAdmin(ctx, "Acme Dental", strings.ToLower(email), "hash-1")
	if err != nil {
		t.Fatal(err)
	}
	if orgID == "" || userID == "" {
		t.Fatalf("CreateOrgWithAdmin returned empty ids: org %q user %q", orgID, userID)
	}

	for _, lookup := range []string{email, strings.ToLower(email), strings.ToUpper(email)} {
		t.Run("find "+lookup, func(t *testing.T) {
			p, orgName, hash, version, err := d.FindUserByEmail(ctx, lookup)
			if err != nil {
				t.Fatal(err)
			}
			want := app.Principal{UserID: userID, OrgID: orgID, Email: strings.ToLower(email), Role: app.RoleAdmin}
			if p != want || orgName != "Acme Dental" || hash != "hash-1" || version != 1 {
				t.Fatalf("got %+v %q %q %d, want %+v %q %q 1", p, orgName, hash, version, want, "Acme Dental", "hash-1")
			}
		})
	}

	gotEmail, orgName, role, version, err := d.LoadSession(ctx, userID, orgID)
	if err != nil {
		t.Fatal(err)
	}
	if gotEmail != strings.ToLower(email) || orgName != "Acme Dental" || role != app.RoleAdmin || version != 1 {
		t.Fatalf("LoadSession: got %q %q %q %d", gotEmail, orgName, role, version)
	}
}

func TestCreateOrgWithAdminDuplicateEmail(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	email := uniqueEmail(t)
	if _, _, err := d.CreateOrgWithAdmin(ctx, "First", strings.ToLower(email), "h"); err != nil {
		t.Fatal(err)
	}
	var before int
	if err := d.Pool.QueryRow(ctx, `select count(*) from orgs`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	_, _, err := d.CreateOrgWithAdmin(ctx, "Second", strings.ToUpper(email), "h")
	if code := app.ErrorCode(err); code != app.EEmailTaken {
		t.Fatalf("duplicate email in another case: code %q (%v), want %q", code, err, app.EEmailTaken)
	}
	if app.ErrorFields(err)["email"] == "" {
		t.Fatalf("email_taken carries no field message for email: %v", err)
	}
	var after int
	if err := d.Pool.QueryRow(ctx, `select count(*) from orgs`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("the failed signup left an org behind: %d orgs before, %d after", before, after)
	}
}

func TestFindUserByEmailPicksFirstOrg(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	email := strings.ToLower(uniqueEmail(t))
	firstOrg, userID, err := d.CreateOrgWithAdmin(ctx, "First", email, "h")
	if err != nil {
		t.Fatal(err)
	}
	var secondOrg string
	if err := d.Pool.QueryRow(ctx,
		`insert into orgs (name, created_at) values ('Second', now() + interval '1 minute') returning id::text`).
		Scan(&secondOrg); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Pool.Exec(ctx,
		`insert into org_members (org_id, user_id, role) values ($1, $2, 'member')`, secondOrg, userID); err != nil {
		t.Fatal(err)
	}
	p, orgName, _, _, err := d.FindUserByEmail(ctx, email)
	if err != nil {
		t.Fatal(err)
	}
	if p.OrgID != firstOrg || orgName != "First" || p.Role != app.RoleAdmin {
		t.Fatalf("got org %s %q role %q, want the first org %s", p.OrgID, orgName, p.Role, firstOrg)
	}
	_, orgName, role, _, err := d.LoadSession(ctx, userID, secondOrg)
	if err != nil {
		t.Fatal(err)
	}
	if orgName != "Second" || role != app.RoleMember {
		t.Fatalf("LoadSession in the second org: %q %q", orgName, role)
	}
}

func TestAccountsNotFound(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	orgID, userID, err := d.CreateOrgWithAdmin(ctx, "Lonely", strings.ToLower(uniqueEmail(t)), "h")
	if err != nil {
		t.Fatal(err)
	}
	otherOrg, _, err := d.CreateOrgWithAdmin(ctx, "Other", strings.ToLower(uniqueEmail(t)), "h")
	if err != nil {
		t.Fatal(err)
	}
	const missing = "00000000-0000-4000-8000-000000000000"
	tests := []struct {
		name string
		call func() error
	}{
		{"find unknown email", func() error {
			_, _, _, _, err := d.FindUserByEmail(ctx, "nobody-"+userID+"@example.com")
			return err
		}},
		{"load unknown user", func() error { _, _, _, _, err := d.LoadSession(ctx, missing, orgID); return err }},
		{"load user in an org they are not in", func() error {
			_, _, _, _, err := d.LoadSession(ctx, userID, otherOrg)
			return err
		}},
		{"load malformed ids", func() error { _, _, _, _, err := d.LoadSession(ctx, "x", "y"); return err }},
		{"bump unknown user", func() error { return d.BumpSessionVersion(ctx, missing) }},
		{"bump malformed id", func() error { return d.BumpSessionVersion(ctx, "1; drop table users") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code := app.ErrorCode(tt.call()); code != app.ENotFound {
				t.Fatalf("code %q, want %q", code, app.ENotFound)
			}
		})
	}
}

func TestBumpSessionVersion(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	orgID, userID, err := d.CreateOrgWithAdmin(ctx, "Bump", strings.ToLower(uniqueEmail(t)), "h")
	if err != nil {
		t.Fatal(err)
	}
	for want := 2; want <= 3; want++ {
		if err := d.BumpSessionVersion(ctx, userID); err != nil {
			t.Fatal(err)
		}
		_, _, _, version, err := d.LoadSession(ctx, userID, orgID)
		if err != nil {
			t.Fatal(err)
		}
		if version != want {
			t.Fatalf("after bump: version %d, want %d", version, want)
		}
	}
}
