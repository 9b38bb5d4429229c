-- When the org's current Vapi webhook secret was last shown to an admin
-- (revealed, or answered by a rotation). A secret is shown once: the reveal
-- claims this column with a conditional update, so two reveals racing on any
-- number of instances show it at most once; a rotation sets it (its answer is
-- the new secret's one showing), and a save that changes the secret clears it.
-- Null: the current secret has not been shown yet. Vapi rows only.

-- +goose Up
ALTER TABLE org_credentials ADD COLUMN webhook_secret_revealed_at timestamptz
  CONSTRAINT org_credentials_webhook_secret_revealed_vapi CHECK (provider = 'vapi' OR webhook_secret_revealed_at IS NULL);

-- +goose Down
ALTER TABLE org_credentials DROP COLUMN webhook_secret_revealed_at;
