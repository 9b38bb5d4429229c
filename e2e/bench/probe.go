package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// cacheCount is one cache of /api/debug/cache-stats.
type cacheCount struct {
	Hits   uint64 `json:"hits"`
	Misses uint64 `json:"misses"`
	Items  int    `json:"items"`
}

// snapshot is what the server and the database count at one moment.
type snapshot struct {
	Caches map[string]cacheCount
	// StoreCalls is byoc_webhook_store_calls_total: the webhook handler's
	// calls into database-backed stores.
	StoreCalls float64
	// LiveHeap is the heap the last garbage collection kept:
	// go_memstats_next_gc_bytes divided by 1 + GOGC/100.
	LiveHeap float64
	RSS      int64
	// Statements is pg_stat_statements' count of the bench database's
	// statements; -1 when it is not available.
	Statements int64
}

// hitRate is the share of lookups of the named caches answered from memory
// between a and b; ok is false when there was none.
func hitRate(a, b snapshot, caches ...string) (rate float64, ok bool) {
	var hits, all uint64
	for _, name := range caches {
		h := b.Caches[name].Hits - a.Caches[name].Hits
		hits += h
		all += h + b.Caches[name].Misses - a.Caches[name].Misses
	}
	if all == 0 {
		return 0, false
	}
	return float64(hits) / float64(all), true
}

// prober reads the server's operator routes and the database's statement
// counts.
type prober struct {
	opsToken string
	db       *pgx.Conn // nil: no statement counts
	why      string    // why there are no statement counts
}

// newProber connects to the bench database and makes sure
// pg_stat_statements can be read; without it the statement counts are
// left out and why says so.
func newProber(ctx context.Context, dbURL, opsToken string) (*prober, error) {
	p := &prober{opsToken: opsToken}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect to the bench database: %w", err)
	}
	var loaded bool
	if err := conn.QueryRow(ctx, `select coalesce(current_setting('shared_preload_libraries', true), '') like '%pg_stat_statements%'`).
		Scan(&loaded); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	if !loaded {
		p.why = "pg_stat_statements is not loaded (the cluster was already running: `make db-stop`, then `make bench`)"
		conn.Close(ctx)
		return p, nil
	}
	if _, err := conn.Exec(ctx, `create extension if not exists pg_stat_statements`); err != nil {
		p.why = "pg_stat_statements cannot be created: " + err.Error()
		conn.Close(ctx)
		return p, nil
	}
	p.db = conn
	return p, nil
}

func (p *prober) close(ctx context.Context) {
	if p.db != nil {
		p.db.Close(ctx)
	}
}

// statements counts the bench database's statements so far, leaving out
// the prober's own.
func (p *prober) statements(ctx context.Context) int64 {
	if p.db == nil {
		return -1
	}
	var n int64
	err := p.db.QueryRow(ctx, `select coalesce(sum(calls), 0)::bigint from pg_stat_statements
		where dbid = (select oid from pg_database where datname = current_database())
		and query not like '%pg_stat_statements%'`).Scan(&n)
	if err != nil {
		return -1
	}
	return n
}

// snapshot reads the server's cache statistics and metrics, its RSS and
// the statement count.
func (p *prober) snapshot(ctx context.Context, srv *proc) (snapshot, error) {
	s := snapshot{Statements: p.statements(ctx)}
	var env struct {
		Data map[string]cacheCount `json:"data"`
	}
	if err := p.getJSON(ctx, srv.base+cacheStats, &env); err != nil {
		return s, err
	}
	s.Caches = env.Data
	m, err := p.metrics(ctx, srv.base)
	if err != nil {
		return s, err
	}
	s.StoreCalls = m["byoc_webhook_store_calls_total"]
	gogc := m["go_gc_gogc_percent"]
	if gogc <= 0 {
		gogc = 100
	}
	s.LiveHeap = m["go_memstats_next_gc_bytes"] / (1 + gogc/100)
	s.RSS, err = srv.rssBytes()
	return s, err
}

func (p *prober) get(ctx context.Context, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+p.opsToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return resp, nil
}

func (p *prober) getJSON(ctx context.Context, url string, v any) error {
	resp, err := p.get(ctx, url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// metrics reads the unlabelled series of /metrics.
func (p *prober) metrics(ctx context.Context, base string) (map[string]float64, error) {
	resp, err := p.get(ctx, base+metricsPath)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}
