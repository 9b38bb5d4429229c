package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
)

// stored decrypts what the org has stored for provider p.
func (e *env) stored(orgID string, p app.Provider) app.Values {
	e.t.Helper()
	cfg, err := e.creds.Get(context.Background(), orgID, p)
	if err != nil {
		e.t.Fatalf("stored %s: %v", p, err)
	}
	return app.MustDescribe(p).Values(cfg)
}

// mustSave posts a whole configuration and fails the test unless it is
// stored.
func (b *browser) mustSave(token, provider string, body map[string]string) map[string]any {
	b.e.t.Helper()
	res := b.api(http.MethodPost, "/api/integrations/"+provider, body, token)
	if res.StatusCode != http.StatusOK {
		b.e.t.Fatalf("save %s: %d\n%s", provider, res.StatusCode, res.body)
	}
	return envelopeData(b.e.t, res)
}

func TestUpdateKeepsWhatIsNotGiven(t *testing.T) {
	e := newEnv(t)
	b, token, org := e.admin()

	resendFirst, resendSecond := resendKey(), resendKey()
	elevenFirst, elevenSecond := elevenKey(), elevenKey()
	sid, tokenFirst, tokenSecond := twilioSID(), twilioToken(), twilioToken()
	vapiEU, vapiSecret, vapiSecond := vapiKey("eu"), "whsec_"+apptest.RandomHex(12), vapiKey("eu")

	b.mustSave(token, "resend", map[string]string{"apiKey": resendFirst, "fromEmail": "hello@example.com"})
	b.mustSave(token, "elevenlabs", map[string]string{"apiKey": elevenFirst, "voiceId": "21m00Tcm4TlvDq8ikWAM"})
	b.mustSave(token, "twilio", map[string]string{"accountSid": sid, "authToken": tokenFirst,
		"phoneNumber": "+1 202 555 0142", "whatsappNumber": "+44 20 7183 8750"})
	b.mustSave(token, "vapi", map[string]string{"apiKey": vapiEU, "webhookSecret": vapiSecret, "region": "eu"})

	tests := []struct {
		name     string
		provider app.Provider
		body     any
		want     app.Values // the stored fields after the update
	}{
		{"resend: a new key keeps the sender", app.Resend, map[string]string{"apiKey": resendSecond},
			app.Values{"apiKey": resendSecond, "fromEmail": "hello@example.com"}},
		{"resend: a new sender keeps the key", app.Resend, map[string]string{"fromEmail": "team@example.com"},
			app.Values{"apiKey": resendSecond, "fromEmail": "team@example.com"}},
		{"resend: a blank key keeps the stored one", app.Resend, map[string]string{"apiKey": "", "fromEmail": "desk@example.com"},
			app.Values{"apiKey": resendSecond, "fromEmail": "desk@example.com"}},
		{"elevenlabs: a new key keeps the voice", app.ElevenLabs, map[string]string{"apiKey": elevenSecond},
			app.Values{"apiKey": elevenSecond, "voiceId": "21m00Tcm4TlvDq8ikWAM"}},
		{"elevenlabs: an empty voice id clears it", app.ElevenLabs, map[string]any{"voiceId": "", "apiKey": nil},
			app.Values{"apiKey": elevenSecond, "voiceId": ""}},
		{"twilio: a new token keeps the numbers", app.Twilio, map[string]string{"authToken": tokenSecond},
			app.Values{"accountSid": sid, "authToken": tokenSecond, "phoneNumber": "+12025550142", "whatsappNumber": "+442071838750"}},
		{"twilio: a new WhatsApp number keeps the rest", app.Twilio, map[string]string{"whatsappNumber": "+33 6 12 34 56 78"},
			app.Values{"accountSid": sid, "authToken": tokenSecond, "phoneNumber": "+12025550142", "whatsappNumber": "+33612345678"}},
		{"vapi: a new key keeps the EU region and the secret", app.Vapi, map[string]string{"apiKey": vapiSecond},
			app.Values{"apiKey": vapiSecond, "webhookSecret": vapiSecret, "region": "eu"}},
		{"twilio: a form body takes only the fields it has", app.Twilio, url.Values{"phoneNumber": {"(202) 555-0199"}},
			app.Values{"accountSid": sid, "authToken": tokenSecond, "phoneNumber": "+12025550199", "whatsappNumber": "+33612345678"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := b.api(http.MethodPatch, "/api/integrations/"+string(tt.provider), tt.body, token)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("PATCH: %d\n%s", res.StatusCode, res.body)
			}
			if d := envelopeData(t, res); d["connected"] != true || d["provider"] != string(tt.provider) {
				t.Errorf("answer %v", d)
			}
			got := e.stored(org, tt.provider)
			for k, want := range tt.want {
				if got[k] != want {
					t.Errorf("stored %s = %q, want %q", k, got[k], want)
				}
			}
		})
	}
	assertNoSecrets(t, e, resendFirst, resendSecond, elevenFirst, elevenSecond, tokenFirst, tokenSecond, vapiEU, vapiSecret, vapiSecond)
}

