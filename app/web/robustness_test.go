package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"byoc/app/apptest"
	"byoc/app/web"
	"byoc/app/webhooks"
)

// robustBodyLimit is the body limit of the robustness test's server: small,
// so that bodies just under it are cheap to send a thousand times.
const robustBodyLimit = 64 << 10

// hostile is one hostile variant of a request to a route. Empty fields keep
// the route's method, a plausible path, body and content type.
type hostile struct {
	name   string
	method string
	path   string // replaces the route's path (after its parameters are filled)
	query  string
	body   *string // nil: the plausible body
	ctype  string  // with body: its Content-Type ("" sends none)
	// headers are set after the identity's, replacing them.
	headers []string
	// cookies are sent besides the identity's.
	cookies []string
}

func str(s string) *string { return &s }

// plausibleBody is a JSON body with every field any route reads, all of
// them acceptable, so that each hostile variant changes one thing.
func plausibleBody(assistant string) string {
	raw, _ := json.Marshal(map[string]any{
		"orgName": "Robust Clinic", "email": strings.ToLower(uniqueEmail()), "password": password, "next": "/dashboard/integrations",
		"apiKey": vapiKey(), "webhookSecret": "whsec-" + apptest.RandomHex(8), "region": "us",
		"accountSid": twilioSID(), "authToken": twilioToken(), "phoneNumber": "+15555550100",
		"fromEmail": "front@example.com", "voiceId": "voice-1", "orgId": "7f2b8a4e-3c1d-4e5f-9a6b-0c1d2e3f4a5b",
		"message": map[string]any{"type": "speech-update", "call": map[string]any{"id": "call-" + apptest.RandomHex(4), "assistantId": assistant}},
	})
	return string(raw)
}

