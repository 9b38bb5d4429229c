package resend_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/providers/resend"
	"byoc/app/sandbox"
)

const timeout = 300 * time.Millisecond

func TestVerify(t *testing.T) {
	sb := sandbox.New()
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	standIn := sb.BaseURLs(srv.URL).Resend

	// olderAPI answers an unknown key as some API versions do: 401 validation_error.
	olderAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"statusCode":401,"message":"API key is invalid","name":"validation_error"}`))
	}))
	t.Cleanup(olderAPI.Close)

	tests := []struct {
		name        string
		baseURL     string
		key         string
		wantCode    string
		wantLimited bool
		wantMessage string // substring of the error message or the detail
	}{
		{"full-access key", standIn, "re_9xK2mQ7vL4pT", "", false, "full-access key: 1 of 1 domains verified"},
		{"sending-only key", standIn, "re_restricted_9xK2mQ7v", "", true, resend.SendingOnlyDetail},
		{"invalid key (403 invalid_api_key)", standIn, "re_invalid_9xK2mQ7v", app.EVerificationFailed, false, "Resend rejected the API key (403 Forbidden): the key is not valid."},
		{"key echoed back transformed", standIn, "re_echo_9xK2mQ7vL4pT", app.EVerificationFailed, false, "Resend rejected the API key (403 Forbidden): the key is not valid."},
		{"malformed key (400 validation_error)", standIn, "not-a-resend-key", app.EVerificationFailed, false, "Resend rejected the API key (400 Bad Request)"},
		{"unknown key (401 validation_error)", olderAPI.URL, "re_9xK2mQ7vL4pT", app.EVerificationFailed, false, "Resend rejected the API key (401 Unauthorized): the key is not valid."},
		{"provider down", standIn, "re_down_9xK2mQ7v", app.EProviderUnavailable, false, "Resend is not available right now (503 Service Unavailable). Try again."},
		{"rate limited", standIn, "re_ratelimit_9xK2mQ7v", app.EProviderUnavailable, false, "429 Too Many Requests"},
		{"slow provider", standIn, "re_slow_9xK2mQ7v", app.EProviderUnavailable, false, "Resend could not be reached (timed out after 300ms). Try again."},
		{"unreachable", apptest.ClosedURL(t), "re_9xK2mQ7vL4pT", app.EProviderUnavailable, false, "connection refused"},
		{"empty key", standIn, "", app.EValidation, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := resend.New(tt.baseURL, nil, timeout)
			start := time.Now()
			v, err := client.Verify(context.Background(), app.ResendConfig{APIKey: app.NewSecret(tt.key), FromEmail: "hi@sandbox.example.com"})
			if got := app.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("code = %q, want %q (err %v)", got, tt.wantCode, err)
			}
			if time.Since(start) > 5*timeout {
				t.Errorf("Verify took %v", time.Since(start))
			}
			if v.Limited != tt.wantLimited {
				t.Errorf("Limited = %v, want %v", v.Limited, tt.wantLimited)
			}
			text := v.Detail
			if err != nil {
				text = app.ErrorMessage(err)
				apptest.AssertNoFragment(t, "the error", err.Error(), tt.key)
			}
			if !strings.Contains(text, tt.wantMessage) {
				t.Errorf("text = %q, want it to contain %q", text, tt.wantMessage)
			}
		})
	}
}

func TestSend(t *testing.T) {
	sb := sandbox.New()
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	standIn := sb.BaseURLs(srv.URL).Resend
	good := resend.Email{From: "BYOC <noreply@sandbox.example.com>", To: "ann@example.com", Subject: "Hello", Text: "Body https://x.example/a"}

	tests := []struct {
		name     string
		key      string
		mutate   func(*resend.Email)
		wantCode string
		wantMsg  string
	}{
		{"sent", "re_9xK2mQ7vL4pT", nil, "", ""},
		{"a sending-only key sends", "re_restricted_9xK2mQ7v", nil, "", ""},
		{"invalid key", "re_invalid_9xK2mQ7v", nil, app.EVerificationFailed, "Resend refused to send the e-mail (403 Forbidden): the key is not valid."},
		{"key echoed back", "re_echo_9xK2mQ7vL4pT", nil, app.EVerificationFailed, "the key is not valid"},
		{"unverified sender domain", "re_9xK2mQ7vL4pT", func(m *resend.Email) { m.From = "noreply@example.org" }, app.EVerificationFailed,
			"(403 Forbidden): the message or its sender was refused"},
		{"sender not an address", "re_9xK2mQ7vL4pT", func(m *resend.Email) { m.From = "nobody" }, app.EVerificationFailed,
			"(422 Unprocessable Entity): the sender address is not valid"},
		{"no subject", "re_9xK2mQ7vL4pT", func(m *resend.Email) { m.Subject = "" }, app.EVerificationFailed, "a required field was missing"},
		{"no body", "re_9xK2mQ7vL4pT", func(m *resend.Email) { m.Text = "" }, app.EVerificationFailed, "(422 Unprocessable Entity)"},
		{"provider down", "re_down_9xK2mQ7v", nil, app.EProviderUnavailable, "503 Service Unavailable"},
		{"rate limited", "re_ratelimit_9xK2mQ7v", nil, app.EProviderUnavailable, "429 Too Many Requests"},
		{"slow provider", "re_slow_9xK2mQ7v", nil, app.EProviderUnavailable, "timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := good
			if tt.mutate != nil {
				tt.mutate(&m)
			}
			before := len(sb.Resend.Sent())
			id, err := resend.New(standIn, nil, timeout).Send(context.Background(), app.NewSecret(tt.key), m)
			if got := app.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("code = %q, want %q (err %v)", got, tt.wantCode, err)
			}
			if err != nil {
				if !strings.Contains(app.ErrorMessage(err), tt.wantMsg) {
					t.Fatalf("message %q, want it to contain %q", app.ErrorMessage(err), tt.wantMsg)
				}
				apptest.AssertNoFragment(t, "the error", err.Error(), tt.key)
				if len(sb.Resend.Sent()) != before {
					t.Fatal("a refused message was kept as sent")
				}
				return
			}
			sent := sb.Resend.Sent()
			last := sent[len(sent)-1]
			if id == "" || last.ID != id || last.Key != tt.key || last.From != m.From || len(last.To) != 1 || last.To[0] != m.To ||
				last.Subject != m.Subject || last.Text != m.Text {
				t.Fatalf("sent %+v with id %q", last, id)
			}
		})
	}
}

// TestSendIdempotencyKey: a key is sent as Idempotency-Key, and a message
// sent again with it is delivered once (the stand-in answers as Resend
// does: the first message's id); the same key with another message is a
// refusal; a key longer than Resend accepts is not sent at all.
func TestSendIdempotencyKey(t *testing.T) {
	sb := sandbox.New()
	var mu sync.Mutex
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		sb.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	client := resend.New(sb.BaseURLs(srv.URL).Resend, nil, timeout)
	key := app.NewSecret("re_9xK2mQ7vL4pT")
	m := resend.Email{From: "BYOC <noreply@sandbox.example.com>", To: "ann@example.com", Subject: "Hello", Text: "Body",
		IdempotencyKey: "byoc-test/" + apptest.RandomHex(8)}
	ctx := context.Background()

	first, err := client.Send(ctx, key, m)
	if err != nil {
		t.Fatal(err)
	}
	again, err := client.Send(ctx, key, m)
	if err != nil || again != first {
		t.Fatalf("the same message again: id %q (first %q), %v", again, first, err)
	}
	if n := len(sb.Resend.Sent()); n != 1 {
		t.Fatalf("%d messages delivered, want 1", n)
	}
	mu.Lock()
	if len(keys) != 2 || keys[0] != m.IdempotencyKey || keys[1] != m.IdempotencyKey {
		t.Fatalf("Idempotency-Key headers %q", keys)
	}
	mu.Unlock()

	other := m
	other.Text = "Another body"
	if _, err := client.Send(ctx, key, other); app.ErrorCode(err) != app.EVerificationFailed ||
		!strings.Contains(app.ErrorMessage(err), "409 Conflict") {
		t.Fatalf("another message with the key: %v", err)
	}
	long := m
	long.IdempotencyKey = strings.Repeat("k", resend.MaxIdempotencyKey+1)
	if _, err := client.Send(ctx, key, long); err == nil {
		t.Fatal("a key longer than Resend accepts was sent")
	}
	mu.Lock()
	if len(keys) != 3 {
		t.Fatalf("%d requests, want the long key never sent", len(keys))
	}
	mu.Unlock()

	// Without a key, each send is a message of its own.
	m.IdempotencyKey = ""
	if _, err := client.Send(ctx, key, m); err != nil {
		t.Fatal(err)
	}
	if n := len(sb.Resend.Sent()); n != 2 {
		t.Fatalf("%d messages delivered, want 2", n)
	}
}

// TestSendFailingThenServing: the stand-in answers the sends FailSends
// queued (500, 429) as Resend does, both worth retrying, then serves.
func TestSendFailingThenServing(t *testing.T) {
	sb := sandbox.New()
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	client := resend.New(sb.BaseURLs(srv.URL).Resend, nil, timeout)
	sb.Resend.FailSends(http.StatusInternalServerError, http.StatusTooManyRequests)
	m := resend.Email{From: "BYOC <noreply@sandbox.example.com>", To: "ann@example.com", Subject: "Hello", Text: "Body"}
	for _, want := range []string{"500 Internal Server Error", "429 Too Many Requests"} {
		_, err := client.Send(context.Background(), app.NewSecret("re_9xK2mQ7vL4pT"), m)
		if app.ErrorCode(err) != app.EProviderUnavailable || !strings.Contains(app.ErrorMessage(err), want) {
			t.Fatalf("got %v, want EProviderUnavailable with %q", err, want)
		}
	}
	if _, err := client.Send(context.Background(), app.NewSecret("re_9xK2mQ7vL4pT"), m); err != nil {
		t.Fatalf("after the failures: %v", err)
	}
	if n := len(sb.Resend.Sent()); n != 1 {
		t.Fatalf("%d delivered, want 1", n)
	}
}

// TestSendConcurrentIdempotentRequest: Resend's 409
// concurrent_idempotent_requests (the first request with the key is still
// under way) is worth asking again, not a refusal.
func TestSendConcurrentIdempotentRequest(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"statusCode":409,"message":"Same idempotency key used while original request is still in progress.","name":"concurrent_idempotent_requests"}`))
	}))
	t.Cleanup(srv.Close)
	m := resend.Email{From: "BYOC <noreply@sandbox.example.com>", To: "ann@example.com", Subject: "Hello", Text: "Body", IdempotencyKey: "k"}
	_, err := resend.New(srv.URL, nil, timeout).Send(context.Background(), app.NewSecret("re_9xK2mQ7vL4pT"), m)
	if app.ErrorCode(err) != app.EProviderUnavailable || !strings.Contains(app.ErrorMessage(err), "409") {
		t.Fatalf("got %v, want EProviderUnavailable naming the 409", err)
	}
}