func TestUpdateRefusals(t *testing.T) {
	e := newEnv(t)
	b, token, org := e.admin()
	key := resendKey()
	b.mustSave(token, "resend", map[string]string{"apiKey": key, "fromEmail": "hello@example.com"})
	usKey := vapiKey()
	b.mustSave(token, "vapi", map[string]string{"apiKey": usKey})

	tests := []struct {
		name     string
		provider string
		body     any
		status   int
		code     string
		fields   []string
	}{
		{"nothing stored", "twilio", map[string]string{"authToken": twilioToken()}, 404, "not_configured", nil},
		{"a bad field", "resend", map[string]string{"fromEmail": "not an address"}, 400, "validation_failed", []string{"fromEmail"}},
		{"a required field emptied", "resend", map[string]string{"apiKey": "   "}, 200, "", nil},
		{"the wrong type", "resend", `{"fromEmail": 12}`, 400, "validation_failed", []string{"fromEmail"}},
		{"the merged key refused", "resend", map[string]string{"apiKey": resendKey("invalid")}, 422, "verification_failed", nil},
		{"the merged config refused: a US key in the EU", "vapi", map[string]string{"region": "eu"}, 422, "verification_failed", nil},
		{"provider down", "resend", map[string]string{"apiKey": resendKey("down")}, 502, "provider_unavailable", nil},
		{"google connects through its sign-in", "google_calendar", map[string]string{"email": "a@example.com"}, 400, "validation_failed", nil},
		{"unknown provider", "stripe", map[string]string{"apiKey": "x"}, 404, "unknown_provider", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := b.api(http.MethodPatch, "/api/integrations/"+tt.provider, tt.body, token)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d\n%s", res.StatusCode, tt.status, res.body)
			}
			if tt.code == "" {
				return
			}
			e := envelopeError(t, res)
			if e["code"] != tt.code {
				t.Errorf("code %v, want %s", e["code"], tt.code)
			}
			fields, _ := e["fields"].(map[string]any)
			for _, f := range tt.fields {
				if fields[f] == nil {
					t.Errorf("no message for %s: %v", f, fields)
				}
			}
		})
	}
	// Nothing refused changed what was stored.
	if got := e.stored(org, app.Resend); got["apiKey"] != key || got["fromEmail"] != "hello@example.com" {
		t.Errorf("resend after the refusals: key kept %v, sender %q", got["apiKey"] == key, got["fromEmail"])
	}
	if got := e.stored(org, app.Vapi); got["apiKey"] != usKey || got["region"] != "us" {
		t.Errorf("vapi after the refusals: key kept %v, region %q", got["apiKey"] == usKey, got["region"])
	}

	t.Run("a member", func(t *testing.T) {
		m, mtoken := e.member(org)
		res := m.api(http.MethodPatch, "/api/integrations/resend", map[string]string{"fromEmail": "x@example.com"}, mtoken)
		if res.StatusCode != http.StatusForbidden {
			t.Fatalf("member PATCH: %d\n%s", res.StatusCode, res.body)
		}
		if got := e.stored(org, app.Resend); got["fromEmail"] != "hello@example.com" {
			t.Errorf("the member changed the sender to %q", got["fromEmail"])
		}
	})

	t.Run("without the CSRF token", func(t *testing.T) {
		res := b.do(request(http.MethodPatch, "/api/integrations/resend", map[string]string{"fromEmail": "x@example.com"}))
		if res.StatusCode != http.StatusForbidden {
			t.Fatalf("PATCH without CSRF: %d", res.StatusCode)
		}
	})

	t.Run("another org's credentials are not this org's", func(t *testing.T) {
		other, otherToken, _ := e.admin()
		res := other.api(http.MethodPatch, "/api/integrations/resend", map[string]string{"fromEmail": "x@example.com"}, otherToken)
		if res.StatusCode != http.StatusNotFound || envelopeError(t, res)["code"] != "not_configured" {
			t.Fatalf("other org PATCH: %d\n%s", res.StatusCode, res.body)
		}
	})
	assertNoSecrets(t, e, key, usKey)
}

