-- Members and accounts: invitations to join an org and password reset
-- links. Both hold only a SHA-256 digest of the link's token (token_hash),
-- so the table alone opens nothing. A row is used by the DELETE ... RETURNING
-- that reads it, which makes each link single-use, even across instances.
--
-- Accepting an invitation and resetting a password happen before anyone is
-- signed in, so they run as the service role; the tenant policies below let
-- an org's admins list and revoke the org's own invitations.
--
-- Teammates: a signed-in user may now read the user rows of the members of
-- the org they act for (the team page lists their e-mails), never the
-- password hash, which tenants cannot select at all.

-- +goose Up
CREATE TABLE invites (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id     uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  email      text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
  role       text NOT NULL CHECK (role IN ('admin', 'member')),
  token_hash text NOT NULL CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  invited_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  CONSTRAINT invites_token_hash_key UNIQUE (token_hash)
);
-- One pending invitation per address and org: inviting again replaces it.
CREATE UNIQUE INDEX invites_org_id_email_key ON invites (org_id, lower(email));
CREATE INDEX invites_invited_by_idx ON invites (invited_by);

CREATE TABLE password_resets (
  token_hash text PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  org_id     uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE INDEX password_resets_user_id_idx ON password_resets (user_id);
CREATE INDEX password_resets_org_id_idx ON password_resets (org_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON invites, password_resets TO authenticated, service_role;

ALTER TABLE invites ENABLE ROW LEVEL SECURITY;
ALTER TABLE invites FORCE ROW LEVEL SECURITY;
ALTER TABLE password_resets ENABLE ROW LEVEL SECURITY;
ALTER TABLE password_resets FORCE ROW LEVEL SECURITY;

CREATE POLICY invites_select ON invites FOR SELECT TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY invites_insert ON invites FOR INSERT TO authenticated
  WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY invites_update ON invites FOR UPDATE TO authenticated
  USING (org_id = (SELECT auth.org_id())) WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY invites_delete ON invites FOR DELETE TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY invites_service ON invites FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY password_resets_select ON password_resets FOR SELECT TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY password_resets_insert ON password_resets FOR INSERT TO authenticated
  WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY password_resets_update ON password_resets FOR UPDATE TO authenticated
  USING (org_id = (SELECT auth.org_id())) WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY password_resets_delete ON password_resets FOR DELETE TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY password_resets_service ON password_resets FOR ALL TO service_role USING (true) WITH CHECK (true);

-- Tenants read users column by column: never password_hash.
REVOKE SELECT ON users FROM authenticated;
GRANT SELECT (id, email, session_version, created_at) ON users TO authenticated;

CREATE POLICY users_select_teammates ON users FOR SELECT TO authenticated
  USING (id IN (SELECT m.user_id FROM org_members m WHERE m.org_id = (SELECT auth.org_id())));

-- +goose Down
DROP POLICY IF EXISTS users_select_teammates ON users;
REVOKE SELECT (id, email, session_version, created_at) ON users FROM authenticated;
GRANT SELECT ON users TO authenticated;
DROP TABLE IF EXISTS password_resets;
DROP TABLE IF EXISTS invites;
