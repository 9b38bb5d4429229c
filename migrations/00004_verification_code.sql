-- A stored verification error comes with a stable code saying what kind of
-- failure it is ("reconnect_needed": the provider no longer accepts the
-- stored authorization), so nothing has to read it out of the sentence.

-- +goose Up
ALTER TABLE org_credentials ADD COLUMN verification_code text
  CHECK (verification_code IS NULL OR verification_code ~ '^[a-z_]{1,40}$');

-- Rows written before the code existed said it in the sentence.
UPDATE org_credentials
   SET verification_code = 'reconnect_needed',
       verification_error = btrim(substr(verification_error, length('Reconnect needed:') + 1))
 WHERE verification_error LIKE 'Reconnect needed:%';

-- +goose Down
UPDATE org_credentials
   SET verification_error = 'Reconnect needed: ' || verification_error
 WHERE verification_code = 'reconnect_needed';
ALTER TABLE org_credentials DROP COLUMN verification_code;
