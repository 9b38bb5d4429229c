package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"byoc/app"
)

// CredentialKeys lists every stored credential row of every org (as
// service_role), ordered by org and provider: the input of the key-rotation
// pass. It never returns nil.
func (d *DB) CredentialKeys(ctx context.Context) ([]app.CredentialRecord, error) {
	out := []app.CredentialRecord{}
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `select `+credentialColumns+` from org_credentials order by org_id, provider`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.CredentialRecord, error) { return scanCredential(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("db: list credentials for rotation: %w", err)
	}
	return out, nil
}

// ReplaceCiphertext swaps the org's ciphertext for provider from old to new,
// only if the row still holds old (a concurrent save wins), and reports
// whether it did. The row's verification state and timestamps stay as they
// are: only the encryption changed, not what it decrypts to, so no cache
// needs to hear of it and nothing is announced (a rotation of every row
// never cools every instance's caches).
func (d *DB) ReplaceCiphertext(ctx context.Context, orgID string, p app.Provider, old, new []byte) (bool, error) {
	var n int64
	err := d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `update org_credentials set encrypted_config = $4
			where org_id = $1 and provider = $2 and encrypted_config = $3`, orgID, string(p), old, new)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("db: replace ciphertext: %w", err)
	}
	return n > 0, nil
}
