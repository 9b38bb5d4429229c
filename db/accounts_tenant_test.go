package db_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/db"
	"byoc/db/dbtest"
)

func TestLoadSessionRunsAsTheTenant(t *testing.T) {
	// A database of its own in which the service role may read no account
	// rows at all: LoadSession still works there only because it runs as
	// the signed-in user in their org.
	dbtest.DB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u, drop, err := dbtest.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	d, err := db.Open(ctx, u, db.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	if err := d.MigrateUp(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	email := strings.ToLower(uniqueEmail(t))
	orgID, userID, err := d.CreateOrgWithAdmin(ctx, "Tenant Dental", email, "hash")
	if err != nil {
		t.Fatal(err)
	}
	otherOrg, otherUser, err := d.CreateOrgWithAdmin(ctx, "Other Dental", strings.ToLower(uniqueEmail(t)), "hash")
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"orgs", "users", "org_members"} {
		if _, err := d.Pool.Exec(ctx, `create policy test_no_service_reads on `+table+
			` as restrictive for select to service_role using (false)`); err != nil {
			t.Fatal(err)
		}
	}

	gotEmail, orgName, role, version, err := d.LoadSession(ctx, userID, orgID)
	if err != nil {
		t.Fatalf("LoadSession: %v", err)
	}
	if gotEmail != email || orgName != "Tenant Dental" || role != app.RoleAdmin || version != 1 {
		t.Errorf("LoadSession = %q %q %q %d", gotEmail, orgName, role, version)
	}
	for _, c := range []struct{ name, user, org string }{
		{"a user in an org that is not theirs", userID, otherOrg},
		{"another org's user", otherUser, orgID},
	} {
		if _, _, _, _, err := d.LoadSession(ctx, c.user, c.org); app.ErrorCode(err) != app.ENotFound {
			t.Errorf("%s: err = %v, want not found", c.name, err)
		}
	}

	// And it reads as the tenant role, not as the connecting user (who may
	// be a superuser, past every policy): with the tenant role refused every
	// membership row, the membership is not found.
	if _, err := d.Pool.Exec(ctx, `create policy test_no_tenant_reads on org_members
		as restrictive for select to authenticated using (false)`); err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, err := d.LoadSession(ctx, userID, orgID); app.ErrorCode(err) != app.ENotFound {
		t.Errorf("with the tenant role refused: err = %v, want not found", err)
	}
}
