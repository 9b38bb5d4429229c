package views_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/a-h/templ"

	"byoc/app"
	"byoc/views"
)

func render(t *testing.T, c templ.Component) *goquery.Document {
	t.Helper()
	var buf bytes.Buffer
	if err := c.Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	d, err := goquery.NewDocumentFromReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func testid(d *goquery.Document, id string) *goquery.Selection {
	return d.Find(`[data-testid="` + id + `"]`)
}

func TestLayout(t *testing.T) {
	p := views.Page{
		Title:     "Integrations",
		CSRFToken: "tok<en>",
		Assets:    views.Assets{CSS: "/static/css/app.css?v=1", HTMX: "/static/js/htmx.min.js?v=2", AppJS: "/static/js/app.js?v=3", Favicon: "/static/img/favicon.svg?v=4"},
		Flashes:   []views.Flash{{Kind: views.FlashSuccess, Message: "Saved <b>"}},
		User:      &views.User{Email: "a@example.com", OrgName: "Acme & Co"},
	}
	d := render(t, views.Layout(p, views.IntegrationsPage(views.Integrations{OrgName: "Acme & Co"})))

	if got := d.Find("title").Text(); got != "Integrations · BYOC" {
		t.Errorf("title %q", got)
	}
	if v, _ := d.Find(`meta[name="csrf-token"]`).Attr("content"); v != "tok<en>" {
		t.Errorf("csrf meta %q", v)
	}
	if v, _ := d.Find(`input[name="_csrf"]`).Attr("value"); v != "tok<en>" {
		t.Errorf("logout form csrf %q", v)
	}
	raw, _ := d.Find(`meta[name="htmx-config"]`).Attr("content")
	var cfg struct {
		IncludeIndicatorStyles bool             `json:"includeIndicatorStyles"`
		ResponseHandling       []map[string]any `json:"responseHandling"`
	}
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("htmx-config is not JSON: %v\n%s", err, raw)
	}
	if cfg.IncludeIndicatorStyles || len(cfg.ResponseHandling) == 0 {
		t.Errorf("htmx-config %s", raw)
	}
	var scripts []string
	d.Find("script").Each(func(_ int, s *goquery.Selection) {
		src, _ := s.Attr("src")
		if strings.TrimSpace(s.Text()) != "" {
			t.Errorf("inline script %q", s.Text())
		}
		scripts = append(scripts, src)
	})
	if strings.Join(scripts, " ") != p.Assets.HTMX+" "+p.Assets.AppJS {
		t.Errorf("scripts %v", scripts)
	}
	if href, _ := d.Find(`link[rel="stylesheet"]`).Attr("href"); href != p.Assets.CSS {
		t.Errorf("stylesheet %q", href)
	}
	if got := testid(d, "org-name").Text(); got != "Acme & Co" {
		t.Errorf("org name %q", got)
	}
	if got := testid(d, "flash-success").Text(); got != "Saved <b>" {
		t.Errorf("flash %q (must be escaped text)", got)
	}
	if d.Find("#flashes").Length() != 1 || d.Find("#integrations").Length() != 1 {
		t.Error("missing the flashes region or the integrations section")
	}
}

func TestLayoutSignedOut(t *testing.T) {
	d := render(t, views.Layout(views.Page{Title: "Sign in"}, views.LoginPage(views.LoginForm{})))
	if testid(d, "app-header").Length() != 0 || testid(d, "logout").Length() != 0 {
		t.Error("signed-out page shows the header")
	}
}

func TestFormsShowMessagesAndKeepValues(t *testing.T) {
	d := render(t, views.SignupFormFragment(views.SignupForm{
		CSRFToken: "t", OrgName: "Acme", Email: "bad",
		Message: "Please correct the highlighted fields.",
		Errors:  views.FieldErrors{"email": "Enter an email address like name@example.com."},
	}))
	if got := testid(d, "email-error").Text(); !strings.Contains(got, "name@example.com") {
		t.Errorf("email error %q", got)
	}
	if testid(d, "orgName-error").Length() != 0 || testid(d, "password-error").Length() != 0 {
		t.Error("messages for fields without errors")
	}
	email := testid(d, "email-input")
	if v, _ := email.Attr("aria-invalid"); v != "true" {
		t.Error("email input not aria-invalid")
	}
	if v, _ := email.Attr("aria-describedby"); v != "email-error" {
		t.Errorf("email aria-describedby %q", v)
	}
	if v, _ := testid(d, "orgName-input").Attr("value"); v != "Acme" {
		t.Errorf("org name value %q", v)
	}
	if v, _ := testid(d, "password-input").Attr("aria-describedby"); v != "password-hint" {
		t.Errorf("password aria-describedby %q", v)
	}
	if testid(d, "form-error").Length() != 1 {
		t.Error("no form-wide message")
	}
	if d.Find("form#signup-form").Length() != 1 {
		t.Error("the fragment has no form#signup-form")
	}

	d = render(t, views.LoginFormFragment(views.LoginForm{CSRFToken: "t"}))
	if testid(d, "form-error").Length() != 0 || d.Find(`input[name="next"]`).Length() != 0 {
		t.Error("an empty login form shows an error or a next field")
	}
}

