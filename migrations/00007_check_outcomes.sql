-- What the last checks of an org's credentials found, kept apart:
-- last_verified_at is the last check the provider passed (it used to be the
-- last attempt, passed or not), last_checked_at the last attempt of either
-- outcome. limited and warning say that the provider accepted the
-- credentials with a narrower scope than full access (a sending-only Resend
-- key, an ElevenLabs key without User: Read), and what that means in plain
-- words, so the dashboard keeps showing it after a reload.

-- +goose Up
ALTER TABLE org_credentials
  ADD COLUMN last_checked_at timestamptz,
  ADD COLUMN limited boolean NOT NULL DEFAULT false,
  ADD COLUMN warning text CHECK (warning IS NULL OR length(warning) <= 1000);

-- Until now last_verified_at was the last attempt: it becomes
-- last_checked_at, and stays the last success only where that attempt
-- passed.
UPDATE org_credentials SET last_checked_at = last_verified_at;
UPDATE org_credentials SET last_verified_at = NULL WHERE verification_error IS NOT NULL;

-- +goose Down
UPDATE org_credentials SET last_verified_at = coalesce(last_checked_at, last_verified_at);
ALTER TABLE org_credentials
  DROP COLUMN warning,
  DROP COLUMN limited,
  DROP COLUMN last_checked_at;
