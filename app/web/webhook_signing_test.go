package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"byoc/app"
	"byoc/app/integrations"
)

const webhookSigningPath = "/api/integrations/vapi/webhook-signing"

// hmacOnlyOf reads the org's setting from the status API.
func hmacOnlyOf(t *testing.T, b *browser, token string) any {
	t.Helper()
	return entry(t, b.status(token), "vapi")["webhookHmacOnly"]
}

// TestWebhookSigningRoute: an admin turns the HMAC-only setting on and
// off in every format; a member is refused; bad input is refused and
// changes nothing; every attempt is audited.
func TestWebhookSigningRoute(t *testing.T) {
	e := newEnv(t)
	b, token, orgID := e.admin()

	res := b.api(http.MethodPost, webhookSigningPath, map[string]bool{"hmacOnly": true}, token)
	if res.StatusCode != http.StatusNotFound || envelopeError(t, res)["code"] != "not_configured" {
		t.Fatalf("before Vapi is connected: %d %s", res.StatusCode, res.body)
	}
	if v := entry(t, b.status(token), "vapi"); v["webhookHmacOnly"] != nil {
		t.Errorf("an unconnected Vapi shows the setting: %v", v)
	}
	b.saveVapi(token, vapiKey())
	if got := hmacOnlyOf(t, b, token); got != true {
		t.Fatalf("a new Vapi connection: webhookHmacOnly %v, want true", got)
	}

	t.Run("JSON", func(t *testing.T) {
		res := b.api(http.MethodPost, webhookSigningPath, map[string]bool{"hmacOnly": false}, token)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", res.StatusCode, res.body)
		}
		if d := envelopeData(t, res); d["provider"] != "vapi" || d["hmacOnly"] != false || len(d) != 2 {
			t.Errorf("data %v", d)
		}
		if got := hmacOnlyOf(t, b, token); got != false {
			t.Errorf("webhookHmacOnly %v after turning it off", got)
		}
	})
	t.Run("bad input changes nothing", func(t *testing.T) {
		for name, body := range map[string]any{
			"nothing":      map[string]any{},
			"null":         map[string]any{"hmacOnly": nil},
			"a string":     `{"hmacOnly": "yes"}`,
			"a number":     `{"hmacOnly": 1}`,
			"not JSON":     `{"hmacOnly": `,
			"a bad form":   url.Values{"hmacOnly": {"maybe"}},
			"an empty one": url.Values{},
		} {
			res := b.api(http.MethodPost, webhookSigningPath, body, token)
			if res.StatusCode != http.StatusBadRequest || envelopeError(t, res)["code"] != "validation_failed" {
				t.Errorf("%s: %d %s, want 400 validation_failed", name, res.StatusCode, res.body)
			}
		}
		res := b.api(http.MethodPost, webhookSigningPath, map[string]any{}, token)
		if f, _ := envelopeError(t, res)["fields"].(map[string]any); f["hmacOnly"] == nil {
			t.Errorf("fields %v, want a message for hmacOnly", f)
		}
		if got := hmacOnlyOf(t, b, token); got != false {
			t.Errorf("webhookHmacOnly %v after refused input", got)
		}
	})
	t.Run("htmx: the card", func(t *testing.T) {
		res := b.hx(http.MethodPost, webhookSigningPath, url.Values{"hmacOnly": {"true"}}, token)
		d := res.doc(t)
		if htmxStatus(t, res, true) != http.StatusOK || d.Find("article").Length() != 1 {
			t.Fatalf("%d\n%s", res.StatusCode, res.body)
		}
		section := testid(d, "card-vapi-webhook-signing")
		if v, _ := section.Attr("data-hmac-only"); v != "true" {
			t.Errorf("the card shows data-hmac-only %q", v)
		}
		toggle := testid(d, "card-vapi-webhook-signing-toggle")
		if vals, _ := toggle.Attr("hx-vals"); !strings.Contains(vals, `"false"`) {
			t.Errorf("the switch posts %q, want hmacOnly false", vals)
		}
		if got := testid(d, "card-vapi-result").Text(); got != integrations.WebhookSigningDetail(true) {
			t.Errorf("result %q", got)
		}
		if got := hmacOnlyOf(t, b, token); got != true {
			t.Errorf("webhookHmacOnly %v after turning it on", got)
		}
	})
	t.Run("full page", func(t *testing.T) {
		res := b.hx(http.MethodPost, webhookSigningPath, url.Values{"hmacOnly": {"false"}}, token, "HX-Boosted", "true")
		if res.Header.Get("HX-Redirect") != "/dashboard/integrations" {
			t.Fatalf("%d HX-Redirect %q", res.StatusCode, res.Header.Get("HX-Redirect"))
		}
		page := b.get("/dashboard/integrations").doc(t)
		if got := testid(page, "flash-success").Text(); !strings.Contains(got, integrations.WebhookSigningDetail(false)) {
			t.Errorf("flash %q", got)
		}
		if v, _ := testid(page, "card-vapi-webhook-signing").Attr("data-hmac-only"); v != "false" {
			t.Errorf("the dashboard shows data-hmac-only %q", v)
		}
	})
	t.Run("a member is refused", func(t *testing.T) {
		m, mtoken := e.member(orgID)
		res := m.api(http.MethodPost, webhookSigningPath, map[string]bool{"hmacOnly": true}, mtoken)
		if res.StatusCode != http.StatusForbidden || envelopeError(t, res)["code"] != "forbidden" {
			t.Fatalf("JSON: %d %s", res.StatusCode, res.body)
		}
		res = m.hx(http.MethodPost, webhookSigningPath, url.Values{"hmacOnly": {"true"}}, mtoken)
		if htmxStatus(t, res, true) != http.StatusForbidden || !strings.Contains(res.body, "Only an admin") {
			t.Fatalf("htmx: %s\n%s", res.Header.Get("X-Byoc-Status"), res.body)
		}
		// The member sees the setting, without the switch.
		d := m.get("/dashboard/integrations").doc(t)
		if testid(d, "card-vapi-webhook-signing").Length() != 1 || testid(d, "card-vapi-webhook-signing-toggle").Length() != 0 {
			t.Error("a member does not see the setting, or sees its switch")
		}
		if got := hmacOnlyOf(t, b, token); got != false {
			t.Errorf("a member changed the setting: %v", got)
		}
	})
	t.Run("a request without the CSRF token is refused", func(t *testing.T) {
		res := b.do(request(http.MethodPost, webhookSigningPath, url.Values{"hmacOnly": {"true"}}, "HX-Request", "true"))
		if htmxStatus(t, res, true) != http.StatusForbidden {
			t.Errorf("%d", res.StatusCode)
		}
		if got := hmacOnlyOf(t, b, token); got != false {
			t.Errorf("a forged request changed the setting: %v", got)
		}
	})

	// Every attempt that reaches the service is audited, refused ones
	// included: 3 changes; 7 refusals (Vapi not connected, 4 bodies that
	// say nothing, the member twice). A body that cannot be read, or a
	// request without its CSRF token, is refused before the service.
	log, err := e.db.AuditLog(context.Background(), orgID, 100)
	if err != nil {
		t.Fatal(err)
	}
	var ok, refused int
	for _, en := range log {
		if en.Action != integrations.ActionWebhookSigning {
			continue
		}
		if en.Provider != app.Vapi {
			t.Errorf("entry %+v", en)
		}
		switch en.Outcome {
		case app.OutcomeSuccess:
			ok++
		case app.OutcomeFailure:
			refused++
		}
	}
	if ok != 3 || refused != 7 {
		t.Errorf("audit log holds %d changes and %d refusals of the setting, want 3 and 7", ok, refused)
	}
}

// TestWebhookSigningForBearerClients: API clients with a bearer token change
// the setting without a CSRF token.
func TestWebhookSigningForBearerClients(t *testing.T) {
	e := newEnv(t)
	bearer := e.bearer()
	if res := e.do(request(http.MethodPost, "/api/integrations/vapi", map[string]string{"apiKey": vapiKey()}, "Authorization", bearer)); res.StatusCode != http.StatusOK {
		t.Fatalf("save: %d %s", res.StatusCode, res.body)
	}
	res := e.do(request(http.MethodPost, webhookSigningPath, map[string]bool{"hmacOnly": false}, "Authorization", bearer))
	if res.StatusCode != http.StatusOK || envelopeData(t, res)["hmacOnly"] != false {
		t.Fatalf("%d %s", res.StatusCode, res.body)
	}
}