func TestErrorViews(t *testing.T) {
	d := render(t, views.ErrorPage(views.ErrorView{Status: 404, Title: "Page not found", Message: "Nothing here.", RequestID: "abc"}))
	if testid(d, "error-message").Text() != "Nothing here." || testid(d, "request-id").Text() != "abc" {
		t.Errorf("error page %q %q", testid(d, "error-message").Text(), testid(d, "request-id").Text())
	}
	d = render(t, views.ErrorAlert(views.ErrorView{Status: 500, Message: "Something went wrong."}))
	if a := testid(d, "error-alert"); a.Length() != 1 || !strings.Contains(a.Text(), "Something went wrong.") {
		t.Error("error alert")
	}
}

func TestIntegrationCardStates(t *testing.T) {
	now := time.Date(2030, 5, 6, 12, 0, 0, 0, time.UTC)
	verified := now.Add(-5 * time.Minute)
	tests := []struct {
		name    string
		card    views.Card
		state   string
		label   string
		buttons []string // data-testid suffixes that must be there
		absent  []string
	}{
		{"not configured", views.Card{Spec: app.MustDescribe(app.Vapi), Status: app.Status{Provider: app.Vapi}, CanManage: true},
			views.StateNotConfigured, "Not configured", []string{"configure"}, []string{"verify", "disconnect", "verified"}},
		{"connected", views.Card{Spec: app.MustDescribe(app.Twilio), Status: app.Status{Provider: app.Twilio, Connected: true, LastVerified: &verified,
			Details: map[string]string{"phoneNumber": "+1202•••0142", "accountSid": "AC••••abcd"}}, CanManage: true},
			views.StateConnected, "Connected", []string{"configure", "verify", "disconnect", "verified", "details"}, []string{"error"}},
		{"needs attention", views.Card{Spec: app.MustDescribe(app.Resend), Status: app.Status{Provider: app.Resend, Connected: true, NeedsAttention: true,
			LastVerified: &verified, VerificationError: "Resend rejected the API key."}, CanManage: true},
			views.StateNeedsAttention, "Needs attention", []string{"verify", "disconnect", "error"}, nil},
		{"member", views.Card{Spec: app.MustDescribe(app.Vapi), Status: app.Status{Provider: app.Vapi, Connected: true, LastVerified: &verified}},
			views.StateConnected, "Connected", nil, []string{"configure", "verify", "disconnect"}},
		{"google without credentials", views.Card{Spec: app.MustDescribe(app.GoogleCalendar), Status: app.Status{Provider: app.GoogleCalendar}, CanManage: true},
			views.StateNotConfigured, "Not configured", []string{"unavailable"}, []string{"connect", "configure"}},
		{"google with credentials", views.Card{Spec: app.MustDescribe(app.GoogleCalendar), Status: app.Status{Provider: app.GoogleCalendar}, CanManage: true, SignInReady: true},
			views.StateNotConfigured, "Not configured", []string{"connect"}, []string{"unavailable", "configure", "verify"}},
		{"google connected", views.Card{Spec: app.MustDescribe(app.GoogleCalendar), Status: app.Status{Provider: app.GoogleCalendar, Connected: true, LastVerified: &verified,
			Details: map[string]string{"email": "owner@example.com"}}, CanManage: true, SignInReady: true},
			views.StateConnected, "Connected", []string{"connect", "verify", "disconnect", "details"}, []string{"configure", "error"}},
		{"google reconnect needed", views.Card{Spec: app.MustDescribe(app.GoogleCalendar), Status: app.Status{Provider: app.GoogleCalendar, Connected: true, NeedsAttention: true,
			LastVerified: &verified, VerificationError: "Google refused the stored authorization (invalid_grant). Connect Google Calendar again.",
			VerificationCode: app.ReasonReconnect},
			CanManage: true, SignInReady: true},
			views.StateNeedsAttention, "Needs attention", []string{"connect", "disconnect", "error"}, []string{"configure"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.card.Now = now
			d := render(t, views.IntegrationCard(tt.card))
			id := "card-" + string(tt.card.Status.Provider)
			card := d.Find("#" + id)
			if state, _ := card.Attr("data-state"); state != tt.state {
				t.Errorf("data-state %q, want %q", state, tt.state)
			}
			if got := testid(d, id+"-state").Text(); got != tt.label {
				t.Errorf("state %q, want %q", got, tt.label)
			}
			for _, s := range tt.buttons {
				if testid(d, id+"-"+s).Length() != 1 {
					t.Errorf("no %s", s)
				}
			}
			for _, s := range tt.absent {
				if testid(d, id+"-"+s).Length() != 0 {
					t.Errorf("unexpected %s", s)
				}
			}
			if _, ok := card.Attr("hx-swap-oob"); ok {
				t.Error("a plain card is marked out of band")
			}
		})
	}

	// The title comes from the stored code, never from the message's words.
	for _, tt := range []struct {
		name, verificationError, code, title, reason string
	}{
		{"reconnect needed", "Google refused the stored authorization (invalid_grant). Connect Google Calendar again.", app.ReasonReconnect,
			"Reconnect needed", "Google refused the stored authorization (invalid_grant). Connect Google Calendar again."},
		{"other failure", "Resend rejected the API key.", "", "The last check failed", "Resend rejected the API key."},
		{"words without the code", "Reconnect needed: the provider said so.", "", "The last check failed", "Reconnect needed: the provider said so."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := views.Card{Spec: app.MustDescribe(app.GoogleCalendar), Status: app.Status{Provider: app.GoogleCalendar, Connected: true, NeedsAttention: true,
				VerificationError: tt.verificationError, VerificationCode: tt.code}, CanManage: true, SignInReady: true, Now: now}
			d := render(t, views.IntegrationCard(c))
			box := testid(d, "card-google_calendar-error")
			if got := testid(d, "card-google_calendar-error-title").Text(); got != tt.title {
				t.Errorf("title %q, want %q", got, tt.title)
			}
			if got := box.Find("p").Last().Text(); got != tt.reason {
				t.Errorf("reason %q, want %q", got, tt.reason)
			}
			connect := testid(d, "card-google_calendar-connect")
			if strings.TrimSpace(connect.Text()) != "Reconnect" || !connect.HasClass("btn-primary") {
				t.Errorf("reconnect button %q (class %q)", connect.Text(), connect.AttrOr("class", ""))
			}
		})
	}

	connected := tests[1].card
	connected.Now = now
	d := render(t, views.IntegrationCard(connected))
	tm := testid(d, "card-twilio-verified").Find("time")
	if dt, _ := tm.Attr("datetime"); dt != "2030-05-06T11:55:00Z" || tm.Text() != "5 minutes ago" {
		t.Errorf("time %q datetime %q", tm.Text(), dt)
	}
	if got := testid(d, "card-twilio-details").Text(); !strings.Contains(got, "SMS number") || !strings.Contains(got, "+1202•••0142") {
		t.Errorf("details %q", got)
	}
	if conf, _ := testid(d, "card-twilio-disconnect").Attr("hx-confirm"); !strings.Contains(conf, "Disconnect Twilio?") {
		t.Errorf("disconnect asks %q", conf)
	}
}

