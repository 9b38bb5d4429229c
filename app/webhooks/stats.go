package webhooks

import (
	"encoding/json"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Outcomes of a webhook, as counted in Stats and logged.
const (
	// OutcomeVerified: authenticated and handled (recorded, tools run, or
	// acknowledged).
	OutcomeVerified = "verified"
	// OutcomeInvalidSignature: no credential matched the org's secret, or
	// none was presented.
	OutcomeInvalidSignature = "invalid_signature"
	// OutcomeStaleTimestamp: a correct HMAC signature whose timestamp was
	// outside the tolerance (a replay or a wrong clock).
	OutcomeStaleTimestamp = "stale_timestamp"
	// OutcomeUnknownAssistant: no org has the assistant.
	OutcomeUnknownAssistant = "unknown_assistant"
	// OutcomeDuplicate: a delivery already handled, answered without
	// handling it again.
	OutcomeDuplicate = "duplicate"
	// OutcomeError: a store could not be read or written; answered 503.
	OutcomeError = "error"
	// OutcomeBadRequest: not JSON, no assistant id, or too large.
	OutcomeBadRequest = "bad_request"
)

// outcomes lists every outcome in a fixed order.
var outcomes = []string{OutcomeVerified, OutcomeInvalidSignature, OutcomeStaleTimestamp, OutcomeUnknownAssistant,
	OutcomeDuplicate, OutcomeError, OutcomeBadRequest}

// DefaultLatencySamples is how many recent latencies Stats summarizes.
const DefaultLatencySamples = 4096

// Stats is a snapshot of what the handler has done since it started.
type Stats struct {
	// Outcomes counts webhooks by outcome; every outcome is present.
	Outcomes map[string]uint64 `json:"outcomes"`
	// Latency summarizes how long resolution plus verification took (the
	// part before any event handling) over the most recent webhooks.
	Latency Latency `json:"latency"`
	// StoreCalls counts calls into the database-backed dependencies:
	// assistant resolution and the Vapi secret on misses of the handler's
	// own caches, event recording, last_used_at updates and the Twilio
	// config of send_sms. Each may be a database round trip. A warm webhook
	// that writes nothing adds none.
	StoreCalls uint64 `json:"storeCalls"`
}

// Latency summarizes a window of durations. In JSON the durations are
// milliseconds.
type Latency struct {
	Samples int
	P50     time.Duration
	P90     time.Duration
	P99     time.Duration
	Max     time.Duration
}

// MarshalJSON writes the durations as fractional milliseconds.
func (l Latency) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return json.Marshal(struct {
		Samples int     `json:"samples"`
		P50     float64 `json:"p50Ms"`
		P90     float64 `json:"p90Ms"`
		P99     float64 `json:"p99Ms"`
		Max     float64 `json:"maxMs"`
	}{l.Samples, ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max)})
}

// stats counts outcomes and keeps a ring of recent latencies.
type stats struct {
	counts     map[string]*atomic.Uint64 // fixed at creation: read without a lock
	storeCalls atomic.Uint64

	mu   sync.Mutex
	ring []time.Duration
	next int
	full bool
}

func newStats(samples int) *stats {
	s := &stats{counts: make(map[string]*atomic.Uint64, len(outcomes)), ring: make([]time.Duration, samples)}
	for _, o := range outcomes {
		s.counts[o] = new(atomic.Uint64)
	}
	return s
}

func (s *stats) count(outcome string) {
	if c, ok := s.counts[outcome]; ok {
		c.Add(1)
	}
}

func (s *stats) observe(d time.Duration) {
	s.mu.Lock()
	s.ring[s.next] = d
	s.next++
	if s.next == len(s.ring) {
		s.next, s.full = 0, true
	}
	s.mu.Unlock()
}

// observeVerify records how long one resolution plus signature check took:
// in Stats' window and in Options.Metrics.
func (h *Handler) observeVerify(d time.Duration) {
	h.stats.observe(d)
	h.opts.Metrics.WebhookVerified(d)
}

// Stats returns the outcome counts, the latency percentiles and the store
// call count.
func (h *Handler) Stats() Stats {
	s := h.stats
	out := Stats{Outcomes: make(map[string]uint64, len(outcomes)), StoreCalls: s.storeCalls.Load()}
	for o, c := range s.counts {
		out.Outcomes[o] = c.Load()
	}
	s.mu.Lock()
	n := s.next
	if s.full {
		n = len(s.ring)
	}
	window := slices.Clone(s.ring[:n])
	s.mu.Unlock()
	out.Latency = summarize(window)
	return out
}

// summarize returns the nearest-rank percentiles of d (which it sorts).
func summarize(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(d)))) - 1
		return d[max(0, min(i, len(d)-1))]
	}
	return Latency{Samples: len(d), P50: rank(0.50), P90: rank(0.90), P99: rank(0.99), Max: d[len(d)-1]}
}
