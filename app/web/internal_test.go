package web

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"byoc/app"
)

// unreadRequestPath reads the path from fasthttp's error about headers it
// could not read, and from nothing else.
func TestUnreadRequestPath(t *testing.T) {
	read := func(raw string) error {
		var req fasthttp.Request
		err := req.Read(bufio.NewReaderSize(strings.NewReader(raw), 4096))
		if err == nil {
			t.Fatalf("fasthttp read %q", raw)
		}
		return err
	}
	big := "\r\nCookie: a=" + strings.Repeat("A", 8<<10) + "\r\n\r\n"
	tests := []struct {
		name string
		err  error
		path string
		ok   bool
	}{
		{"API path", read("GET /api/integrations/status HTTP/1.1\r\nHost: x" + big), "/api/integrations/status", true},
		{"query dropped", read("POST /API/x?token=abc HTTP/1.1\r\nHost: x" + big), "/API/x", true},
		{"leading empty lines", read("\r\n\r\nGET /api/y HTTP/1.1\r\nHost: x" + big), "/api/y", true},
		// fasthttp quotes the first 200 bytes: enough to tell /api/.
		{"a long request line keeps its start", read("GET /api/" + strings.Repeat("a", 8<<10) + " HTTP/1.1" + big),
			"/api/" + strings.Repeat("a", 191), true},
		{"not a path", read("GET http://x/api HTTP/1.1\r\nHost: x" + big), "", false},
		{"another read error", read("GET /api/z HTTP/1.1\r\nHost x\r\n\r\n"), "", false},
		{"another error", errors.New(`contents: "GET /api/ HTTP/1.1"`), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if path, ok := unreadRequestPath(tt.err); path != tt.path || ok != tt.ok {
				t.Errorf("unreadRequestPath(%.80q) = %q, %v; want %q, %v", tt.err, path, ok, tt.path, tt.ok)
			}
		})
	}
}

func TestSafeNext(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"/dashboard/integrations", "/dashboard/integrations"},
		{"/dashboard/integrations?tab=vapi#x", "/dashboard/integrations?tab=vapi#x"},
		{"//evil.example", ""},
		{"/\\evil.example", ""},
		{"https://evil.example/", ""},
		{"javascript:alert(1)", ""},
		{"dashboard", ""},
		{"/a\r\nSet-Cookie: x=y", ""},
		{"/" + string(make([]byte, 600)), ""},
	}
	for _, tt := range tests {
		if got := safeNext(tt.in); got != tt.want {
			t.Errorf("safeNext(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		header, token string
		ok            bool
	}{
		{"Bearer abc.def.ghi", "abc.def.ghi", true},
		{"bearer   abc", "abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Basic dXNlcjpwYXNz", "", false},
		{"abc.def.ghi", "", false},
	}
	for _, tt := range tests {
		token, ok := bearerToken(tt.header)
		if token != tt.token || ok != tt.ok {
			t.Errorf("bearerToken(%q) = %q %v, want %q %v", tt.header, token, ok, tt.token, tt.ok)
		}
	}
}

func TestRequestID(t *testing.T) {
	if got := requestID("trace-0123456789"); got != "trace-0123456789" {
		t.Errorf("a plain incoming id was replaced: %q", got)
	}
	for _, bad := range []string{"", "short", "has space in it", "<script>alert(1)</script>", string(make([]byte, 65))} {
		got := requestID(bad)
		if got == bad || len(got) != 24 {
			t.Errorf("requestID(%q) = %q, want a new 24-character id", bad, got)
		}
	}
	// New ids are plain (kept when sent back in) and never repeat.
	seen := map[string]bool{}
	for range 10000 {
		id := requestID("")
		if seen[id] || requestID(id) != id {
			t.Fatalf("id %q repeated or not plain", id)
		}
		seen[id] = true
	}
}

func TestEveryCodeHasAStatus(t *testing.T) {
	for code, want := range map[string]int{
		"validation_failed": 400, "unauthorized": 401, "invalid_credentials": 401, "forbidden": 403,
		"not_found": 404, "not_configured": 404, "unknown_provider": 404, "email_taken": 409, "conflict": 409,
		"invalid_signature": 401, "unknown_assistant": 404, "method_not_allowed": 405,
		"payload_too_large": 413, "verification_failed": 422, "rate_limited": 429, "provider_unavailable": 502,
		"unavailable": 503, "internal": 500, "something_new": 500,
	} {
		if got := statusOf(code); got != want {
			t.Errorf("statusOf(%q) = %d, want %d", code, got, want)
		}
	}
}

func TestToAppError(t *testing.T) {
	timeout := &app.Error{Code: app.EProviderUnavailable, Message: "Vapi did not answer in time.", Cause: context.DeadlineExceeded}
	tests := []struct {
		name string
		err  error
		code string
	}{
		{"domain error", app.Errorf(app.ENotConfigured, "Nothing stored."), app.ENotConfigured},
		{"domain error wins over its deadline cause", timeout, app.EProviderUnavailable},
		{"wrapped domain error", fmt.Errorf("db: lock: %w", timeout), app.EProviderUnavailable},
		{"no route", fiber.ErrNotFound, app.ENotFound},
		{"wrong method", fiber.ErrMethodNotAllowed, app.EMethodNotAllowed},
		{"body too large", fiber.ErrRequestEntityTooLarge, app.EPayloadTooLarge},
		{"unreadable request", fiber.ErrBadRequest, app.EValidation},
		{"fiber server error", fiber.ErrBadGateway, app.EInternal},
		{"passed deadline", fmt.Errorf("db: lock: %w", context.DeadlineExceeded), app.EUnavailable},
		{"anything else", errors.New("boom"), app.EInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := toAppError(tt.err)
			if got == nil || got.Code != tt.code {
				t.Fatalf("toAppError(%v) = %v, want code %q", tt.err, got, tt.code)
			}
			if !errors.Is(got, tt.err) && !errors.Is(tt.err, got) {
				t.Errorf("toAppError(%v) lost the original error: %v", tt.err, got)
			}
		})
	}
}
