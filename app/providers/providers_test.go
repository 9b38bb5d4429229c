package providers_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	t.Cleanup(cancel2)

	tests := []struct {
		name string
		ctx  context.Context
		// deadline, when set, gives the call a context with this deadline
		// from the start of the subtest, instead of ctx.
		deadline    time.Duration
		url         string
		wantStatus  int
		wantCode    string
		wantMessage string
	}{
		{"answer is returned", context.Background(), 0, srv.URL + "/ok", 200, "", ""},
		{"4xx is returned for the client to read", context.Background(), 0, srv.URL + "/missing", 404, "", ""},
		{"5xx is unavailable", context.Background(), 0, srv.URL + "/boom", 0, app.EProviderUnavailable, "Acme is not available right now (502 Bad Gateway). Try again."},
		{"429 is unavailable", context.Background(), 0, srv.URL + "/busy", 0, app.EProviderUnavailable, "Acme is limiting requests right now (429 Too Many Requests). Try again in a minute."},
		{"oversized body is refused", context.Background(), 0, srv.URL + "/huge", 0, app.EProviderUnavailable, "Acme sent a larger answer than expected. Try again."},
		{"own timeout", context.Background(), 0, srv.URL + "/hang", 0, app.EProviderUnavailable, "Acme could not be reached (timed out after 200ms). Try again."},
		// A caller that leaves the provider less than its timeout ran out
		// of its own time.
		{"caller's earlier deadline", nil, 50 * time.Millisecond, srv.URL + "/hang", 0, app.EUnavailable, "The server could not finish the request in time. Please try again."},
		// A caller whose time is up before the call sends nothing, and the
		// provider is not blamed.
		{"caller's time already up", expired, 0, srv.URL + "/ok", 0, app.EUnavailable, "The server could not finish the request in time. Please try again."},
		{"caller cancelled", cancelled, 0, srv.URL + "/ok", 0, app.EUnavailable, "The request was cancelled before it could finish. Please try again."},
		{"connection refused", context.Background(), 0, closed + "/ok", 0, app.EProviderUnavailable, "Acme could not be reached (connection refused). Try again."},
	}
	c := providers.NewCaller("Acme", nil, 200*time.Millisecond)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"X-Key": {"k-123456"}}
			ctx := tt.ctx
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(context.Background(), tt.deadline)
				defer cancel()
			}
			resp, err := c.Do(ctx, providers.Request{Method: http.MethodGet, URL: tt.url, Header: h})
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
	const (
		key   = "re_9xK2mQ7vL4pTw8Zr"
		sid   = "AC0123456789abcdef0123456789abcdef"
		token = "f00dfeedf00dfeedf00dfeedf00dfeed"
	)
	resend := app.ResendConfig{APIKey: app.NewSecret(key), FromEmail: "billing@clinic-example.com"}
	twilio := app.TwilioConfig{AccountSID: sid, AuthToken: app.NewSecret(token), PhoneNumber: "+12025550100"}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name, in string
		cfg      app.Config
		extra    []string
		want     string
	}{
		{"adds a full stop", "API key is invalid", nil, nil, "API key is invalid."},
		{"keeps existing punctuation", "Authenticate!", nil, nil, "Authenticate!"},
		{"collapses whitespace", "  too \n many   spaces ", nil, nil, "too many spaces."},
		{"removes the key", "key " + key + " is wrong", resend, nil, "key [redacted] is wrong."},
		{"removes the key upper-cased", "KEY " + strings.ToUpper(key) + " IS WRONG", resend, nil, "KEY [redacted] IS WRONG."},
		{"removes the key cut short", "key starting re_9xK2mQ is wrong", resend, nil, "key starting [redacted] is wrong."},
		{"removes the key base64-encoded", "got " + b64(key), resend, nil, "got [redacted]."},
		{"removes the key hex-encoded", "got " + hex.EncodeToString([]byte(key)), resend, nil, "got [redacted]."},
		{"removes a token in Basic credentials", "header Basic " + b64(sid+":"+token) + " refused", twilio, nil,
			"header Basic [redacted] refused."},
		{"removes a short piece of Basic credentials", "header Basic …" + b64(sid + ":" + token)[48:60] + "… refused", twilio, nil,
			"header Basic …[redacted]… refused."},
		{"removes other fields of the config", "no domain clinic-example.com here", resend, nil, "no domain [redacted] here."},
		{"removes the extra secrets", "secret whsec-abcdefgh was sent", nil, []string{"whsec-abcdefgh"}, "secret [redacted] was sent."},
		{"short values count as a whole", "secret ABCDE was sent", nil, []string{"abcde"}, "secret [redacted] was sent."},
		{"ignores tiny values", "a b c", nil, []string{"b"}, "a b c."},
		{"removes token-like runs without a config", "token 4f9a0c3b7e21d5a8 and id 0b8f5f2e-9d1c-4c39-8a6e-5e2f4c1d9b7a refused",
			nil, nil, "token [redacted] and id [redacted] refused."},
		{"removes capital runs", "key SKLIVEABCDEFGHIJKLMNOP refused", nil, nil, "key [redacted] refused."},
		{"joins neighbouring removals", "keys " + key + strings.ToUpper(key), resend, nil, "keys [redacted]."},
		{"keeps words, names and codes", "each value in serverMessages must be one of: transfer-destination-request, " +
			"firstMessageInterruptionsEnabled (error 21211, +12025550199)", nil, nil,
			"each value in serverMessages must be one of: transfer-destination-request, " +
				"firstMessageInterruptionsEnabled (error 21211, +12025550199)."},
		{"keeps text in other scripts", "Schlüssel ungültig: ключ недействителен", resend, nil, "Schlüssel ungültig: ключ недействителен."},
		{"shortens long text", strings.Repeat("a ", 150), nil, nil, strings.Repeat("a ", 100) + "…"},
		{"shortens after removing", strings.Repeat(key+" ", 60), resend, nil, strings.Repeat("[redacted] ", 18) + "[r…"},
		{"drops a token cut off where reading stops", strings.Repeat("Z9", 395) + " " + strings.Repeat("Ab3", 6), nil, nil, "[redacted]."},
		{"empty", " ", resend, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := providers.CleanReason(tt.in, tt.cfg, tt.extra...); got != tt.want {
				t.Errorf("CleanReason(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// Whatever a provider writes around a key, in whatever case, what
// CleanReason keeps holds no run of 8 of the key's characters, is valid
// UTF-8 and is short.
func FuzzCleanReason(f *testing.F) {
	f.Add("Invalid key ", "re_9xK2mQ7vL4pTw8Zr", " (was it revoked?)", true)
	f.Add("prefix…", "sk-ABCDEFGHIJ", "\xff", false)
	f.Fuzz(func(t *testing.T, before, key, after string, upper bool) {
		if len(key) < 8 || len(key) > app.MaxKeyLength || strings.Trim(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "" {
			t.Skip()
		}
		echoed := key
		if upper {
			echoed = strings.ToUpper(key)
		}
		got := providers.CleanReason(before+echoed+after, app.ResendConfig{APIKey: app.NewSecret(key)})
		if !utf8.ValidString(got) || utf8.RuneCountInString(got) > 201 {
			t.Fatalf("CleanReason = %q: invalid or long", got)
		}
		folded, k := strings.ToLower(got), strings.ToLower(key)
		for i := 0; i+8 <= len(k); i++ {
			if strings.Contains(folded, k[i:i+8]) {
				t.Fatalf("CleanReason = %q keeps %q of the key", got, k[i:i+8])
			}
		}
	})
}

// A call its caller stops for a reason of its own (a cancel by the user, the
// server restarting) answers that reason, before or during the call, never
// that the provider could not be reached.
func TestCallerStoppedByItsCaller(t *testing.T) {
	started := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	reason := &app.Error{Code: app.EUnavailable, Message: "The server is restarting."}
	c := providers.NewCaller("Twilio", nil, time.Minute)

	for _, during := range []bool{false, true} {
		ctx, cancel := context.WithCancelCause(context.Background())
		if during {
			go func() { <-started; cancel(reason) }()
		} else {
			cancel(reason)
		}
		_, err := c.Do(ctx, providers.Request{Method: http.MethodGet, URL: srv.URL + "/x"})
		if app.ErrorCode(err) != app.EUnavailable || app.ErrorMessage(err) != reason.Message {
			t.Fatalf("during %v: %v (%s), want the caller's reason", during, err, app.ErrorCode(err))
		}
		cancel(nil)
	}
}
