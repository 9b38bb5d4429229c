-- Whether an org's Vapi webhooks must carry an HMAC signature of their body
-- and time: with it set, the static X-Vapi-Secret and Authorization: Bearer
-- credentials, which bind neither and can be replayed for ever, are refused.
-- It lives on the org's Vapi row, beside the sealed config rather than in
-- it, so changing it needs no decryption. The credential service sets it
-- when it creates the row for a connection whose assistants BYOC configures
-- to sign with HMAC (integrations.Service.Save); a save over an existing row
-- keeps it, so rows stored before this migration keep today's behaviour
-- (false) until an admin turns it on.

-- +goose Up
ALTER TABLE org_credentials ADD COLUMN webhook_hmac_only boolean NOT NULL DEFAULT false
  CONSTRAINT org_credentials_webhook_hmac_only_vapi CHECK (provider = 'vapi' OR NOT webhook_hmac_only);

-- +goose Down
ALTER TABLE org_credentials DROP COLUMN webhook_hmac_only;
