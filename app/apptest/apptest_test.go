package apptest_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"byoc/app/apptest"
)

// recorder keeps the failures reported to it instead of failing the test.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestAssertNoSecret(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		secrets []string
		fails   int
	}{
		{"absent", "key ••••abcd", []string{"sk-live-1234abcd"}, 0},
		{"present", "sent sk-live-1234abcd upstream", []string{"sk-live-1234abcd"}, 1},
		{"each secret counts", "a=s3cret-one b=s3cret-two", []string{"s3cret-one", "s3cret-two", "s3cret-three"}, 2},
		{"empty secrets are skipped", "anything", []string{""}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			apptest.AssertNoSecret(r, "the text", tt.text, tt.secrets...)
			if len(r.errors) != tt.fails {
				t.Fatalf("%d failures %q, want %d", len(r.errors), r.errors, tt.fails)
			}
			for _, e := range r.errors {
				for _, s := range tt.secrets {
					if s != "" && strings.Contains(e, s) {
						t.Errorf("the failure %q shows the whole secret", e)
					}
				}
			}
		})
	}
}

func TestClosedURL(t *testing.T) {
	u := apptest.ClosedURL(t)
	addr, ok := strings.CutPrefix(u, "http://")
	if !ok {
		t.Fatalf("ClosedURL = %q, want an http URL", u)
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Fatalf("something listens on %s", addr)
	}
}
