package sandbox_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"byoc/app/sandbox"
)

const (
	sid   = "AC0123456789abcdef0123456789abcdef"
	token = "f00dfeedf00dfeedf00dfeedf00dfeed"
)

func start(t *testing.T) (*sandbox.Sandbox, sandbox.URLs) {
	t.Helper()
	sb := sandbox.New()
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	return sb, sb.BaseURLs(srv.URL + "/")
}

type call struct {
	method, url string
	header      http.Header
	body        string
}

// send makes the call and returns the status and the decoded JSON body.
func send(t *testing.T, c call) (int, any) {
	t.Helper()
	req, err := http.NewRequest(c.method, c.url, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want JSON", ct)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("body %q is not JSON: %v", raw, err)
	}
	return resp.StatusCode, v
}

func bearer(key string) http.Header { return http.Header{"Authorization": {"Bearer " + key}} }

func basic(user, pass string) http.Header {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header
}

func decode(s string) any {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		panic(err)
	}
	return v
}

// quote returns s as a JSON string.
func quote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// Echo repeats a credential in other forms, never as it was sent.
func TestEcho(t *testing.T) {
	const key = "sk_echo_4f9a0c3b7e21"
	got := sandbox.Echo(key)
	for _, form := range []string{strings.ToUpper(key), key[:10], base64.StdEncoding.EncodeToString([]byte(key)),
		hex.EncodeToString([]byte(key))} {
		if !strings.Contains(got, form) {
			t.Errorf("Echo(%q) = %q, without %q", key, got, form)
		}
	}
	if strings.Contains(got, key) {
		t.Errorf("Echo(%q) = %q repeats the credential as sent", key, got)
	}
}

