package sandbox_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"byoc/app/apptest"
	"byoc/app/sandbox"
)

func TestVapiPatchAssistant(t *testing.T) {
	sb, u := start(t)
	status, body := send(t, call{"POST", u.Vapi + "/assistant", bearer("org-a"),
		`{"name":"Desk","firstMessage":"Hi","server":{"url":"https://old.example.com/hook","secret":"old-secret","timeoutSeconds":30}}`})
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, body)
	}
	id := sb.Vapi.Assistants("org-a")[0].ID
	patch := func(key, id, body string) (int, any) {
		t.Helper()
		return send(t, call{"PATCH", u.Vapi + "/assistant/" + id, bearer(key), body})
	}

	t.Run("server is replaced as a whole", func(t *testing.T) {
		status, body := patch("org-a", id, `{"server":{"url":"https://new.example.com/hook","secret":"new-secret"}}`)
		if status != http.StatusOK {
			t.Fatalf("patch: %d %v", status, body)
		}
		m := body.(map[string]any)
		srv := m["server"].(map[string]any)
		if srv["url"] != "https://new.example.com/hook" || m["name"] != "Desk" || m["firstMessage"] != "Hi" {
			t.Errorf("answer = %v", m)
		}
		if _, leaked := srv["secret"]; leaked {
			t.Errorf("the server secret is echoed back: %v", m)
		}
		a := sb.Vapi.Assistants("org-a")[0]
		if a.Server == nil || a.Server.URL != "https://new.example.com/hook" || a.Server.Secret != "new-secret" ||
			a.Server.TimeoutSeconds != 20 || a.Name != "Desk" || a.UpdatedAt.Before(a.CreatedAt) {
			t.Errorf("stored = %+v, server %+v", a, a.Server)
		}
	})
	t.Run("a server without a secret clears it", func(t *testing.T) {
		if status, body := patch("org-a", id, `{"server":{"url":"https://new.example.com/hook"}}`); status != http.StatusOK {
			t.Fatalf("patch: %d %v", status, body)
		}
		if a := sb.Vapi.Assistants("org-a")[0]; a.Server == nil || a.Server.Secret != "" || a.Server.URL != "https://new.example.com/hook" {
			t.Errorf("server = %+v, want no secret", a.Server)
		}
	})
	t.Run("bad fields are refused and nothing changes", func(t *testing.T) {
		status, body := patch("org-a", id, `{"nom":"x","server":{"url":"ftp:x","secret":"bad"}}`)
		if status != http.StatusBadRequest {
			t.Fatalf("status = %d, want 400", status)
		}
		msgs, _ := body.(map[string]any)["message"].([]any)
		if len(msgs) != 2 || msgs[0] != "property nom should not exist" || msgs[1] != "server.url must be a URL address" {
			t.Errorf("messages = %v", msgs)
		}
		if a := sb.Vapi.Assistants("org-a")[0]; a.Server.URL != "https://new.example.com/hook" || a.Server.Secret != "" {
			t.Errorf("a refused PATCH changed the assistant: %+v", a.Server)
		}
		if status, _ := patch("org-a", id, `not json`); status != http.StatusBadRequest {
			t.Errorf("status = %d for a non-JSON body, want 400", status)
		}
	})
	t.Run("unknown id or another key's assistant is 404", func(t *testing.T) {
		for _, c := range []struct{ key, id string }{{"org-a", "nope"}, {"org-b", id}} {
			status, body := patch(c.key, c.id, `{"server":{"url":"https://x.example.com/hook","secret":"s"}}`)
			if status != http.StatusNotFound || !strings.Contains(body.(map[string]any)["message"].(string), "Not Found") {
				t.Errorf("%s PATCH %s: %d %v, want 404", c.key, c.id, status, body)
			}
		}
		if a := sb.Vapi.Assistants("org-a")[0]; a.Server.URL != "https://new.example.com/hook" {
			t.Errorf("org-b changed org-a's assistant: %+v", a.Server)
		}
		if n := len(sb.Vapi.Assistants("org-b")); n != 0 {
			t.Errorf("a PATCH created %d assistants for org-b", n)
		}
	})
	t.Run("invalid key is 401", func(t *testing.T) {
		if status, _ := patch("invalid-key", id, `{"server":{"url":"https://x.example.com/hook"}}`); status != http.StatusUnauthorized {
			t.Errorf("status = %d, want 401", status)
		}
	})
}

