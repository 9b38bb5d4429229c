package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// An htmx request that meets an ended session sends the whole page to the
// sign-in page, which says the session expired and, after signing in,
// brings the user back to where they were.
func TestHTMXActionWithEndedSessionReturnsToThePage(t *testing.T) {
	e := newEnv(t)

	cases := []struct {
		name    string
		end     func(b *browser)
		headers []string
		want    string
	}{
		{"signed out elsewhere (a copied cookie)", func(b *browser) {
			stolen := *b.cookies["byoc_session"]
			token := b.csrf("/dashboard/integrations")
			b.do(request(http.MethodPost, "/logout", url.Values{"_csrf": {token}}))
			b.cookies[stolen.Name] = &stolen
		}, []string{"HX-Current-URL", "http://example.com/dashboard/integrations"}, "/dashboard/integrations"},
		{"the cookie is gone", func(b *browser) {
			delete(b.cookies, "byoc_session")
		}, []string{"HX-Current-URL", "http://example.com/dashboard/integrations?tab=vapi"}, "/dashboard/integrations?tab=vapi"},
		{"sent from a page that is no safe return", func(b *browser) {
			delete(b.cookies, "byoc_session")
		}, []string{"HX-Current-URL", "http://example.com//evil.example/x"}, "/dashboard/integrations"},
		{"no page named", func(b *browser) {
			delete(b.cookies, "byoc_session")
		}, nil, "/dashboard/integrations"},
		{"a boosted link to another page", func(b *browser) {
			delete(b.cookies, "byoc_session")
		}, []string{"HX-Boosted", "true", "HX-Current-URL", "http://example.com/dashboard/integrations"}, "/settings/team"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			b := e.browser()
			email := b.signup(password)
			token := b.csrf("/dashboard/integrations")
			tt.end(b)

			method, target := http.MethodPost, "/api/integrations/vapi/verify"
			if tt.want == "/settings/team" {
				method, target = http.MethodGet, "/settings/team"
			}
			headers := append([]string{"HX-Request", "true", "X-CSRF-Token", token}, tt.headers...)
			res := b.do(request(method, target, nil, headers...))
			wantLogin := "/login?next=" + url.QueryEscape(tt.want)
			if res.StatusCode != http.StatusOK || res.Header.Get("HX-Redirect") != wantLogin {
				t.Fatalf("%d, HX-Redirect %q, want 200 and %q", res.StatusCode, res.Header.Get("HX-Redirect"), wantLogin)
			}
			if got := res.Header.Get("X-Byoc-Status"); got != "401" {
				t.Fatalf("X-Byoc-Status %q, want 401", got)
			}

			d := b.get(wantLogin).doc(t)
			flashes := testid(d, "flashes").Children()
			if flashes.Length() != 1 || !strings.Contains(flashes.Text(), "Your session expired") {
				t.Fatalf("sign-in page flashes %q, want one saying the session expired", flashes.Text())
			}
			if v, _ := d.Find(`input[name="next"]`).Attr("value"); v != tt.want {
				t.Fatalf("next field %q, want %q", v, tt.want)
			}
			login := b.csrf("/login")
			res = b.do(request(http.MethodPost, "/login", url.Values{"_csrf": {login}, "email": {email}, "password": {password}, "next": {tt.want}}))
			if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != tt.want {
				t.Fatalf("login: %d to %q, want 303 to %q", res.StatusCode, res.Header.Get("Location"), tt.want)
			}
			if d := b.get("/dashboard/integrations").doc(t); strings.Contains(testid(d, "flashes").Text(), "expired") {
				t.Fatal("the expiry message was shown twice")
			}
		})
	}
}

// The sign-in page follows only same-site paths: whatever a browser could
// read as another host, plainly or percent-encoded, lands on the dashboard.
func TestLoginRefusesUnsafeReturnPaths(t *testing.T) {
	e := newEnv(t)
	email := e.browser().signup(password)

	tests := []struct{ next, want string }{
		{"/settings/team", "/settings/team"},
		{"/dashboard/integrations?next=%2F%2Fevil.example", "/dashboard/integrations?next=%2F%2Fevil.example"},
		{"https://evil.example/", "/dashboard/integrations"},
		{"//evil.example", "/dashboard/integrations"},
		{"///evil.example", "/dashboard/integrations"},
		{"/\\evil.example", "/dashboard/integrations"},
		{"\\\\evil.example", "/dashboard/integrations"},
		{"/%2F%2Fevil.example", "/dashboard/integrations"},
		{"/%2f/evil.example", "/dashboard/integrations"},
		{"/%5Cevil.example", "/dashboard/integrations"},
		{"/%5cevil.example", "/dashboard/integrations"},
		{"/%252F%252Fevil.example", "/dashboard/integrations"},
		{"/%25252F%25252Fevil.example", "/dashboard/integrations"},
		{"/%09/evil.example", "/dashboard/integrations"},
		{"/%0d%0aLocation:%20https://evil.example", "/dashboard/integrations"},
		{"/ /evil.example", "/dashboard/integrations"},
		{"/./evil.example", "/dashboard/integrations"},
		{"/.//evil.example", "/dashboard/integrations"},
		{"/../evil.example", "/dashboard/integrations"},
		{"/%2e%2e/%2f/evil.example", "/dashboard/integrations"},
		{"javascript:alert(1)", "/dashboard/integrations"},
		{"/@evil.example", "/@evil.example"},
		{"https:/evil.example", "/dashboard/integrations"},
		{"/" + strings.Repeat("a", 600), "/dashboard/integrations"},
	}
	for _, tt := range tests {
		t.Run(tt.next, func(t *testing.T) {
			b := e.browser()
			token := b.csrf("/login")
			res := b.do(request(http.MethodPost, "/login", url.Values{"_csrf": {token}, "email": {email}, "password": {password}, "next": {tt.next}}))
			if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != tt.want {
				t.Fatalf("%d to %q, want 303 to %q", res.StatusCode, res.Header.Get("Location"), tt.want)
			}
			d := e.browser().get("/login?next=" + url.QueryEscape(tt.next)).doc(t)
			v, ok := d.Find(`input[name="next"]`).Attr("value")
			if tt.want == "/dashboard/integrations" && ok && v != "" {
				t.Fatalf("the login page kept %q", v)
			}
		})
	}
}
