package views_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/a-h/templ"

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
