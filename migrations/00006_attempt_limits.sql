-- The counts of the attempt limits (failed sign-ins, sign-ups, provider
-- calls), shared by every instance on this database so that n instances do
-- not give n times the limit.
--
-- One row per (kind, key): kind says what is counted ("signin_ip", ...), key
-- is a keyed hash (HMAC-SHA-256, truncated to 16 bytes) of what it is
-- counted for, never the e-mail, address or org itself. A row holds the
-- counts of the current fixed window (hits, from window_start, span long)
-- and of the one before (prev_hits), from which the application estimates a
-- sliding window; it matters for two spans after window_start, so it expires
-- then (expires_at) and a periodic delete of bounded batches removes it.
--
-- UNLOGGED: the counts are worth nothing after a crash (they are emptied
-- then) and not worth WAL traffic on every attempt. fillfactor leaves room
-- for the in-place (HOT) updates of hits within a window.

-- +goose Up
CREATE UNLOGGED TABLE attempt_counts (
  kind         text        NOT NULL CHECK (kind ~ '^[a-z_]{1,40}$'),
  key          bytea       NOT NULL CHECK (length(key) = 16),
  span         interval    NOT NULL CHECK (span > interval '0'),
  window_start timestamptz NOT NULL,
  hits         integer     NOT NULL CHECK (hits >= 0),
  prev_hits    integer     NOT NULL CHECK (prev_hits >= 0),
  expires_at   timestamptz NOT NULL,
  PRIMARY KEY (kind, key)
) WITH (fillfactor = 70);
-- The sweep reads the oldest expired rows first.
CREATE INDEX attempt_counts_expires_at_idx ON attempt_counts (expires_at);

-- Not tenant data: only the service role reads and writes it.
GRANT SELECT, INSERT, UPDATE, DELETE ON attempt_counts TO service_role;

ALTER TABLE attempt_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE attempt_counts FORCE ROW LEVEL SECURITY;
CREATE POLICY attempt_counts_service ON attempt_counts FOR ALL TO service_role USING (true) WITH CHECK (true);

-- +goose Down
DROP TABLE IF EXISTS attempt_counts;