func TestConfigureFormKeepsNoSecret(t *testing.T) {
	f := views.ConfigureForm{
		Spec: app.MustDescribe(app.Twilio), CSRFToken: "tok",
		Values:  map[string]string{"accountSid": "AC123", "authToken": "must-not-show", "phoneNumber": "(202) 555"},
		Message: "Please correct the highlighted fields.",
		Errors:  views.FieldErrors{"phoneNumber": "Enter a valid phone number."},
	}
	d := render(t, views.ConfigureFormFragment(f))
	if v, _ := d.Find("#twilio-accountSid").Attr("value"); v != "AC123" {
		t.Errorf("account SID %q", v)
	}
	if v, _ := d.Find("#twilio-authToken").Attr("value"); v != "" {
		t.Errorf("the auth token came back: %q", v)
	}
	if testid(d, "twilio-phoneNumber-error").Text() != "Enter a valid phone number." || testid(d, "form-error").Length() != 1 {
		t.Error("messages missing")
	}
	if v, _ := d.Find(`input[name="_csrf"]`).Attr("value"); v != "tok" {
		t.Errorf("csrf %q", v)
	}
	if _, ok := d.Find("#twilio-whatsappNumber").Attr("required"); ok {
		t.Error("the optional WhatsApp number is required")
	}
	if target, _ := d.Find("form").Attr("hx-target"); target != "#dialog-twilio-body" {
		t.Errorf("hx-target %q", target)
	}
}