// hostileBodies are bodies and content types no client should send.
func hostileBodies(assistant string) []hostile {
	const jsonCT, formCT = "application/json", "application/x-www-form-urlencoded"
	fields := []string{"orgName", "email", "password", "next", "apiKey", "webhookSecret", "accountSid", "authToken",
		"phoneNumber", "fromEmail", "voiceId", "orgId", "region"}
	all := func(v string) string {
		m := map[string]any{}
		for _, f := range fields {
			m[f] = v
		}
		m["message"] = map[string]any{"type": v, "call": map[string]any{"id": v, "assistantId": v}}
		raw, _ := json.Marshal(m)
		return string(raw)
	}
	// with replaces one field of the plausible body.
	with := func(field string, v any) string {
		var m map[string]any
		_ = json.Unmarshal([]byte(plausibleBody(assistant)), &m)
		m[field] = v
		raw, _ := json.Marshal(m)
		return string(raw)
	}
	huge := robustBodyLimit - 2048
	out := []hostile{
		{name: "malformed JSON", body: str(`{"email": `), ctype: jsonCT},
		{name: "broken unicode escape", body: str(`{"email":"\u12`), ctype: jsonCT},
		{name: "empty JSON body", body: str(``), ctype: jsonCT},
		{name: "JSON array", body: str(`[]`), ctype: jsonCT},
		{name: "JSON array of objects", body: str(`[{"email":"a@example.com","apiKey":"x"}]`), ctype: jsonCT},
		{name: "JSON string", body: str(`"hello"`), ctype: jsonCT},
		{name: "JSON null", body: str(`null`), ctype: jsonCT},
		{name: "JSON number", body: str(`42`), ctype: jsonCT},
		{name: "JSON of wrong types", body: str(`{"email":42,"password":{"a":1},"apiKey":[1],"orgName":true,"orgId":1.5,"next":null,"message":"x"}`), ctype: jsonCT},
		{name: "deeply nested JSON", body: str(strings.Repeat("[", 5000) + strings.Repeat("]", 5000)), ctype: jsonCT},
		{name: "duplicate keys", body: str(`{"email":"a@example.com","email":"b@example.com","password":"x","password":"` + password + `"}`), ctype: jsonCT},
		{name: "NUL in every field", body: str(all("a\u0000b")), ctype: jsonCT},
		{name: "only NUL", body: str(all("\u0000")), ctype: jsonCT},
		{name: "NUL in the email", body: str(with("email", "owner\u0000@example.com")), ctype: jsonCT},
		{name: "NUL in the org name", body: str(with("orgName", "Acme\u0000Dental")), ctype: jsonCT},
		{name: "NUL in the API key", body: str(with("apiKey", "vk_live_\u0000"+apptest.RandomHex(4))), ctype: jsonCT},
		{name: "newline in the API key", body: str(with("apiKey", "vk_live_"+apptest.RandomHex(4)+"\r\nX-Injected: 1")), ctype: jsonCT},
		{name: "newline in the account SID", body: str(with("accountSid", "AC"+apptest.RandomHex(4)+"\r\n")), ctype: jsonCT},
		{name: "newline in the auth token", body: str(with("authToken", apptest.RandomHex(8)+"\n")), ctype: jsonCT},
		{name: "newline in the voice id", body: str(with("voiceId", "v\r\n1")), ctype: jsonCT},
		{name: "NUL in the webhook secret", body: str(with("webhookSecret", "whsec\u0000"+apptest.RandomHex(4))), ctype: jsonCT},
		{name: "controls", body: str(all("\u202e\u0007\r\n\x1b[31m")), ctype: jsonCT},
		{name: "lone surrogates", body: str(`{"email":"\ud800@example.com","orgName":"\udfff","apiKey":"\ud800","password":"\ud800\ud800\ud800\ud800\ud800\ud800",
			"message":{"type":"\ud800","call":{"id":"\ud800","assistantId":"` + assistant + `"}}}`), ctype: jsonCT},
		{name: "invalid UTF-8", body: str(`{"email":"` + "\xff\xfe" + `@example.com","orgName":"` + "\xc3\x28" + `","apiKey":"` + "\xed\xa0\x80" + `"}`), ctype: jsonCT},
		{name: "unicode", body: str(all("Zahnärzte 🦷 Ω ﷽ 𝕏")), ctype: jsonCT},
		{name: "unicode email", body: str(with("email", "üser@exämple.com")), ctype: jsonCT},
		{name: "JSON in UTF-16", body: str("\xff\xfe{\x00}\x00"), ctype: "application/json; charset=utf-16"},
		{name: "vendor JSON type", body: str(plausibleBody(assistant)), ctype: "application/vnd.api+json"},
		{name: "plain text", body: str("hello"), ctype: "text/plain"},
		{name: "XML", body: str(`<?xml version="1.0"?><login><email>a@example.com</email></login>`), ctype: "application/xml"},
		{name: "garbage content type", body: str(plausibleBody(assistant)), ctype: ";;;=\"\\"},
		{name: "no content type", body: str(plausibleBody(assistant)), ctype: ""},
		{name: "garbage form", body: str("%zz=%%&&==&email=%00&password=%FF%FE&_csrf=%"), ctype: formCT},
		{name: "form with NUL and invalid UTF-8", body: str(url.Values{"email": {"a\x00b@example.com"}, "password": {"\xff\xfe" + password},
			"orgName": {"\x00"}, "apiKey": {"\xff"}, "orgId": {"\x00"}, "next": {"/\x00"}}.Encode()), ctype: formCT},
		{name: "form with repeated fields", body: str("email=a@example.com&email=b@example.com&apiKey=1&apiKey=2"), ctype: formCT},
		{name: "multipart without boundary", body: str("--x\r\n\r\n"), ctype: "multipart/form-data"},
		{name: "multipart with a broken body", body: str("--xyz\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\na@example.com"), ctype: "multipart/form-data; boundary=xyz"},
		{name: "multipart with a file", body: str("--xyz\r\nContent-Disposition: form-data; name=\"apiKey\"; filename=\"../../etc/passwd\"\r\n" +
			"Content-Type: application/octet-stream\r\n\r\n\x00\x01\x02\r\n--xyz--\r\n"), ctype: "multipart/form-data; boundary=xyz"},
		{name: "huge form field", body: str("email=" + strings.Repeat("a", huge) + "&password=" + strings.Repeat("%C3%A9", 100)), ctype: formCT},
		{name: "huge unicode everywhere", body: str(all(strings.Repeat("é", huge/len(fields)/2/4))), ctype: jsonCT},
		{name: "webhook tool call with garbage arguments", ctype: jsonCT, body: str(fmt.Sprintf(`{"message":{"type":"tool-calls","call":{"id":"c-%s","assistantId":%q},
			"toolCallList":[{"id":"t1","type":"function","function":{"name":"send_sms","arguments":{"to":"\u0000","body":[1]}}},
			{"id":"t2","function":{"name":"../../etc/passwd","arguments":"{\"a\":"}},{"function":null},null]}}`, apptest.RandomHex(4), assistant))},
		{name: "webhook with a huge call id", ctype: jsonCT, body: str(fmt.Sprintf(`{"message":{"type":"end-of-call-report","call":{"id":%q,"assistantId":%q}}}`,
			strings.Repeat("x", huge), assistant))},
		{name: "webhook report with NUL in the call", ctype: jsonCT, body: str(fmt.Sprintf(`{"message":{"type":"end-of-call-report","call":{"id":"a\u0000b","assistantId":%q},
			"endedReason":"\u0000","summary":"\u0000\ud800","timestamp":1}}`, assistant))},
		{name: "webhook with NUL ids", ctype: jsonCT, body: str(fmt.Sprintf(`{"message":{"type":"end-of-call-report\u0000","call":{"id":"a\u0000","assistantId":%q},"timestamp":"x"}}`, assistant))},
	}
	for _, f := range fields {
		out = append(out, hostile{name: "huge " + f, body: str(with(f, strings.Repeat("a", huge))), ctype: jsonCT})
	}
	return out
}

