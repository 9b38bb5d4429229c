-- Tables, grants and row level security. Every tenant table carries org_id;
-- RLS is enabled and forced on all of them, so even a forgotten WHERE clause
-- (or the table owner) sees only the current org's rows. auth.org_id() is
-- wrapped as (select auth.org_id()) so PostgreSQL evaluates it once per
-- statement, not once per row.

-- +goose Up
CREATE TABLE orgs (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email           text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
  password_hash   text NOT NULL,
  -- Bumped at logout: a session cookie carrying an older version is refused.
  session_version integer NOT NULL DEFAULT 1,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

CREATE TABLE org_members (
  org_id     uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role       text NOT NULL CHECK (role IN ('admin', 'member')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, user_id)
);
CREATE INDEX org_members_user_id_idx ON org_members (user_id);

CREATE TABLE org_credentials (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id             uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  provider           text NOT NULL CHECK (provider IN ('vapi', 'twilio', 'google_calendar', 'resend', 'elevenlabs')),
  -- Keyring ciphertext: format byte, key id, nonce, AES-256-GCM sealed JSON,
  -- bound by its additional data to (org_credentials, org_id, provider).
  encrypted_config   bytea NOT NULL,
  is_active          boolean NOT NULL DEFAULT true,
  last_verified_at   timestamptz,
  verification_error text,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT org_credentials_org_id_provider_key UNIQUE (org_id, provider)
);

CREATE TABLE assistant_org_mapping (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  vapi_assistant_id text NOT NULL,
  org_id            uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  assistant_role    text NOT NULL CHECK (assistant_role IN ('inbound', 'outbound')),
  name              text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  last_used_at      timestamptz,
  CONSTRAINT assistant_org_mapping_vapi_assistant_id_key UNIQUE (vapi_assistant_id),
  -- One inbound and one outbound assistant per org: concurrent saves cannot
  -- create a second.
  CONSTRAINT assistant_org_mapping_org_id_role_key UNIQUE (org_id, assistant_role)
);
CREATE INDEX assistant_org_mapping_org_id_idx ON assistant_org_mapping (org_id);

CREATE TABLE outbound_agent_config (
  org_id            uuid PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
  vapi_assistant_id text,
  phone_number      text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Who changed which credential when, and how it went. Never a secret.
CREATE TABLE audit_log (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  org_id        uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  actor_user_id uuid REFERENCES users (id) ON DELETE SET NULL,
  action        text NOT NULL,
  provider      text,
  outcome       text NOT NULL CHECK (outcome IN ('success', 'failure')),
  detail        text,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_org_id_created_at_idx ON audit_log (org_id, created_at DESC);

-- Vapi webhook events, once per delivery (dedup_key).
CREATE TABLE call_events (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  org_id           uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  call_id          text NOT NULL,
  event_type       text NOT NULL,
  status           text,
  ended_reason     text,
  duration_seconds double precision,
  dedup_key        text NOT NULL,
  occurred_at      timestamptz,
  received_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT call_events_org_id_dedup_key_key UNIQUE (org_id, dedup_key)
);
CREATE INDEX call_events_org_id_received_at_idx ON call_events (org_id, received_at DESC);
CREATE INDEX call_events_call_id_idx ON call_events (call_id);

GRANT USAGE ON SCHEMA public TO authenticated, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON
  orgs, users, org_members, org_credentials, assistant_org_mapping, outbound_agent_config, call_events
  TO authenticated, service_role;
-- The audit log is append-only for tenants.
GRANT SELECT, INSERT ON audit_log TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON audit_log TO service_role;

ALTER TABLE orgs ENABLE ROW LEVEL SECURITY;
ALTER TABLE orgs FORCE ROW LEVEL SECURITY;
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
ALTER TABLE org_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_members FORCE ROW LEVEL SECURITY;
ALTER TABLE org_credentials ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_credentials FORCE ROW LEVEL SECURITY;
ALTER TABLE assistant_org_mapping ENABLE ROW LEVEL SECURITY;
ALTER TABLE assistant_org_mapping FORCE ROW LEVEL SECURITY;
ALTER TABLE outbound_agent_config ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbound_agent_config FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
ALTER TABLE call_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE call_events FORCE ROW LEVEL SECURITY;

-- orgs: a tenant sees and renames only its own org; creating and deleting
-- orgs is the service role's job (signup).
CREATE POLICY orgs_select ON orgs FOR SELECT TO authenticated
  USING (id = (SELECT auth.org_id()));
CREATE POLICY orgs_update ON orgs FOR UPDATE TO authenticated
  USING (id = (SELECT auth.org_id())) WITH CHECK (id = (SELECT auth.org_id()));
CREATE POLICY orgs_service ON orgs FOR ALL TO service_role USING (true) WITH CHECK (true);

-- users: a tenant reads only the signed-in user; accounts are managed by the
-- service role.
CREATE POLICY users_select ON users FOR SELECT TO authenticated
  USING (id = (SELECT auth.user_id()));
CREATE POLICY users_service ON users FOR ALL TO service_role USING (true) WITH CHECK (true);

-- The tenant tables proper: select, insert, update, delete by org.
CREATE POLICY org_members_select ON org_members FOR SELECT TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY org_members_insert ON org_members FOR INSERT TO authenticated
  WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY org_members_update ON org_members FOR UPDATE TO authenticated
  USING (org_id = (SELECT auth.org_id())) WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY org_members_delete ON org_members FOR DELETE TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY org_members_service ON org_members FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY org_credentials_select ON org_credentials FOR SELECT TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY org_credentials_insert ON org_credentials FOR INSERT TO authenticated
  WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY org_credentials_update ON org_credentials FOR UPDATE TO authenticated
  USING (org_id = (SELECT auth.org_id())) WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY org_credentials_delete ON org_credentials FOR DELETE TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY org_credentials_service ON org_credentials FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY assistant_org_mapping_select ON assistant_org_mapping FOR SELECT TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY assistant_org_mapping_insert ON assistant_org_mapping FOR INSERT TO authenticated
  WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY assistant_org_mapping_update ON assistant_org_mapping FOR UPDATE TO authenticated
  USING (org_id = (SELECT auth.org_id())) WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY assistant_org_mapping_delete ON assistant_org_mapping FOR DELETE TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY assistant_org_mapping_service ON assistant_org_mapping FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY outbound_agent_config_select ON outbound_agent_config FOR SELECT TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY outbound_agent_config_insert ON outbound_agent_config FOR INSERT TO authenticated
  WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY outbound_agent_config_update ON outbound_agent_config FOR UPDATE TO authenticated
  USING (org_id = (SELECT auth.org_id())) WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY outbound_agent_config_delete ON outbound_agent_config FOR DELETE TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY outbound_agent_config_service ON outbound_agent_config FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY call_events_select ON call_events FOR SELECT TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY call_events_insert ON call_events FOR INSERT TO authenticated
  WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY call_events_update ON call_events FOR UPDATE TO authenticated
  USING (org_id = (SELECT auth.org_id())) WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY call_events_delete ON call_events FOR DELETE TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY call_events_service ON call_events FOR ALL TO service_role USING (true) WITH CHECK (true);

-- audit_log: tenants read and append their own entries; nothing rewrites history.
CREATE POLICY audit_log_select ON audit_log FOR SELECT TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY audit_log_insert ON audit_log FOR INSERT TO authenticated
  WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY audit_log_service ON audit_log FOR ALL TO service_role USING (true) WITH CHECK (true);

-- +goose Down
DROP TABLE IF EXISTS call_events;
DROP TABLE IF EXISTS audit_log;
DROP TABLE IF EXISTS outbound_agent_config;
DROP TABLE IF EXISTS assistant_org_mapping;
DROP TABLE IF EXISTS org_credentials;
DROP TABLE IF EXISTS org_members;
DROP TABLE IF EXISTS users;
DROP TABLE IF EXISTS orgs;
