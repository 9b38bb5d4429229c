package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/webhooks"
)

func withOps(token string) envOption {
	return func(s *envSetup) { s.cfg.OpsToken = app.NewSecret(token) }
}

// vapiEvent is a webhook body for the assistant.
func vapiEvent(assistantID, typ string) string {
	raw, _ := json.Marshal(map[string]any{"message": map[string]any{
		"type": typ, "timestamp": time.Now().UnixMilli(),
		"call": map[string]any{"id": "call-" + apptest.RandomHex(6), "assistantId": assistantID},
	}})
	return string(raw)
}

// connectVapi signs an org up and connects Vapi with a webhook secret; it
// returns the browser, its CSRF token and the inbound assistant's id. The
// org is HMAC-only, as every org that connects Vapi now starts.
func connectVapi(t *testing.T, e *env, secret string) (*browser, string, string) {
	t.Helper()
	b, token, _, assistant := connectVapiKey(t, e, secret)
	return b, token, assistant
}

// connectVapiKey is connectVapi that also returns the Vapi key.
func connectVapiKey(t *testing.T, e *env, secret string) (*browser, string, string, string) {
	t.Helper()
	b, token, _ := e.admin()
	key := vapiKey()
	res := b.api(http.MethodPost, "/api/integrations/vapi", map[string]string{"apiKey": key, "webhookSecret": secret}, token)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("save vapi: %d\n%s", res.StatusCode, res.body)
	}
	return b, token, key, envelopeData(t, res)["inboundAssistantId"].(string)
}

// allowSecretHeader turns the org's HMAC-only setting off through the API,
// so its webhooks are also accepted with the secret alone.
func allowSecretHeader(t *testing.T, b *browser, token string) {
	t.Helper()
	res := b.api(http.MethodPost, "/api/integrations/vapi/webhook-signing", map[string]bool{"hmacOnly": false}, token)
	if res.StatusCode != http.StatusOK || envelopeData(t, res)["hmacOnly"] != false {
		t.Fatalf("turn HMAC only off: %d\n%s", res.StatusCode, res.body)
	}
}

func TestVapiWebhookRoute(t *testing.T) {
	e := newEnv(t)
	secret := "whsec-" + apptest.RandomHex(16)
	b, token, key, assistant := connectVapiKey(t, e, secret)
	post := func(body string, headers ...string) response {
		return e.do(request(http.MethodPost, "/api/webhooks/vapi", body, headers...))
	}

	// An org that connects Vapi now is HMAC-only: its assistants sign their
	// events, and the static secret alone no longer counts.
	t.Run("a new org: events signed by its assistant", func(t *testing.T) {
		body := vapiEvent(assistant, "speech-update")
		h, err := e.sb.Vapi.EventHeaders(key, assistant, []byte(body), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var headers []string
		for k := range h {
			headers = append(headers, k, h.Get(k))
		}
		if res := post(body, headers...); res.StatusCode != http.StatusOK || res.json(t)["received"] != true {
			t.Fatalf("%d %s", res.StatusCode, res.body)
		}
	})
	t.Run("a new org: static secrets and replays refused", func(t *testing.T) {
		stale := vapiEvent(assistant, "speech-update")
		ts := strconv.FormatInt(time.Now().Add(-301*time.Second).Unix(), 10)
		for name, headers := range map[string][]string{
			"x-vapi-secret": {webhooks.HeaderVapiSecret, secret},
			"bearer":        {"Authorization", "Bearer " + secret},
			"replayed hmac": {webhooks.HeaderSignature, apptest.VapiSignature(secret, ts, []byte(stale)), webhooks.HeaderTimestamp, ts},
		} {
			body := vapiEvent(assistant, "speech-update")
			if name == "replayed hmac" {
				body = stale
			}
			res := post(body, headers...)
			if res.StatusCode != http.StatusUnauthorized || envelopeError(t, res)["code"] != "invalid_signature" {
				t.Errorf("%s: %d %s, want 401 invalid_signature", name, res.StatusCode, res.body)
			}
		}
	})
	allowSecretHeader(t, b, token)

	t.Run("verified without a session or CSRF token", func(t *testing.T) {
		res := post(vapiEvent(assistant, "speech-update"), webhooks.HeaderVapiSecret, secret)
		if res.StatusCode != http.StatusOK || res.json(t)["received"] != true {
			t.Fatalf("%d %s", res.StatusCode, res.body)
		}
	})
	t.Run("HMAC signature of the raw body", func(t *testing.T) {
		body := vapiEvent(assistant, "transcript")
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		res := post(body, webhooks.HeaderSignature, apptest.VapiSignature(secret, ts, []byte(body)), webhooks.HeaderTimestamp, ts)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", res.StatusCode, res.body)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		res := post(vapiEvent(assistant, "speech-update"), webhooks.HeaderVapiSecret, secret+"x")
		if res.StatusCode != http.StatusUnauthorized || envelopeError(t, res)["code"] != "invalid_signature" {
			t.Fatalf("%d %s", res.StatusCode, res.body)
		}
		if strings.Contains(res.body, secret) {
			t.Fatal("the answer contains the secret")
		}
	})
	t.Run("unknown assistant", func(t *testing.T) {
		res := post(vapiEvent("asst-unknown-"+apptest.RandomHex(6), "speech-update"), webhooks.HeaderVapiSecret, secret)
		if res.StatusCode != http.StatusNotFound || envelopeError(t, res)["code"] != "unknown_assistant" {
			t.Fatalf("%d %s", res.StatusCode, res.body)
		}
	})
	t.Run("malformed JSON", func(t *testing.T) {
		res := post(`{"message": `, webhooks.HeaderVapiSecret, secret)
		if res.StatusCode != http.StatusBadRequest {
			t.Fatalf("%d %s", res.StatusCode, res.body)
		}
	})
	t.Run("body over 1 MiB", func(t *testing.T) {
		// Over a real connection: the limit is enforced while reading it.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = e.srv.Serve(ln) }()
		t.Cleanup(func() { _ = e.srv.Shutdown(context.Background()) })
		// The request announces a body over the limit; the server answers
		// from the headers, before the body, as it does for Vapi.
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /api/webhooks/vapi HTTP/1.1\r\nHost: byoc.test\r\nContent-Type: application/json\r\n"+
			"%s: %s\r\nContent-Length: %d\r\n\r\n{\"pad\": \"", webhooks.HeaderVapiSecret, secret, 1<<20+100)
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(raw), "payload_too_large") {
			t.Fatalf("%d %.200s", res.StatusCode, raw)
		}
	})
	t.Run("disconnecting Vapi makes the assistant unknown at once", func(t *testing.T) {
		if res := b.api(http.MethodDelete, "/api/integrations/vapi", nil, token); res.StatusCode != http.StatusOK {
			t.Fatalf("disconnect: %d %s", res.StatusCode, res.body)
		}
		res := post(vapiEvent(assistant, "speech-update"), webhooks.HeaderVapiSecret, secret)
		if res.StatusCode != http.StatusNotFound {
			t.Fatalf("after disconnect: %d %s", res.StatusCode, res.body)
		}
	})
	if strings.Contains(e.log.String(), secret) {
		t.Fatal("the log contains the webhook secret")
	}
}