// hostileHeaders are cookies, credentials and htmx headers no client
// should send.
func hostileHeaders() []hostile {
	long := strings.Repeat("A", 6000)
	return []hostile{
		{name: "garbage session cookie", cookies: []string{"byoc_session=garbage"}},
		{name: "long session cookie", cookies: []string{"byoc_session=" + long}},
		{name: "encoded NUL session cookie", cookies: []string{"byoc_session=%00%FF%FE"}},
		{name: "empty session cookie", cookies: []string{"byoc_session="}},
		{name: "production cookie name", cookies: []string{"__Host-byoc_session=garbage", "byoc_session=MTIz|YWJj|ZGVm"}},
		{name: "many cookies", cookies: strings.Split(strings.Repeat("a=b;", 200), ";")[:200]},
		{name: "Authorization Bearer alone", headers: []string{"Authorization", "Bearer"}},
		{name: "Authorization Bearer space", headers: []string{"Authorization", "Bearer  "}},
		{name: "Authorization garbage token", headers: []string{"Authorization", "Bearer garbage"}},
		{name: "Authorization JWT shape", headers: []string{"Authorization", "Bearer a.b.c"}},
		{name: "Authorization alg none", headers: []string{"Authorization", "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4Iiwib3JnX2lkIjoieCJ9."}},
		{name: "Authorization Basic", headers: []string{"Authorization", "Basic dXNlcjpwYXNz"}},
		{name: "Authorization long", headers: []string{"Authorization", "Bearer " + long}},
		{name: "Authorization unicode", headers: []string{"Authorization", "Bearer tökén🦷"}},
		{name: "HX-Request not true", headers: []string{"HX-Request", "yes"}},
		{name: "HX garbage", headers: []string{"HX-Request", "true", "HX-Target", "<script>alert(1)</script>", "HX-Current-URL", "javascript:alert(1)",
			"HX-Trigger", long, "HX-Prompt", "\u202e"}},
		{name: "HX boosted garbage", headers: []string{"HX-Request", "true", "HX-Boosted", "maybe", "HX-History-Restore-Request", "true"}},
		{name: "HX history restore", headers: []string{"HX-Request", "true", "HX-History-Restore-Request", "true"}},
		{name: "Accept garbage", headers: []string{"Accept", "application/json;q=garbage, text/html;q=-1, */*;q=2"}},
		{name: "Accept nothing we serve", headers: []string{"Accept", "image/png"}},
		{name: "CSRF token garbage", headers: []string{"X-CSRF-Token", long}},
		{name: "request id garbage", headers: []string{"X-Request-ID", "<script>" + long}},
		{name: "forwarded garbage", headers: []string{"X-Forwarded-For", "not an address, ::ffff:999.1.1.1, " + long}},
		{name: "Vapi headers garbage", headers: []string{webhooks.HeaderVapiSecret, long, webhooks.HeaderSignature, "sha256=zz", webhooks.HeaderTimestamp, "-1"}},
		{name: "Vapi timestamp huge", headers: []string{webhooks.HeaderSignature, strings.Repeat("0", 64), webhooks.HeaderTimestamp, "99999999999999999999999"}},
	}
}

