package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"byoc/app"
	"byoc/app/apptest"
)

// Credential values for the sandbox stand-ins. A word in a key picks the
// stand-in's behaviour: "invalid" is refused, "restricted" is valid with
// limited scope, "down" answers 503. The random part is hex, so it never
// spells a trigger word ("eu" would move a Vapi key to the EU region).
func vapiKey(words ...string) string {
	return "vk_live_" + strings.Join(append(words, apptest.RandomHex(8)), "_")
}
func twilioSID() string { return "AC" + apptest.RandomHex(16) }
func twilioToken(words ...string) string {
	return strings.Join(append(words, apptest.RandomHex(16)), "_")
}
func resendKey(words ...string) string {
	return "re_" + strings.Join(append(words, apptest.RandomHex(10)), "_")
}
func elevenKey(words ...string) string {
	return "sk_" + strings.Join(append(words, apptest.RandomHex(12)), "_")
}

// admin signs a new org up through the browser and returns the browser, the
// CSRF token of its session and the org's id.
func (e *env) admin() (*browser, string, string) {
	e.t.Helper()
	b := e.browser()
	email := b.signup(password)
	token := b.csrf("/dashboard/integrations")
	var orgID string
	if err := e.db.Pool.QueryRow(context.Background(), `
		select m.org_id::text from org_members m join users u on u.id = m.user_id
		where lower(u.email) = lower($1)`, email).Scan(&orgID); err != nil {
		e.t.Fatal(err)
	}
	return b, token, orgID
}

// member adds a user with the member role to the org (the rows are
// inserted directly, past the invitation flow team_test.go covers), signs them in
// through the login form and returns their browser and CSRF token.
func (e *env) member(orgID string) (*browser, string) {
	t := e.t
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	email := strings.ToLower(uniqueEmail())
	ctx := context.Background()
	var userID string
	if err := e.db.Pool.QueryRow(ctx, `insert into users (email, password_hash) values ($1, $2) returning id::text`,
		email, string(hash)).Scan(&userID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Pool.Exec(ctx, `insert into org_members (org_id, user_id, role) values ($1, $2, 'member')`,
		orgID, userID); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	token := b.csrf("/login")
	res := b.do(request(http.MethodPost, "/login", url.Values{"_csrf": {token}, "email": {email}, "password": {password}}))
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("member login: %d\n%s", res.StatusCode, res.body)
	}
	return b, b.csrf("/dashboard/integrations")
}

// bearer signs a new org up through the API and returns its bearer token
// header value.
func (e *env) bearer() string {
	e.t.Helper()
	res := e.do(request(http.MethodPost, "/api/auth/signup", map[string]string{
		"orgName": "API Clinic", "email": uniqueEmail(), "password": password}))
	if res.StatusCode != http.StatusCreated {
		e.t.Fatalf("API signup: %d\n%s", res.StatusCode, res.body)
	}
	return "Bearer " + envelopeData(e.t, res)["token"].(string)
}

// api sends a JSON request from the browser's session (cookie and CSRF
// header); paths under /api/ answer JSON.
func (b *browser) api(method, target string, body any, token string) response {
	b.e.t.Helper()
	return b.do(request(method, target, body, "X-CSRF-Token", token))
}

// hx sends an htmx request from the browser, as static/js/app.js does: with
// HX-Request and the CSRF header.
func (b *browser) hx(method, target string, body any, token string, headers ...string) response {
	b.e.t.Helper()
	return b.do(request(method, target, body, append([]string{"HX-Request", "true", "X-CSRF-Token", token}, headers...)...))
}

// saveVapi connects Vapi with key through the JSON API and fails the test
// unless it worked.
func (b *browser) saveVapi(token, key string) map[string]any {
	b.e.t.Helper()
	res := b.api(http.MethodPost, "/api/integrations/vapi", map[string]string{"apiKey": key}, token)
	if res.StatusCode != http.StatusOK {
		b.e.t.Fatalf("save vapi: %d\n%s", res.StatusCode, res.body)
	}
	return envelopeData(b.e.t, res)
}

// store puts credentials into the org's store directly, past the
// verification a save does: it stands for credentials the provider has
// revoked or lost since they were saved.
func (e *env) store(orgID string, cfg app.Config) {
	e.t.Helper()
	if _, err := e.creds.Save(context.Background(), app.Connection{OrgID: orgID, Config: cfg, VerifiedAt: time.Now().Add(-2 * time.Hour)}); err != nil {
		e.t.Fatal(err)
	}
}

// status reads the org's status object through the JSON API.
func (b *browser) status(token string) map[string]any {
	b.e.t.Helper()
	res := b.api(http.MethodGet, "/api/integrations/status", nil, token)
	if res.StatusCode != http.StatusOK {
		b.e.t.Fatalf("status: %d\n%s", res.StatusCode, res.body)
	}
	return envelopeData(b.e.t, res)
}

func entry(t *testing.T, status map[string]any, key string) map[string]any {
	t.Helper()
	e, ok := status[key].(map[string]any)
	if !ok {
		t.Fatalf("status has no %q entry: %v", key, status)
	}
	return e
}

// cardState returns the state a card shows and its data-state.
func cardState(t *testing.T, d *goquery.Document, provider string) (label, state string) {
	t.Helper()
	card := testid(d, "card-"+provider)
	if card.Length() != 1 {
		t.Fatalf("%d cards for %s", card.Length(), provider)
	}
	state, _ = card.Attr("data-state")
	return strings.TrimSpace(testid(d, "card-"+provider+"-state").Text()), state
}

// assertNoSecrets fails when any secret appears in a response body the
// test saw or in the captured log.
func assertNoSecrets(t *testing.T, e *env, secrets ...string) {
	t.Helper()
	bodies, logs := e.bodies.String(), e.log.String()
	if !strings.Contains(logs, `"msg":"request"`) {
		t.Fatal("no access log captured")
	}
	apptest.AssertNoSecret(t, "a response body", bodies, secrets...)
	apptest.AssertNoSecret(t, "the log", logs, secrets...)
}

var providerKeys = []string{"vapi", "twilio", "googleCalendar", "resend", "elevenlabs"}