func TestStatusShowsChecksAndScope(t *testing.T) {
	e := newEnv(t)
	b, token, org := e.admin()

	b.mustSave(token, "resend", map[string]string{"apiKey": resendKey("restricted")})
	r := entry(t, b.status(token), "resend")
	if r["limited"] != true || r["warning"] == nil || !strings.Contains(r["warning"].(string), "Sending-only") {
		t.Fatalf("a sending-only key: %v", r)
	}
	if r["lastChecked"] == nil || r["lastChecked"] != r["lastVerified"] {
		t.Errorf("after a save: lastChecked %v, lastVerified %v", r["lastChecked"], r["lastVerified"])
	}

	// A test that passes keeps the scope; the answer says it too.
	res := b.api(http.MethodPost, "/api/integrations/resend/verify", nil, token)
	if d := envelopeData(t, res); d["limited"] != true || d["warning"] == nil {
		t.Errorf("verify answer %v", d)
	}
	if r := entry(t, b.status(token), "resend"); r["limited"] != true {
		t.Errorf("after a passed test: %v", r)
	}

	// A full key clears it.
	res = b.api(http.MethodPatch, "/api/integrations/resend", map[string]string{"apiKey": resendKey()}, token)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("PATCH: %d\n%s", res.StatusCode, res.body)
	}
	if r := entry(t, b.status(token), "resend"); r["limited"] != false || r["warning"] != nil {
		t.Errorf("a full key: %v", r)
	}

	// A failed test moves lastChecked, not lastVerified.
	e.store(org, app.ElevenLabsConfig{APIKey: app.NewSecret(elevenKey("invalid"))})
	before := entry(t, b.status(token), "elevenlabs")
	res = b.api(http.MethodPost, "/api/integrations/elevenlabs/verify", nil, token)
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("verify: %d\n%s", res.StatusCode, res.body)
	}
	after := entry(t, b.status(token), "elevenlabs")
	if after["lastVerified"] != before["lastVerified"] || after["lastChecked"] == before["lastChecked"] ||
		after["needsAttention"] != true || after["verificationError"] == nil {
		t.Errorf("before %v, after %v", before, after)
	}
	checked, _ := time.Parse(time.RFC3339Nano, after["lastChecked"].(string))
	verified, _ := time.Parse(time.RFC3339Nano, after["lastVerified"].(string))
	if !checked.After(verified) {
		t.Errorf("lastChecked %v is not after lastVerified %v", checked, verified)
	}
	// The card says both: when it last passed, and that a check since failed.
	d := b.get("/dashboard/integrations").doc(t)
	if testid(d, "card-elevenlabs-verified").Length() != 1 || testid(d, "card-elevenlabs-checked").Length() != 1 ||
		testid(d, "card-elevenlabs-error").Length() != 1 {
		t.Error("the card does not tell the last pass, the last check and its failure apart")
	}
}