// hostilePaths are parameter values and paths beside the route's.
func hostilePaths(route string) []hostile {
	var out []hostile
	switch {
	case strings.Contains(route, ":provider"):
		for _, p := range []string{"vapi", "twilio", "google_calendar", "resend", "elevenlabs", "googleCalendar", "VAPI", "nope",
			"..", "%2e%2e", "..%2F..%2Fetc%2Fpasswd", "%00", "vapi%00", "%FF%FE", "%C3%A9", "vapi%20", strings.Repeat("x", 4000)} {
			out = append(out, hostile{name: "provider " + p[:min(len(p), 20)], path: strings.Replace(route, ":provider", p, 1)})
		}
	case strings.HasSuffix(route, "*"):
		for _, p := range []string{"app.css", "nonexistent.js", "..%2F..%2Fgo.mod", "../../main.go", "%00", "%FF", "js/", "a/b/c/d"} {
			out = append(out, hostile{name: "file " + p, path: strings.TrimSuffix(route, "*") + p})
		}
	}
	out = append(out,
		hostile{name: "trailing slash", path: fillParams(route) + "/"},
		hostile{name: "dot segments", path: fillParams(route) + "/%2e%2e/%2e%2e/etc/passwd"},
		hostile{name: "encoded NUL suffix", path: fillParams(route) + "%00"},
		hostile{name: "query next", query: "next=%2F%2Fevil.example&next=javascript:alert(1)"},
		hostile{name: "query OAuth garbage", query: "code=%00&state=%FF%FE&error=" + strings.Repeat("x", 3000) + "&scope=%zz"},
		hostile{name: "query OAuth error", query: "error=access_denied&state=garbage"},
		hostile{name: "query brackets", query: "a[]=1&a[]=2&provider[]=vapi&_csrf=x"},
	)
	return out
}

// hostileMethods are methods the route does not have.
func hostileMethods(method string) []hostile {
	var out []hostile
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "PROPFIND"} {
		if m != method {
			out = append(out, hostile{name: "method " + m, method: m})
		}
	}
	return out
}

// fillParams puts plausible values into a route's parameters.
func fillParams(route string) string {
	route = strings.Replace(route, ":provider", "vapi", 1)
	return strings.Replace(route, "*", "nonexistent.js", 1)
}

// robustIdentity is who sends a hostile request.
type robustIdentity struct {
	name    string
	headers []string
	cookies []*http.Cookie
}

func TestHostileInputs(t *testing.T) {
	const opsToken = "ops-token-0123456789abcdef"
	e := newEnv(t, withOps(opsToken), withGoogle, withAttempts(1<<30, 1<<30), withWeb(func(o *web.Options) {
		o.BodyLimit = robustBodyLimit
	}))
	secret := "whsec-" + apptest.RandomHex(16)
	vb, vtoken, assistant := connectVapi(t, e, secret)
	allowSecretHeader(t, vb, vtoken) // the "vapi" identity below authenticates with the secret header

	routes := e.srv.Routes()
	if len(routes) < 20 {
		t.Fatalf("only %d routes: %v", len(routes), routes)
	}
	bodies, headers := hostileBodies(assistant), hostileHeaders()
	for _, route := range routes {
		method, path, _ := strings.Cut(route, " ")
		t.Run(route, func(t *testing.T) {
			// Fresh identities per route: a hostile request may sign them
			// out or disconnect their providers.
			b, token, _ := e.admin()
			var cookies []*http.Cookie
			for _, c := range b.cookies {
				cookies = append(cookies, c)
			}
			identities := []robustIdentity{
				{name: "anonymous"},
				{name: "admin", headers: []string{"X-CSRF-Token", token}, cookies: cookies},
				{name: "bearer", headers: []string{"Authorization", e.bearer()}},
				{name: "operator", headers: []string{"Authorization", "Bearer " + opsToken}},
			}
			if path == "/api/webhooks/vapi" {
				identities = append(identities, robustIdentity{name: "vapi", headers: []string{webhooks.HeaderVapiSecret, secret}})
			}
			variants := []hostile{{name: "plausible"}}
			variants = append(variants, bodies...)
			variants = append(variants, headers...)
			variants = append(variants, hostilePaths(path)...)
			variants = append(variants, hostileMethods(method)...)
			for _, id := range identities {
				for _, v := range variants {
					req := hostileRequest(method, path, assistant, id, v)
					res, err := e.try(req)
					if err != nil {
						t.Errorf("%s / %s: %s %.120s: %v", id.name, v.name, req.Method, req.URL.RequestURI(), err)
						continue
					}
					checkHostileAnswer(t, id.name+" / "+v.name, req, res)
				}
			}
		})
	}
	for _, line := range strings.Split(e.log.String(), "\n") {
		if strings.Contains(line, "panic") || strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("the log has an error:\n%.2000s", line)
		}
	}
}