func TestDashboardPage(t *testing.T) {
	e := newEnv(t, func(s *envSetup) { s.opts.Sandbox = true })
	b, _, _ := e.admin()

	res := b.get("/dashboard/integrations")
	if res.StatusCode != http.StatusOK || !strings.Contains(res.body, "<html") {
		t.Fatalf("status %d\n%s", res.StatusCode, res.body)
	}
	d := res.doc(t)
	for _, p := range []string{"vapi", "twilio", "google_calendar", "resend", "elevenlabs"} {
		if label, state := cardState(t, d, p); label != "Not configured" || state != "not-configured" {
			t.Errorf("%s: %q (%s), want Not configured", p, label, state)
		}
		if d.Find("#card-"+p).Length() != 1 {
			t.Errorf("no element with id card-%s", p)
		}
	}
	if got := d.Find(`#integration-cards [data-testid^="card-"][data-state]`).Length(); got != 5 {
		t.Errorf("%d cards, want 5", got)
	}
	for _, p := range []string{"vapi", "twilio", "resend", "elevenlabs"} {
		btn := testid(d, "card-"+p+"-configure")
		if strings.TrimSpace(btn.Text()) != "Configure" {
			t.Errorf("%s: configure button %q", p, btn.Text())
		}
		dialog := d.Find("dialog#dialog-" + p)
		if target, _ := btn.Attr("data-dialog-open"); target != "dialog-"+p || dialog.Length() != 1 {
			t.Errorf("%s: the configure button opens %q; dialogs: %d", p, target, dialog.Length())
		}
		labelledBy, _ := dialog.Attr("aria-labelledby")
		if labelledBy == "" || d.Find("#"+labelledBy).Length() != 1 {
			t.Errorf("%s: dialog labelled by %q", p, labelledBy)
		}
		form := dialog.Find("form#form-" + p)
		if post, _ := form.Attr("hx-post"); post != "/api/integrations/"+p {
			t.Errorf("%s: form posts to %q", p, post)
		}
		if _, ok := form.Attr("novalidate"); ok {
			t.Errorf("%s: the form skips the browser's checks", p)
		}
		form.Find("input:not([type=hidden]), select").Each(func(_ int, in *goquery.Selection) {
			id, _ := in.Attr("id")
			if id == "" || d.Find(`label[for="`+id+`"]`).Length() != 1 {
				t.Errorf("%s: input %q has no label", p, id)
			}
		})
		if dialog.Find("aside.info-box li").Length() == 0 {
			t.Errorf("%s: no info box", p)
		}
	}
	// The browser refuses obviously bad input before sending.
	checks := []struct{ sel, attr, want string }{
		{"#vapi-apiKey", "minlength", "16"},
		{"#vapi-apiKey", "required", ""},
		{"#twilio-accountSid", "pattern", "AC[0-9a-fA-F]{32}"},
		{"#twilio-phoneNumber", "type", "tel"},
		{"#twilio-phoneNumber", "inputmode", "tel"},
		{"#resend-fromEmail", "type", "email"},
		{"#elevenlabs-apiKey", "type", "password"},
	}
	for _, c := range checks {
		if v, ok := d.Find(c.sel).Attr(c.attr); !ok || v != c.want {
			t.Errorf("%s[%s] = %q (present %v), want %q", c.sel, c.attr, v, ok, c.want)
		}
	}
	if _, ok := d.Find("#vapi-webhookSecret").Attr("required"); ok {
		t.Error("the optional webhook secret is required")
	}
	if testid(d, "card-google_calendar-unavailable").Length() != 1 || testid(d, "card-google_calendar-connect").Length() != 0 {
		t.Error("without Google credentials the Google card must say it is not set up, with no Connect button")
	}
	if testid(d, "sandbox-badge").Length() != 1 {
		t.Error("no Sandbox badge in sandbox mode")
	}
	if r, _ := testid(d, "refresh").Attr("hx-get"); r != "/dashboard/integrations" {
		t.Errorf("refresh gets %q", r)
	}
	if testid(d, "confirm-dialog").Length() != 1 {
		t.Error("no confirm dialog")
	}
	if d.Find("[style]").Length() != 0 || d.Find("style").Length() != 0 {
		t.Error("inline style on the dashboard")
	}
	d.Find("script").Each(func(_ int, s *goquery.Selection) {
		if strings.TrimSpace(s.Text()) != "" {
			t.Errorf("inline script %q", s.Text())
		}
	})
	if testid(d, "member-note").Length() != 0 {
		t.Error("an admin sees the member note")
	}

	t.Run("without sandbox, with Google", func(t *testing.T) {
		e := newEnv(t, withGoogle)
		b, _, _ := e.admin()
		d := b.get("/dashboard/integrations").doc(t)
		if testid(d, "sandbox-badge").Length() != 0 {
			t.Error("a Sandbox badge outside sandbox mode")
		}
		connect := testid(d, "card-google_calendar-connect")
		if href, _ := connect.Attr("href"); href != "/api/integrations/google_calendar/connect" {
			t.Errorf("Google connect link %q", href)
		}
		if boost, _ := connect.Attr("hx-boost"); boost != "false" {
			t.Error("the Google connect link is boosted (it leaves the site)")
		}
		if testid(d, "card-google_calendar-unavailable").Length() != 0 {
			t.Error("the Google card says it is not set up")
		}
	})
}

func TestDashboardAnswersInThreeFormats(t *testing.T) {
	e := newEnv(t)
	b, token, orgID := e.admin()
	key := vapiKey()
	b.saveVapi(token, key)
	e.store(orgID, app.ElevenLabsConfig{APIKey: app.NewSecret(elevenKey())})
	res := b.api(http.MethodPost, "/api/integrations/elevenlabs/verify", nil, token)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("verify: %d %s", res.StatusCode, res.body)
	}

	for _, path := range []string{"/dashboard/integrations", "/api/integrations/status"} {
		t.Run(path, func(t *testing.T) {
			t.Run("JSON", func(t *testing.T) {
				res := b.get(path, "Accept", "application/json")
				if res.StatusCode != http.StatusOK {
					t.Fatalf("status %d", res.StatusCode)
				}
				st := envelopeData(t, res)
				if entry(t, st, "vapi")["connected"] != true || entry(t, st, "twilio")["connected"] != false {
					t.Fatalf("data %v", st)
				}
			})
			t.Run("htmx fragment", func(t *testing.T) {
				res := b.get(path, "HX-Request", "true")
				if htmxStatus(t, res, true) != http.StatusOK || strings.Contains(res.body, "<html") {
					t.Fatalf("status %d\n%s", res.StatusCode, res.body)
				}
				d := res.doc(t)
				if d.Find("#integration-cards").Length() != 1 || d.Find("dialog").Length() != 0 {
					t.Fatalf("the fragment is not just the cards\n%s", res.body)
				}
				if label, _ := cardState(t, d, "vapi"); label != "Connected" {
					t.Errorf("vapi %q", label)
				}
				if got := testid(d, "card-vapi-configure").Text(); strings.TrimSpace(got) != "Update" {
					t.Errorf("a connected card's configure button reads %q", got)
				}
				details := testid(d, "card-vapi-details").Text()
				if !strings.Contains(details, "••••"+key[len(key)-4:]) || strings.Contains(res.body, key) {
					t.Errorf("details %q", details)
				}
				verified := testid(d, "card-elevenlabs-verified").Find("time")
				if dt, _ := verified.Attr("datetime"); dt == "" || strings.TrimSpace(verified.Text()) != "just now" {
					t.Errorf("last verified %q (%s)", verified.Text(), dt)
				}
			})
			t.Run("full page", func(t *testing.T) {
				res := b.get(path, "HX-Request", "true", "HX-Boosted", "true")
				if !strings.Contains(res.body, "<html") || testid(res.doc(t), "card-vapi").Length() != 1 {
					t.Fatalf("status %d\n%s", res.StatusCode, res.body)
				}
			})
		})
	}
	if res := b.get("/api/integrations/status"); !strings.Contains(res.Header.Get("Content-Type"), "json") {
		t.Errorf("a plain GET of the status route answers %s", res.Header.Get("Content-Type"))
	}
	assertNoSecrets(t, e, key)
}

func TestStatusJSONShape(t *testing.T) {
	e := newEnv(t)
	b, token, orgID := e.admin()

	st := b.status(token)
	keys := make([]string, 0, len(st))
	for k := range st {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := slices.Clone(providerKeys)
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	for _, k := range providerKeys {
		en := entry(t, st, k)
		for field, v := range map[string]any{"connected": false, "needsAttention": false, "lastVerified": nil, "verificationError": nil,
			"verificationCode": nil, "lastChecked": nil, "limited": false, "warning": nil} {
			got, ok := en[field]
			if !ok || got != v {
				t.Errorf("%s.%s = %v (present %v), want %v", k, field, got, ok, v)
			}
		}
		if len(en) != 8 {
			t.Errorf("%s has extra fields: %v", k, en)
		}
	}

	vapiKeyValue := vapiKey()
	b.saveVapi(token, vapiKeyValue)
	token2 := twilioToken()
	res := b.api(http.MethodPost, "/api/integrations/twilio", map[string]string{
		"accountSid": twilioSID(), "authToken": token2, "phoneNumber": "+1 (202) 555-0142"}, token)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("save twilio: %d %s", res.StatusCode, res.body)
	}
	e.store(orgID, app.ResendConfig{APIKey: app.NewSecret(resendKey("invalid"))})
	if res := b.api(http.MethodPost, "/api/integrations/resend/verify", nil, token); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("verify resend: %d %s", res.StatusCode, res.body)
	}

	st = b.status(token)
	v := entry(t, st, "vapi")
	if v["connected"] != true || v["needsAttention"] != false || v["verificationError"] != nil ||
		v["apiKey"] != "••••"+vapiKeyValue[len(vapiKeyValue)-4:] || v["region"] != "us" {
		t.Errorf("vapi %v", v)
	}
	if s, _ := v["lastVerified"].(string); s == "" {
		t.Errorf("vapi lastVerified %v", v["lastVerified"])
	} else if _, err := time.Parse(time.RFC3339, s); err != nil {
		t.Errorf("lastVerified %q is not RFC 3339: %v", s, err)
	}
	if tw := entry(t, st, "twilio"); tw["phoneNumber"] != "+1202•••0142" || !strings.HasPrefix(tw["accountSid"].(string), "AC••••") {
		t.Errorf("twilio %v", tw)
	}
	r := entry(t, st, "resend")
	if r["connected"] != true || r["needsAttention"] != true {
		t.Errorf("resend %v", r)
	}
	if msg, _ := r["verificationError"].(string); !strings.Contains(msg, "Resend") {
		t.Errorf("resend verificationError %v", r["verificationError"])
	}
	// An ordinary refusal carries no code; the code is kept for reasons a
	// client acts on, such as reconnect_needed.
	if got, ok := r["verificationCode"]; !ok || got != nil {
		t.Errorf("resend verificationCode %v (present %v), want null", got, ok)
	}
	if g := entry(t, st, "googleCalendar"); g["connected"] != false {
		t.Errorf("googleCalendar %v", g)
	}
	assertNoSecrets(t, e, vapiKeyValue, token2)
}

