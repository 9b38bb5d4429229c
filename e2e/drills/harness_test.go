//go:build !e2e

package drills

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"byoc/app/apptest"
	"byoc/app/auth"
	"byoc/app/config"
	"byoc/app/paths"
	"byoc/app/sandbox"
	"byoc/app/system"
	"byoc/app/system/systemtest"
	"byoc/app/web"
	"byoc/db"
)

// world is the provider stand-ins and the instances of one drill, all
// built from one configuration, as the processes behind a load balancer
// would be.
type world struct {
	t         *testing.T
	sb        *sandbox.Sandbox
	cfg       *config.Config
	client    *http.Client
	instances []*instance
}

// instance is one server: its own graph, pool, invalidation listener and
// HTTP listener.
type instance struct {
	name    string
	db      *db.DB
	sys     *system.System
	base    string
	timeout time.Duration // its request deadline
	logs    *apptest.LogBuffer
}

func newWorld(t *testing.T) *world {
	t.Helper()
	sb := sandbox.New()
	hs := httptest.NewServer(sb.Handler())
	t.Cleanup(hs.Close)
	cfg := systemtest.Config(t, sb.BaseURLs(hs.URL))
	cfg.ProviderTimeout = 5 * time.Second
	// The drills sign up orgs and save credentials far more often than a
	// person would; the limits have their own tests.
	cfg.Limits = config.Limits{AttemptsPerIP: 100000, AttemptsPerEmail: 100000, AttemptWindow: time.Minute,
		ProviderCallsPerOrg: 100000, ProviderCallsPerIP: 100000}
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &world{t: t, sb: sb, cfg: cfg, client: &http.Client{Transport: tr, Timeout: time.Minute}}
}

// addInstance starts an instance on the database at dbURL with a pool of
// maxConns connections and a request deadline of timeout; the test's
// cleanup stops it.
func (w *world) addInstance(dbURL string, maxConns int32, timeout time.Duration) *instance {
	t := w.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := db.Open(ctx, dbURL, db.Options{MaxConns: maxConns})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	logs := &apptest.LogBuffer{}
	sys, err := system.Build(w.cfg, d, system.Options{
		Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Sandbox:  true,
		Accounts: auth.Options{BcryptCost: bcrypt.MinCost},
		Web:      web.Options{RequestTimeout: timeout},
	})
	if err != nil {
		cancel()
		d.Close()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = sys.Server.Serve(ln) }()
	go func() { defer wg.Done(); sys.ListenInvalidations(ctx) }()
	in := &instance{name: "i" + strconv.Itoa(len(w.instances)+1), db: d, sys: sys, base: "http://" + ln.Addr().String(),
		timeout: timeout, logs: logs}
	w.instances = append(w.instances, in)
	t.Cleanup(func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = sys.Server.Shutdown(sctx)
		scancel()
		wg.Wait()
		d.Close()
		if t.Failed() {
			t.Logf("log of %s (end):\n%s", in.name, tail(logs.String(), 4000))
		}
	})
	return in
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// answer is one HTTP exchange as a client saw it.
type answer struct {
	status int
	code   string         // the error code of a failure envelope
	data   map[string]any // the data of a success envelope
	took   time.Duration
	err    error // a transport failure (no answer)
}

// do sends a JSON request (body nil: none) with an optional bearer token
// and headers.
func (w *world) do(in *instance, method, path string, body any, token string, header http.Header) answer {
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	default:
		raw, _ = json.Marshal(b)
	}
	req, err := http.NewRequest(method, in.base+path, bytes.NewReader(raw))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	start := time.Now()
	res, err := w.client.Do(req)
	if err != nil {
		return answer{took: time.Since(start), err: err}
	}
	out, err := io.ReadAll(res.Body)
	res.Body.Close()
	a := answer{status: res.StatusCode, took: time.Since(start), err: err}
	var env struct {
		Data  map[string]any `json:"data"`
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(out, &env) == nil {
		a.data, a.code = env.Data, env.Error.Code
	}
	return a
}