func TestUpdateDialog(t *testing.T) {
	e := newEnv(t)
	b, token, _ := e.admin()
	key := resendKey("restricted")
	b.mustSave(token, "resend", map[string]string{"apiKey": key, "fromEmail": "hello@example.com"})
	tw := twilioToken()
	b.mustSave(token, "twilio", map[string]string{"accountSid": twilioSID(), "authToken": tw,
		"phoneNumber": "+1 202 555 0142", "whatsappNumber": "+442071838750"})

	d := b.get("/dashboard/integrations").doc(t)
	if got := strings.TrimSpace(d.Find("#dialog-resend-title").Text()); got != "Update Resend" {
		t.Errorf("resend dialog title %q", got)
	}
	if got := strings.TrimSpace(d.Find("#dialog-vapi-title").Text()); got != "Connect Vapi" {
		t.Errorf("vapi dialog title %q", got)
	}
	form := d.Find("#form-resend")
	if form.AttrOr("hx-patch", "") != "/api/integrations/resend" || form.AttrOr("hx-post", "") != "" {
		t.Errorf("the update form does not PATCH: %v", form.Nodes[0].Attr)
	}
	if v := d.Find("#resend-fromEmail").AttrOr("value", ""); v != "hello@example.com" {
		t.Errorf("sender %q", v)
	}
	apiKey := d.Find("#resend-apiKey")
	if apiKey.AttrOr("value", "") != "" || apiKey.Is("[required]") {
		t.Errorf("the key field is filled in or required")
	}
	if hint := d.Find("#resend-apiKey-hint").Text(); !strings.Contains(hint, "••••"+key[len(key)-4:]) || !strings.Contains(hint, "blank") {
		t.Errorf("the key's hint %q", hint)
	}
	if v := d.Find("#twilio-whatsappNumber").AttrOr("value", ""); v != "+44 20 7183 8750" {
		t.Errorf("WhatsApp number shown as %q", v)
	}
	if testid(d, "card-resend-limited").Length() != 1 || !strings.Contains(testid(d, "card-resend-warning").Text(), "Sending-only") {
		t.Error("the Resend card shows no Limited badge with its explanation")
	}
	if d.Find("#resend-apiKey ~ [data-secret-toggle], [data-secret-toggle='resend-apiKey']").Length() != 1 {
		t.Error("the secret has no show/hide toggle")
	}

	t.Run("a refused update answers the messages, never the secret", func(t *testing.T) {
		typed := resendKey("invalid")
		res := b.hx(http.MethodPatch, "/api/integrations/resend", url.Values{"apiKey": {typed}, "fromEmail": {"team@example.com"}}, token)
		if htmxStatus(t, res, true) != http.StatusUnprocessableEntity {
			t.Fatalf("status %s\n%s", res.Header.Get("X-Byoc-Status"), res.body)
		}
		d := res.doc(t)
		if testid(d, "form-error").Length() != 1 || d.Find("#form-resend[hx-patch]").Length() != 1 {
			t.Errorf("no update form with its message\n%s", res.body)
		}
		if strings.Contains(res.body, typed) {
			t.Error("the typed key came back")
		}
	})

	t.Run("a saved update sends the Update form the dialog shows next", func(t *testing.T) {
		res := b.hx(http.MethodPatch, "/api/integrations/resend", url.Values{"apiKey": {""}, "fromEmail": {"team@example.com"}}, token)
		if htmxStatus(t, res, true) != http.StatusOK {
			t.Fatalf("status %s\n%s", res.Header.Get("X-Byoc-Status"), res.body)
		}
		d := res.doc(t)
		next := d.Find(`template[data-next-form="dialog-resend-body"]`)
		if next.Length() != 1 {
			t.Fatalf("no next form\n%s", res.body)
		}
		if !strings.Contains(next.Text()+res.body, `value="team@example.com"`) {
			t.Errorf("the next form lacks the new sender")
		}
		if testid(d, "success-limited").Length() != 1 {
			t.Error("the limited key's success shows no amber notice")
		}
	})

	t.Run("a disconnect brings the Configure form back", func(t *testing.T) {
		res := b.hx(http.MethodDelete, "/api/integrations/resend", nil, token)
		if htmxStatus(t, res, true) != http.StatusOK {
			t.Fatalf("status %s\n%s", res.Header.Get("X-Byoc-Status"), res.body)
		}
		if !strings.Contains(res.body, `data-next-form="dialog-resend-body"`) || strings.Contains(res.body, "hx-patch") {
			t.Errorf("the disconnect answer has no Configure form\n%s", res.body)
		}
		if !strings.Contains(res.body, `data-announce="Resend disconnected."`) {
			t.Error("the disconnect is not announced")
		}
	})
	assertNoSecrets(t, e, key, tw)
}

func TestVapiCardListsAssistants(t *testing.T) {
	e := newEnv(t)
	b, token, _ := e.admin()
	data := b.saveVapi(token, vapiKey())
	d := b.get("/dashboard/integrations").doc(t)
	for id, want := range map[string]string{
		"card-vapi-inbound-assistant":  data["inboundAssistantId"].(string),
		"card-vapi-outbound-assistant": data["outboundAssistantId"].(string),
	} {
		if got := strings.TrimSpace(testid(d, id).Text()); got == "" || got != want {
			t.Errorf("%s = %q, want %q", id, got, want)
		}
		if testid(d, id+"-copy").Length() != 1 {
			t.Errorf("%s has no copy button", id)
		}
	}
	if got := testid(d, "card-vapi-webhook-url").Text(); !strings.HasSuffix(got, "/api/webhooks/vapi") {
		t.Errorf("webhook URL %q", got)
	}
	q := d.Find("#card-vapi-disconnect").AttrOr("hx-confirm", "")
	if !strings.Contains(q, "stop reaching BYOC") || !strings.Contains(q, "stay in your Vapi account") {
		t.Errorf("the disconnect question %q does not say what stops", q)
	}
}
