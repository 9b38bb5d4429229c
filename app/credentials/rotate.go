package credentials

import (
	"context"
	"errors"
	"fmt"

	"byoc/app"
	"byoc/app/keyring"
)

// RotationStore is what Rotate needs besides Store; *db.DB implements it.
type RotationStore interface {
	CredentialKeys(ctx context.Context) ([]app.CredentialRecord, error)
	ReplaceCiphertext(ctx context.Context, orgID string, p app.Provider, old, new []byte) (bool, error)
}

// RotationReport counts what a rotation pass did.
type RotationReport struct {
	// Scanned rows in all; Current already under the primary key; Rotated
	// re-encrypted now; Skipped changed by a concurrent save (which used the
	// primary key anyway); Undecryptable could not be opened with any key
	// of the ring and were left as they are.
	Scanned, Current, Rotated, Skipped, Undecryptable int
}

// String summarizes the report for the operator.
func (r RotationReport) String() string {
	return fmt.Sprintf("%d scanned: %d already current, %d re-encrypted, %d changed meanwhile, %d undecryptable",
		r.Scanned, r.Current, r.Rotated, r.Skipped, r.Undecryptable)
}

// Rotate re-encrypts, under the primary key, every stored row that is still
// sealed by a previous key. It runs online: each row is swapped only if it
// still holds the ciphertext that was read, so a concurrent save is never
// overwritten. Rows that no key can open are counted and left alone (they
// show as needing attention on their card). It returns an EInternal error
// only when the store fails.
func (s *Service) Rotate(ctx context.Context, store RotationStore) (RotationReport, error) {
	var rep RotationReport
	rows, err := store.CredentialKeys(ctx)
	if err != nil {
		return rep, app.Internal(err)
	}
	for _, rec := range rows {
		rep.Scanned++
		if !s.kr.NeedsRotation(rec.Ciphertext) {
			rep.Current++
			continue
		}
		plain, err := s.kr.Open(rec.Ciphertext, aad(rec.OrgID, rec.Provider))
		if errors.Is(err, keyring.ErrUndecryptable) {
			rep.Undecryptable++
			s.log.Warn("rotation: row cannot be decrypted", "org", rec.OrgID, "provider", rec.Provider, "reason", err.Error())
			continue
		}
		if err != nil {
			return rep, app.Internal(err)
		}
		sealed, err := s.kr.Seal(plain, aad(rec.OrgID, rec.Provider))
		clear(plain)
		if err != nil {
			return rep, app.Internal(err)
		}
		swapped, err := store.ReplaceCiphertext(ctx, rec.OrgID, rec.Provider, rec.Ciphertext, sealed)
		if err != nil {
			return rep, app.Internal(err)
		}
		if swapped {
			// The row decrypts to what it did: nothing cached is stale.
			rep.Rotated++
		} else {
			rep.Skipped++
		}
	}
	s.log.Info("key rotation finished", "scanned", rep.Scanned, "rotated", rep.Rotated,
		"current", rep.Current, "skipped", rep.Skipped, "undecryptable", rep.Undecryptable, "primary_key", s.kr.PrimaryID())
	return rep, nil
}