func TestVapiWebhookCredentials(t *testing.T) {
	sb, u := start(t)
	const plan = `{"type":"hmac","secretKey":"hook-secret-1","algorithm":"sha256","signatureHeader":"x-signature",` +
		`"timestampHeader":"x-timestamp","includeTimestamp":true,"payloadFormat":"{timestamp}.{body}","signatureEncoding":"hex"}`
	status, body := send(t, call{"POST", u.Vapi + "/credential", bearer("org-a"), `{"provider":"webhook","name":"Signing","authenticationPlan":` + plan + `}`})
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, body)
	}
	created := body.(map[string]any)
	id, _ := created["id"].(string)
	if id == "" || created["provider"] != "webhook" || strings.Contains(fmt.Sprint(created), "hook-secret-1") {
		t.Fatalf("answer = %v, want an id and no secret", created)
	}

	t.Run("invalid credentials are refused", func(t *testing.T) {
		for name, b := range map[string]string{
			"unknown property":   `{"provider":"webhook","authenticationPlan":` + plan + `,"extra":1}`,
			"other provider":     `{"provider":"openai","authenticationPlan":` + plan + `}`,
			"no secret":          `{"provider":"webhook","authenticationPlan":{"type":"hmac","algorithm":"sha256"}}`,
			"unknown algorithm":  `{"provider":"webhook","authenticationPlan":{"type":"hmac","secretKey":"s","algorithm":"md5"}}`,
			"unknown plan field": `{"provider":"webhook","authenticationPlan":{"type":"hmac","secretKey":"s","algorithm":"sha256","nope":1}}`,
			"name too long":      `{"provider":"webhook","name":"` + strings.Repeat("n", 41) + `","authenticationPlan":` + plan + `}`,
		} {
			if status, body := send(t, call{"POST", u.Vapi + "/credential", bearer("org-a"), b}); status != http.StatusBadRequest {
				t.Errorf("%s: %d %v, want 400", name, status, body)
			}
		}
		if n := len(sb.Vapi.Credentials("org-a")); n != 1 {
			t.Errorf("%d credentials stored, want 1", n)
		}
	})
	t.Run("an assistant signs with the credential it names", func(t *testing.T) {
		status, body := send(t, call{"POST", u.Vapi + "/assistant", bearer("org-a"),
			`{"name":"Desk","server":{"url":"https://byoc.example.com/hook","credentialId":"` + id + `"}}`})
		if status != http.StatusCreated {
			t.Fatalf("create assistant: %d %v", status, body)
		}
		aid := body.(map[string]any)["id"].(string)
		if s, ok := sb.Vapi.Signing("org-a", aid); !ok || s != (sandbox.VapiSigning{Mode: "hmac", Secret: "hook-secret-1"}) {
			t.Errorf("signing = %+v, %v", s, ok)
		}
		event := []byte(`{"message":{"type":"hang"}}`)
		at := time.UnixMilli(1714000000123)
		h, err := sb.Vapi.EventHeaders("org-a", aid, event, at)
		if err != nil {
			t.Fatal(err)
		}
		if ts := h.Get("X-Timestamp"); ts != "1714000000123" || h.Get("X-Signature") != apptest.VapiSignature("hook-secret-1", ts, event) ||
			h.Get("X-Vapi-Secret") != "" {
			t.Errorf("event headers = %v", h)
		}
	})
	t.Run("a credential of another key or none is refused", func(t *testing.T) {
		for _, c := range []struct{ key, cred string }{{"org-b", id}, {"org-a", "no-such-credential"}} {
			status, body := send(t, call{"POST", u.Vapi + "/assistant", bearer(c.key),
				`{"name":"Desk","server":{"url":"https://byoc.example.com/hook","credentialId":"` + c.cred + `"}}`})
			if status != http.StatusBadRequest {
				t.Errorf("%s with credential %s: %d %v, want 400", c.key, c.cred, status, body)
			}
		}
	})
	t.Run("get and delete", func(t *testing.T) {
		if status, _ := send(t, call{"GET", u.Vapi + "/credential/" + id, bearer("org-b"), ""}); status != http.StatusNotFound {
			t.Errorf("another key's GET: %d, want 404", status)
		}
		if status, _ := send(t, call{"DELETE", u.Vapi + "/credential/" + id, bearer("org-b"), ""}); status != http.StatusNotFound {
			t.Errorf("another key's DELETE: %d, want 404", status)
		}
		if status, body := send(t, call{"GET", u.Vapi + "/credential/" + id, bearer("org-a"), ""}); status != http.StatusOK {
			t.Errorf("GET: %d %v", status, body)
		}
		if status, _ := send(t, call{"DELETE", u.Vapi + "/credential/" + id, bearer("org-a"), ""}); status != http.StatusOK {
			t.Errorf("DELETE: %d", status)
		}
		if n := len(sb.Vapi.Credentials("org-a")); n != 0 {
			t.Errorf("%d credentials left after DELETE", n)
		}
	})
}
