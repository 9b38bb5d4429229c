package config

import (
	"strings"
	"testing"
	"time"
)

// TestWebhookSecretGrace: WEBHOOK_SECRET_GRACE defaults to 24h, takes a
// Go duration from 1s to 168h, and anything else refuses the start naming
// it.
func TestWebhookSecretGrace(t *testing.T) {
	base := func(v string) map[string]string {
		env := map[string]string{"DATA_DIR": t.TempDir(), "DATABASE_URL": "postgres://x@127.0.0.1:5/db"}
		if v != "" {
			env["WEBHOOK_SECRET_GRACE"] = v
		}
		return env
	}
	for v, want := range map[string]time.Duration{"": 24 * time.Hour, "2h": 2 * time.Hour, "1s": time.Second, "168h": 168 * time.Hour} {
		c, err := Load(lookup(base(v)))
		if err != nil || c.WebhookSecretGrace != want {
			t.Errorf("%q: %v (%v), want %v", v, c.WebhookSecretGrace, err, want)
		}
	}
	for _, v := range []string{"0s", "-1h", "169h", "a day"} {
		if _, err := Load(lookup(base(v))); err == nil || !strings.Contains(err.Error(), "WEBHOOK_SECRET_GRACE") {
			t.Errorf("%q: %v, want a refusal naming WEBHOOK_SECRET_GRACE", v, err)
		}
	}
}
