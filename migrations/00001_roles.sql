-- Roles as Supabase names them, and auth.org_id(): the tenant of the current
-- transaction. Written to be idempotent so it also runs on a database that
-- already has these roles and the auth schema (Supabase).

-- +goose Up
-- +goose StatementBegin
DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      -- NOLOGIN NOBYPASSRLS: reachable only through SET ROLE, and always
      -- subject to row level security. Roles belong to the whole cluster:
      -- a migration of another database running at the same moment may
      -- create the role first, which is as good.
      BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT NOBYPASSRLS', r);
      EXCEPTION WHEN unique_violation OR duplicate_object THEN
        NULL;
      END;
    END IF;
    -- The connecting role must be able to SET ROLE to each of them. A
    -- superuser can already; anyone else needs membership.
    IF NOT pg_has_role(current_user, r, 'MEMBER') THEN
      EXECUTE format('GRANT %I TO %I', r, current_user);
    END IF;
  END LOOP;
END
$$;
-- +goose StatementEnd

CREATE SCHEMA IF NOT EXISTS auth;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;

-- auth.org_id() is the org of the current transaction, read from the JWT
-- claims that the application sets transaction-locally. On a pooled
-- connection a finished transaction leaves the setting as '' (not NULL):
-- nullif turns that into "no org", so no policy ever matches.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION auth.org_id() RETURNS uuid
LANGUAGE sql STABLE
AS $$
  SELECT nullif(
    coalesce(
      nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'org_id',
      nullif(current_setting('request.jwt.claims', true), '')::jsonb -> 'app_metadata' ->> 'org_id'
    ),
    ''
  )::uuid
$$;
-- +goose StatementEnd

-- auth.user_id() is the signed-in user ("sub") of the current transaction.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION auth.user_id() RETURNS uuid
LANGUAGE sql STABLE
AS $$
  SELECT nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', '')::uuid
$$;
-- +goose StatementEnd

GRANT EXECUTE ON FUNCTION auth.org_id() TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION auth.user_id() TO anon, authenticated, service_role;

-- +goose Down
DROP FUNCTION IF EXISTS auth.user_id();
DROP FUNCTION IF EXISTS auth.org_id();
-- The roles and the auth schema are left in place: other databases in the
-- cluster (or Supabase itself) may use them.
