package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/app"
)

// Queries of the org_credentials aggregate. Every method runs in a tenant
// transaction of the org it is given, filters by that org in SQL as well, and
// every write publishes a cache invalidation (see notify.go) in the same
// transaction, so other instances hear of it exactly when it commits.

const credentialColumns = `org_id::text, provider, encrypted_config, is_active, last_verified_at,
	coalesce(verification_error, ''), coalesce(verification_code, ''), webhook_hmac_only, created_at, updated_at,
	last_checked_at, limited, coalesce(warning, ''), webhook_secret_revealed_at`

// upsertCredential stores rec; rec.WebhookHMACOnly only applies to a new
// row (a stored row keeps its setting). A stored row keeps its
// webhook_secret_revealed_at unless newSecret says the save changed the
// webhook secret, which then has not been shown yet.
func upsertCredential(ctx context.Context, tx pgx.Tx, rec app.CredentialRecord, newSecret bool) (app.CredentialRecord, error) {
	row := tx.QueryRow(ctx, `
		insert into org_credentials (org_id, provider, encrypted_config, is_active, last_verified_at,
			verification_error, verification_code, webhook_hmac_only, last_checked_at, limited, warning)
		values ($1, $2, $3, true, $4, nullif($5, ''), nullif($6, ''), $7, $4, $8, nullif($9, ''))
		on conflict (org_id, provider) do update set
			encrypted_config   = excluded.encrypted_config,
			is_active          = true,
			last_verified_at   = excluded.last_verified_at,
			last_checked_at    = excluded.last_checked_at,
			verification_error = excluded.verification_error,
			verification_code  = excluded.verification_code,
			limited            = excluded.limited,
			warning            = excluded.warning,
			webhook_secret_revealed_at = case when $10 then null else org_credentials.webhook_secret_revealed_at end,
			updated_at         = now()
		returning `+credentialColumns,
		rec.OrgID, string(rec.Provider), rec.Ciphertext, rec.LastVerifiedAt, rec.VerificationError, rec.VerificationCode,
		rec.WebhookHMACOnly, rec.Limited, rec.Warning, newSecret)
	return scanCredential(row)
}

// GetCredential returns the org's stored row for provider p. It returns
// ENotConfigured when there is none.
func (d *DB) GetCredential(ctx context.Context, orgID string, p app.Provider) (app.CredentialRecord, error) {
	var out app.CredentialRecord
	err := d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error {
		var err error
		out, err = getCredential(ctx, tx, orgID, p)
		return err
	})
	if err != nil {
		return app.CredentialRecord{}, wrapCredentialErr("get", p, err)
	}
	return out, nil
}

func getCredential(ctx context.Context, tx pgx.Tx, orgID string, p app.Provider) (app.CredentialRecord, error) {
	row := tx.QueryRow(ctx, `select `+credentialColumns+`
		from org_credentials where org_id = $1 and provider = $2`, orgID, string(p))
	rec, err := scanCredential(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return app.CredentialRecord{}, notConfigured(p)
	}
	return rec, err
}

// ListCredentials returns every stored row of the org, ordered by provider
// name; an org with nothing stored gets an empty slice and no error.
func (d *DB) ListCredentials(ctx context.Context, orgID string) ([]app.CredentialRecord, error) {
	var out []app.CredentialRecord
	err := d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error {
		var err error
		out, err = listCredentials(ctx, tx, orgID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("db: list credentials: %w", err)
	}
	return out, nil
}

func listCredentials(ctx context.Context, tx pgx.Tx, orgID string) ([]app.CredentialRecord, error) {
	rows, err := tx.Query(ctx, `select `+credentialColumns+`
		from org_credentials where org_id = $1 order by provider`, orgID)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.CredentialRecord, error) {
		return scanCredential(r)
	})
	if out == nil {
		out = []app.CredentialRecord{}
	}
	return out, err
}

func deleteCredential(ctx context.Context, tx pgx.Tx, orgID string, p app.Provider) (bool, error) {
	tag, err := tx.Exec(ctx, `delete from org_credentials where org_id = $1 and provider = $2`, orgID, string(p))
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() > 0, nil
}

// RecordVerification records a check of the org's credentials for provider
// p with full access when it passed: RecordCheck without a scope.
func (d *DB) RecordVerification(ctx context.Context, orgID string, p app.Provider, at time.Time, verificationError, code string) (app.CredentialRecord, error) {
	rec, _, err := d.RecordCheck(ctx, orgID, p, app.CheckOutcome{At: at, Error: verificationError, Code: code})
	return rec, err
}

