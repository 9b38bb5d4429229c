package metrics_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"byoc/app"
	"byoc/app/metrics"
)

func newMetrics(t *testing.T) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// family returns one family of the registry.
func family(t *testing.T, reg *prometheus.Registry, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range mfs {
		if f.GetName() == name {
			return f
		}
	}
	t.Fatalf("no %s", name)
	return nil
}

// byLabel returns a counter family's values by the value of one label.
func byLabel(t *testing.T, reg *prometheus.Registry, name, label string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range family(t, reg, name).GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				out[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// TestSeriesExistFromTheStart: every series of the fixed label sets is
// exported at zero before anything happened.
func TestSeriesExistFromTheStart(t *testing.T) {
	_, reg := newMetrics(t)
	for name, want := range map[string]int{
		metrics.Verifications:        len(app.Providers) * 3 * 4,
		metrics.GoogleTokenRefreshes: 4,
		metrics.CredentialReads:      2,
		metrics.WebhookVerifyTime:    1,
		metrics.QueuedMail:           4,
	} {
		if got := len(family(t, reg, name).GetMetric()); got != want {
			t.Errorf("%s: %d series, want %d", name, got, want)
		}
	}
	if _, err := metrics.New(reg); err == nil {
		t.Error("registering the metrics twice in one registry succeeded")
	}
}

// TestRecording: each call counts once where it belongs; values outside
// the fixed sets are dropped, so no caller can grow the label sets.
func TestRecording(t *testing.T) {
	m, reg := newMetrics(t)
	m.Verification("stripe", "save", "ok")
	m.Verification(app.Twilio, "nightly", "ok")
	m.Verification(app.Twilio, "save", "exploded")
	m.GoogleRefresh("maybe")
	m.Verification(app.Twilio, "scheduled", "limited")
	m.GoogleRefresh("refused")
	m.CredentialRead(true)
	m.CredentialRead(true)
	m.CredentialRead(false)
	m.WebhookVerified(3 * time.Millisecond)
	m.QueuedMail("retried")
	m.QueuedMail("retried")
	m.QueuedMail("sent")
	m.QueuedMail("bounced")

	if n := len(family(t, reg, metrics.Verifications).GetMetric()); n != len(app.Providers)*12 {
		t.Errorf("%d verification series", n)
	}
	v := 0.0
	for _, s := range family(t, reg, metrics.Verifications).GetMetric() {
		labels := map[string]string{}
		for _, l := range s.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		v += s.GetCounter().GetValue()
		if s.GetCounter().GetValue() != 0 && (labels["provider"] != "twilio" || labels["trigger"] != "scheduled" || labels["outcome"] != "limited") {
			t.Errorf("counted %v", labels)
		}
	}
	if v != 1 {
		t.Errorf("%v verifications counted, want the one valid call", v)
	}
	if got := byLabel(t, reg, metrics.GoogleTokenRefreshes, "outcome"); len(got) != 4 || got["refused"] != 1 ||
		got["ok"]+got["unavailable"]+got["error"] != 0 {
		t.Errorf("refreshes %v", got)
	}
	if got := byLabel(t, reg, metrics.CredentialReads, "cache"); len(got) != 2 || got["hit"] != 2 || got["miss"] != 1 {
		t.Errorf("credential reads %v", got)
	}
	if got := byLabel(t, reg, metrics.QueuedMail, "outcome"); len(got) != 4 || got["retried"] != 2 || got["sent"] != 1 ||
		got["failed"]+got["dropped"] != 0 {
		t.Errorf("queued mail %v", got)
	}
	h := family(t, reg, metrics.WebhookVerifyTime).GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 1 || h.GetSampleSum() != 0.003 {
		t.Errorf("verification histogram: %d samples, sum %v", h.GetSampleCount(), h.GetSampleSum())
	}
}

// TestDatabaseErrors exports both kinds from the counts it reads on each
// scrape.
func TestDatabaseErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	statement, connect := uint64(3), uint64(1)
	if err := metrics.RegisterDatabase(reg, func() (uint64, uint64) { return statement, connect }); err != nil {
		t.Fatal(err)
	}
	statement++
	if got := byLabel(t, reg, metrics.DatabaseErrors, "kind"); len(got) != 2 || got["statement"] != 4 || got["connect"] != 1 {
		t.Errorf("database errors %v", got)
	}
}
