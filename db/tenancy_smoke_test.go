package db_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"byoc/db"
	"byoc/db/dbtest"
)

func TestTenantTransactionSetsRoleAndClaims(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org := "0b7c4a0e-8a55-4a57-9a8f-3a1b6f1e2d3c"
	var role, gotOrg string
	err := d.InOrg(ctx, org, "", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `select current_user, auth.org_id()::text`).Scan(&role, &gotOrg)
	})
	if err != nil {
		t.Fatal(err)
	}
	if role != db.RoleAuthenticated || gotOrg != org {
		t.Fatalf("in tenant tx: role %q org %q, want %q %q", role, gotOrg, db.RoleAuthenticated, org)
	}
	if err := d.InOrg(ctx, "not-a-uuid", "", func(pgx.Tx) error { return nil }); err != db.ErrNoOrg {
		t.Fatalf("InOrg with a bad org id: got %v, want ErrNoOrg", err)
	}
}