// RecordCheck stores the outcome of checking the org's credentials for
// provider p with the provider: when it ran (last_checked_at, and
// last_verified_at when it passed), the user-facing reason it failed and
// that reason's code ("" and "" when it passed) and, when it passed,
// whether the credentials are limited and what that means (a failed check
// keeps both), and returns the row as it now is. broke is true when this
// check failed and the outcome recorded before it had not: the connection
// was working and is failing now. It is decided under the row's lock, so
// of any number of concurrent failed checks (on any instance) exactly one
// breaks a working connection, and none breaks it again until a check has
// passed or new credentials were saved. A break queues, in the same
// transaction, a notice to each of the org's admins (table mail_queue, due
// at o.At) for the platform's mail sender to deliver. The ciphertext and
// updated_at are left alone, so the notification it publishes is for
// app.StatusScope. It returns ENotConfigured when nothing is stored for p.
// The audit entries (each of orgID) are appended in the same transaction:
// one the log refuses records nothing.
func (d *DB) RecordCheck(ctx context.Context, orgID string, p app.Provider, o app.CheckOutcome,
	audit ...app.AuditEntry) (rec app.CredentialRecord, broke bool, err error) {
	err = d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error {
		// The subquery locks the row and reads the outcome recorded before
		// this one; a concurrent check waits for the lock and then reads
		// what this one wrote.
		row := tx.QueryRow(ctx, `
			update org_credentials set
				last_checked_at    = $3,
				last_verified_at   = case when $4 = '' then $3 else last_verified_at end,
				verification_error = nullif($4, ''),
				verification_code  = nullif($5, ''),
				limited            = case when $4 = '' then $6 else limited end,
				warning            = case when $4 = '' then nullif($7, '') else warning end
			from (
				select id as locked_id, verification_error is null as was_working
				from org_credentials where org_id = $1 and provider = $2
				for update
			) prev
			where id = prev.locked_id and ($8::timestamptz is null or org_credentials.updated_at = $8)
			returning `+credentialColumns+`, prev.was_working and $4 <> ''`,
			orgID, string(p), o.At, o.Error, o.Code, o.Limited, o.Warning, nullTime(o.Of))
		var err error
		rec, err = scanCredential(row, &broke)
		if errors.Is(err, pgx.ErrNoRows) {
			if !o.Of.IsZero() {
				var stored bool
				if err := tx.QueryRow(ctx, `select exists (select 1 from org_credentials where org_id = $1 and provider = $2)`,
					orgID, string(p)).Scan(&stored); err != nil {
					return err
				}
				if stored {
					return errChangedWhileChecked(p)
				}
			}
			return notConfigured(p)
		}
		if err != nil {
			return err
		}
		if broke {
			// The admins' notices are queued with the break that decides
			// them: both are written, or neither.
			if err := queueBreakNotice(ctx, tx, orgID, p, o.Error, o.At); err != nil {
				return err
			}
		}
		if err := appendAudits(ctx, tx, orgID, audit); err != nil {
			return err
		}
		// Only the status changed: the caches of the credentials' content
		// stay warm.
		return notifyCache(ctx, tx, orgID, string(app.StatusScope))
	})
	if err != nil {
		return app.CredentialRecord{}, false, wrapCredentialErr("record verification of", p, err)
	}
	return rec, broke, nil
}

// errChangedWhileChecked refuses the outcome of a check of p's credentials
// that were replaced while the check ran.
func errChangedWhileChecked(p app.Provider) error {
	return app.Errorf(app.EConflict, "The %s credentials changed while they were being checked; nothing was recorded. Test the connection again.", p.Title())
}

// nullTime is t, or SQL null for the zero time.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// SetWebhookHMACOnly sets whether the org's Vapi webhooks must be
// HMAC-signed (CredentialRecord.WebhookHMACOnly) and returns the row as it
// now is. The ciphertext and updated_at are left alone; the notification
// it publishes is for Vapi, whose caches hold the setting. The audit
// entries (each of orgID) are appended in the same transaction: one the
// log refuses changes nothing. It returns ENotConfigured when no Vapi
// credentials are stored.
func (d *DB) SetWebhookHMACOnly(ctx context.Context, orgID string, on bool, audit ...app.AuditEntry) (app.CredentialRecord, error) {
	return d.updateVapiRow(ctx, orgID, "set the webhook signing of", string(app.Vapi), vapiNotConfigured, audit, `
		update org_credentials set webhook_hmac_only = $2
		where org_id = $1 and provider = 'vapi'`, orgID, on)
}

