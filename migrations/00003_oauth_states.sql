-- Pending OAuth authorizations (the Google Calendar connect flow). A row
-- lives from "Connect" until the browser returns to the callback, at most
-- ten minutes, and is deleted when it is used: the DELETE ... RETURNING that
-- reads it is what makes a state single-use, even across instances.
--
-- Nothing here is usable on its own: state_hash and session_binding are
-- SHA-256 digests of what the browser holds, and code_verifier is the PKCE
-- verifier sealed by the keyring, bound to (oauth_states, org_id, the state).

-- +goose Up
CREATE TABLE oauth_states (
  state_hash      text PRIMARY KEY CHECK (state_hash ~ '^[0-9a-f]{64}$'),
  org_id          uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  session_binding text NOT NULL,
  code_verifier   bytea NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz NOT NULL
);
-- Cleanup of expired rows runs per org.
CREATE INDEX oauth_states_org_id_expires_at_idx ON oauth_states (org_id, expires_at);
CREATE INDEX oauth_states_user_id_idx ON oauth_states (user_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON oauth_states TO authenticated, service_role;

ALTER TABLE oauth_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE oauth_states FORCE ROW LEVEL SECURITY;

CREATE POLICY oauth_states_select ON oauth_states FOR SELECT TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY oauth_states_insert ON oauth_states FOR INSERT TO authenticated
  WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY oauth_states_update ON oauth_states FOR UPDATE TO authenticated
  USING (org_id = (SELECT auth.org_id())) WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY oauth_states_delete ON oauth_states FOR DELETE TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY oauth_states_service ON oauth_states FOR ALL TO service_role USING (true) WITH CHECK (true);

-- +goose Down
DROP TABLE IF EXISTS oauth_states;