// org is a signed-up org with Vapi connected.
type org struct {
	id, token       string
	vapiKey         string
	assistant       string // the inbound assistant
	secret          string // what Vapi signs the org's webhooks with
	lastCall, calls int
}

// newOrgs signs up n orgs through the instances in turn and connects
// their Vapi accounts.
func (w *world) newOrgs(n int) []*org {
	w.t.Helper()
	orgs := make([]*org, n)
	for i := range orgs {
		in := w.instances[i%len(w.instances)]
		suffix := apptest.RandomHex(6)
		a := w.do(in, http.MethodPost, paths.APISignup, map[string]string{
			"orgName": "Drill Clinic " + suffix, "email": "drill-" + suffix + "@example.com",
			"password": "Sturdy-" + apptest.RandomHex(10)}, "", nil)
		if a.status != http.StatusCreated {
			w.t.Fatalf("signup through %s: %d %s %v", in.name, a.status, a.code, a.err)
		}
		o := &org{id: str(a.data["orgId"]), token: str(a.data["token"]), vapiKey: "vapi-drill-key-" + apptest.RandomHex(12)}
		a = w.do(in, http.MethodPost, paths.IntegrationsPrefix+"/vapi", map[string]string{"apiKey": o.vapiKey}, o.token, nil)
		if a.status != http.StatusOK {
			w.t.Fatalf("save Vapi through %s: %d %s %v", in.name, a.status, a.code, a.err)
		}
		o.assistant = str(a.data["inboundAssistantId"])
		sig, ok := w.sb.Vapi.Signing(o.vapiKey, o.assistant)
		if !ok || sig.Mode != "hmac" || sig.Secret == "" {
			w.t.Fatalf("the stand-in holds no HMAC signing for the org's assistant: %+v", sig)
		}
		o.secret = sig.Secret
		orgs[i] = o
	}
	return orgs
}

// randomUUID returns a random version 4 UUID.
func randomUUID() string {
	h := apptest.RandomHex(16)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:]
}

func str(v any) string { s, _ := v.(string); return s }

// Webhook types: one verified and acknowledged without a write, one
// stored once per delivery.
const (
	typeWarm  = "speech-update"
	typeWrite = "status-update"
)

// webhook sends a webhook of typ for o's call callID to in, signed as
// Vapi signs it.
func (w *world) webhook(in *instance, o *org, typ, callID string) answer {
	body, _ := json.Marshal(map[string]any{"message": map[string]any{
		"type": typ, "status": "in-progress", "timestamp": time.Now().UnixMilli(),
		"call": map[string]any{"id": callID, "assistantId": o.assistant},
	}})
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	h := http.Header{}
	h.Set("X-Signature", apptest.VapiSignature(o.secret, ts, body))
	h.Set("X-Timestamp", ts)
	return w.do(in, http.MethodPost, paths.Webhooks, body, "", h)
}

// sample is one request of a load run.
type sample struct {
	kind string
	inst string
	at   time.Time // when it was sent
	answer
}

// recorder collects the samples of a load run.
type recorder struct {
	mu      sync.Mutex
	samples []sample
}

func (r *recorder) add(s sample) {
	r.mu.Lock()
	r.samples = append(r.samples, s)
	r.mu.Unlock()
}

// select_ returns the samples of kind (any kind for "") sent within
// [from, to) (the zero time: unbounded).
func (r *recorder) select_(kind string, from, to time.Time) []sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []sample
	for _, s := range r.samples {
		if (kind == "" || s.kind == kind) && (from.IsZero() || !s.at.Before(from)) && (to.IsZero() || s.at.Before(to)) {
			out = append(out, s)
		}
	}
	return out
}

// figures summarizes samples: how many, the statuses, and latencies.
type figures struct {
	n                   int
	statuses            map[int]int
	transportErrors     int
	p50, p99, max       time.Duration
	slowest             sample
	firstErr, firstCode string
}

