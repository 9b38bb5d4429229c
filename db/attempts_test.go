package db_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"byoc/db/dbtest"
)

// The attempt counts are not tenant data: only the service role reaches
// them, a signed-in org's transaction cannot read or change them.
func TestAttemptCountsOnlyForTheServiceRole(t *testing.T) {
	d := dbtest.DB(t)
	ctx := t.Context()
	s := rlsSeedOrgs(t, ctx, d)
	for _, sql := range []string{`select count(*) from attempt_counts`, `delete from attempt_counts`} {
		err := d.InOrg(ctx, s.orgA, s.userA, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, sql)
			return err
		})
		rlsWantDenied(t, err, rlsByPrivilege)
	}
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `select count(*) from attempt_counts`)
		return err
	})
	if err != nil {
		t.Fatalf("service role: %v", err)
	}
}