func TestConfigureSuccess(t *testing.T) {
	d := render(t, views.ConfigureSuccessFragment(views.ConfigureSuccess{
		Provider: app.Vapi, Detail: "Vapi accepted the API key.", InboundAssistantID: "in-1", OutboundAssistantID: "out-2",
		Card: views.Card{Spec: app.MustDescribe(app.Vapi), Status: app.Status{Provider: app.Vapi, Connected: true}},
	}))
	if testid(d, "success-inbound-id").Text() != "in-1" || testid(d, "success-outbound-id").Text() != "out-2" {
		t.Error("assistant ids missing")
	}
	if oob, _ := d.Find("#card-vapi").Attr("hx-swap-oob"); oob != "true" {
		t.Error("the card is not swapped out of band")
	}
	if _, ok := testid(d, "success-vapi").Attr("data-autoclose"); !ok {
		t.Error("the panel does not close by itself")
	}
}

func TestSandboxBadge(t *testing.T) {
	p := views.Page{Title: "x", User: &views.User{Email: "a@example.com", OrgName: "Acme"}}
	if testid(render(t, views.Layout(p, views.IntegrationsPage(views.Integrations{}))), "sandbox-badge").Length() != 0 {
		t.Error("a badge without sandbox")
	}
	p.Sandbox = true
	if testid(render(t, views.Layout(p, views.IntegrationsPage(views.Integrations{}))), "sandbox-badge").Text() != "Sandbox" {
		t.Error("no badge in sandbox mode")
	}
}

// TestConfigureFormFollowsTheDescription renders each form-configured
// provider's form and finds every field of its description with its label
// and hint, and the help as "Term: text".
func TestConfigureFormFollowsTheDescription(t *testing.T) {
	for _, spec := range app.Specs() {
		if spec.OAuth {
			continue
		}
		t.Run(string(spec.Provider), func(t *testing.T) {
			d := render(t, views.ConfigureFormFragment(views.ConfigureForm{Spec: spec, CSRFToken: "tok"}))
			fields := spec.FormFields()
			if got := d.Find("input:not([type=hidden]), select").Length(); got != len(fields) || got == 0 {
				t.Errorf("%d controls, want %d", got, len(fields))
			}
			for _, f := range fields {
				id := string(spec.Provider) + "-" + f.Name
				want := f.Label
				if !f.Required && f.Kind != app.FieldChoice {
					want += " (optional)"
				}
				if got := strings.Join(strings.Fields(d.Find(`label[for="`+id+`"]`).Text()), " "); got != want {
					t.Errorf("%s: label %q, want %q", f.Name, got, want)
				}
				if name, _ := d.Find("#" + id).Attr("name"); name != f.Name {
					t.Errorf("%s: name %q", f.Name, name)
				}
				hint := d.Find("#" + id + "-hint")
				if f.Hint != "" && strings.TrimSpace(hint.Text()) != f.Hint {
					t.Errorf("%s: hint %q, want %q", f.Name, hint.Text(), f.Hint)
				}
				if f.Hint == "" && hint.Length() != 0 {
					t.Errorf("%s: a hint that is not in the description", f.Name)
				}
			}
			items := d.Find("aside.info-box li")
			if items.Length() != len(spec.Help) {
				t.Fatalf("%d help items, want %d", items.Length(), len(spec.Help))
			}
			items.Each(func(i int, li *goquery.Selection) {
				h := spec.Help[i]
				want := h.Text
				if h.Term != "" {
					want = h.Term + ": " + h.Text
				}
				link := li.Find("a")
				if href, _ := link.Attr("href"); href != h.URL || (h.URL != "" && (link.AttrOr("target", "") != "_blank" ||
					!strings.Contains(link.AttrOr("rel", ""), "noopener"))) {
					t.Errorf("help %d links to %q (%s), want %q in a new tab", i, href, link.AttrOr("rel", ""), h.URL)
				}
				text := li.Clone()
				text.Find("a").Remove()
				if got := strings.TrimSpace(text.Text()); got != want {
					t.Errorf("help %d reads %q, want %q", i, got, want)
				}
				if got := li.Find("strong").Text(); got != h.Term {
					t.Errorf("help %d: bold %q, want %q", i, got, h.Term)
				}
			})
		})
	}

	t.Run("vapi region", func(t *testing.T) {
		spec := app.MustDescribe(app.Vapi)
		for kept, want := range map[string]string{"": "us", "eu": "eu", " EU ": "eu"} {
			d := render(t, views.ConfigureFormFragment(views.ConfigureForm{Spec: spec, Values: map[string]string{"region": kept}}))
			sel := d.Find("select#vapi-region")
			if sel.Find("option").Length() != 2 {
				t.Fatalf("options %q", sel.Text())
			}
			if got, _ := sel.Find("option[selected]").Attr("value"); got != want || sel.Find("option[selected]").Length() != 1 {
				t.Errorf("kept %q: selected %q, want %q", kept, got, want)
			}
		}
	})
}