func TestOperatorRoutes(t *testing.T) {
	const opsToken = "ops-token-0123456789abcdef"

	t.Run("off without a token", func(t *testing.T) {
		e := newEnv(t)
		for _, path := range []string{"/api/debug/webhook-stats", "/api/debug/cache-stats"} {
			res := e.do(request(http.MethodGet, path, nil, "Authorization", "Bearer "+opsToken))
			if res.StatusCode != http.StatusNotFound {
				t.Errorf("%s: %d", path, res.StatusCode)
			}
		}
	})

	e := newEnv(t, withOps(opsToken))
	secret := "whsec-" + apptest.RandomHex(16)
	b, token, assistant := connectVapi(t, e, secret)
	allowSecretHeader(t, b, token)
	for range 3 {
		e.do(request(http.MethodPost, "/api/webhooks/vapi", vapiEvent(assistant, "speech-update"), webhooks.HeaderVapiSecret, secret))
	}
	e.do(request(http.MethodPost, "/api/webhooks/vapi", vapiEvent(assistant, "speech-update"), webhooks.HeaderVapiSecret, "nope"))
	ops := func(method, path string, body any, token string) response {
		return e.do(request(method, path, body, "Authorization", "Bearer "+token))
	}

	t.Run("metrics need the token once one is set", func(t *testing.T) {
		if res := e.do(request(http.MethodGet, "/metrics", nil)); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("without the token: %d", res.StatusCode)
		}
		if res := ops(http.MethodGet, "/metrics", nil, opsToken); res.StatusCode != http.StatusOK ||
			!strings.Contains(res.body, "byoc_http_requests_total") {
			t.Errorf("with the token: %d", res.StatusCode)
		}
		prod := newEnv(t, production)
		if res := prod.do(request(http.MethodGet, "/metrics", nil)); res.StatusCode != http.StatusNotFound {
			t.Errorf("production without OPS_TOKEN: %d, want 404", res.StatusCode)
		}
	})
	t.Run("wrong token", func(t *testing.T) {
		for _, tok := range []string{"", "wrong", opsToken + "x"} {
			if res := ops(http.MethodGet, "/api/debug/webhook-stats", nil, tok); res.StatusCode != http.StatusUnauthorized {
				t.Errorf("token %q: %d", tok, res.StatusCode)
			}
		}
	})
	t.Run("webhook stats", func(t *testing.T) {
		res := ops(http.MethodGet, "/api/debug/webhook-stats", nil, opsToken)
		data := envelopeData(t, res)
		outcomes := data["outcomes"].(map[string]any)
		if outcomes["verified"] != 3.0 || outcomes["invalid_signature"] != 1.0 {
			t.Fatalf("outcomes %v", outcomes)
		}
		// The percentiles of the recent webhooks' verification time.
		lat, _ := data["latency"].(map[string]any)
		p50, _ := lat["p50Ms"].(float64)
		p90, _ := lat["p90Ms"].(float64)
		p99, _ := lat["p99Ms"].(float64)
		if lat["samples"] != 4.0 || p50 <= 0 || p50 > p90 || p90 > p99 {
			t.Errorf("latency %v", lat)
		}
	})
	t.Run("cache stats", func(t *testing.T) {
		data := envelopeData(t, ops(http.MethodGet, "/api/debug/cache-stats", nil, opsToken))
		for _, k := range []string{"credentialConfigs", "credentialStatuses", "webhookMappings", "webhookSecrets", "webhookDeliveries", "signIns"} {
			c, ok := data[k].(map[string]any)
			if !ok {
				t.Fatalf("no %s in %v", k, data)
			}
			for _, f := range []string{"hits", "misses", "hitRate", "items"} {
				if _, ok := c[f]; !ok {
					t.Errorf("%s lacks %s", k, f)
				}
			}
		}
		if m := data["webhookMappings"].(map[string]any); m["hits"].(float64) < 2 {
			t.Errorf("webhook mappings %v: want the warm webhooks as hits", m)
		}
	})
	t.Run("invalidate", func(t *testing.T) {
		res := ops(http.MethodPost, "/api/debug/invalidate-cache", map[string]string{"orgId": "not-an-id"}, opsToken)
		if res.StatusCode != http.StatusBadRequest || envelopeError(t, res)["fields"].(map[string]any)["orgId"] == nil {
			t.Fatalf("%d %s", res.StatusCode, res.body)
		}
		var orgID string
		if err := e.db.Pool.QueryRow(t.Context(), `select org_id::text from assistant_org_mapping
			where vapi_assistant_id = $1`, assistant).Scan(&orgID); err != nil {
			t.Fatal(err)
		}
		data := envelopeData(t, ops(http.MethodPost, "/api/debug/invalidate-cache", map[string]string{"orgId": orgID}, opsToken))
		if data["dropped"].(float64) < 1 {
			t.Fatalf("dropped %v, want the org's cached mapping at least", data["dropped"])
		}
	})
}

