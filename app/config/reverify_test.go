package config

import (
	"strings"
	"testing"
	"time"
)

func TestReverifyInterval(t *testing.T) {
	base := func(v string, set bool) map[string]string {
		env := map[string]string{"DATA_DIR": t.TempDir(), "DATABASE_URL": "postgres://x@127.0.0.1:5/db"}
		if set {
			env["REVERIFY_INTERVAL"] = v
		}
		return env
	}
	for _, tt := range []struct {
		name string
		v    string
		set  bool
		want time.Duration
	}{
		{"default", "", false, 24 * time.Hour},
		{"off", "0", true, 0},
		{"hours", "6h", true, 6 * time.Hour},
		{"shortest", "1m", true, time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(lookup(base(tt.v, tt.set)))
			if err != nil {
				t.Fatal(err)
			}
			if c.ReverifyInterval != tt.want {
				t.Fatalf("ReverifyInterval = %v, want %v", c.ReverifyInterval, tt.want)
			}
		})
	}
	for _, v := range []string{"daily", "-1h", "30s", "1", "2161h"} {
		t.Run("refused "+v, func(t *testing.T) {
			_, err := Load(lookup(base(v, true)))
			if err == nil || !strings.Contains(err.Error(), "REVERIFY_INTERVAL") {
				t.Fatalf("REVERIFY_INTERVAL=%q: err %v, want it refused by name", v, err)
			}
		})
	}
}