// fiberMethods are the methods Fiber routes. It answers any other method
// itself, before the middleware, with a plain-text 400 "Invalid http
// method".
var fiberMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "DELETE": true,
	"CONNECT": true, "OPTIONS": true, "TRACE": true, "PATCH": true}

// try sends req to the server in memory, returning the server's error
// instead of failing the test.
func (e *env) try(req *http.Request) (response, error) {
	res, err := e.srv.Test(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return response{Response: res, body: string(b)}, err
}

// hostileRequest builds the variant v of a request to the route from id.
func hostileRequest(method, route, assistant string, id robustIdentity, v hostile) *http.Request {
	if v.method != "" {
		method = v.method
	}
	target := fillParams(route)
	if v.path != "" {
		target = v.path
	}
	if v.query != "" {
		target += "?" + v.query
	}
	body, ctype := plausibleBody(assistant), "application/json"
	if v.body != nil {
		body, ctype = *v.body, v.ctype
	}
	var r io.Reader
	if method != "GET" && method != "HEAD" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	if r != nil && ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for _, c := range id.cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	for _, c := range v.cookies {
		req.Header.Add("Cookie", c)
	}
	for i := 0; i+1 < len(id.headers); i += 2 {
		req.Header.Set(id.headers[i], id.headers[i+1])
	}
	for i := 0; i+1 < len(v.headers); i += 2 {
		req.Header.Set(v.headers[i], v.headers[i+1])
	}
	return req
}

var codePattern = regexp.MustCompile(`^[a-z][a-z_]*$`)

// checkHostileAnswer fails on a server error, and on a JSON error answer
// without the envelope and its code.
func checkHostileAnswer(t *testing.T, name string, req *http.Request, res response) {
	t.Helper()
	what := fmt.Sprintf("%s: %s %.120s", name, req.Method, req.URL.RequestURI())
	if !fiberMethods[req.Method] {
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want Fiber's 400", what, res.StatusCode)
		}
		return
	}
	if res.StatusCode >= 500 {
		t.Errorf("%s: status %d\n%.300s", what, res.StatusCode, res.body)
		return
	}
	ct, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if res.StatusCode < 400 || req.Method == "HEAD" {
		return
	}
	if ct != "application/json" {
		if strings.HasPrefix(req.URL.Path, "/api/") && res.Header.Get("X-Byoc-Status") == "" && ct != "text/html" {
			t.Errorf("%s: status %d answered as %q\n%.300s", what, res.StatusCode, ct, res.body)
		}
		return
	}
	var env struct {
		Success *bool `json:"success"`
		Error   struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(res.body), &env); err != nil || env.Success == nil || *env.Success ||
		!codePattern.MatchString(env.Error.Code) || env.Error.Message == "" {
		t.Errorf("%s: status %d without the error envelope: %.300s", what, res.StatusCode, res.body)
	}
}

