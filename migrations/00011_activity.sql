-- What the activity page shows besides the audit log: each recorded Vapi
-- delivery's assistant and outcome, how many copies of it came again, and
-- the refused deliveries of the org's assistants counted per hour (counts,
-- never the requests, so a sender without the secret cannot fill the log).

-- +goose Up
ALTER TABLE call_events
  ADD COLUMN assistant_id text,
  ADD COLUMN outcome      text NOT NULL DEFAULT 'handled'
    CHECK (outcome IN ('handled', 'tools_succeeded', 'tools_failed')),
  ADD COLUMN duplicates   integer NOT NULL DEFAULT 0 CHECK (duplicates >= 0);

-- The audit page reads newest first with (created_at, id) as its cursor.
CREATE INDEX audit_log_org_id_created_at_id_idx ON audit_log (org_id, created_at DESC, id DESC);

-- One counter per org, assistant, refusal reason and hour, added to by
-- each instance's periodic flush.
CREATE TABLE webhook_refusals (
  org_id       uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  assistant_id text NOT NULL,
  reason       text NOT NULL CHECK (reason IN ('invalid_signature', 'stale_timestamp')),
  hour         timestamptz NOT NULL,
  count        bigint NOT NULL CHECK (count > 0),
  PRIMARY KEY (org_id, assistant_id, reason, hour)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_refusals TO authenticated, service_role;

ALTER TABLE webhook_refusals ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_refusals FORCE ROW LEVEL SECURITY;
CREATE POLICY webhook_refusals_select ON webhook_refusals FOR SELECT TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY webhook_refusals_insert ON webhook_refusals FOR INSERT TO authenticated
  WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY webhook_refusals_update ON webhook_refusals FOR UPDATE TO authenticated
  USING (org_id = (SELECT auth.org_id())) WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY webhook_refusals_delete ON webhook_refusals FOR DELETE TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY webhook_refusals_service ON webhook_refusals FOR ALL TO service_role USING (true) WITH CHECK (true);

-- +goose Down
DROP TABLE IF EXISTS webhook_refusals;
DROP INDEX IF EXISTS audit_log_org_id_created_at_id_idx;
ALTER TABLE call_events
  DROP COLUMN IF EXISTS duplicates,
  DROP COLUMN IF EXISTS outcome,
  DROP COLUMN IF EXISTS assistant_id;
