-- The platform's own e-mail waiting to be delivered, so that a notice is
-- never lost to a failed send or a stopped process. A row is written in the
-- transaction that decides to send it (a connection's break notice: with the
-- check that recorded the break), one per recipient, and holds what renders
-- the message (the org, the provider, the reason in words, the recipient),
-- never a credential.
--
-- A sender claims due rows (status 'pending', next_attempt_at passed) with
-- FOR UPDATE SKIP LOCKED, moving next_attempt_at past its send's time limit
-- and counting the attempt in the same statement, so two instances never
-- send one row at once. A send that succeeds marks the row 'sent'; one that
-- fails and may succeed later moves next_attempt_at ahead (exponential
-- backoff with jitter); a refusal, or giving up after a bounded time, marks
-- it 'failed' with why (last_error, in BYOC's words). Settled rows are kept
-- for a while (to be read when a notice is asked about) and then deleted.

-- +goose Up
CREATE TABLE mail_queue (
  id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id          uuid        NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  kind            text        NOT NULL CHECK (kind IN ('connection_broke')),
  provider        text        NOT NULL CHECK (provider ~ '^[a-z_]{1,40}$'),
  reason          text        NOT NULL CHECK (length(reason) <= 2000),
  recipient       text        NOT NULL CHECK (length(recipient) BETWEEN 3 AND 320),
  status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
  attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  created_at      timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz,
  last_error      text
);
-- The senders read the due pending rows, oldest due first.
CREATE INDEX mail_queue_due_idx ON mail_queue (next_attempt_at) WHERE status = 'pending';
CREATE INDEX mail_queue_org_id_idx ON mail_queue (org_id);
-- Settled notices are deleted once they are old enough.
CREATE INDEX mail_queue_finished_idx ON mail_queue (finished_at) WHERE status <> 'pending';

-- Tenants queue their own org's notices and may read them; like the audit
-- log, they never change or remove one. The senders work as the service role.
GRANT SELECT, INSERT ON mail_queue TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON mail_queue TO service_role;

ALTER TABLE mail_queue ENABLE ROW LEVEL SECURITY;
ALTER TABLE mail_queue FORCE ROW LEVEL SECURITY;
CREATE POLICY mail_queue_select ON mail_queue FOR SELECT TO authenticated
  USING (org_id = (SELECT auth.org_id()));
CREATE POLICY mail_queue_insert ON mail_queue FOR INSERT TO authenticated
  WITH CHECK (org_id = (SELECT auth.org_id()));
CREATE POLICY mail_queue_service ON mail_queue FOR ALL TO service_role USING (true) WITH CHECK (true);

-- +goose Down
DROP TABLE IF EXISTS mail_queue;