func TestSaveJSON(t *testing.T) {
	e := newEnv(t)
	b, token, _ := e.admin()
	bearer := e.bearer()

	tests := []struct {
		name     string
		provider string
		body     any
		status   int
		code     string
		fields   []string
		check    func(t *testing.T, data map[string]any)
	}{
		{"vapi", "vapi", map[string]string{"apiKey": vapiKey(), "webhookSecret": "whsec_" + apptest.RandomHex(10)}, 200, "", nil,
			func(t *testing.T, d map[string]any) {
				in, _ := d["inboundAssistantId"].(string)
				out, _ := d["outboundAssistantId"].(string)
				if in == "" || out == "" || in == out {
					t.Errorf("assistant ids %q %q", in, out)
				}
			}},
		{"twilio, formatted number", "twilio", map[string]string{"accountSid": twilioSID(), "authToken": twilioToken(), "phoneNumber": "(202) 555-0142"}, 200, "", nil,
			func(t *testing.T, d map[string]any) {
				if d["phoneNumber"] != "+1202•••0142" {
					t.Errorf("phoneNumber %v", d["phoneNumber"])
				}
			}},
		{"resend, sending-only key", "resend", map[string]string{"apiKey": resendKey("restricted"), "fromEmail": "hello@example.com"}, 200, "", nil,
			func(t *testing.T, d map[string]any) {
				if d["limited"] != true || d["detail"] == "" {
					t.Errorf("limited %v detail %v", d["limited"], d["detail"])
				}
			}},
		{"elevenlabs", "elevenlabs", map[string]string{"apiKey": elevenKey(), "voiceId": "21m00Tcm4TlvDq8ikWAM"}, 200, "", nil,
			func(t *testing.T, d map[string]any) {
				if d["limited"] != false {
					t.Errorf("limited %v", d["limited"])
				}
			}},
		{"invalid input", "twilio", map[string]string{"accountSid": "SK123", "authToken": "short", "phoneNumber": "12"}, 400, "validation_failed",
			[]string{"accountSid", "authToken", "phoneNumber"}, nil},
		{"empty body", "vapi", nil, 400, "validation_failed", []string{"apiKey"}, nil},
		{"malformed JSON", "vapi", `{"apiKey": `, 400, "validation_failed", nil, nil},
		{"refused key", "vapi", map[string]string{"apiKey": vapiKey("invalid")}, 422, "verification_failed", nil, nil},
		{"provider down", "elevenlabs", map[string]string{"apiKey": elevenKey("down")}, 502, "provider_unavailable", nil, nil},
		{"unknown provider", "stripe", map[string]string{"apiKey": vapiKey()}, 404, "unknown_provider", nil, nil},
		{"google calendar", "google_calendar", map[string]string{"apiKey": vapiKey()}, 400, "validation_failed", nil, nil},
	}
	for _, tt := range tests {
		for _, client := range []string{"cookie", "bearer"} {
			t.Run(tt.name+", "+client, func(t *testing.T) {
				var res response
				if client == "cookie" {
					res = b.api(http.MethodPost, "/api/integrations/"+tt.provider, tt.body, token)
				} else {
					res = e.do(request(http.MethodPost, "/api/integrations/"+tt.provider, tt.body, "Authorization", bearer))
				}
				if res.StatusCode != tt.status {
					t.Fatalf("status %d, want %d\n%s", res.StatusCode, tt.status, res.body)
				}
				if tt.status != http.StatusOK {
					er := envelopeError(t, res)
					if er["code"] != tt.code || er["message"] == "" {
						t.Fatalf("error %v, want %s", er, tt.code)
					}
					fields, _ := er["fields"].(map[string]any)
					for _, f := range tt.fields {
						if s, _ := fields[f].(string); s == "" {
							t.Errorf("no message for %s: %v", f, er)
						}
					}
					return
				}
				d := envelopeData(t, res)
				if d["provider"] != tt.provider || d["connected"] != true {
					t.Errorf("data %v", d)
				}
				if s, _ := d["lastVerified"].(string); s == "" {
					t.Errorf("lastVerified %v", d["lastVerified"])
				}
				tt.check(t, d)
			})
		}
	}
	t.Run("google calendar says how it connects", func(t *testing.T) {
		res := b.api(http.MethodPost, "/api/integrations/google_calendar", map[string]string{}, token)
		if msg := envelopeError(t, res)["message"].(string); !strings.Contains(msg, "/api/integrations/google_calendar/connect") {
			t.Errorf("message %q", msg)
		}
	})
	t.Run("a form body works too", func(t *testing.T) {
		res := b.api(http.MethodPost, "/api/integrations/resend", url.Values{"apiKey": {resendKey()}}, token)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d\n%s", res.StatusCode, res.body)
		}
	})
}