// A delivery is logged in one line, the webhook's own, carrying the request
// id and client address the access log would have had (the access line is
// at debug): at info for a delivery that is recorded, at debug for an event
// that is only acknowledged (many per call).
func TestVapiWebhookLoggedOnce(t *testing.T) {
	e := newEnv(t)
	secret := "whsec-" + apptest.RandomHex(16)
	_, _, key, assistant := connectVapiKey(t, e, secret)
	for _, tc := range []struct{ typ, level string }{{"speech-update", "DEBUG"}, {"status-update", "INFO"}} {
		id := "deliv-" + apptest.RandomHex(8)
		body := vapiEvent(assistant, tc.typ)
		h, err := e.sb.Vapi.EventHeaders(key, assistant, []byte(body), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		headers := []string{"X-Request-ID", id}
		for k := range h {
			headers = append(headers, k, h.Get(k))
		}
		if res := e.do(request(http.MethodPost, "/api/webhooks/vapi", body, headers...)); res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.typ, res.StatusCode, res.body)
		}
		var above []map[string]any
		var line map[string]any
		for _, l := range strings.Split(e.log.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) != nil || m["request_id"] != id {
				continue
			}
			if m["level"] != "DEBUG" {
				above = append(above, m)
			}
			if m["msg"] == "vapi webhook" {
				line = m
			}
		}
		if want := map[string]int{"DEBUG": 0, "INFO": 1}[tc.level]; len(above) != want {
			t.Fatalf("%s: %d lines above debug for the delivery, want %d: %v", tc.typ, len(above), want, above)
		}
		if line == nil || line["level"] != tc.level || line["assistant_id"] != assistant || line["outcome"] != "verified" ||
			line["ip"] == "" || line["ip"] == nil {
			t.Fatalf("%s: the delivery's line %v, want it at %s", tc.typ, line, tc.level)
		}
	}
}
