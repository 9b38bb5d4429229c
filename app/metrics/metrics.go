// Package metrics holds the Prometheus metrics that the services record
// into: verifications, Google token refreshes, credential reads, the
// webhook verification time, the queued mail's outcomes and the database's
// failures. The services know
// none of it: each declares the small interface it records through, which
// Metrics implements, and the composition root registers one Metrics per
// process in the registry the web server serves at /metrics.
//
// Every series of a fixed label set exists from the start, at zero, so
// rates and ratios over them are defined before the first event.
package metrics

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"byoc/app"
	"byoc/app/alerts"
	"byoc/app/credentials"
	"byoc/app/integrations"
)

// Names of the metrics this package exports.
const (
	Verifications        = "byoc_verifications_total"
	GoogleTokenRefreshes = "byoc_google_token_refresh_total"
	CredentialReads      = "byoc_credential_reads_total"
	WebhookVerifyTime    = "byoc_webhook_verify_duration_seconds"
	DatabaseErrors       = "byoc_db_errors_total"
	QueuedMail           = "byoc_queued_mail_total"
)

// WebhookVerifyBuckets are the upper bounds (seconds) of the webhook
// verification histogram: a warm webhook takes tens of microseconds, a
// cold one a database round trip or two.
var WebhookVerifyBuckets = []float64{.000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1,
	.25, .5, 1, 2.5}

// NewRegistry returns a registry holding the Go runtime and process
// collectors, for the server's /metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Metrics records what the services report. It implements
// integrations.Metrics, credentials.Metrics, webhooks.Metrics and
// alerts.Metrics, and is
// safe for concurrent use; the warm webhook path's calls are lock-free
// atomic adds.
type Metrics struct {
	verifications *prometheus.CounterVec
	refreshes     map[string]prometheus.Counter // fixed at creation: read without a lock
	readHit       prometheus.Counter
	readMiss      prometheus.Counter
	webhookVerify prometheus.Histogram
	queuedMail    map[string]prometheus.Counter // fixed at creation: read without a lock
}

// New makes the metrics and registers them in reg; it fails when reg
// already holds metrics of the same names.
func New(reg prometheus.Registerer) (*Metrics, error) {
	verifications := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: Verifications,
		Help: "Checks of credentials with their provider, by provider, trigger (save, test, scheduled) and outcome " +
			"(ok, limited: valid with limited scope, refused: the provider said no, unavailable: the provider " +
			"could not be asked).",
	}, []string{"provider", "trigger", "outcome"})
	refreshes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: GoogleTokenRefreshes,
		Help: "Google access token refreshes, by outcome (ok, refused: the grant is gone and the org must reconnect, " +
			"unavailable: Google could not be reached or answered an error, error: anything else).",
	}, []string{"outcome"})
	reads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: CredentialReads,
		Help: "Reads of an org's decrypted credentials (configs, webhook secrets), by cache: hit (answered from " +
			"memory) or miss (read from the database and decrypted).",
	}, []string{"cache"})
	verify := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    WebhookVerifyTime,
		Help:    "Time a Vapi webhook took to resolve its org and check its signature, before any event handling.",
		Buckets: WebhookVerifyBuckets,
	})
	queued := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: QueuedMail,
		Help: "Attempts at the platform's queued e-mail (break notices), by outcome (sent, retried: failed and due " +
			"again after a backoff, failed: refused or given up, dropped: this server sends no e-mail).",
	}, []string{"outcome"})
	for _, c := range []prometheus.Collector{verifications, refreshes, reads, verify, queued} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, p := range app.Providers {
		for _, t := range integrations.Triggers {
			for _, o := range integrations.VerificationOutcomes {
				verifications.WithLabelValues(string(p), t, o)
			}
		}
	}
	m := &Metrics{
		verifications: verifications,
		refreshes:     make(map[string]prometheus.Counter, len(credentials.RefreshOutcomes)),
		readHit:       reads.WithLabelValues("hit"),
		readMiss:      reads.WithLabelValues("miss"),
		webhookVerify: verify,
	}
	for _, o := range credentials.RefreshOutcomes {
		m.refreshes[o] = refreshes.WithLabelValues(o)
	}
	m.queuedMail = make(map[string]prometheus.Counter, len(alerts.Outcomes))
	for _, o := range alerts.Outcomes {
		m.queuedMail[o] = queued.WithLabelValues(o)
	}
	return m, nil
}

// Verification counts one verification (integrations.Metrics). Providers,
// triggers and outcomes outside the fixed sets are not counted, so no
// caller can add series.
func (m *Metrics) Verification(provider app.Provider, trigger, outcome string) {
	p, err := app.ParseProvider(string(provider))
	if err != nil || !member(integrations.Triggers, trigger) ||
		!member(integrations.VerificationOutcomes, outcome) {
		return
	}
	m.verifications.WithLabelValues(string(p), trigger, outcome).Inc()
}

// GoogleRefresh counts one Google token refresh (credentials.Metrics); an
// outcome outside credentials.RefreshOutcomes is not counted.
func (m *Metrics) GoogleRefresh(outcome string) {
	if c, ok := m.refreshes[outcome]; ok {
		c.Inc()
	}
}

// QueuedMail counts one attempt at a queued notice (alerts.Metrics); an
// outcome outside alerts.Outcomes is not counted.
func (m *Metrics) QueuedMail(outcome string) {
	if c, ok := m.queuedMail[outcome]; ok {
		c.Inc()
	}
}

// CredentialRead counts one credential read (credentials.Metrics,
// webhooks.Metrics).
func (m *Metrics) CredentialRead(hit bool) {
	if hit {
		m.readHit.Inc()
		return
	}
	m.readMiss.Inc()
}

// WebhookVerified observes one webhook's resolution plus signature check
// (webhooks.Metrics).
func (m *Metrics) WebhookVerified(d time.Duration) { m.webhookVerify.Observe(d.Seconds()) }

func member(set []string, v string) bool { return slices.Contains(set, v) }

// DatabaseErrorCounts returns the database's failure counts since it was
// opened: statements that failed, and failures to get a connection.
type DatabaseErrorCounts func() (statement, connect uint64)

// RegisterDatabase registers byoc_db_errors_total{kind="statement"|"connect"}
// in reg, read from counts on every scrape (the database adapter keeps the
// counts; the export costs its queries nothing).
func RegisterDatabase(reg prometheus.Registerer, counts DatabaseErrorCounts) error {
	return reg.Register(&dbCollector{counts: counts, desc: prometheus.NewDesc(DatabaseErrors,
		"Database failures: kind statement (a statement failed on the server's side, timed out or lost its "+
			"connection; integrity-constraint refusals such as a duplicate key, and statements whose caller gave "+
			"up, are not counted) or connect (no connection could be had).",
		[]string{"kind"}, nil)})
}

type dbCollector struct {
	counts DatabaseErrorCounts
	desc   *prometheus.Desc
}

// Describe sends the one description.
func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect sends both counts.
func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	statement, connect := c.counts()
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(statement), "statement")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(connect), "connect")
}