// TestHostileConnections sends what only a real connection can carry:
// requests the server must refuse while reading them.
func TestHostileConnections(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.srv.Serve(ln) }()
	t.Cleanup(func() { _ = e.srv.Shutdown(context.Background()) })

	bigCookie := "byoc_session=" + strings.Repeat("A", 20<<10)
	const (
		mediaJSON = "application/json"
		mediaHTML = "text/html"
	)
	tests := []struct {
		name   string
		raw    string
		status int
		// format is the answer's media type ("": not checked); JSON
		// answers carry the error envelope.
		format string
	}{
		{"body over the limit", "POST /api/auth/token HTTP/1.1\r\nHost: byoc.test\r\nContent-Type: application/json\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n\r\n{\"email\": \"", web.DefaultBodyLimit+100), http.StatusRequestEntityTooLarge, mediaJSON},
		{"headers over the limit", "GET /api/integrations/status HTTP/1.1\r\nHost: byoc.test\r\nCookie: " + bigCookie + "\r\n\r\n",
			http.StatusRequestEntityTooLarge, mediaJSON},
		{"headers over the limit, API path in capitals", "GET /API/Integrations/status?x=1 HTTP/1.1\r\nHost: byoc.test\r\nCookie: " +
			bigCookie + "\r\n\r\n", http.StatusRequestEntityTooLarge, mediaJSON},
		{"headers over the limit on a page", "GET /dashboard/integrations HTTP/1.1\r\nHost: byoc.test\r\nCookie: " + bigCookie + "\r\n\r\n",
			http.StatusRequestEntityTooLarge, mediaHTML},
		{"unknown method", "BREW /api/integrations/status HTTP/1.1\r\nHost: byoc.test\r\n\r\n", http.StatusBadRequest, ""},
		{"no request target", "GET\r\nHost: byoc.test\r\n\r\n", http.StatusBadRequest, ""},
		{"NUL in a header", "GET /api/integrations/status HTTP/1.1\r\nHost: byoc.test\r\nAuthorization: Bearer a\x00b\r\n\r\n",
			http.StatusUnauthorized, mediaJSON},
		{"negative content length", "POST /api/auth/token HTTP/1.1\r\nHost: byoc.test\r\nContent-Length: -5\r\n\r\n", http.StatusBadRequest, ""},
		{"broken chunked body", "POST /api/auth/token HTTP/1.1\r\nHost: byoc.test\r\nContent-Type: application/json\r\n" +
			"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", http.StatusBadRequest, ""},
		{"broken multipart", "POST /api/auth/token HTTP/1.1\r\nHost: byoc.test\r\nContent-Type: multipart/form-data; boundary=xyz\r\n" +
			"Content-Length: 17\r\n\r\n--xyz\r\nbroken\r\n\r\n", http.StatusBadRequest, mediaJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(conn, tt.raw); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d\n%.300s", res.StatusCode, tt.status, raw)
			}
			if ct := res.Header.Get("Content-Type"); tt.format != "" && !strings.HasPrefix(ct, tt.format) {
				t.Fatalf("answered %q, want %s\n%.300s", ct, tt.format, raw)
			}
			if tt.format == mediaJSON && envelopeError(t, response{Response: res, body: string(raw)})["code"] == "" {
				t.Fatalf("no error code: %s", raw)
			}
		})
	}
	if logs := e.log.String(); strings.Contains(logs, "panic") || strings.Contains(logs, `"level":"ERROR"`) {
		t.Fatalf("the log has an error:\n%s", logs)
	}
}

func TestTextNoFieldMayHold(t *testing.T) {
	e := newEnv(t)
	email := e.browser().signup(password)
	tests := []struct {
		name   string
		req    *http.Request
		status int
		field  string
	}{
		{"NUL in a JSON email", request(http.MethodPost, "/api/auth/token", `{"email":"a\u0000@example.com","password":"x"}`), 400, "email"},
		{"invalid UTF-8 in a form email", request(http.MethodPost, "/api/auth/token", url.Values{"email": {"\xff@example.com"}, "password": {"x"}}), 400, "email"},
		{"NUL in an org name", request(http.MethodPost, "/api/auth/signup", map[string]string{"orgName": "A\x00", "email": uniqueEmail(), "password": password}), 400, "orgName"},
		// Passwords are only hashed: they may hold anything.
		{"NUL in a password", request(http.MethodPost, "/api/auth/token", map[string]string{"email": email, "password": password + "\x00"}), 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do(tt.req)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d\n%s", res.StatusCode, tt.status, res.body)
			}
			er := envelopeError(t, res)
			if fields, _ := er["fields"].(map[string]any); tt.field != "" && fields[tt.field] == nil {
				t.Fatalf("no message for %s: %v", tt.field, er)
			}
		})
	}
}