// TestSaveReadsBodies checks how a save reads its input, the same for every
// provider: a JSON object of strings, an urlencoded or a multipart form.
func TestSaveReadsBodies(t *testing.T) {
	// One admin saves far more often here than the provider-call limit
	// allows in a minute.
	e := newEnv(t, withProviderCalls(1000, 1000))
	b, token, _ := e.admin()
	post := func(provider string, body any, headers ...string) response {
		t.Helper()
		return b.do(request(http.MethodPost, "/api/integrations/"+provider, body, append([]string{"X-CSRF-Token", token}, headers...)...))
	}
	// refused checks a 400 validation_failed answer and returns its fields.
	refused := func(t *testing.T, res response) map[string]any {
		t.Helper()
		if res.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d, want 400\n%s", res.StatusCode, res.body)
		}
		er := envelopeError(t, res)
		if er["code"] != "validation_failed" || er["message"] == "" {
			t.Fatalf("error %v", er)
		}
		fields, _ := er["fields"].(map[string]any)
		return fields
	}
	notConnected := func(t *testing.T, provider string) {
		t.Helper()
		if en := entry(t, b.status(token), provider); en["connected"] != false {
			t.Errorf("a refused save stored %s: %v", provider, en)
		}
	}

	t.Run("a JSON value that is not a string", func(t *testing.T) {
		for _, raw := range []string{`123`, `1.5`, `true`, `{"key": "vk_live_0123456789abcdef"}`, `["vk_live_0123456789abcdef"]`} {
			fields := refused(t, post("vapi", `{"apiKey": `+raw+`, "region": "us"}`))
			if len(fields) != 1 || fields["apiKey"] != "Has the wrong type." {
				t.Errorf("apiKey %s: fields %v, want apiKey: Has the wrong type.", raw, fields)
			}
		}
		// Only the field of the wrong type is named, whatever is good beside it.
		fields := refused(t, post("vapi", map[string]any{"apiKey": vapiKey(), "region": 1}))
		if len(fields) != 1 || fields["region"] != "Has the wrong type." {
			t.Errorf("fields %v, want region: Has the wrong type.", fields)
		}
		// null is no value: the field's own message.
		fields = refused(t, post("vapi", `{"apiKey": null}`))
		if msg, _ := fields["apiKey"].(string); msg == "" || msg == "Has the wrong type." {
			t.Errorf("apiKey null: fields %v", fields)
		}
		notConnected(t, "vapi")
	})

	t.Run("unknown JSON keys are ignored", func(t *testing.T) {
		key := resendKey()
		res := post("resend", map[string]any{"apiKey": key, "fromEmail": "team@example.com",
			"orgId": "7f2b8a4e-3c1d-4e5f-9a6b-0c1d2e3f4a5b", "connected": false, "extra": map[string]any{"nested": []int{1}}, "voiceId": 7})
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d\n%s", res.StatusCode, res.body)
		}
		if d := envelopeData(t, res); d["provider"] != "resend" || d["connected"] != true {
			t.Errorf("data %v", d)
		}
		r := entry(t, b.status(token), "resend")
		if r["connected"] != true || r["apiKey"] != "••••"+key[len(key)-4:] || r["fromEmail"] != "team@example.com" {
			t.Errorf("status %v", r)
		}
		if _, ok := r["voiceId"]; ok {
			t.Errorf("another provider's field was stored: %v", r)
		}
	})

	t.Run("a multipart form works like an urlencoded one", func(t *testing.T) {
		bad := url.Values{"accountSid": {"SK" + apptest.RandomHex(16)}, "authToken": {"short"}, "phoneNumber": {"12"}, "whatsappNumber": {"+1 202"}}
		form, multi := refused(t, post("twilio", bad)), refused(t, post("twilio", multipartForm(bad)))
		if len(form) != 4 || !reflect.DeepEqual(form, multi) {
			t.Errorf("urlencoded fields %v, multipart fields %v", form, multi)
		}
		// The htmx form comes back the same way, its messages under the fields.
		for _, body := range []any{bad, multipartForm(bad)} {
			res := post("twilio", body, "HX-Request", "true")
			if htmxStatus(t, res, true) != http.StatusBadRequest {
				t.Fatalf("htmx: %s\n%s", res.Header.Get("X-Byoc-Status"), res.body)
			}
			d := res.doc(t)
			for f := range form {
				if testid(d, "twilio-"+f+"-error").Length() != 1 {
					t.Errorf("htmx %T: no message under %s", body, f)
				}
			}
			if v, _ := d.Find("#twilio-accountSid").Attr("value"); v != bad.Get("accountSid") {
				t.Errorf("htmx %T: account SID %q not kept", body, v)
			}
		}
		notConnected(t, "twilio")

		sid, phone := twilioSID(), "+1 (202) 555-0142"
		res := post("twilio", multipartForm{"accountSid": {sid}, "authToken": {twilioToken()}, "phoneNumber": {phone}})
		if res.StatusCode != http.StatusOK || envelopeData(t, res)["phoneNumber"] != "+1202•••0142" {
			t.Fatalf("multipart save: %d\n%s", res.StatusCode, res.body)
		}
		if tw := entry(t, b.status(token), "twilio"); tw["connected"] != true || tw["phoneNumber"] != "+1202•••0142" ||
			tw["accountSid"] != "AC••••"+sid[len(sid)-4:] {
			t.Errorf("status after a multipart save: %v", tw)
		}
	})

	t.Run("a NUL byte is refused with the field named", func(t *testing.T) {
		tests := []struct {
			name, provider, field string
			values                map[string]string
		}{
			{"secret", "elevenlabs", "apiKey", map[string]string{"apiKey": "sk_" + apptest.RandomHex(6) + "\x00" + apptest.RandomHex(6)}},
			{"plain field", "elevenlabs", "voiceId", map[string]string{"apiKey": elevenKey(), "voiceId": "21m00Tcm\x00TlvDq8ikWAM"}},
			{"optional secret", "vapi", "webhookSecret", map[string]string{"apiKey": vapiKey(), "webhookSecret": "whsec_\x00" + apptest.RandomHex(8)}},
		}
		for _, tt := range tests {
			form := url.Values{}
			for k, v := range tt.values {
				form.Set(k, v)
			}
			for _, enc := range []struct {
				name string
				body any
			}{{"JSON", tt.values}, {"urlencoded", form}, {"multipart", multipartForm(form)}} {
				t.Run(tt.name+", "+enc.name, func(t *testing.T) {
					res := post(tt.provider, enc.body)
					fields := refused(t, res)
					if msg, _ := fields[tt.field].(string); msg == "" || len(fields) != 1 {
						t.Errorf("fields %v, want a message for %s only", fields, tt.field)
					}
					if strings.Contains(res.body, "\\u0000") || strings.Contains(res.body, tt.values[tt.field]) {
						t.Errorf("the answer repeats the value: %s", res.body)
					}
				})
			}
			notConnected(t, tt.provider)
		}
	})
}

// TestSaveGoogleCalendarChangesNothing posts credentials to the route of
// the provider that connects through Google's sign-in: refused, and the
// stored grant stays as it was.
func TestSaveGoogleCalendarChangesNothing(t *testing.T) {
	e := newEnv(t, withGoogle)
	b, token, orgID := e.admin()
	b.connectGoogle()
	before, _ := e.storedGoogle(orgID)
	status, audits := entry(t, b.status(token), "googleCalendar"), e.auditCount(orgID)

	forged := url.Values{"email": {"someone@example.com"}, "refreshToken": {"1//forged-" + apptest.RandomHex(8)},
		"accessToken": {"ya29.forged"}, "apiKey": {vapiKey()}}
	bodies := []struct {
		name string
		body any
	}{
		{"JSON", map[string]string{"email": forged.Get("email"), "refreshToken": forged.Get("refreshToken"), "accessToken": forged.Get("accessToken")}},
		{"empty JSON", map[string]string{}},
		{"no body", nil},
		{"urlencoded", forged},
		{"multipart", multipartForm(forged)},
	}
	for _, tt := range bodies {
		t.Run(tt.name, func(t *testing.T) {
			res := b.api(http.MethodPost, "/api/integrations/google_calendar", tt.body, token)
			er := envelopeError(t, res)
			if res.StatusCode != http.StatusBadRequest || er["code"] != "validation_failed" {
				t.Fatalf("status %d: %v", res.StatusCode, er)
			}
			if msg, _ := er["message"].(string); !strings.Contains(msg, connectPath) {
				t.Errorf("message %q does not say where Google Calendar connects", msg)
			}
			res = b.hx(http.MethodPost, "/api/integrations/google_calendar", tt.body, token)
			if htmxStatus(t, res, true) != http.StatusBadRequest || testid(res.doc(t), "form-google_calendar").Length() != 0 {
				t.Errorf("htmx: %s\n%s", res.Header.Get("X-Byoc-Status"), res.body)
			}
		})
	}
	res := e.do(request(http.MethodPost, "/api/integrations/google_calendar", forged, "Authorization", e.bearer()))
	if res.StatusCode != http.StatusBadRequest || envelopeError(t, res)["code"] != "validation_failed" {
		t.Errorf("bearer: %d %s", res.StatusCode, res.body)
	}

	after, ok := e.storedGoogle(orgID)
	if !ok || after.Email != before.Email || after.RefreshToken.Reveal() != before.RefreshToken.Reveal() ||
		after.AccessToken.Reveal() != before.AccessToken.Reveal() {
		t.Errorf("the stored grant changed: %v %+v, was %+v", ok, after, before)
	}
	if now := entry(t, b.status(token), "googleCalendar"); !reflect.DeepEqual(now, status) {
		t.Errorf("status %v, was %v", now, status)
	}
	if n := e.auditCount(orgID) - audits; n != 0 {
		t.Errorf("%d audit entries for refused saves", n)
	}
	assertNoSecrets(t, e, forged.Get("refreshToken"), before.RefreshToken.Reveal())
}

