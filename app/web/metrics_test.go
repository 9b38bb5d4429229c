package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
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

// Metric references in PromQL text: a metric name of ours (or of the Go and
// process collectors) with the label matchers that follow it.
var (
	metricRef    = regexp.MustCompile(`\b((?:byoc|go|process)_[a-zA-Z0-9_]*[a-zA-Z0-9])(\{[^{}]*\})?`)
	labelMatcher = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"`)
	regexMeta    = regexp.MustCompile(`[.*+?()\[\]{}^$\\]`)
)

// unexported lists what PromQL text names that /metrics (families) does
// not export: metric names (a histogram's _bucket, _sum and _count series
// count as its family), label names, and the label values an = or =~
// matcher names literally (values holding a Grafana variable or a regular
// expression are not checked). job and instance are Prometheus' own labels.
func unexported(families map[string]*dto.MetricFamily, text string) []string {
	var out []string
	for _, m := range metricRef.FindAllStringSubmatch(text, -1) {
		name, f := m[1], families[m[1]]
		series := false
		if f == nil {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && families[base] != nil &&
					families[base].GetType() == dto.MetricType_HISTOGRAM {
					f, series = families[base], suffix == "_bucket"
				}
			}
		}
		if f == nil {
			out = append(out, "metric "+name)
			continue
		}
		values := map[string]map[string]bool{}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if values[l.GetName()] == nil {
					values[l.GetName()] = map[string]bool{}
				}
				values[l.GetName()][l.GetValue()] = true
			}
		}
		for _, lm := range labelMatcher.FindAllStringSubmatch(m[2], -1) {
			label, op, v := lm[1], lm[2], lm[3]
			if label == "job" || label == "instance" || series && label == "le" {
				continue
			}
			if values[label] == nil {
				out = append(out, fmt.Sprintf("label %s of %s", label, name))
				continue
			}
			if op != "=" && op != "=~" || strings.Contains(v, "$") {
				continue
			}
			alternatives := []string{v}
			if op == "=~" {
				alternatives = strings.Split(v, "|")
			}
			for _, a := range alternatives {
				if (op == "=" || !regexMeta.MatchString(a)) && !values[label][a] {
					out = append(out, fmt.Sprintf("%s=%q of %s", label, a, name))
				}
			}
		}
	}
	return out
}

// dashboardQueries returns every query of a Grafana dashboard: the panels'
// expressions and the template variables' queries.
func dashboardQueries(t *testing.T, raw []byte) []string {
	t.Helper()
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	var out []string
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				walk(c, k)
			}
		case []any:
			for _, c := range v {
				walk(c, key)
			}
		case string:
			if key == "expr" || key == "query" || key == "definition" {
				out = append(out, v)
			}
		}
	}
	walk(doc, "")
	return out
}

// TestDeployFilesNameExportedMetrics scrapes a real server after traffic
// that gives every family a series and checks that the alert rules and the
// Grafana dashboard name only metrics, labels and label values it exports,
// and that the dashboard shows every metric of ours.
func TestDeployFilesNameExportedMetrics(t *testing.T) {
	e := newEnv(t)
	secret := "whsec-" + apptest.RandomHex(16)
	b, token, assistant := connectVapi(t, e, secret)
	allowSecretHeader(t, b, token)
	b.status(token)
	e.do(request(http.MethodPost, "/api/webhooks/vapi", vapiEvent(assistant, "speech-update"), webhooks.HeaderVapiSecret, secret))
	e.do(request(http.MethodGet, "/readyz", nil))
	families := e.scrape()

	t.Run("the checks fail on what is not exported", func(t *testing.T) {
		bad := `rate(byoc_nothing_total[5m]) + byoc_webhooks_total{outcome="exploded", color="red"} +
			byoc_http_requests_total{route="/nowhere"} + byoc_cache_hits_total_bucket{le="1"}`
		if got := unexported(families, bad); len(got) != 5 {
			t.Errorf("found %q, want the 5 names that are not exported", got)
		}
		good := `histogram_quantile(0.99, sum by (le) (rate(byoc_webhook_verify_duration_seconds_bucket{job=~"$job", le!=""}[5m])))
			/ byoc_webhooks_total{outcome=~"verified|error", instance="x"} + byoc_http_requests_total{status=~"5..", route="/readyz"}`
		if got := unexported(families, good); len(got) != 0 {
			t.Errorf("found %q in exported metrics", got)
		}
	})

	t.Run("alert rules", func(t *testing.T) {
		raw, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
		if err != nil {
			t.Fatal(err)
		}
		rules := string(raw)
		if n := len(metricRef.FindAllString(rules, -1)); n < 10 {
			t.Fatalf("only %d metric names in the rules", n)
		}
		for _, p := range unexported(families, rules) {
			t.Errorf("the rules use %s, which /metrics does not export", p)
		}
		if strings.Contains(rules, "\t") {
			t.Error("the rules contain a tab, which YAML does not allow for indentation")
		}
	})

	t.Run("dashboard", func(t *testing.T) {
		raw, err := os.ReadFile("../../deploy/grafana/byoc.json")
		if err != nil {
			t.Fatal(err)
		}
		queries := dashboardQueries(t, raw)
		if len(queries) < 10 {
			t.Fatalf("only %d queries in the dashboard", len(queries))
		}
		shown := map[string]bool{}
		for _, q := range queries {
			for _, p := range unexported(families, q) {
				t.Errorf("the dashboard uses %s, which /metrics does not export: %s", p, q)
			}
			for _, m := range metricRef.FindAllStringSubmatch(q, -1) {
				name := m[1]
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if base, ok := strings.CutSuffix(name, suffix); ok && families[base] != nil {
						name = base
					}
				}
				shown[name] = true
			}
		}
		for name := range families {
			if strings.HasPrefix(name, "byoc_") && !shown[name] {
				t.Errorf("the dashboard does not show %s", name)
			}
		}
	})
}
