// Command bench is the load generator of `make bench`. It starts the BYOC
// binary on a database seeded by `byoc seed` (fresh port, the data folder
// of the seed, an operator token of its own), drives load at it from this
// separate process with vegeta (used as a library), and prints and writes
// a Markdown table of what it measured: the warm webhook path, the status
// API and, as the ceiling, a bare Fiber handler answering a constant, each
// at max rate and at a fixed rate; the warm webhook path again while the
// credentials of other orgs change a thousand times a second; and a burst
// of first webhooks right after a restart.
//
// It lives under e2e/ because, like the browser tests, it drives the real
// binary from outside; it is a command rather than a test so that it runs
// only when asked (`make bench`, minutes), never in `make test`.
//
// Usage:
//
//	bench [-bin bin/byoc] [-data .data/bench] [-database-url URL] [flags]
//	bench ceiling -addr HOST:PORT   (the ceiling's process, started by bench)
//
// Every process it starts is stopped by its PID when it ends, fails or is
// interrupted (Ctrl-C).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"byoc/db/seed"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "ceiling" {
		err = ceiling(os.Args[2:])
	} else {
		err = bench(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// fewOrgs is how many orgs the small warm webhook row hits.
const fewOrgs = 100

// options are the command line's settings.
type options struct {
	bin, dataDir, dbURL, logLevel                                      string
	duration                                                           time.Duration
	workers, rate, stormRate, burstOrgs, burstWorkers, warmers, rounds int
}

// bencher runs one benchmark.
type bencher struct {
	options
	ps       procs
	opsToken string
	probe    *prober
	targets  []seed.Target
	res      results
	logf     func(format string, args ...any)
}

func bench(args []string) error {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.bin, "bin", "bin/byoc", "the server binary")
	fs.StringVar(&o.dataDir, "data", envOr("DATA_DIR", ".data/bench"),
		"the data folder the orgs were seeded with: development secrets, the targets file; logs and results go there too")
	fs.StringVar(&o.dbURL, "database-url", os.Getenv("DATABASE_URL"), "the seeded database")
	fs.StringVar(&o.logLevel, "log-level", "", "the server's LOG_LEVEL (empty: as configured)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each run (a row's max-rate run, its fixed-rate run)")
	fs.IntVar(&o.rounds, "rounds", 5, "slices each run is cut into, taking turns with the other rows of its group")
	fs.IntVar(&o.workers, "workers", 16, "workers of the max-rate runs")
	fs.IntVar(&o.rate, "rate", 500, "requests a second of the fixed-rate runs")
	fs.IntVar(&o.stormRate, "storm-rate", 1000, "credential changes a second to other orgs during the storm runs")
	fs.IntVar(&o.burstOrgs, "burst-orgs", 10_000, "orgs whose first webhooks make the burst after a restart")
	fs.IntVar(&o.burstWorkers, "burst-workers", 16, "webhooks of the burst in flight at once")
	fs.IntVar(&o.warmers, "warm-workers", 16, "webhooks in flight at once while the caches are filled")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.dbURL == "" {
		return errors.New("no database: set DATABASE_URL or -database-url (make bench does)")
	}
	if o.duration <= 0 || o.rounds < 1 || o.workers < 1 || o.rate < 1 || o.stormRate < 0 || o.burstOrgs < 1 ||
		o.burstWorkers < 1 || o.warmers < 1 {
		return errors.New("-duration, -rounds, -workers, -rate, -burst-orgs, -burst-workers and -warm-workers must be positive")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bencher{options: o, opsToken: randomHex(16), logf: func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	}}
	defer b.ps.stopAll()
	err := b.run(ctx)
	if ctx.Err() != nil {
		err = errors.New("interrupted")
	}
	if err != nil {
		b.res.Notes = append(b.res.Notes, "The run stopped early: "+err.Error())
	}
	if len(b.res.Rows) > 0 {
		out := b.res.markdown()
		fmt.Print("\n" + out)
		path := filepath.Join(o.dataDir, "results.md")
		if werr := writeFile(path, out); werr != nil {
			return errors.Join(err, werr)
		}
		b.logf("results written to %s", path)
	}
	return err
}

func (b *bencher) run(ctx context.Context) error {
	var err error
	targetsPath := filepath.Join(b.dataDir, seed.TargetsFile)
	if b.targets, err = seed.ReadTargets(targetsPath); err != nil {
		return fmt.Errorf("%w (seed first: DATA_DIR=%s byoc seed)", err, b.dataDir)
	}
	n := len(b.targets)
	if n == 0 {
		return fmt.Errorf("%s lists no assistant", targetsPath)
	}
	if err := os.MkdirAll(b.dataDir, 0o700); err != nil {
		return err
	}
	for _, name := range []string{"server.log", "ceiling.log"} { // this run's logs only
		if err := os.Remove(filepath.Join(b.dataDir, name)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	if b.probe, err = newProber(ctx, b.dbURL, b.opsToken); err != nil {
		return err
	}
	defer b.probe.close(context.WithoutCancel(ctx))
	b.res = results{Started: time.Now(), Orgs: n, Workers: b.workers, Rate: b.rate, Duration: b.duration,
		Rounds: b.rounds, Machine: machine()}

	ceil, err := b.startCeiling(ctx)
	if err != nil {
		return err
	}
	srv, err := b.startServer(ctx)
	if err != nil {
		return err
	}
	idle, err := b.probe.snapshot(ctx, srv)
	if err != nil {
		return err
	}

	// Fill the caches: every org's first webhook once.
	b.logf("filling the caches: the first webhook of each of %d orgs, %d at a time", n, b.warmers)
	warm := attack(ctx, webhooks(srv.base, b.targets, eachOnce(0, n)), pace{workers: uint64(b.warmers)}, 0)
	b.note("Cold start: the first webhooks of all %s orgs (two lookups each), %d at a time, took %s (%s/s), %s.",
		thousands(int64(n)), b.warmers, warm.Elapsed.Round(time.Millisecond), thousands(int64(warm.Throughput())), errorsText(warm))
	token, err := signup(ctx, srv.base)
	if err != nil {
		return err
	}

	// The ceiling (the same signed 2 KiB webhooks to a bare Fiber
	// handler), the warm webhook path (random assistants over all orgs,
	// and over 100 of them, to see what the number of orgs costs) and the
	// status API, taking turns.
	all := randomIn(0, n)
	hooks := []string{"webhookMappings", "webhookSecrets"}
	ceilS := &series{name: "ceiling: bare Fiber handler answering a constant", proc: ceil, tr: webhooks(ceil.base, b.targets, all)}
	hookS := &series{name: "warm webhook: 2 KiB, HMAC, random orgs of all " + thousands(int64(n)), proc: srv, byoc: true,
		tr: webhooks(srv.base, b.targets, all), caches: hooks, webhook: true}
	few := min(n, fewOrgs)
	fewS := &series{name: "warm webhook: the same, random orgs of " + thousands(int64(few)), proc: srv, byoc: true,
		tr: webhooks(srv.base, b.targets, randomIn(0, few)), caches: hooks, webhook: true}
	statusS := &series{name: "status API: GET " + statusPath + ", JWT", proc: srv, byoc: true,
		tr: get(srv.base, statusPath, token), caches: []string{"credentialStatuses", "signIns"}}
	if err := b.interleave(ctx, ceilS, hookS, fewS, statusS); err != nil {
		return err
	}
	ceil.stop()
	c := ceilS.max.Throughput()
	ceilRow, hookRow, fewRow, statusRow := ceilS.row(), hookS.row(), fewS.row(), statusS.row()
	ceilRow.Versus = "1.00x ceiling"
	hookRow.Versus = ratio(hookS.max.Throughput(), c, "ceiling")
	fewRow.Versus = ratio(fewS.max.Throughput(), c, "ceiling")
	statusRow.Versus = ratio(statusS.max.Throughput(), c, "ceiling")
	b.res.Rows = append(b.res.Rows, ceilRow, hookRow, fewRow, statusRow)
	full, err := b.probe.snapshot(ctx, srv)
	if err != nil {
		return err
	}
	b.memoryNote(idle, full)

	// The warm path on one half of the orgs, in quiet and while the other
	// half's credentials change, taking turns.
	var quietRow, stormRow row
	if n >= 2 && b.stormRate > 0 {
		st, err := newStorm(ctx, b.dataDir, b.dbURL, b.targets[n/2:])
		if err != nil {
			return fmt.Errorf("storm: %w", err)
		}
		defer st.close()
		st.calibrate(ctx, b.probe, 50)
		b.listenerNote(ctx, srv, st)
		half := webhooks(srv.base, b.targets, randomIn(0, n/2))
		quietS := &series{name: "warm webhook, quiet: random orgs of one half", proc: srv, byoc: true, tr: half,
			caches: hooks, webhook: true}
		stormS := &series{name: fmt.Sprintf("warm webhook during a storm: %s changes/s to the other half's credentials",
			thousands(int64(b.stormRate))), proc: srv, byoc: true, tr: half, caches: hooks, webhook: true,
			storm: st, stormRate: b.stormRate}
		if err := b.interleave(ctx, quietS, stormS); err != nil {
			return err
		}
		quietRow, stormRow = quietS.row(), stormS.row()
		quietRow.Versus = "1.00x quiet"
		stormRow.Versus = ratio(stormS.max.Throughput(), quietS.max.Throughput(), "quiet")
		b.res.Rows = append(b.res.Rows, quietRow, stormRow)
		b.note("Storm: %s credential saves through the credential service during the storm row's slices (%.0f/s achieved of "+
			"%d/s asked; %d failed, %d skipped while all %d savers were busy), each announced to the server's listener; "+
			"%s statements per save (measured alone) are left out of that row's statements.",
			thousands(int64(stormS.stormSaves)), stormS.stormSaves/stormS.stormTime.Seconds(), b.stormRate,
			st.failures.Load(), st.missed.Load(), stormWorkers, fmtFloat(st.perSave))
	}

	// After a restart: a burst of first webhooks.
	b.logf("restarting the server")
	srv.stop()
	if srv, err = b.startServer(ctx); err != nil {
		return err
	}
	burstN := min(n, b.burstOrgs)
	b.logf("burst: the first webhooks of %d orgs, %d at a time", burstN, b.burstWorkers)
	burst := attack(ctx, webhooks(srv.base, b.targets, eachOnce(0, burstN)), pace{workers: uint64(b.burstWorkers)}, 0)
	burstRow := row{Name: fmt.Sprintf("burst after a restart: first webhooks of %s orgs, %d at a time", thousands(int64(burstN)), b.burstWorkers),
		Max: &burst, Versus: "–", HitRate: math.NaN(), Statements: -1, StoreCalls: -1}
	burstRow.RSS, _ = srv.rssBytes()
	b.res.Rows = append(b.res.Rows, burstRow)
	b.note("Burst after a restart (caches empty): %s first webhooks, %d at a time, in %s: %d answered 503, %s.",
		thousands(int64(burst.Requests)), b.burstWorkers, burst.Elapsed.Round(time.Millisecond), burst.Codes[http.StatusServiceUnavailable],
		errorsText(burst))
	srv.stop()

	b.checks(ceilS.max, hookRow, fewRow, statusRow, quietRow, stormRow, burst)
	b.note("Statements are counted with pg_stat_statements: every statement the bench database ran during a row's slices "+
		"(the probe's own left out), divided by their requests.%s Webhook store calls are the server's "+
		"byoc_webhook_store_calls_total (calls into database-backed stores, cache misses included). Hit rates come from "+
		"/api/debug/cache-stats: webhook mappings and secrets for webhooks, credential statuses and sign-ins for the status API. RSS is VmRSS "+
		"of the process after the row's last slice.", b.statementsNote())
	b.note("The machine is shared with other work: absolute figures are noisy. The rows of each group take turns in short " +
		"slices, so that a change of the background load falls on all of them alike: the ratios are what compares.")
	return ctx.Err()
}

// checks compares the run with its targets.
func (b *bencher) checks(ceil outcome, hook, few, status, quiet, stormy row, burst outcome) {
	add := func(what, target, got string, met bool) {
		b.res.Checks = append(b.res.Checks, check{What: what, Target: target, Got: got, Met: met})
	}
	c := ceil.Throughput()
	if c > 0 {
		r := hook.Max.Throughput() / c
		add("warm webhook throughput", ">= 0.8x ceiling", fmt.Sprintf("%.2fx", r), r >= 0.8)
	}
	p99 := hook.Fixed.Quantile(0.99)
	add("warm webhook p99 at 500 req/s", "<= 1 ms", millis(p99), p99 <= time.Millisecond)
	if fewP99 := few.Fixed.Quantile(0.99); fewP99 > 0 {
		r := float64(p99) / float64(fewP99)
		add(fmt.Sprintf("warm webhook p99, %s orgs against %d", thousands(int64(b.res.Orgs)), min(b.res.Orgs, fewOrgs)),
			"<= 1.2x", fmt.Sprintf("%.2fx", r), r <= 1.2)
	}
	if c > 0 {
		r := status.Max.Throughput() / c
		add("status API throughput", ">= 0.4x ceiling", fmt.Sprintf("%.2fx", r), r >= 0.4)
	}
	p99 = status.Fixed.Quantile(0.99)
	add("status API p99 at 500 req/s", "<= 2 ms", millis(p99), p99 <= 2*time.Millisecond)
	errs := 0
	for _, r := range b.res.Rows {
		for _, o := range []*outcome{r.Max, r.Fixed} {
			if o != nil {
				errs += o.Errors
			}
		}
	}
	add("errors in every run", "= 0", strconv.Itoa(errs), errs == 0)
	rt, how := hook.Statements, "statements"
	if rt < 0 {
		rt, how = hook.StoreCalls, "store calls"
	}
	add("database round trips per warm webhook", "= 0", fmt.Sprintf("%.3f (%s)", rt, how), rt >= 0 && rt < 0.0005)
	if quiet.Max != nil && stormy.Max != nil && quiet.Max.Throughput() > 0 {
		r := stormy.Max.Throughput() / quiet.Max.Throughput()
		add("warm webhook during the storm", ">= 0.5x quiet", fmt.Sprintf("%.2fx", r), r >= 0.5)
	}
	n503 := burst.Codes[http.StatusServiceUnavailable]
	add("503s in the burst after a restart", "= 0", strconv.Itoa(n503), n503 == 0 && burst.Requests > 0)
}

// listenerNote runs the storm alone for a while and reports the CPU the
// server spent meanwhile: what applying other instances' changes costs it.
func (b *bencher) listenerNote(ctx context.Context, srv *proc, st *storm) {
	const alone = 2 * time.Second
	before, err1 := srv.cpuTime()
	stop := st.start(ctx, b.stormRate)
	select {
	case <-ctx.Done():
	case <-time.After(alone):
	}
	saves := stop()
	after, err2 := srv.cpuTime()
	if err1 != nil || err2 != nil || saves == 0 {
		return
	}
	cpu := after - before
	b.note("With no requests, %s changes in %s (%.0f/s) cost the server %s of CPU: %.0f µs per change applied by its listener "+
		"(at 10 ms resolution).", thousands(saves), alone, float64(saves)/alone.Seconds(), cpu,
		float64(cpu)/float64(time.Microsecond)/float64(saves))
}

// memoryNote reports what the caches of every org cost.
func (b *bencher) memoryNote(idle, warm snapshot) {
	orgs := warm.Caches["webhookSecrets"].Items
	if orgs <= 0 {
		return
	}
	b.note("Memory per cached org (assistant mapping, webhook secret and decrypted Vapi config): %s bytes of live heap "+
		"(%s MiB → %s MiB for %s orgs), %s bytes of RSS (%s → %s).",
		thousands(int64((warm.LiveHeap-idle.LiveHeap)/float64(orgs))), fmtFloat(idle.LiveHeap/(1<<20)), fmtFloat(warm.LiveHeap/(1<<20)),
		thousands(int64(orgs)), thousands((warm.RSS-idle.RSS)/int64(orgs)), mib(idle.RSS), mib(warm.RSS))
}

func (b *bencher) statementsNote() string {
	if b.probe.db == nil {
		return " Not counted in this run: " + b.probe.why + "."
	}
	return ""
}

func (b *bencher) note(format string, args ...any) {
	b.res.Notes = append(b.res.Notes, fmt.Sprintf(format, args...))
}

// startCeiling starts the ceiling's process (this program) on a free port.
func (b *bencher) startCeiling(ctx context.Context) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p, err := b.ps.start("ceiling", self, []string{"ceiling", "-addr", "127.0.0.1:" + strconv.Itoa(port)}, nil, port,
		filepath.Join(b.dataDir, "ceiling.log"))
	if err != nil {
		return nil, err
	}
	return p, p.waitReady(ctx, "/", 30*time.Second)
}

// startServer starts the server binary on a free port with the seed's data
// folder and the operator token, and waits until it is ready.
func (b *bencher) startServer(ctx context.Context) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	ps := strconv.Itoa(port)
	env := []string{"APP_ENV=development", "PORT=" + ps, "PUBLIC_URL=http://127.0.0.1:" + ps, "DATA_DIR=" + b.dataDir,
		"DATABASE_URL=" + b.dbURL, "OPS_TOKEN=" + b.opsToken}
	if b.logLevel != "" {
		env = append(env, "LOG_LEVEL="+b.logLevel)
	}
	b.logf("starting %s on port %d", b.bin, port)
	p, err := b.ps.start("server", b.bin, []string{"serve"}, env, port, filepath.Join(b.dataDir, "server.log"))
	if err != nil {
		return nil, err
	}
	return p, p.waitReady(ctx, readyPath, time.Minute)
}

// signup creates an account through the API and returns its bearer token.
func signup(ctx context.Context, base string) (string, error) {
	body, _ := json.Marshal(map[string]string{"orgName": "Bench status org", "email": "bench-" + randomHex(6) + "@example.com",
		"password": randomHex(12)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+signupPath, strings.NewReader(string(body)))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated || out.Data.Token == "" {
		return "", fmt.Errorf("signup for the status API: %s", resp.Status)
	}
	return out.Data.Token, nil
}

func errorsText(o outcome) string {
	if o.Errors == 0 {
		return "no errors"
	}
	return fmt.Sprintf("%d errors", o.Errors)
}

func fmtFloat(f float64) string {
	if f < 0 {
		return "n/a"
	}
	return strconv.FormatFloat(f, 'f', 1, 64)
}

// machine describes where the run happened.
func machine() string {
	load := "?"
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(raw)); len(f) >= 3 {
			load = strings.Join(f[:3], " ")
		}
	}
	return fmt.Sprintf("%d CPUs, load average %s at the start, %s, %s/%s", runtime.NumCPU(), load, runtime.Version(),
		runtime.GOOS, runtime.GOARCH)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}