func TestSaveHTMX(t *testing.T) {
	e := newEnv(t)
	b, token, _ := e.admin()

	t.Run("vapi success", func(t *testing.T) {
		key := vapiKey()
		res := b.hx(http.MethodPost, "/api/integrations/vapi", url.Values{"apiKey": {key}, "region": {"us"}}, token)
		if htmxStatus(t, res, true) != http.StatusOK {
			t.Fatalf("status %s\n%s", res.Header.Get("X-Byoc-Status"), res.body)
		}
		d := res.doc(t)
		panel := testid(d, "success-vapi")
		if ms, _ := panel.Attr("data-autoclose"); ms == "" {
			t.Error("the success panel does not close by itself")
		}
		in, out := testid(d, "success-inbound-id").Text(), testid(d, "success-outbound-id").Text()
		if in == "" || out == "" || in == out {
			t.Errorf("assistant ids %q %q", in, out)
		}
		card := d.Find("#card-vapi")
		if oob, _ := card.Attr("hx-swap-oob"); oob != "true" {
			t.Errorf("the card is not swapped out of band: %q", oob)
		}
		if label, _ := cardState(t, d, "vapi"); label != "Connected" {
			t.Errorf("card %q", label)
		}
		if strings.Contains(res.body, key) || strings.Contains(res.body, "<html") {
			t.Error("the answer has the key or a whole page")
		}
	})
	t.Run("twilio success shows the masked number", func(t *testing.T) {
		res := b.hx(http.MethodPost, "/api/integrations/twilio", url.Values{
			"accountSid": {twilioSID()}, "authToken": {twilioToken()}, "phoneNumber": {"2025550142"}}, token)
		d := res.doc(t)
		if got := testid(d, "success-phone").Text(); got != "+1202•••0142" {
			t.Errorf("phone %q\n%s", got, res.body)
		}
	})
	t.Run("limited key shows the detail", func(t *testing.T) {
		res := b.hx(http.MethodPost, "/api/integrations/resend", url.Values{"apiKey": {resendKey("restricted")}}, token)
		if got := testid(res.doc(t), "success-limited").Text(); got == "" {
			t.Errorf("no limited-scope detail\n%s", res.body)
		}
	})

	sid := twilioSID()
	authToken := twilioToken()
	formTests := []struct {
		name        string
		provider    string
		form        url.Values
		status      int
		fieldErrors []string
		formError   bool
		kept        map[string]string // input id -> value
		secrets     []string          // input ids that must come back empty
	}{
		{"validation", "twilio", url.Values{"accountSid": {"SK" + apptest.RandomHex(16)}, "authToken": {"short"}, "phoneNumber": {"(202) 555-01"}, "whatsappNumber": {"+1 202"}},
			http.StatusBadRequest, []string{"accountSid", "authToken", "phoneNumber", "whatsappNumber"}, true,
			nil, []string{"twilio-authToken"}},
		{"validation keeps the good values", "twilio", url.Values{"accountSid": {sid}, "authToken": {authToken}, "phoneNumber": {"not a number"}},
			http.StatusBadRequest, []string{"phoneNumber"}, true,
			map[string]string{"twilio-accountSid": sid, "twilio-phoneNumber": "not a number"}, []string{"twilio-authToken"}},
		{"refused key", "vapi", url.Values{"apiKey": {vapiKey("invalid")}, "webhookSecret": {"whsec_" + apptest.RandomHex(10)}, "region": {"us"}},
			http.StatusUnprocessableEntity, nil, true, nil, []string{"vapi-apiKey", "vapi-webhookSecret"}},
		{"provider down", "resend", url.Values{"apiKey": {resendKey("down")}, "fromEmail": {"team@example.com"}},
			http.StatusBadGateway, nil, true, map[string]string{"resend-fromEmail": "team@example.com"}, []string{"resend-apiKey"}},
		{"bad voice id", "elevenlabs", url.Values{"apiKey": {elevenKey()}, "voiceId": {"no spaces!"}},
			http.StatusBadRequest, []string{"voiceId"}, true, map[string]string{"elevenlabs-voiceId": "no spaces!"}, []string{"elevenlabs-apiKey"}},
	}
	for _, tt := range formTests {
		t.Run(tt.name, func(t *testing.T) {
			res := b.hx(http.MethodPost, "/api/integrations/"+tt.provider, tt.form, token)
			if got := htmxStatus(t, res, true); got != tt.status {
				t.Fatalf("status %d, want %d\n%s", got, tt.status, res.body)
			}
			d := res.doc(t)
			form := d.Find("form#form-" + tt.provider)
			if form.Length() != 1 || strings.Contains(res.body, "<html") {
				t.Fatalf("not the form fragment\n%s", res.body)
			}
			if (testid(d, "form-error").Length() == 1) != tt.formError {
				t.Errorf("form error present %v, want %v", testid(d, "form-error").Length() == 1, tt.formError)
			}
			for _, f := range tt.fieldErrors {
				id := tt.provider + "-" + f
				msg := testid(d, id+"-error")
				if strings.TrimSpace(msg.Text()) == "" {
					t.Errorf("no message under %s", f)
					continue
				}
				// The message sits in the field, right under its input.
				if msg.Parent().Find("#"+id).Length() != 1 {
					t.Errorf("the message of %s is not with its input", f)
				}
				if v, _ := d.Find("#" + id).Attr("aria-describedby"); !strings.Contains(v, id+"-error") {
					t.Errorf("%s is not described by its message: %q", f, v)
				}
			}
			for id, want := range tt.kept {
				if v, _ := d.Find("#" + id).Attr("value"); v != want {
					t.Errorf("%s value %q, want %q kept", id, v, want)
				}
			}
			for _, id := range tt.secrets {
				if v, _ := d.Find("#" + id).Attr("value"); v != "" {
					t.Errorf("the secret field %s came back with a value", id)
				}
			}
			for _, values := range tt.form {
				for _, v := range values {
					if (strings.HasPrefix(v, "vk_") || strings.HasPrefix(v, "re_") || strings.HasPrefix(v, "sk_") || strings.HasPrefix(v, "whsec_") || v == authToken) && strings.Contains(res.body, v) {
						t.Errorf("the secret %q is in the answer", v)
					}
				}
			}
		})
	}
	assertNoSecrets(t, e, authToken)
}

func TestSaveFullPage(t *testing.T) {
	e := newEnv(t)
	b, token, _ := e.admin()
	boosted := []string{"HX-Boosted", "true"}

	res := b.hx(http.MethodPost, "/api/integrations/vapi", url.Values{"apiKey": {vapiKey("invalid")}}, token, boosted...)
	if htmxStatus(t, res, true) != http.StatusUnprocessableEntity || !strings.Contains(res.body, "<html") {
		t.Fatalf("refused save: %s\n%s", res.Header.Get("X-Byoc-Status"), res.body)
	}
	d := res.doc(t)
	if testid(d, "form-vapi").Length() != 1 || testid(d, "form-error").Length() != 1 || testid(d, "app-header").Length() != 1 {
		t.Fatalf("the page lacks the form, its message or the layout\n%s", res.body)
	}
	if _, ok := testid(d, "form-vapi").Attr("hx-post"); ok {
		t.Error("the standalone form posts with htmx into a dialog that is not there")
	}

	res = b.hx(http.MethodPost, "/api/integrations/vapi", url.Values{"apiKey": {vapiKey()}}, token, boosted...)
	if res.Header.Get("HX-Redirect") != "/dashboard/integrations" {
		t.Fatalf("save: %d HX-Redirect %q\n%s", res.StatusCode, res.Header.Get("HX-Redirect"), res.body)
	}
	d = b.get("/dashboard/integrations").doc(t)
	if !strings.Contains(testid(d, "flash-success").Text(), "Vapi is connected") {
		t.Errorf("no success flash: %q", testid(d, "flash-success").Text())
	}
	if label, _ := cardState(t, d, "vapi"); label != "Connected" {
		t.Errorf("vapi %q", label)
	}
}

