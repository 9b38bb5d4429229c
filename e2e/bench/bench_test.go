package main

import (
	"encoding/json"
	"math"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/db/seed"
)

func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

func TestMarkdown(t *testing.T) {
	lat := []time.Duration{ms(0.1), ms(0.2), ms(0.3), ms(0.4), ms(2)}
	ceil := outcome{Requests: 1000, OK: 1000, Codes: map[int]int{200: 1000}, Elapsed: time.Second, Latencies: lat}
	hook := outcome{Requests: 820, OK: 800, Errors: 20, Codes: map[int]int{200: 800, 503: 15, 0: 5}, Elapsed: time.Second,
		Latencies: lat}
	r := results{
		Started: time.Date(2026, 12, 2, 19, 30, 0, 0, time.UTC), Orgs: 10000, Workers: 16, Rate: 500,
		Duration: 10 * time.Second, Rounds: 5, Machine: "2 CPUs",
		Rows: []row{
			{Name: "ceiling", Max: &ceil, Fixed: &ceil, Versus: "1.00x ceiling", HitRate: math.NaN(), Statements: -1,
				StoreCalls: -1, CPU: 42 * time.Microsecond, RSS: 17 << 20},
			{Name: "warm webhook", Max: &hook, Versus: ratio(800, 1000, "ceiling"), HitRate: 0.99995, Statements: 0,
				StoreCalls: 0.125, RSS: 1536 << 20},
		},
		Checks: []check{{What: "errors", Target: "= 0", Got: "20", Met: false}},
		Notes:  []string{"A note."},
	}
	want := `## make bench, 2026-12-02 19:30 UTC: 10,000 orgs

2 CPUs. Each row: 10s at max rate with 16 workers (req/s), then 10s at a fixed 500 req/s (latencies), in 5 slices taking turns with the rows of its group.

| run          | req/s at max rate | ratio         |     p50 |     p99 |   p99.9 |                          errors | cache hit rate | DB statements/req | webhook store calls/req | CPU/req |      RSS |
| ------------ | ----------------: | ------------- | ------: | ------: | ------: | ------------------------------: | -------------: | ----------------: | ----------------------: | ------: | -------: |
| ceiling      |             1,000 | 1.00x ceiling | 0.30 ms | 2.00 ms | 2.00 ms |                      0 of 2,000 |              – |                 – |                       – |   42 µs |   17 MiB |
| warm webhook |               800 | 0.80x ceiling |       – |       – |       – | 20 of 820 (no answer×5, 503×15) |       100.00 % |              0.00 |                    0.12 |       – | 1536 MiB |

Targets on this machine:

| target     | measured | met |
| ---------- | -------: | --- |
| errors = 0 |       20 | no  |

- A note.
`
	if got := r.markdown(); got != want {
		t.Errorf("markdown:\n%s\nwant:\n%s", got, want)
	}
}

func TestOutcome(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 1000; i++ {
		lat = append(lat, time.Duration(i)*time.Microsecond)
	}
	o := outcome{OK: 500, Elapsed: 2 * time.Second, Latencies: lat}
	for q, want := range map[float64]time.Duration{0.5: 500 * time.Microsecond, 0.99: 990 * time.Microsecond,
		0.999: 999 * time.Microsecond, 1: time.Millisecond, 0: time.Microsecond} {
		if got := o.Quantile(q); got != want {
			t.Errorf("quantile %v: %v, want %v", q, got, want)
		}
	}
	if o.Throughput() != 250 {
		t.Errorf("throughput %v, want 250", o.Throughput())
	}
	if (outcome{}).Quantile(0.5) != 0 || (outcome{}).Throughput() != 0 {
		t.Error("an empty outcome measures something")
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 100000: "100,000", 1234567: "1,234,567", -4200: "-4,200"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestWebhooksAreSignedTwoKiBConversationUpdates(t *testing.T) {
	targets := []seed.Target{
		{AssistantID: seed.AssistantID(0), OrgID: seed.OrgID(0), WebhookSecret: app.NewSecret("secret-zero-0123456789")},
		{AssistantID: seed.AssistantID(1), OrgID: seed.OrgID(1), WebhookSecret: app.NewSecret("secret-one-0123456789")},
	}
	tr := webhooks("http://127.0.0.1:1", targets, eachOnce(0, 2))
	for i, tg := range targets {
		var v vegeta.Target
		if err := tr(&v); err != nil {
			t.Fatal(err)
		}
		if v.Method != http.MethodPost || v.URL != "http://127.0.0.1:1"+webhookPath || len(v.Body) != webhookSize {
			t.Fatalf("target %d: %s %s, %d bytes", i, v.Method, v.URL, len(v.Body))
		}
		var body struct {
			Message struct {
				Type string `json:"type"`
				Call struct {
					AssistantID string `json:"assistantId"`
				} `json:"call"`
			} `json:"message"`
		}
		if err := json.Unmarshal(v.Body, &body); err != nil {
			t.Fatal(err)
		}
		if body.Message.Type != "conversation-update" || body.Message.Call.AssistantID != tg.AssistantID {
			t.Errorf("target %d: %+v", i, body)
		}
		want := apptest.VapiSignature(tg.WebhookSecret.Reveal(), v.Header.Get("X-Timestamp"), v.Body)
		if v.Header.Get("X-Signature") != want {
			t.Errorf("target %d: the signature is not Vapi's", i)
		}
	}
	var v vegeta.Target
	if err := tr(&v); err != vegeta.ErrNoTargets {
		t.Errorf("after every target: %v, want ErrNoTargets", err)
	}
}

func TestEachOnceHandsOutEveryIndexOnce(t *testing.T) {
	next := eachOnce(5, 505)
	var mu sync.Mutex
	var got []int
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := next(); i >= 0; i = next() {
				mu.Lock()
				got = append(got, i)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(got)
	if len(got) != 500 || got[0] != 5 || got[499] != 504 || len(slices.Compact(got)) != 500 {
		t.Errorf("%d indexes from %d to %d", len(got), got[0], got[len(got)-1])
	}
}

func TestProcReadsCPUAndRSS(t *testing.T) {
	self, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: &exec.Cmd{Process: self}}
	before, err := p.cpuTime()
	if err != nil {
		t.Fatal(err)
	}
	// Spin until the kernel's own account (getrusage) says the process
	// used 100 ms more CPU, however long a busy machine makes that take;
	// /proc must tell the same, to its clock tick.
	used := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := used()
	for limit := time.Now().Add(30 * time.Second); used()-start < 100*time.Millisecond && time.Now().Before(limit); {
	}
	spent := used() - start
	after, err := p.cpuTime()
	if err != nil {
		t.Fatal(err)
	}
	if d := after - before; d < spent-5*clockTick || d > spent+time.Second {
		t.Errorf("/proc says %v of CPU where getrusage says %v", d, spent)
	}
	if rss, err := p.rssBytes(); err != nil || rss < 1<<20 {
		t.Errorf("RSS %d, %v", rss, err)
	}
}
