// Package drills holds BYOC's fault drills, as tests: several instances of
// the whole server (each its own system.Build graph, connection pool,
// invalidation listener and HTTP listener) on a PostgreSQL cluster of
// their own, which the drills stop, slow down and start again while load
// runs:
//
//   - PostgreSQL stopped under load: warm webhooks keep verifying, writes
//     are refused with 503 at once, every instance recovers by itself once
//     PostgreSQL is back, and no acknowledged write is lost; part of the
//     load goes through HAProxy (deploy/haproxy/haproxy.cfg), which keeps
//     every instance in rotation because /readyz stays 200 while the
//     database they share is away;
//   - a slow database: no request outlives its deadline, no pool
//     connection leaks;
//   - concurrent saves of one org's Vapi credentials through three
//     instances leave one row and one assistant pair.
//
// `make test` runs a short form; `make drills` runs the full one and prints
// the table of figures. The browser tests' run (build tag e2e) leaves them
// out: `make test` runs them once, in the race-enabled Go tests. The cluster is db/pg.sh's "drills" cluster of the
// checkout (BYOC_PG_CLUSTER=drills, on a free port), so the tests that use
// the main cluster are never disturbed; it is stopped when the drills end.
package drills