func TestRefusedSaveKeepsPreviousCredentials(t *testing.T) {
	e := newEnv(t)
	b, token, _ := e.admin()
	good := vapiKey()
	first := b.saveVapi(token, good)

	for _, key := range []string{vapiKey("invalid"), vapiKey("down"), "short"} {
		res := b.api(http.MethodPost, "/api/integrations/vapi", map[string]string{"apiKey": key}, token)
		if res.StatusCode == http.StatusOK {
			t.Fatalf("saving %q succeeded", key)
		}
		v := entry(t, b.status(token), "vapi")
		if v["connected"] != true || v["apiKey"] != "••••"+good[len(good)-4:] || v["needsAttention"] != false {
			t.Fatalf("after the refused save of %q: %v", key, v)
		}
	}
	res := b.api(http.MethodPost, "/api/integrations/vapi/verify", nil, token)
	if res.StatusCode != http.StatusOK || envelopeData(t, res)["verified"] != true {
		t.Fatalf("the previous key no longer verifies: %d %s", res.StatusCode, res.body)
	}
	// Saving the good key again reuses the assistants.
	again := b.saveVapi(token, good)
	if again["inboundAssistantId"] != first["inboundAssistantId"] || again["outboundAssistantId"] != first["outboundAssistantId"] {
		t.Errorf("assistants changed: %v then %v", first, again)
	}
}

func TestVerify(t *testing.T) {
	e := newEnv(t)
	b, token, orgID := e.admin()
	b.saveVapi(token, vapiKey())
	e.store(orgID, app.TwilioConfig{AccountSID: twilioSID(), AuthToken: app.NewSecret(twilioToken("invalid")), PhoneNumber: "+12025550142"})
	e.store(orgID, app.ResendConfig{APIKey: app.NewSecret(resendKey("down"))})

	t.Run("JSON", func(t *testing.T) {
		tests := []struct {
			provider string
			status   int
			code     string
		}{
			{"vapi", 200, ""},
			{"twilio", 422, "verification_failed"},
			{"resend", 502, "provider_unavailable"},
			{"elevenlabs", 404, "not_configured"},
			{"google_calendar", 404, "not_configured"},
			{"stripe", 404, "unknown_provider"},
		}
		for _, tt := range tests {
			t.Run(tt.provider, func(t *testing.T) {
				res := b.api(http.MethodPost, "/api/integrations/"+tt.provider+"/verify", nil, token)
				if res.StatusCode != tt.status {
					t.Fatalf("status %d, want %d\n%s", res.StatusCode, tt.status, res.body)
				}
				if tt.code != "" {
					if er := envelopeError(t, res); er["code"] != tt.code {
						t.Fatalf("error %v", er)
					}
					return
				}
				d := envelopeData(t, res)
				if d["provider"] != tt.provider || d["verified"] != true || d["lastVerified"] == nil || d["detail"] == "" {
					t.Fatalf("data %v", d)
				}
			})
		}
		tw := entry(t, b.status(token), "twilio")
		if tw["needsAttention"] != true || tw["verificationError"] == nil {
			t.Errorf("a refused test is not recorded: %v", tw)
		}
		if r := entry(t, b.status(token), "resend"); r["needsAttention"] != false {
			t.Errorf("an unreachable provider marked the credentials bad: %v", r)
		}
	})

	t.Run("htmx", func(t *testing.T) {
		tests := []struct {
			provider string
			status   int
			state    string
			result   string
			kind     string
		}{
			{"vapi", 200, "Connected", "Connection verified", "status"},
			{"twilio", 422, "Needs attention", "", ""},
			{"resend", 502, "Connected", "not available", "alert"},
			{"elevenlabs", 404, "Not configured", "", "alert"},
		}
		for _, tt := range tests {
			t.Run(tt.provider, func(t *testing.T) {
				res := b.hx(http.MethodPost, "/api/integrations/"+tt.provider+"/verify", nil, token)
				if got := htmxStatus(t, res, true); got != tt.status {
					t.Fatalf("status %d, want %d\n%s", got, tt.status, res.body)
				}
				d := res.doc(t)
				if d.Find("article").Length() != 1 {
					t.Fatalf("not one card\n%s", res.body)
				}
				if label, _ := cardState(t, d, tt.provider); label != tt.state {
					t.Errorf("state %q, want %q", label, tt.state)
				}
				result := testid(d, "card-"+tt.provider+"-result")
				if role, _ := result.Attr("role"); !strings.Contains(result.Text(), tt.result) || role != tt.kind {
					t.Errorf("result %q (role %s), want %q (%s)", result.Text(), role, tt.result, tt.kind)
				}
				announced := d.Find("article").AttrOr("data-announce", "")
				if !strings.Contains(announced, tt.result) || !strings.HasPrefix(announced, app.Provider(tt.provider).Title()+": ") {
					t.Errorf("announces %q, want the outcome %q", announced, tt.result)
				}
				if tt.provider == "twilio" {
					// One message per outcome: the recorded reason, once.
					reason := testid(d, "card-twilio-error").Text()
					if reason == "" || result.Length() != 0 || !strings.Contains(announced, "Twilio rejected") {
						t.Errorf("the card shows %q and result %q, announces %q; want the provider's reason once", reason, result.Text(), announced)
					}
				}
			})
		}
	})

	t.Run("full page", func(t *testing.T) {
		res := b.hx(http.MethodPost, "/api/integrations/twilio/verify", nil, token, "HX-Boosted", "true")
		if res.Header.Get("HX-Redirect") != "/dashboard/integrations" {
			t.Fatalf("%d HX-Redirect %q", res.StatusCode, res.Header.Get("HX-Redirect"))
		}
		if msg := testid(b.get("/dashboard/integrations").doc(t), "flash-error").Text(); msg == "" {
			t.Error("no flash with the reason")
		}
		b.hx(http.MethodPost, "/api/integrations/vapi/verify", nil, token, "HX-Boosted", "true")
		if msg := testid(b.get("/dashboard/integrations").doc(t), "flash-success").Text(); !strings.Contains(msg, "verified") {
			t.Errorf("flash %q", msg)
		}
	})
}

func TestDisconnect(t *testing.T) {
	e := newEnv(t)
	b, token, _ := e.admin()

	b.saveVapi(token, vapiKey())
	res := b.api(http.MethodDelete, "/api/integrations/vapi", nil, token)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("JSON: %d %s", res.StatusCode, res.body)
	}
	if d := envelopeData(t, res); d["provider"] != "vapi" || d["connected"] != false || len(d) != 2 {
		t.Errorf("data %v", d)
	}
	if v := entry(t, b.status(token), "vapi"); v["connected"] != false {
		t.Errorf("still connected: %v", v)
	}
	res = b.api(http.MethodDelete, "/api/integrations/vapi", nil, token)
	if res.StatusCode != http.StatusNotFound || envelopeError(t, res)["code"] != "not_configured" {
		t.Errorf("again: %d %s", res.StatusCode, res.body)
	}
	res = b.api(http.MethodDelete, "/api/integrations/stripe", nil, token)
	if res.StatusCode != http.StatusNotFound || envelopeError(t, res)["code"] != "unknown_provider" {
		t.Errorf("unknown provider: %d %s", res.StatusCode, res.body)
	}

	b.saveVapi(token, vapiKey())
	res = b.hx(http.MethodDelete, "/api/integrations/vapi", nil, token)
	d := res.doc(t)
	if htmxStatus(t, res, true) != http.StatusOK || d.Find("article").Length() != 1 {
		t.Fatalf("htmx: %d\n%s", res.StatusCode, res.body)
	}
	if label, state := cardState(t, d, "vapi"); label != "Not configured" || state != "not-configured" {
		t.Errorf("card %q %s", label, state)
	}
	if got := testid(d, "card-vapi-result").Text(); !strings.Contains(got, "disconnected") {
		t.Errorf("result %q", got)
	}
	res = b.hx(http.MethodDelete, "/api/integrations/vapi", nil, token)
	if htmxStatus(t, res, true) != http.StatusNotFound || testid(res.doc(t), "card-vapi-result").Text() == "" {
		t.Errorf("htmx again: %s\n%s", res.Header.Get("X-Byoc-Status"), res.body)
	}

	b.saveVapi(token, vapiKey())
	res = b.hx(http.MethodDelete, "/api/integrations/vapi", nil, token, "HX-Boosted", "true")
	if res.Header.Get("HX-Redirect") != "/dashboard/integrations" {
		t.Fatalf("full page: %d HX-Redirect %q", res.StatusCode, res.Header.Get("HX-Redirect"))
	}
	page := b.get("/dashboard/integrations").doc(t)
	if !strings.Contains(testid(page, "flash-success").Text(), "Vapi disconnected") {
		t.Errorf("flash %q", testid(page, "flash-success").Text())
	}
	if testid(page, "card-vapi-disconnect").Length() != 0 {
		t.Error("a disconnected card offers Disconnect")
	}
}

