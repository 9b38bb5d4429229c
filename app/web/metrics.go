package web

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics counts requests and times them by method, declared route and
// status.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "byoc_http_requests_total",
			Help: "HTTP requests by method, declared route (\"unmatched\" for none) and status code.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "byoc_http_request_duration_seconds",
			Help:    "HTTP request latency by method, declared route and status code.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route", "status"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe counts one request. The route must be a declared route's path or
// "unmatched", never the raw request path.
func (m *httpMetrics) observe(method, route string, status int, elapsed time.Duration) {
	code := strconv.Itoa(status)
	method = methodLabel(method)
	m.requests.WithLabelValues(method, route, code).Inc()
	m.duration.WithLabelValues(method, route, code).Observe(elapsed.Seconds())
}

// methodLabel returns the method as a label value: a constant for the
// standard methods and "other" for any other, so clients cannot create
// label values at will. It never returns its argument: Fiber's c.Method()
// points into a buffer that the next request on the connection overwrites,
// and a label value must outlive the request (an aliased one changes under
// the registry, which then refuses to serve /metrics for duplicate series).
func methodLabel(m string) string {
	for _, known := range []string{fiber.MethodGet, fiber.MethodHead, fiber.MethodPost, fiber.MethodPut, fiber.MethodPatch,
		fiber.MethodDelete, fiber.MethodOptions, fiber.MethodConnect, fiber.MethodTrace} {
		if m == known {
			return known
		}
	}
	return "other"
}

// statsCollector exports the caches' and the webhook handler's own
// counters on every scrape: it reads their Stats snapshots, so nothing is
// counted twice and the hot paths pay nothing for the export.
type statsCollector struct {
	creds CredentialCache
	hooks Webhooks

	hits, misses, items    *prometheus.Desc
	webhooks, storeCalls   *prometheus.Desc
	latency, latencyWindow *prometheus.Desc
}

// Names of the caches in the cache label.
const (
	cacheCredentialConfigs  = "credential_configs"
	cacheCredentialStatuses = "credential_statuses"
	cacheWebhookMappings    = "webhook_mappings"
	cacheWebhookSecrets     = "webhook_secrets"
	cacheWebhookDeliveries  = "webhook_deliveries"
)

func newStatsCollector(creds CredentialCache, hooks Webhooks) *statsCollector {
	cache := []string{"cache"}
	return &statsCollector{
		creds: creds,
		hooks: hooks,
		hits: prometheus.NewDesc("byoc_cache_hits_total",
			"Cache lookups answered from memory, by cache (a webhook_deliveries hit is a duplicate delivery).", cache, nil),
		misses: prometheus.NewDesc("byoc_cache_misses_total",
			"Cache lookups that went on to the database, by cache.", cache, nil),
		items: prometheus.NewDesc("byoc_cache_items",
			"Entries a cache holds now, expired ones included until the next cleanup, by cache.", cache, nil),
		webhooks: prometheus.NewDesc("byoc_webhooks_total",
			"Vapi webhooks received, by outcome (verified, invalid_signature, stale_timestamp, unknown_assistant, duplicate, error, bad_request).",
			[]string{"outcome"}, nil),
		storeCalls: prometheus.NewDesc("byoc_webhook_store_calls_total",
			"Calls of the webhook handler into database-backed stores (cache misses, event recording, last-used updates).", nil, nil),
		latency: prometheus.NewDesc("byoc_webhook_verify_latency_seconds",
			"Resolution plus signature verification time of the most recent webhooks, by quantile (absent before the first webhook).",
			[]string{"quantile"}, nil),
		latencyWindow: prometheus.NewDesc("byoc_webhook_verify_latency_samples",
			"How many recent webhooks byoc_webhook_verify_latency_seconds summarizes.", nil, nil),
	}
}

// Describe sends the descriptions of every metric Collect sends.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.hits, c.misses, c.items, c.webhooks, c.storeCalls, c.latency, c.latencyWindow} {
		ch <- d
	}
}

// Collect reads the current statistics and sends them as constant metrics.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	cache := func(name string, hits, misses uint64, items int) {
		ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(hits), name)
		ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(misses), name)
		ch <- prometheus.MustNewConstMetric(c.items, prometheus.GaugeValue, float64(items), name)
	}
	cs := c.creds.Stats()
	cache(cacheCredentialConfigs, cs.Configs.Hits, cs.Configs.Misses, cs.Configs.Items)
	cache(cacheCredentialStatuses, cs.Statuses.Hits, cs.Statuses.Misses, cs.Statuses.Items)
	hs := c.hooks.CacheStats()
	cache(cacheWebhookMappings, hs.Mappings.Hits, hs.Mappings.Misses, hs.Mappings.Items)
	cache(cacheWebhookSecrets, hs.Secrets.Hits, hs.Secrets.Misses, hs.Secrets.Items)
	cache(cacheWebhookDeliveries, hs.Deliveries.Hits, hs.Deliveries.Misses, hs.Deliveries.Items)

	ws := c.hooks.Stats()
	for outcome, n := range ws.Outcomes {
		ch <- prometheus.MustNewConstMetric(c.webhooks, prometheus.CounterValue, float64(n), outcome)
	}
	ch <- prometheus.MustNewConstMetric(c.storeCalls, prometheus.CounterValue, float64(ws.StoreCalls))
	ch <- prometheus.MustNewConstMetric(c.latencyWindow, prometheus.GaugeValue, float64(ws.Latency.Samples))
	if ws.Latency.Samples > 0 {
		for _, q := range []struct {
			label string
			value time.Duration
		}{{"0.5", ws.Latency.P50}, {"0.9", ws.Latency.P90}, {"0.99", ws.Latency.P99}} {
			ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, q.value.Seconds(), q.label)
		}
	}
}
