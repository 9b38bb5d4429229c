package providers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/providers"
)

func TestCallerDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			if r.Header.Get("X-Key") != "k-123456" || r.Header.Get("Accept") != "application/json" {
				w.WriteHeader(http.StatusTeapot)
				return
			}
			_, _ = w.Write([]byte(`{"ok":true}`))
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
		case "/boom":
			w.WriteHeader(http.StatusBadGateway)
		case "/busy":
			w.WriteHeader(http.StatusTooManyRequests)
		case "/huge":
			chunk := strings.Repeat("x", 64<<10)
			for i := 0; i <= providers.MaxBody/len(chunk); i++ {
				_, _ = w.Write([]byte(chunk))
			}
		case "/hang":
			<-r.Context().Done()
		}
	}))
	t.Cleanup(srv.Close)
	closed := apptest.ClosedURL(t)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	shortDeadline, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	t.Cleanup(cancel2)

	tests := []struct {
		name        string
		ctx         context.Context
		url         string
		wantStatus  int
		wantCode    string
		wantMessage string
	}{
		{"answer is returned", context.Background(), srv.URL + "/ok", 200, "", ""},
		{"4xx is returned for the client to read", context.Background(), srv.URL + "/missing", 404, "", ""},
		{"5xx is unavailable", context.Background(), srv.URL + "/boom", 0, app.EProviderUnavailable, "Acme is not available right now (502 Bad Gateway). Try again."},
		{"429 is unavailable", context.Background(), srv.URL + "/busy", 0, app.EProviderUnavailable, "Acme is limiting requests right now (429 Too Many Requests). Try again in a minute."},
		{"oversized body is refused", context.Background(), srv.URL + "/huge", 0, app.EProviderUnavailable, "Acme sent a larger answer than expected. Try again."},
		{"own timeout", context.Background(), srv.URL + "/hang", 0, app.EProviderUnavailable, "Acme could not be reached (timed out after 200ms). Try again."},
		{"caller's earlier deadline", shortDeadline, srv.URL + "/hang", 0, app.EProviderUnavailable, "Acme could not be reached (timed out). Try again."},
		{"caller cancelled", cancelled, srv.URL + "/ok", 0, app.EProviderUnavailable, "Acme could not be reached (request cancelled). Try again."},
		{"connection refused", context.Background(), closed + "/ok", 0, app.EProviderUnavailable, "Acme could not be reached (connection refused). Try again."},
	}
	c := providers.NewCaller("Acme", nil, 200*time.Millisecond)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"X-Key": {"k-123456"}}
			resp, err := c.Do(tt.ctx, providers.Request{Method: http.MethodGet, URL: tt.url, Header: h})
			if got := app.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("code = %q, want %q (err %v)", got, tt.wantCode, err)
			}
			if err != nil {
				if msg := app.ErrorMessage(err); msg != tt.wantMessage {
					t.Errorf("message = %q, want %q", msg, tt.wantMessage)
				}
				return
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
		})
	}
}

func TestCallerErrorsCarryNoCredentialFromTheURL(t *testing.T) {
	closed := apptest.ClosedURL(t)
	c := providers.NewCaller("Acme", nil, time.Second)
	_, err := c.Do(context.Background(), providers.Request{
		Method: http.MethodGet,
		URL:    strings.Replace(closed, "://", "://user:hunter2-password@", 1) + "/v1?api_key=topsecret-query",
	})
	if err == nil {
		t.Fatal("want an error")
	}
	apptest.AssertNoSecret(t, "the error", err.Error(), "hunter2-password", "topsecret-query")
	if addr := strings.TrimPrefix(closed, "http://"); !strings.Contains(err.Error(), addr) {
		t.Errorf("error text %q should still name the host for the log", err.Error())
	}
}

func TestCallerDoesNotFollowRedirects(t *testing.T) {
	hit := make(chan string, 1)
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hit <- r.Header.Get("Xi-Api-Key")
	}))
	t.Cleanup(elsewhere.Close)
	redirector := httptest.NewServer(http.RedirectHandler(elsewhere.URL+"/steal", http.StatusFound))
	t.Cleanup(redirector.Close)

	c := providers.NewCaller("Acme", redirector.Client(), time.Second)
	resp, err := c.Do(context.Background(), providers.Request{
		Method: http.MethodGet, URL: redirector.URL + "/v1/user", Header: http.Header{"Xi-Api-Key": {"sk_secret"}},
	})
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("Do = %v, %v; want the 302 itself", resp, err)
	}
	select {
	case key := <-hit:
		t.Errorf("the redirect was followed, carrying key %q to another host", key)
	default:
	}
	if err := c.Unexpected(resp); app.ErrorCode(err) != app.EProviderUnavailable {
		t.Errorf("Unexpected(302) = %v, want %s", err, app.EProviderUnavailable)
	}
}

func TestCleanReason(t *testing.T) {
	tests := []struct {
		name, in string
		secrets  []string
		want     string
	}{
		{"adds a full stop", "API key is invalid", nil, "API key is invalid."},
		{"keeps existing punctuation", "Authenticate!", nil, "Authenticate!"},
		{"collapses whitespace", "  too \n many   spaces ", nil, "too many spaces."},
		{"removes secrets", "key sk_live_abcdef is wrong", []string{"sk_live_abcdef"}, "key [redacted] is wrong."},
		{"ignores tiny secrets", "a b c", []string{"b"}, "a b c."},
		{"shortens long text", strings.Repeat("a", 250), nil, strings.Repeat("a", 200) + "…"},
		{"empty", " ", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := providers.CleanReason(tt.in, tt.secrets...); got != tt.want {
				t.Errorf("CleanReason(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