func TestIntegrationsNeedSignIn(t *testing.T) {
	e := newEnv(t)
	routes := []struct{ method, path string }{
		{http.MethodGet, "/api/integrations/status"},
		{http.MethodPost, "/api/integrations/vapi"},
		{http.MethodPost, "/api/integrations/vapi/verify"},
		{http.MethodDelete, "/api/integrations/vapi"},
		{http.MethodPost, "/api/integrations/vapi/webhook-signing"},
	}
	for _, r := range routes {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			res := e.do(request(r.method, r.path, nil))
			if res.StatusCode != http.StatusUnauthorized || envelopeError(t, res)["code"] != "unauthorized" {
				t.Errorf("JSON: %d %s", res.StatusCode, res.body)
			}
			res = e.do(request(r.method, r.path, nil, "HX-Request", "true"))
			// No page named (HX-Current-URL): back to the dashboard after
			// signing in.
			if htmxStatus(t, res, true) != http.StatusUnauthorized || res.Header.Get("HX-Redirect") != "/login?next=%2Fdashboard%2Fintegrations" {
				t.Errorf("htmx: %s HX-Redirect %q", res.Header.Get("X-Byoc-Status"), res.Header.Get("HX-Redirect"))
			}
			res = e.do(request(r.method, r.path, nil, "Authorization", "Bearer not-a-token"))
			if res.StatusCode != http.StatusUnauthorized {
				t.Errorf("bad bearer: %d", res.StatusCode)
			}
		})
	}
	res := e.do(request(http.MethodGet, "/dashboard/integrations", nil))
	if res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), "/login") {
		t.Errorf("browser: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestMembersCannotChangeCredentials(t *testing.T) {
	e := newEnv(t)
	admin, adminToken, orgID := e.admin()
	admin.saveVapi(adminToken, vapiKey())
	m, token := e.member(orgID)

	// A member reads the dashboard, without the buttons that change things.
	d := m.get("/dashboard/integrations").doc(t)
	if label, _ := cardState(t, d, "vapi"); label != "Connected" {
		t.Errorf("member sees vapi %q", label)
	}
	if d.Find("[data-dialog-open], [hx-delete], [hx-post], dialog").Length() != 0 || testid(d, "member-note").Length() != 1 {
		t.Error("a member sees the admin's controls, or no note")
	}
	if m.status(token)["vapi"].(map[string]any)["connected"] != true {
		t.Error("a member cannot read the status")
	}

	changes := []struct {
		method, path string
		body         any
	}{
		{http.MethodPost, "/api/integrations/vapi", map[string]string{"apiKey": vapiKey()}},
		{http.MethodPost, "/api/integrations/vapi/verify", nil},
		{http.MethodDelete, "/api/integrations/vapi", nil},
		{http.MethodPost, "/api/integrations/vapi/webhook-signing", map[string]bool{"hmacOnly": false}},
	}
	for _, c := range changes {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			res := m.api(c.method, c.path, c.body, token)
			if res.StatusCode != http.StatusForbidden || envelopeError(t, res)["code"] != "forbidden" {
				t.Fatalf("JSON: %d %s", res.StatusCode, res.body)
			}
			var form any
			if c.body != nil {
				form = url.Values{"apiKey": {vapiKey()}}
			}
			res = m.hx(c.method, c.path, form, token)
			if htmxStatus(t, res, true) != http.StatusForbidden || !strings.Contains(res.body, "Only an admin") {
				t.Fatalf("htmx: %s\n%s", res.Header.Get("X-Byoc-Status"), res.body)
			}
		})
	}
	if v := entry(t, admin.status(adminToken), "vapi"); v["connected"] != true || v["webhookHmacOnly"] != true {
		t.Errorf("a member's request changed the credentials: %v", v)
	}
}

func TestIntegrationsCSRF(t *testing.T) {
	e := newEnv(t)
	b, token, _ := e.admin()
	b.saveVapi(token, vapiKey())
	other, otherToken, _ := e.admin()
	_ = other

	changes := []struct{ method, path string }{
		{http.MethodPost, "/api/integrations/vapi"},
		{http.MethodPost, "/api/integrations/vapi/verify"},
		{http.MethodDelete, "/api/integrations/vapi"},
		{http.MethodPost, "/api/integrations/vapi/webhook-signing"},
	}
	for _, c := range changes {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			for name, headers := range map[string][]string{
				"no token":                {"HX-Request", "true"},
				"another session's token": {"HX-Request", "true", "X-CSRF-Token", otherToken},
				"no token, JSON":          nil,
			} {
				res := b.do(request(c.method, c.path, url.Values{"apiKey": {vapiKey()}}, headers...))
				if htmxStatus(t, res, len(headers) > 0) != http.StatusForbidden {
					t.Errorf("%s: %d", name, res.StatusCode)
				}
			}
		})
	}
	if v := entry(t, b.status(token), "vapi"); v["connected"] != true || v["webhookHmacOnly"] != true {
		t.Errorf("a refused request changed the credentials: %v", v)
	}
	// Bearer clients need no CSRF token.
	bearer := e.bearer()
	res := e.do(request(http.MethodPost, "/api/integrations/vapi", map[string]string{"apiKey": vapiKey()}, "Authorization", bearer))
	if res.StatusCode != http.StatusOK {
		t.Errorf("bearer save: %d %s", res.StatusCode, res.body)
	}
}

