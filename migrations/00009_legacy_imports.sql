-- What `byoc backfill-legacy` brought over from the old platform's tables,
-- per org: a provider's credentials (kind 'credentials', item the provider)
-- or an assistant mapping (kind 'assistant', item the role). A recorded item
-- is never brought over again, so a later run cannot bring back credentials
-- an admin replaced or disconnected since. The old tables themselves are not
-- BYOC's and are never created here.

-- +goose Up
CREATE TABLE legacy_imports (
  org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  kind        text NOT NULL CHECK (kind IN ('credentials', 'assistant')),
  item        text NOT NULL CHECK (item ~ '^[a-z_]{1,40}$'),
  imported_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, kind, item)
);

-- Tenants may read their own entries and, like the audit log, only append.
GRANT SELECT, INSERT ON legacy_imports TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON legacy_imports TO service_role;

ALTER TABLE legacy_imports ENABLE ROW LEVEL SECURITY;
ALTER TABLE legacy_imports FORCE ROW LEVEL SECURITY;
CREATE POLICY legacy_imports_select ON legacy_imports FOR SELECT TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY legacy_imports_insert ON legacy_imports FOR INSERT TO authenticated
  WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY legacy_imports_service ON legacy_imports FOR ALL TO service_role USING (true) WITH CHECK (true);

-- +goose Down
DROP TABLE IF EXISTS legacy_imports;