// ReplaceVapiWebhookSecret stores ciphertext, the org's Vapi config with a
// rotated webhook secret, in place of the stored one, marks the new secret
// as shown (the rotation answers it) and returns the row as it now is. The
// row's verification state, HMAC-only setting and mappings are left alone;
// the notification it publishes is for Vapi, whose caches hold the secret.
// The audit entries (each of orgID) are appended in the same transaction:
// one the log refuses stores nothing. It returns ENotConfigured when no
// active Vapi credentials are stored.
func (d *DB) ReplaceVapiWebhookSecret(ctx context.Context, orgID string, ciphertext []byte,
	audit ...app.AuditEntry) (app.CredentialRecord, error) {
	return d.updateVapiRow(ctx, orgID, "rotate the webhook secret of", string(app.Vapi), vapiNotConfigured, audit, `
		update org_credentials set encrypted_config = $2, webhook_secret_revealed_at = now(), updated_at = now()
		where org_id = $1 and provider = 'vapi' and is_active`, orgID, ciphertext)
}

// ClaimWebhookSecretReveal marks the org's current Vapi webhook secret as
// shown and returns the row it was read from, in one statement, so that of
// any number of concurrent claims on any instance exactly one succeeds. It
// returns ENotConfigured when no active Vapi credentials are stored and
// EConflict when the current secret was already shown. Only the status
// changes (its notification is app.StatusScope): the cached secrets stay.
// The audit entries (each of orgID) are appended in the claim's
// transaction: one the log refuses claims nothing.
func (d *DB) ClaimWebhookSecretReveal(ctx context.Context, orgID string, audit ...app.AuditEntry) (app.CredentialRecord, error) {
	alreadyShown := func(tx pgx.Tx) error {
		if rec, err := getCredential(ctx, tx, orgID, app.Vapi); err != nil || !rec.IsActive {
			return notConfigured(app.Vapi)
		}
		return app.Errorf(app.EConflict, "The webhook secret was already shown once. Rotate it to get a new one.")
	}
	return d.updateVapiRow(ctx, orgID, "reveal the webhook secret of", string(app.StatusScope), alreadyShown, audit, `
		update org_credentials set webhook_secret_revealed_at = now()
		where org_id = $1 and provider = 'vapi' and is_active and webhook_secret_revealed_at is null`, orgID)
}

// updateVapiRow runs update, an UPDATE of the org's Vapi row, in a
// transaction of the org that also appends the audit entries and announces
// a change of scope, and returns the row as it now is. When update changes
// no row, none (run in the same transaction) says why.
func (d *DB) updateVapiRow(ctx context.Context, orgID, op, scope string, none func(pgx.Tx) error,
	audit []app.AuditEntry, update string, args ...any) (app.CredentialRecord, error) {
	var out app.CredentialRecord
	err := d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error {
		var err error
		out, err = scanCredential(tx.QueryRow(ctx, update+`
		returning `+credentialColumns, args...))
		if errors.Is(err, pgx.ErrNoRows) {
			return none(tx)
		}
		if err != nil {
			return err
		}
		if err := appendAudits(ctx, tx, orgID, audit); err != nil {
			return err
		}
		return notifyCache(ctx, tx, orgID, scope)
	})
	if err != nil {
		return app.CredentialRecord{}, wrapCredentialErr(op, app.Vapi, err)
	}
	return out, nil
}

// vapiNotConfigured is updateVapiRow's answer when there is no Vapi row
// to update.
func vapiNotConfigured(pgx.Tx) error { return notConfigured(app.Vapi) }

// scanCredential reads the credentialColumns of row, then into extra the
// columns that follow them.
func scanCredential(row pgx.Row, extra ...any) (app.CredentialRecord, error) {
	var rec app.CredentialRecord
	var provider string
	err := row.Scan(append([]any{&rec.OrgID, &provider, &rec.Ciphertext, &rec.IsActive, &rec.LastVerifiedAt,
		&rec.VerificationError, &rec.VerificationCode, &rec.WebhookHMACOnly, &rec.CreatedAt, &rec.UpdatedAt,
		&rec.LastCheckedAt, &rec.Limited, &rec.Warning, &rec.WebhookSecretRevealedAt}, extra...)...)
	rec.Provider = app.Provider(provider)
	return rec, err
}

func notConfigured(p app.Provider) error {
	return app.Errorf(app.ENotConfigured, "No %s credentials are stored for this organization.", p.Title())
}

// wrapCredentialErr passes domain errors through unchanged and adds context
// to everything else.
func wrapCredentialErr(op string, p app.Provider, err error) error {
	var e *app.Error
	if errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("db: %s %s credentials: %w", op, p, err)
}
