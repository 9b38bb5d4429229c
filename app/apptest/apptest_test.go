package apptest_test

import (
	"encoding/base64"
	"encoding/hex"
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

func TestAssertNoFragment(t *testing.T) {
	const secret = "sk_live_4f9a0c3b7e21"
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name  string
		text  string
		fails int
	}{
		{"absent", "key ••••7e21 refused", 0},
		{"shorter than a fragment", "starts sk_live_4", 0},
		{"whole", "sent " + secret, 1},
		{"upper-cased", "KEY " + strings.ToUpper(secret) + " REFUSED", 1},
		{"cut short", "key starting sk_live_4f9 refused", 1},
		{"base64", "got " + b64(secret), 1},
		{"base64 inside Basic credentials", "Authorization: Basic " + b64("AC0123:"+secret), 1},
		{"URL-safe base64", "got " + strings.NewReplacer("+", "-", "/", "_").Replace(b64("??"+secret)), 1},
		{"hex", "got " + hex.EncodeToString([]byte(secret)), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			apptest.AssertNoFragment(r, "the text", tt.text, secret, "")
			if len(r.errors) != tt.fails {
				t.Fatalf("%d failures %q, want %d", len(r.errors), r.errors, tt.fails)
			}
			for _, e := range r.errors {
				if strings.Contains(e, secret) {
					t.Errorf("the failure %q shows the whole secret", e)
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