// TestNoSecretsInResponsesOrLogs runs every flow that handles a credential,
// the failing ones included, in every format, and looks for the secrets in
// every response body and in the log.
func TestNoSecretsInResponsesOrLogs(t *testing.T) {
	e := newEnv(t)
	b, token, orgID := e.admin()
	bearer := e.bearer()
	secrets := []string{
		vapiKey(), vapiKey("invalid"), vapiKey("down"), "whsec_" + apptest.RandomHex(12),
		twilioToken(), twilioToken("invalid"), resendKey(), resendKey("restricted"), resendKey("invalid"),
		elevenKey(), elevenKey("invalid"), elevenKey("down"),
	}
	vapiKeys, whsec := secrets[0:3], secrets[3]
	for _, k := range vapiKeys {
		body := map[string]string{"apiKey": k, "webhookSecret": whsec}
		form := url.Values{"apiKey": {k}, "webhookSecret": {whsec}}
		b.api(http.MethodPost, "/api/integrations/vapi", body, token)
		b.hx(http.MethodPost, "/api/integrations/vapi", form, token)
		b.hx(http.MethodPost, "/api/integrations/vapi", form, token, "HX-Boosted", "true")
		e.do(request(http.MethodPost, "/api/integrations/vapi", body, "Authorization", bearer))
	}
	for _, tok := range secrets[4:6] {
		form := url.Values{"accountSid": {twilioSID()}, "authToken": {tok}, "phoneNumber": {"+12025550142"}}
		b.api(http.MethodPost, "/api/integrations/twilio", form, token)
		b.hx(http.MethodPost, "/api/integrations/twilio", form, token)
		// A bad number makes the form come back: the token must not.
		form.Set("phoneNumber", "12")
		b.hx(http.MethodPost, "/api/integrations/twilio", form, token)
	}
	for _, k := range secrets[6:9] {
		b.hx(http.MethodPost, "/api/integrations/resend", url.Values{"apiKey": {k}, "fromEmail": {"x"}}, token)
		b.api(http.MethodPost, "/api/integrations/resend", map[string]string{"apiKey": k}, token)
	}
	for _, k := range secrets[9:] {
		b.hx(http.MethodPost, "/api/integrations/elevenlabs", url.Values{"apiKey": {k}}, token)
	}
	e.store(orgID, app.ElevenLabsConfig{APIKey: app.NewSecret(secrets[10])})
	for _, p := range []string{"vapi", "twilio", "resend", "elevenlabs"} {
		b.api(http.MethodPost, "/api/integrations/"+p+"/verify", nil, token)
		b.hx(http.MethodPost, "/api/integrations/"+p+"/verify", nil, token)
	}
	b.get("/dashboard/integrations")
	b.get("/dashboard/integrations", "HX-Request", "true")
	b.status(token)
	for _, p := range []string{"vapi", "twilio", "resend", "elevenlabs"} {
		b.hx(http.MethodDelete, "/api/integrations/"+p, nil, token)
	}
	assertNoSecrets(t, e, secrets...)
}

// A provider that echoes a key back transformed (upper-cased, cut short,
// base64- or hex-encoded) lands none of it anywhere: not in the answer to a
// save or a connection test, not in verification_error, the statuses and
// dashboards (an admin's and a member's), the audit log or the server log.
// Refusals of a key are told in BYOC's words.
func TestProviderEchoingTheKeyRevealsNone(t *testing.T) {
	e := newEnv(t)
	b, token, orgID := e.admin()
	m, mtoken := e.member(orgID)
	vapi, tw, re, el := vapiKey("echo"), twilioToken("echo"), resendKey("echo"), elevenKey("echo")
	saves := []struct {
		provider string
		form     url.Values
		status   int
		message  string
	}{
		// Vapi refusing the assistant BYOC asked for is our fault: the
		// reason goes to the log only.
		{"vapi", url.Values{"apiKey": {vapi}}, 500, "Something went wrong on our side."},
		{"twilio", url.Values{"accountSid": {twilioSID()}, "authToken": {tw}, "phoneNumber": {"+12025550142"}}, 422,
			"Twilio refused access to the account (403 Forbidden, error 20403)."},
		{"resend", url.Values{"apiKey": {re}, "fromEmail": {"hi@example.com"}}, 422,
			"Resend rejected the API key (403 Forbidden): the key is not valid."},
		{"elevenlabs", url.Values{"apiKey": {el}}, 422,
			"ElevenLabs rejected the API key (401 Unauthorized): the key is not valid."},
	}
	for _, s := range saves {
		res := b.api(http.MethodPost, "/api/integrations/"+s.provider, s.form, token)
		if res.StatusCode != s.status || !strings.HasPrefix(envelopeError(t, res)["message"].(string), s.message) {
			t.Errorf("save %s: %d %s; want %d %q", s.provider, res.StatusCode, res.body, s.status, s.message)
		}
		b.hx(http.MethodPost, "/api/integrations/"+s.provider, s.form, token)
	}

	// Keys the providers took once and echo now, when they are tested.
	e.store(orgID, app.TwilioConfig{AccountSID: twilioSID(), AuthToken: app.NewSecret(tw), PhoneNumber: "+12025550142"})
	e.store(orgID, app.ResendConfig{APIKey: app.NewSecret(re), FromEmail: "hi@example.com"})
	e.store(orgID, app.ElevenLabsConfig{APIKey: app.NewSecret(el)})
	for _, s := range saves[1:] {
		if res := b.api(http.MethodPost, "/api/integrations/"+s.provider+"/verify", nil, token); res.StatusCode != 422 {
			t.Errorf("verify %s: %d %s", s.provider, res.StatusCode, res.body)
		}
		b.hx(http.MethodPost, "/api/integrations/"+s.provider+"/verify", nil, token)
	}
	st := m.status(mtoken)
	for _, s := range saves[1:] {
		if got := entry(t, st, s.provider)["verificationError"]; got != s.message {
			t.Errorf("%s verificationError %v, want %q", s.provider, got, s.message)
		}
	}
	b.status(token)
	b.get("/dashboard/integrations")
	m.get("/dashboard/integrations")
	m.get("/dashboard/integrations", "HX-Request", "true")

	ctx := context.Background()
	rows, err := e.db.Pool.Query(ctx, `select coalesce(verification_error, '') from org_credentials where org_id = $1`, orgID)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(stored) != 3 {
		t.Fatalf("stored reasons %q, %v", stored, err)
	}
	audit, err := e.db.AuditLog(ctx, orgID, 100)
	if err != nil || len(audit) != 14 {
		t.Fatalf("%d audit entries, %v", len(audit), err)
	}
	var details []string
	for _, a := range audit {
		details = append(details, a.Detail)
	}
	if !strings.Contains(e.log.String(), "Vapi refused the webhook signing credential: Key [redacted] is not valid") {
		t.Errorf("the log does not give Vapi's reason:\n%s", e.log.String())
	}
	keys := []string{vapi, tw, re, el}
	for what, text := range map[string]string{
		"verification_error": strings.Join(stored, "\n"), "the audit log": strings.Join(details, "\n"),
		"a response body": e.bodies.String(), "the log": e.log.String(),
	} {
		apptest.AssertNoFragment(t, what, text, keys...)
	}
}

// A provider that cannot be used, as any tenant can arrange with a key the
// provider fails on, is a warning naming the provider; the error level is
// for our own faults.
func TestProviderOutageIsLoggedAsAWarning(t *testing.T) {
	e := newEnv(t)
	b, token, orgID := e.admin()
	saves := map[string]url.Values{
		"vapi":       {"apiKey": {vapiKey("down")}},
		"twilio":     {"accountSid": {twilioSID()}, "authToken": {twilioToken("ratelimit")}, "phoneNumber": {"+12025550142"}},
		"resend":     {"apiKey": {resendKey("down")}, "fromEmail": {"hi@example.com"}},
		"elevenlabs": {"apiKey": {elevenKey("down")}},
	}
	for provider, form := range saves {
		if res := b.api(http.MethodPost, "/api/integrations/"+provider, form, token); res.StatusCode != http.StatusBadGateway {
			t.Fatalf("save %s: %d %s", provider, res.StatusCode, res.body)
		}
	}
	e.store(orgID, app.ResendConfig{APIKey: app.NewSecret(resendKey("down")), FromEmail: "hi@example.com"})
	if res := b.api(http.MethodPost, "/api/integrations/resend/verify", nil, token); res.StatusCode != http.StatusBadGateway {
		t.Fatalf("verify: %d %s", res.StatusCode, res.body)
	}

	var warned []string
	for _, line := range strings.Split(strings.TrimSpace(e.log.String()), "\n") {
		var l struct{ Level, Msg, Provider, Path string }
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch {
		case l.Level == "ERROR":
			t.Errorf("a provider outage is logged as an error: %s", line)
		case l.Level == "WARN" && l.Msg == "provider unavailable" && l.Provider != "":
			warned = append(warned, l.Provider)
		}
	}
	slices.Sort(warned)
	if want := []string{"elevenlabs", "resend", "resend", "twilio", "vapi"}; !slices.Equal(warned, want) {
		t.Errorf("warnings name %q, want %q", warned, want)
	}
}
