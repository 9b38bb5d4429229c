package web_test

import (
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"byoc/app/apptest"
	"byoc/app/webhooks"
)

// scrape reads /metrics and returns the families by name.
func (e *env) scrape() map[string]*dto.MetricFamily {
	e.t.Helper()
	res := e.do(request(http.MethodGet, "/metrics", nil))
	if res.StatusCode != http.StatusOK {
		e.t.Fatalf("/metrics: %d", res.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(res.body))
	if err != nil {
		e.t.Fatalf("/metrics does not parse: %v", err)
	}
	return families
}

// histogram returns the count and sum of the series of a histogram family
// whose labels include want.
func histogram(t *testing.T, families map[string]*dto.MetricFamily, name string, want map[string]string) (uint64, float64) {
	t.Helper()
	f, ok := families[name]
	if !ok || f.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("no histogram %s in /metrics", name)
	}
	for _, m := range f.GetMetric() {
		if hasLabels(m, want) {
			return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
		}
	}
	t.Fatalf("%s has no series %v", name, want)
	return 0, 0
}

// value returns the value of the counter or gauge series of a family
// whose labels include want.
func value(t *testing.T, families map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f, ok := families[name]
	if !ok {
		t.Fatalf("no %s in /metrics", name)
	}
	for _, m := range f.GetMetric() {
		if hasLabels(m, want) {
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("%s has no series %v", name, want)
	return 0
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// series returns the value of each series of a family by the value of one
// label ("" for a family without labels).
func series(t *testing.T, families map[string]*dto.MetricFamily, name, label string) map[string]float64 {
	t.Helper()
	f, ok := families[name]
	if !ok {
		t.Fatalf("no %s in /metrics", name)
	}
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		key := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				key = l.GetValue()
			}
		}
		switch {
		case m.Counter != nil:
			out[key] = m.GetCounter().GetValue()
		case m.Gauge != nil:
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestCacheAndWebhookMetrics(t *testing.T) {
	e := newEnv(t)
	secret := "whsec-" + apptest.RandomHex(16)
	b, token, assistant := connectVapi(t, e, secret)
	allowSecretHeader(t, b, token)
	b.status(token)
	b.status(token)
	for range 3 {
		e.do(request(http.MethodPost, "/api/webhooks/vapi", vapiEvent(assistant, "speech-update"), webhooks.HeaderVapiSecret, secret))
	}
	e.do(request(http.MethodPost, "/api/webhooks/vapi", vapiEvent(assistant, "speech-update"), webhooks.HeaderVapiSecret, "nope"))
	families := e.scrape()

	t.Run("caches", func(t *testing.T) {
		hits := series(t, families, "byoc_cache_hits_total", "cache")
		misses := series(t, families, "byoc_cache_misses_total", "cache")
		items := series(t, families, "byoc_cache_items", "cache")
		for _, c := range []string{"credential_configs", "credential_statuses", "webhook_mappings", "webhook_secrets", "webhook_deliveries"} {
			for name, s := range map[string]map[string]float64{"hits": hits, "misses": misses, "items": items} {
				if _, ok := s[c]; !ok {
					t.Errorf("no %s series for the %s cache", name, c)
				}
			}
		}
		// The first webhook misses the mapping and the secret; the next
		// three find both in memory.
		if hits["webhook_mappings"] < 3 || misses["webhook_mappings"] < 1 || items["webhook_mappings"] < 1 {
			t.Errorf("webhook_mappings: %v hits, %v misses, %v items", hits["webhook_mappings"], misses["webhook_mappings"], items["webhook_mappings"])
		}
		if hits["webhook_secrets"] < 3 || items["webhook_secrets"] < 1 {
			t.Errorf("webhook_secrets: %v hits, %v items", hits["webhook_secrets"], items["webhook_secrets"])
		}
		if hits["credential_statuses"]+misses["credential_statuses"] < 2 {
			t.Errorf("credential_statuses: %v hits, %v misses after two status reads", hits["credential_statuses"], misses["credential_statuses"])
		}
	})
	t.Run("webhook outcomes", func(t *testing.T) {
		outcomes := series(t, families, "byoc_webhooks_total", "outcome")
		want := map[string]float64{"verified": 3, "invalid_signature": 1, "stale_timestamp": 0, "unknown_assistant": 0,
			"duplicate": 0, "error": 0, "bad_request": 0}
		for o, n := range want {
			if got, ok := outcomes[o]; !ok || got != n {
				t.Errorf("outcome %s: %v (present %v), want %v", o, got, ok, n)
			}
		}
		if calls := series(t, families, "byoc_webhook_store_calls_total", "")[""]; calls < 2 {
			t.Errorf("store calls %v, want the cold lookups and the event records", calls)
		}
	})
	t.Run("verification time", func(t *testing.T) {
		count, sum := histogram(t, families, "byoc_webhook_verify_duration_seconds", nil)
		if count != 4 || sum <= 0 || sum > 4 {
			t.Errorf("%d webhooks verified in %v s, want the 4 webhooks", count, sum)
		}
	})
}

func TestHTTPMetricLabelsOutliveTheRequest(t *testing.T) {
	e := newEnv(t)
	// Fiber's c.Method() points into a buffer the next request overwrites:
	// a label value taken from it changed under the registry, which then
	// refused to serve /metrics (duplicate series).
	for _, m := range []string{"POST", "DELETE", "PATCH", "OPTIONS", "GET", "PUT", "POST", "GET"} {
		for _, path := range []string{"/healthz", "/api/nothing", "/login"} {
			e.do(request(m, path, nil))
		}
	}
	for range 2 {
		methods := map[string]bool{}
		f := e.scrape()["byoc_http_requests_total"]
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "method" {
					methods[l.GetValue()] = true
				}
			}
		}
		for m := range methods {
			if !map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true, "HEAD": true}[m] {
				t.Errorf("method label %q", m)
			}
		}
		if len(methods) < 6 {
			t.Errorf("method labels %v, want the six methods sent", methods)
		}
	}
}
