#!/usr/bin/env bash
# The private PostgreSQL cluster for development and tests.
#
#   db/pg.sh start   initialise (first time) and start the cluster; print nothing
#   db/pg.sh stop    stop it (its files stay)
#   db/pg.sh reset   stop it and delete its files
#   db/pg.sh url     print the DATABASE_URL of the application database
#   db/pg.sh status  say where it lives and whether it runs
#   db/pg.sh with CMD...
#                    start it if needed, run CMD with DATABASE_URL set, and
#                    stop it again afterwards if it was not running before
#
# BYOC_PG_FAST=1 starts it without fsync (tests); BYOC_PG_STATEMENTS=1 loads
# pg_stat_statements, so `make bench` can count statements (both only take
# effect when this call starts the cluster).
#
# BYOC_PG_CLUSTER=NAME (lower-case letters, digits and dashes) works on
# another cluster of the same checkout instead, with files of its own under
# .data/pg-NAME and a port of its own (the fault drills stop and start one
# without disturbing the tests that use the main cluster).
# BYOC_PG_STOP_MODE=immediate makes stop end the server the way a crash
# does (no checkpoint; the next start recovers from the WAL); the default is
# PostgreSQL's "fast" shutdown.
#
# The cluster lives in .data/postgres under the checkout. PostgreSQL refuses
# to run as root, so as root it runs as the `postgres` user; when that user
# cannot reach the checkout (a checkout under a private home folder), the
# cluster lives under /tmp instead, in a folder named after the checkout.
# The port is derived from the checkout path (override with BYOC_PG_PORT), so
# two checkouts on one machine never collide.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dbname=${BYOC_PG_DB:-byoc}

die() { echo "db/pg.sh: $*" >&2; exit 1; }

cluster=${BYOC_PG_CLUSTER:-}
case "$cluster" in
*[!a-z0-9-]*) die "BYOC_PG_CLUSTER may hold only lower-case letters, digits and dashes" ;;
esac
stop_mode=${BYOC_PG_STOP_MODE:-fast}
case "$stop_mode" in
fast | immediate) ;;
*) die "BYOC_PG_STOP_MODE must be fast or immediate" ;;
esac

tag=$(printf '%s' "$root${cluster:+#$cluster}" | cksum | cut -d' ' -f1)
port=${BYOC_PG_PORT:-$((54000 + tag % 900))}

bindir=""
for d in "$(dirname "$(readlink -f "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/x)")")" /usr/lib/postgresql/*/bin; do
	if [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ] && [ -x "$d/psql" ]; then bindir=$d; break; fi
done
[ -n "$bindir" ] || die "PostgreSQL server binaries (initdb, pg_ctl) not found. On Debian: apt-get install postgresql"

as_root=0
[ "$(id -u)" = 0 ] && as_root=1

# Where the cluster lives.
base="$root/.data${cluster:+/pg-$cluster}"
if [ "$as_root" = 1 ]; then
	id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' system user (it comes with Debian's postgresql package)"
	mkdir -p "$base"
	if ! runuser -u postgres -- test -x "$base" 2>/dev/null; then
		base="/tmp/byoc-$tag"
	fi
fi
data="$base/postgres"
sock="$base/pgsock"
[ ${#sock} -lt 100 ] || sock="/tmp/byoc-sock-$tag"
log="$base/postgres.log"

run_pg() {
	if [ "$as_root" = 1 ]; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

url() { echo "postgres://postgres@127.0.0.1:$port/$dbname?sslmode=disable"; }

running() { run_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; }

start() {
	mkdir -p "$base" "$sock"
	if [ "$as_root" = 1 ]; then chown postgres "$base" "$sock"; fi
	if [ ! -s "$data/PG_VERSION" ]; then
		echo "Initialising a private PostgreSQL cluster in $data" >&2
		run_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
	fi
	if ! running; then
		rm -f "$data/postmaster.pid"
		local opts="-p $port -c listen_addresses=127.0.0.1 -k $sock -c max_connections=200"
		if [ "${BYOC_PG_FAST:-0}" = 1 ]; then
			opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
		fi
		if [ "${BYOC_PG_STATEMENTS:-0}" = 1 ] && [ -e "$bindir/../lib/pg_stat_statements.so" ]; then
			opts="$opts -c shared_preload_libraries=pg_stat_statements"
		fi
		if ! run_pg "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 -o "$opts" start >/dev/null; then
			tail -20 "$log" >&2 || true
			die "PostgreSQL did not start (log: $log)"
		fi
		if [ -n "$cluster" ]; then
			echo "PostgreSQL ($cluster) is running on 127.0.0.1:$port (stop it with: BYOC_PG_CLUSTER=$cluster db/pg.sh stop)" >&2
		else
			echo "PostgreSQL is running on 127.0.0.1:$port (stop it with: make db-stop)" >&2
		fi
	fi
	if ! run_pg "$bindir/psql" -h "$sock" -p "$port" -U postgres -d postgres -Atqc \
		"select 1 from pg_database where datname = '$dbname'" | grep -q 1; then
		run_pg "$bindir/createdb" -h "$sock" -p "$port" -U postgres "$dbname"
	fi
}

stop() {
	if [ -s "$data/PG_VERSION" ] && running; then
		run_pg "$bindir/pg_ctl" -D "$data" -m "$stop_mode" -w stop >/dev/null
		echo "PostgreSQL stopped." >&2
	fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
reset)
	stop
	rm -rf "$data" "$log"
	echo "Private cluster deleted ($data)." >&2
	;;
url) url ;;
status)
	echo "data: $data"
	echo "url:  $(url)"
	if [ -s "$data/PG_VERSION" ] && running; then echo "state: running"; else echo "state: stopped"; fi
	;;
with)
	shift
	[ $# -gt 0 ] || die "usage: db/pg.sh with CMD..."
	was_running=0
	if [ -s "$data/PG_VERSION" ] && running; then was_running=1; fi
	start
	if [ "$was_running" = 0 ]; then trap stop EXIT; fi
	status=0
	DATABASE_URL=$(url) "$@" || status=$?
	exit "$status"
	;;
*) die "usage: db/pg.sh start|stop|reset|url|status|with CMD..." ;;
esac
