-- When each stored connection is next re-checked with its provider by the
-- background re-verification. A scheduler claims the rows that are due by
-- moving this time an interval (plus jitter) ahead in the same statement
-- that selects them, skipping rows another instance holds, so each
-- connection is checked once per interval whatever the number of
-- instances. NULL: never claimed yet; due an interval after the last check.

-- +goose Up
ALTER TABLE org_credentials ADD COLUMN next_check_at timestamptz;
CREATE INDEX org_credentials_next_check_at_idx ON org_credentials (next_check_at NULLS FIRST);

-- +goose Down
DROP INDEX org_credentials_next_check_at_idx;
ALTER TABLE org_credentials DROP COLUMN next_check_at;
