-- Announce every change to what a signed-in request is checked against (a
-- user's session version and email, an org's name, a membership and its
-- role) on the cache channel, as the pseudo-provider '~accounts'
-- (app.AccountScope) of each org concerned, so every instance drops its
-- cached sign-ins of that org as soon as the change commits: a logout, a
-- removed member or a changed role takes effect on every instance, whatever
-- code path made the change. Triggers rather than calls in Go, so that no
-- write can forget to announce. pg_notify is transactional: a rolled-back
-- change announces nothing, and one transaction announces each org once.
--
-- Inserts announce nothing: a new membership cannot make a cached sign-in
-- wrong (sign-ins are cached only once found), so signups and the seed stay
-- silent. The functions run as the caller: only the service role may update
-- users, and it reads every membership, so a user's change reaches all of
-- their orgs.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION byoc_notify_account_org() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  PERFORM pg_notify('byoc_cache', json_build_object('org', OLD.org_id, 'provider', '~accounts')::text);
  IF TG_OP = 'UPDATE' AND NEW.org_id IS DISTINCT FROM OLD.org_id THEN
    PERFORM pg_notify('byoc_cache', json_build_object('org', NEW.org_id, 'provider', '~accounts')::text);
  END IF;
  RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION byoc_notify_account_user() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  PERFORM pg_notify('byoc_cache', json_build_object('org', m.org_id, 'provider', '~accounts')::text)
  FROM org_members m
  WHERE m.user_id = OLD.id;
  RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION byoc_notify_account_orgs() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  PERFORM pg_notify('byoc_cache', json_build_object('org', OLD.id, 'provider', '~accounts')::text);
  RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER org_members_notify_accounts
  AFTER UPDATE OR DELETE ON org_members
  FOR EACH ROW EXECUTE FUNCTION byoc_notify_account_org();

-- A user's row changes for a logout (session_version) or a new email; a
-- deleted user's memberships are deleted by the cascade, which the trigger
-- above announces.
CREATE TRIGGER users_notify_accounts
  AFTER UPDATE ON users
  FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION byoc_notify_account_user();

CREATE TRIGGER orgs_notify_accounts
  AFTER UPDATE OR DELETE ON orgs
  FOR EACH ROW EXECUTE FUNCTION byoc_notify_account_orgs();

-- +goose Down
DROP TRIGGER IF EXISTS orgs_notify_accounts ON orgs;
DROP TRIGGER IF EXISTS users_notify_accounts ON users;
DROP TRIGGER IF EXISTS org_members_notify_accounts ON org_members;
DROP FUNCTION IF EXISTS byoc_notify_account_orgs();
DROP FUNCTION IF EXISTS byoc_notify_account_user();
DROP FUNCTION IF EXISTS byoc_notify_account_org();