func TestErrorAnswers(t *testing.T) {
	_, u := start(t)
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	withForm := func(h http.Header) http.Header {
		h.Set("Content-Type", form.Get("Content-Type"))
		return h
	}
	tests := []struct {
		name       string
		call       call
		wantStatus int
		wantBody   string
	}{
		{"vapi invalid key", call{"GET", u.Vapi + "/assistant", bearer("invalid-key"), ""}, 401,
			`{"message":"Invalid Key. Hot tip, you may be using the private key instead of the public key, or vice versa.","error":"Unauthorized","statusCode":401}`},
		{"vapi missing key", call{"GET", u.Vapi + "/assistant", nil, ""}, 401,
			`{"message":"Invalid Key. Hot tip, you may be using the private key instead of the public key, or vice versa.","error":"Unauthorized","statusCode":401}`},
		{"vapi EU key in US", call{"GET", u.Vapi + "/assistant", bearer("eu-key-1"), ""}, 401,
			`{"message":"Invalid Key. Hot tip, you may be using the private key instead of the public key, or vice versa.","error":"Unauthorized","statusCode":401}`},
		{"vapi US key in EU", call{"GET", u.VapiEU + "/assistant", bearer("us-key-1"), ""}, 401,
			`{"message":"Invalid Key. Hot tip, you may be using the private key instead of the public key, or vice versa.","error":"Unauthorized","statusCode":401}`},
		{"vapi down", call{"GET", u.Vapi + "/assistant", bearer("down"), ""}, 503,
			`{"message":"Service Unavailable","error":"Service Unavailable","statusCode":503}`},
		{"vapi unknown assistant", call{"GET", u.Vapi + "/assistant/nope", bearer("k1"), ""}, 404,
			"{\"message\":\"Couldn't Get Assistant. `assistant` Not Found.\",\"error\":\"Not Found\",\"statusCode\":404}"},
		{"vapi name too long", call{"POST", u.Vapi + "/assistant", bearer("k1"), `{"name":"` + strings.Repeat("n", 41) + `"}`}, 400,
			`{"message":["name must be shorter than or equal to 40 characters"],"error":"Bad Request","statusCode":400}`},
		{"vapi unknown property and bad server url", call{"POST", u.Vapi + "/assistant", bearer("k1"), `{"nom":"x","server":{"url":"ftp:x"}}`}, 400,
			`{"message":["property nom should not exist","server.url must be a URL address"],"error":"Bad Request","statusCode":400}`},
		{"vapi bad serverMessages", call{"POST", u.Vapi + "/assistant", bearer("k1"), `{"serverMessages":["nope"]}`}, 400, ""},
		{"twilio invalid token", call{"GET", u.Twilio + "/2010-04-01/Accounts/" + sid + ".json", basic(sid, "invalid"), ""}, 401,
			`{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}`},
		{"twilio malformed SID", call{"GET", u.Twilio + "/2010-04-01/Accounts/AC1.json", basic("AC1", token), ""}, 401,
			`{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}`},
		{"twilio other account's path", call{"GET", u.Twilio + "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdee.json", basic(sid, token), ""}, 404, ""},
		{"twilio WhatsApp to SMS", call{"POST", u.Twilio + "/2010-04-01/Accounts/" + sid + "/Messages.json", withForm(basic(sid, token)),
			url.Values{"To": {"whatsapp:+447911123456"}, "From": {"+12025550100"}, "Body": {"x"}}.Encode()}, 400,
			`{"code":21910,"message":"Invalid From and To pair. From and To should be of the same channel","more_info":"https://www.twilio.com/docs/errors/21910","status":400}`},
		{"twilio missing body", call{"POST", u.Twilio + "/2010-04-01/Accounts/" + sid + "/Messages.json", withForm(basic(sid, token)),
			url.Values{"To": {"+447911123456"}, "From": {"+12025550100"}}.Encode()}, 400,
			`{"code":21602,"message":"Message body is required.","more_info":"https://www.twilio.com/docs/errors/21602","status":400}`},
		{"twilio suspended account sends", call{"POST", u.Twilio + "/2010-04-01/Accounts/" + sid + "/Messages.json", withForm(basic(sid, "suspended")),
			url.Values{"To": {"+447911123456"}, "From": {"+12025550100"}, "Body": {"x"}}.Encode()}, 401,
			`{"code":20005,"message":"Account not active","more_info":"https://www.twilio.com/docs/errors/20005","status":401}`},
		{"resend missing key", call{"GET", u.Resend + "/domains", nil, ""}, 401,
			`{"statusCode":401,"message":"Missing API key in the authorization header.","name":"missing_api_key"}`},
		{"resend restricted key", call{"GET", u.Resend + "/domains", bearer("re_restricted_1"), ""}, 401,
			`{"statusCode":401,"message":"This API key is restricted to only send emails","name":"restricted_api_key"}`},
		{"resend invalid key", call{"GET", u.Resend + "/domains", bearer("re_invalid_1"), ""}, 403,
			`{"statusCode":403,"message":"API key is invalid","name":"invalid_api_key"}`},
		{"resend malformed key", call{"GET", u.Resend + "/domains", bearer("abc"), ""}, 400,
			`{"statusCode":400,"message":"API key is invalid","name":"validation_error"}`},
		{"elevenlabs invalid key", call{"GET", u.ElevenLabs + "/v1/user", http.Header{"Xi-Api-Key": {"sk_invalid"}}, ""}, 401,
			`{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}`},
		{"elevenlabs restricted key reads user", call{"GET", u.ElevenLabs + "/v1/user", http.Header{"Xi-Api-Key": {"sk_restricted"}}, ""}, 401,
			`{"detail":{"status":"missing_permissions","message":"The API key you used is missing the permission user_read to execute this operation."}}`},
		{"elevenlabs ttsonly key lists voices", call{"GET", u.ElevenLabs + "/v1/voices", http.Header{"Xi-Api-Key": {"sk_ttsonly"}}, ""}, 401,
			`{"detail":{"status":"missing_permissions","message":"The API key you used is missing the permission voices_read to execute this operation."}}`},
		{"elevenlabs rate limited", call{"GET", u.ElevenLabs + "/v1/user", http.Header{"Xi-Api-Key": {"sk_ratelimit"}}, ""}, 429, ""},
		{"vapi echo key writes", call{"POST", u.Vapi + "/assistant", bearer("k-echo-1"), `{"name":"x"}`}, 400,
			`{"message":[` + quote(sandbox.Echo("k-echo-1")) + `],"error":"Bad Request","statusCode":400}`},
		{"twilio echo token", call{"GET", u.Twilio + "/2010-04-01/Accounts/" + sid + ".json", basic(sid, "echo-1"), ""}, 403,
			`{"code":20403,"message":` + quote(sandbox.Echo(sid+":echo-1")) + `,"more_info":"https://www.twilio.com/docs/errors/20403","status":403}`},
		{"resend echo key", call{"GET", u.Resend + "/domains", bearer("re_echo_1"), ""}, 403,
			`{"statusCode":403,"message":` + quote(sandbox.Echo("re_echo_1")) + `,"name":"invalid_api_key"}`},
		{"elevenlabs echo key", call{"GET", u.ElevenLabs + "/v1/user", http.Header{"Xi-Api-Key": {"sk_echo_1"}}, ""}, 401,
			`{"detail":{"status":"invalid_api_key","message":` + quote(sandbox.Echo("sk_echo_1")) + `}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := send(t, tt.call)
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %v)", status, tt.wantStatus, body)
			}
			if tt.wantBody != "" && !reflect.DeepEqual(body, decode(tt.wantBody)) {
				t.Errorf("body = %v\nwant   %s", body, tt.wantBody)
			}
		})
	}
}

func TestSuccessAnswers(t *testing.T) {
	_, u := start(t)
	tests := []struct {
		name string
		call call
		// check reads the decoded body.
		check func(any) bool
	}{
		{"vapi empty list is a bare array", call{"GET", u.Vapi + "/assistant", bearer("k1"), ""},
			func(v any) bool { a, ok := v.([]any); return ok && len(a) == 0 }},
		{"vapi echo key reads", call{"GET", u.Vapi + "/assistant", bearer("k-echo-1"), ""},
			func(v any) bool { a, ok := v.([]any); return ok && len(a) == 0 }},
		{"twilio account", call{"GET", u.Twilio + "/2010-04-01/Accounts/" + sid + ".json", basic(sid, token), ""},
			func(v any) bool { m := v.(map[string]any); return m["sid"] == sid && m["status"] == "active" }},
		{"twilio suspended account", call{"GET", u.Twilio + "/2010-04-01/Accounts/" + sid + ".json", basic(sid, "suspended"), ""},
			func(v any) bool { return v.(map[string]any)["status"] == "suspended" }},
		{"resend domains", call{"GET", u.Resend + "/domains", bearer("re_123"), ""},
			func(v any) bool { d, ok := v.(map[string]any)["data"].([]any); return ok && len(d) == 1 }},
		{"elevenlabs user", call{"GET", u.ElevenLabs + "/v1/user", http.Header{"Xi-Api-Key": {"sk_1"}}, ""},
			func(v any) bool {
				s, ok := v.(map[string]any)["subscription"].(map[string]any)
				return ok && s["tier"] != ""
			}},
		{"elevenlabs restricted key lists voices", call{"GET", u.ElevenLabs + "/v1/voices", http.Header{"Xi-Api-Key": {"sk_restricted"}}, ""},
			func(v any) bool { vs, ok := v.(map[string]any)["voices"].([]any); return ok && len(vs) > 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := send(t, tt.call)
			if status != http.StatusOK || !tt.check(body) {
				t.Errorf("status %d, body %v", status, body)
			}
		})
	}
}

func TestVapiAssistantsArePerKeyAndNewestFirst(t *testing.T) {
	sb, u := start(t)
	for _, name := range []string{"first", "second"} {
		status, body := send(t, call{"POST", u.Vapi + "/assistant", bearer("org-a"),
			`{"name":"` + name + `","server":{"url":"https://example.com/hook","secret":"s"}}`})
		if status != http.StatusCreated {
			t.Fatalf("create: %d %v", status, body)
		}
		m := body.(map[string]any)
		if _, leaked := m["server"].(map[string]any)["secret"]; leaked {
			t.Errorf("the server secret is echoed back: %v", m)
		}
	}
	_, list := send(t, call{"GET", u.Vapi + "/assistant", bearer("org-a"), ""})
	if a := list.([]any); len(a) != 2 || a[0].(map[string]any)["name"] != "second" {
		t.Errorf("org-a list = %v, want second then first", list)
	}
	_, limited := send(t, call{"GET", u.Vapi + "/assistant?limit=1", bearer("org-a"), ""})
	if a := limited.([]any); len(a) != 1 {
		t.Errorf("limit=1 gave %d assistants", len(a))
	}
	_, other := send(t, call{"GET", u.Vapi + "/assistant", bearer("org-b"), ""})
	if a := other.([]any); len(a) != 0 {
		t.Errorf("org-b sees %v", other)
	}
	id := sb.Vapi.Assistants("org-a")[0].ID
	if status, _ := send(t, call{"GET", u.Vapi + "/assistant/" + id, bearer("org-b"), ""}); status != http.StatusNotFound {
		t.Errorf("org-b reads org-a's assistant: status %d", status)
	}
	if status, _ := send(t, call{"DELETE", u.Vapi + "/assistant/" + id, bearer("org-a"), ""}); status != http.StatusOK {
		t.Errorf("delete: status %d", status)
	}
	if n := len(sb.Vapi.Assistants("org-a")); n != 1 {
		t.Errorf("%d assistants left, want 1", n)
	}
	if n := len(sb.VapiEU.Assistants("org-a")); n != 0 {
		t.Errorf("the EU stand-in holds %d assistants, want none", n)
	}
}

func TestSlowAnswersStopWhenTheCallerGivesUp(t *testing.T) {
	sb := sandbox.New()
	srv := httptest.NewServer(sb.Handler())
	u := sb.BaseURLs(srv.URL)
	client := &http.Client{Timeout: 100 * time.Millisecond}
	tests := []struct {
		name string
		req  func() *http.Request
	}{
		{"GET", func() *http.Request {
			r, _ := http.NewRequest("GET", u.Resend+"/domains", nil)
			r.Header.Set("Authorization", "Bearer re_slow")
			return r
		}},
		{"POST with a body", func() *http.Request {
			r, _ := http.NewRequest("POST", u.Twilio+"/2010-04-01/Accounts/"+sid+"/Messages.json",
				strings.NewReader("To=%2B447911123456&From=%2B12025550100&Body=x"))
			r.SetBasicAuth(sid, "slow")
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			began := time.Now()
			resp, err := client.Do(tt.req().WithContext(context.Background()))
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got an answer (%s), want a timeout", resp.Status)
			}
			if d := time.Since(began); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	// Close waits for the handlers: it would hang for SlowDelay if they
	// ignored the cancelled requests.
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("the slow handlers are still running after their callers gave up")
	}
}