func summarize(samples []sample) figures {
	f := figures{n: len(samples), statuses: map[int]int{}}
	took := make([]time.Duration, 0, len(samples))
	for _, s := range samples {
		if s.err != nil {
			f.transportErrors++
			if f.firstErr == "" {
				f.firstErr = s.err.Error()
			}
		} else {
			f.statuses[s.status]++
		}
		took = append(took, s.took)
		if s.took >= f.max {
			f.max, f.slowest = s.took, s
		}
	}
	slices.Sort(took)
	if len(took) > 0 {
		f.p50 = took[len(took)/2]
		f.p99 = took[min(len(took)-1, len(took)*99/100)]
	}
	return f
}

// statusText is "200×12, 503×3" (and transport failures).
func (f figures) statusText() string {
	codes := make([]int, 0, len(f.statuses))
	for c := range f.statuses {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	parts := make([]string, 0, len(codes)+1)
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", c, f.statuses[c]))
	}
	if f.transportErrors > 0 {
		parts = append(parts, fmt.Sprintf("no answer×%d", f.transportErrors))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func (f figures) latencyText() string {
	if f.n == 0 {
		return "–"
	}
	return fmt.Sprintf("p50 %s, p99 %s, max %s", ms(f.p50), ms(f.p99), ms(f.max))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// onlyStatuses fails the test for every answer of samples whose status is
// not one of allowed, and for every request that got no answer.
func onlyStatuses(t *testing.T, what string, samples []sample, allowed ...int) {
	t.Helper()
	bad := 0
	for _, s := range samples {
		if s.err != nil || !slices.Contains(allowed, s.status) {
			if bad < 5 {
				t.Errorf("%s: %s through %s at %s: status %d %s (%v) after %s, want one of %v", what, s.kind, s.inst,
					s.at.Format("15:04:05.000"), s.status, s.code, s.err, ms(s.took), allowed)
			}
			bad++
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d more such answers", what, bad-5)
	}
}

// withinDeadline fails the test for every sample that took longer than
// deadline plus margin plus the longest stall the process saw: a request
// the server let run past its deadline.
func withinDeadline(t *testing.T, what string, samples []sample, deadline, margin, stall time.Duration) {
	t.Helper()
	for _, s := range samples {
		if s.took > deadline+margin+stall {
			t.Errorf("%s: %s through %s took %s, over its %s deadline plus %s (and the process's longest stall, %s); status %d %s",
				what, s.kind, s.inst, ms(s.took), deadline, margin, ms(stall), s.status, s.code)
		}
	}
}

// stallMeter measures how late a 10 ms ticker fires while a drill runs:
// the longest time this process got no CPU (a busy machine, a pause),
// which delays every request alike and is no fault of the server's.
type stallMeter struct {
	stop    chan struct{}
	done    chan struct{}
	longest atomic.Int64 // nanoseconds
}

func startStallMeter() *stallMeter {
	m := &stallMeter{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		const every = 10 * time.Millisecond
		tick := time.NewTicker(every)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-m.stop:
				return
			case <-tick.C:
				now := time.Now()
				if late := now.Sub(last) - every; late > time.Duration(m.longest.Load()) {
					m.longest.Store(int64(late))
				}
				last = now
			}
		}
	}()
	return m
}

// end stops the meter and returns the longest stall it saw.
func (m *stallMeter) end() time.Duration {
	close(m.stop)
	<-m.done
	return time.Duration(m.longest.Load())
}

// waitPoolIdle waits until no connection of in's pool is in use and
// returns the pool's figures; it fails the test when one stays in use.
func waitPoolIdle(t *testing.T, in *instance, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := in.db.Pool.Stat()
		if st.AcquiredConns() == 0 {
			return fmt.Sprintf("%s: in use 0, open %d of %d, acquires %d, failed/cancelled acquires %d", in.name,
				st.TotalConns(), st.MaxConns(), st.AcquireCount(), st.CanceledAcquireCount())
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %d pool connections still in use %s after the load ended (a leak)", in.name, st.AcquiredConns(), within)
			return fmt.Sprintf("%s: in use %d (leak)", in.name, st.AcquiredConns())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
