package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"byoc/db/seed"
)

// Paths the load generator calls.
const (
	webhookPath = "/api/webhooks/vapi"
	statusPath  = "/api/integrations/status"
	signupPath  = "/api/auth/signup"
	readyPath   = "/readyz"
	cacheStats  = "/api/debug/cache-stats"
	metricsPath = "/metrics"
)

// webhookSize is the size of every webhook body sent.
const webhookSize = 2048

// webhookBody returns a 2 KiB conversation update of the assistant: a type
// the server verifies and acknowledges without writing anything.
func webhookBody(assistantID string) []byte {
	head := `{"message":{"type":"conversation-update","call":{"id":"bench-call-` + assistantID[len(assistantID)-12:] +
		`","assistantId":"` + assistantID + `"},"messages":[{"role":"user","message":"`
	const tail = `"}]}}`
	const words = "could I book an appointment for tuesday morning please "
	b := make([]byte, 0, webhookSize)
	b = append(b, head...)
	for len(b) < webhookSize-len(tail) {
		b = append(b, words[:min(len(words), webhookSize-len(tail)-len(b))]...)
	}
	return append(b, tail...)
}

// sign returns Vapi's signature headers of body for secret at time now:
// X-Timestamp (Unix seconds) and X-Signature, the hex HMAC-SHA256 of
// "{timestamp}.{body}" keyed by the secret (app/webhooks/verify.go).
func sign(h http.Header, secret string, body []byte, now time.Time) {
	ts := strconv.FormatInt(now.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	h.Set("X-Timestamp", ts)
	h.Set("X-Signature", hex.EncodeToString(mac.Sum(nil)))
}

// webhooks returns a targeter of signed webhooks for the assistants next()
// picks; next returning -1 ends the attack.
func webhooks(base string, targets []seed.Target, next func() int) vegeta.Targeter {
	url := base + webhookPath
	return func(t *vegeta.Target) error {
		i := next()
		if i < 0 {
			return vegeta.ErrNoTargets
		}
		tg := targets[i]
		t.Method, t.URL = http.MethodPost, url
		t.Body = webhookBody(tg.AssistantID)
		t.Header = http.Header{"Content-Type": {"application/json"}}
		sign(t.Header, tg.WebhookSecret.Reveal(), t.Body, time.Now())
		return nil
	}
}

// randomIn picks indexes in [lo, hi) at random.
func randomIn(lo, hi int) func() int {
	return func() int { return lo + rand.IntN(hi-lo) }
}

// eachOnce picks the indexes [lo, hi) once each, in order, then -1.
func eachOnce(lo, hi int) func() int {
	var n atomic.Int64
	n.Store(int64(lo) - 1)
	return func() int {
		if i := int(n.Add(1)); i < hi {
			return i
		}
		return -1
	}
}

// get returns a targeter of GET path with a bearer token.
func get(base, path, token string) vegeta.Targeter {
	url := base + path
	hdr := http.Header{"Authorization": {"Bearer " + token}, "Accept": {"application/json"}}
	return func(t *vegeta.Target) error {
		t.Method, t.URL, t.Header = http.MethodGet, url, hdr
		return nil
	}
}

// outcome is what one attack measured.
type outcome struct {
	Requests int
	OK       int // answered 200
	Codes    map[int]int
	Errors   int // not 200, or no answer at all
	Elapsed  time.Duration
	// Latencies of every request, sorted.
	Latencies []time.Duration
}

// Throughput is the successful requests per second.
func (o outcome) Throughput() float64 {
	if o.Elapsed <= 0 {
		return 0
	}
	return float64(o.OK) / o.Elapsed.Seconds()
}

// Quantile returns the q-quantile of the latencies (nearest rank).
func (o outcome) Quantile(q float64) time.Duration {
	if len(o.Latencies) == 0 {
		return 0
	}
	i := int(q*float64(len(o.Latencies))+0.5) - 1
	return o.Latencies[min(max(i, 0), len(o.Latencies)-1)]
}

// pace is how an attack sends: as fast as workers allow (rate 0), or at a
// fixed rate with as many workers as that takes.
type pace struct {
	rate    int
	workers uint64
}

// attack runs one vegeta attack for at most d (0: until the targeter ends
// it) and collects what it measured; ctx ending stops it.
func attack(ctx context.Context, targeter vegeta.Targeter, p pace, d time.Duration) outcome {
	// A client of the attack's own, whose connections are closed when it
	// ends: left idle, the server would time them out later on its own.
	tr := &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true,
		DialContext: (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	opts := []func(*vegeta.Attacker){vegeta.Client(client), vegeta.Workers(p.workers), vegeta.MaxBody(4096)}
	var pacer vegeta.Pacer = vegeta.ConstantPacer{} // no pause: the workers' pace
	if p.rate > 0 {
		pacer = vegeta.ConstantPacer{Freq: p.rate, Per: time.Second}
	} else {
		opts = append(opts, vegeta.MaxWorkers(p.workers))
	}
	a := vegeta.NewAttacker(opts...)
	stop := context.AfterFunc(ctx, func() { a.Stop() })
	defer stop()
	o := outcome{Codes: map[int]int{}}
	var first, last time.Time
	for r := range a.Attack(targeter, pacer, d, "") {
		if r.Method == "" { // the targeter ended the attack: no request was sent
			continue
		}
		o.Requests++
		o.Codes[int(r.Code)]++
		if r.Code == http.StatusOK && r.Error == "" {
			o.OK++
		} else {
			o.Errors++
		}
		o.Latencies = append(o.Latencies, r.Latency)
		if first.IsZero() || r.Timestamp.Before(first) {
			first = r.Timestamp
		}
		if end := r.End(); end.After(last) {
			last = end
		}
	}
	o.Elapsed = last.Sub(first)
	slices.Sort(o.Latencies)
	return o
}