func TestCardDetailsFollowTheFieldOrder(t *testing.T) {
	spec := app.MustDescribe(app.Vapi)
	cfg := app.VapiConfig{APIKey: app.NewSecret("vk_live_0123456789abcdef"), WebhookSecret: app.NewSecret("whsec_0123456789abcdef"), Region: app.VapiEU}
	d := render(t, views.IntegrationCard(views.Card{Spec: spec, CanManage: true, Now: time.Now(),
		Status: app.Status{Provider: app.Vapi, Connected: true, Details: spec.Masked(cfg)}}))
	var got []string
	testid(d, "card-vapi-details").Find("dt").Each(func(_ int, dt *goquery.Selection) {
		got = append(got, dt.Text()+"="+dt.Next().Text())
	})
	label := func(name string) string {
		f, _ := spec.Field(name)
		return f.DisplayLabel()
	}
	want := []string{label("apiKey") + "=••••cdef", label("webhookSecret") + "=set", label("region") + "=EU"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("details %v, want %v", got, want)
	}
	if strings.Contains(d.Text(), "0123456789") {
		t.Error("a secret is on the card")
	}
}

// TestCardWebhookSigning: a stored Vapi connection shows its HMAC-only
// setting; an admin gets a switch that posts the other value and swaps the
// card; a member sees the setting only; no other card shows it.
func TestCardWebhookSigning(t *testing.T) {
	vapi := func(st app.Status, admin bool) *goquery.Document {
		st.Provider = app.Vapi
		return render(t, views.IntegrationCard(views.Card{Spec: app.MustDescribe(app.Vapi), Status: st, CanManage: admin, Now: time.Now()}))
	}
	for _, on := range []bool{true, false} {
		d := vapi(app.Status{Connected: true, WebhookHMACOnly: on}, true)
		section := testid(d, "card-vapi-webhook-signing")
		if v, _ := section.Attr("data-hmac-only"); section.Length() != 1 || v != strconv.FormatBool(on) {
			t.Fatalf("HMAC only %v: section %d, data-hmac-only %q", on, section.Length(), v)
		}
		sw := testid(d, "card-vapi-webhook-signing-toggle")
		role, _ := sw.Attr("role")
		checked, _ := sw.Attr("aria-checked")
		post, _ := sw.Attr("hx-post")
		vals, _ := sw.Attr("hx-vals")
		target, _ := sw.Attr("hx-target")
		var body map[string]string
		if err := json.Unmarshal([]byte(vals), &body); err != nil {
			t.Fatalf("hx-vals %q: %v", vals, err)
		}
		if role != "switch" || checked != strconv.FormatBool(on) || post != "/api/integrations/vapi/webhook-signing" ||
			body["hmacOnly"] != strconv.FormatBool(!on) || target != "#card-vapi" {
			t.Errorf("HMAC only %v: switch role %q, aria-checked %q, posts %q %v to %q", on, role, checked, post, body, target)
		}
		if state := testid(d, "card-vapi-webhook-signing-state").Text(); (strings.Contains(state, "On:")) != on {
			t.Errorf("HMAC only %v: the card says %q", on, state)
		}
	}

	member := vapi(app.Status{Connected: true, WebhookHMACOnly: true}, false)
	if testid(member, "card-vapi-webhook-signing").Length() != 1 || member.Find("[hx-post]").Length() != 0 {
		t.Error("a member does not see the setting, or sees a control")
	}
	if testid(vapi(app.Status{}, true), "card-vapi-webhook-signing").Length() != 0 {
		t.Error("an unconnected Vapi card shows the setting")
	}
	if testid(vapi(app.Status{NeedsAttention: true, WebhookHMACOnly: true}, true), "card-vapi-webhook-signing").Length() != 1 {
		t.Error("a stored connection that needs attention hides the setting")
	}
	twilio := render(t, views.IntegrationCard(views.Card{Spec: app.MustDescribe(app.Twilio),
		Status: app.Status{Provider: app.Twilio, Connected: true}, CanManage: true, Now: time.Now()}))
	if twilio.Find(`[data-testid$="webhook-signing"]`).Length() != 0 {
		t.Error("the Twilio card shows a webhook setting")
	}
}
