package web

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics counts requests and times them by method, declared route and
// status, and counts the database statements each request sent, by route.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	queries  *prometheus.HistogramVec
	// queriesByRoute holds the queries histogram of every declared route.
	// It is filled once before the server serves (byRoute) and only read
	// afterwards, so requests look their route up without a lock.
	queriesByRoute map[string]prometheus.Observer
}

// queryBuckets are the upper bounds of the statements-per-request
// histogram. The first is 0: a warm webhook sends none.
var queryBuckets = []float64{0, 1, 2, 4, 6, 8, 12, 16, 24, 32, 64}

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
		queries: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "byoc_db_queries_per_request",
			Help: "Database statements a request sent (transaction control and a tenant transaction's role switch " +
				"included), by declared route.",
			Buckets: queryBuckets,
		}, []string{"route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.queries} {
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

// byRoute makes the queries histogram of each route, and of "unmatched".
// It must run before the server serves: observeQueries reads the map
// without a lock.
func (m *httpMetrics) byRoute(routes []string) {
	m.queriesByRoute = make(map[string]prometheus.Observer, len(routes)+1)
	for _, r := range append(routes, "unmatched") {
		m.queriesByRoute[r] = m.queries.WithLabelValues(r)
	}
}

// observeQueries records how many statements one request of route sent.
func (m *httpMetrics) observeQueries(route string, n int64) {
	o, ok := m.queriesByRoute[route]
	if !ok {
		o = m.queries.WithLabelValues(route)
	}
	o.Observe(float64(n))
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

	hits, misses, items  *prometheus.Desc
	webhooks, storeCalls *prometheus.Desc
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
	}
}

// Describe sends the descriptions of every metric Collect sends.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.hits, c.misses, c.items, c.webhooks, c.storeCalls} {
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
}
