package web_test

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestSignupPageCreatesAccountAndSignsIn(t *testing.T) {
	e := newEnv(t)
	b := e.browser()

	res := b.get("/signup")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /signup: %d", res.StatusCode)
	}
	d := res.doc(t)
	for _, id := range []string{"signup-form", "orgName-input", "email-input", "password-input", "signup-submit"} {
		if testid(d, id).Length() != 1 {
			t.Errorf("signup page: no element with data-testid %q", id)
		}
	}
	for _, f := range []string{"orgName", "email", "password"} {
		if d.Find(`label[for="`+f+`"]`).Length() != 1 {
			t.Errorf("signup page: input %q has no label", f)
		}
	}
	anonymous := b.cookies["byoc_session"]
	if anonymous == nil {
		t.Fatal("GET /signup set no session cookie (needed for the CSRF token)")
	}
	token := b.csrf("/signup")

	email := uniqueEmail()
	res = b.do(request(http.MethodPost, "/signup", url.Values{
		"_csrf": {token}, "orgName": {"Acme Dental"}, "email": {email}, "password": {password},
	}))
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/dashboard/integrations" {
		t.Fatalf("POST /signup: %d to %q\n%s", res.StatusCode, res.Header.Get("Location"), res.body)
	}
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "byoc_session" {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("POST /signup set no session cookie")
	}
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/" || cookie.Secure {
		t.Errorf("cookie: HttpOnly %v SameSite %v Path %q Secure %v; want HttpOnly, Lax, /, not Secure in development",
			cookie.HttpOnly, cookie.SameSite, cookie.Path, cookie.Secure)
	}
	if cookie.MaxAge <= 0 || cookie.MaxAge > int((12*time.Hour).Seconds()) {
		t.Errorf("cookie MaxAge %d, want within 12h", cookie.MaxAge)
	}
	if cookie.Value == anonymous.Value {
		t.Error("signing up kept the anonymous session cookie")
	}

	res = b.get("/dashboard/integrations")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /dashboard/integrations: %d\n%s", res.StatusCode, res.body)
	}
	d = res.doc(t)
	if got := strings.TrimSpace(testid(d, "org-name").Text()); got != "Acme Dental" {
		t.Errorf("org name %q", got)
	}
	if got := strings.TrimSpace(testid(d, "user-email").Text()); got != strings.ToLower(email) {
		t.Errorf("user email %q, want %q", got, strings.ToLower(email))
	}
	if testid(d, "logout").Length() != 1 {
		t.Error("no logout button")
	}
	if testid(d, "flash-success").Length() != 1 {
		t.Error("no welcome flash after signup")
	}
	if newToken, _ := d.Find(`meta[name="csrf-token"]`).Attr("content"); newToken == token || newToken == "" {
		t.Errorf("the CSRF token did not change at sign-in")
	}

	// Flashes show once.
	if d := b.get("/dashboard/integrations").doc(t); testid(d, "flash-success").Length() != 0 {
		t.Error("the welcome flash showed twice")
	}
	// Signed in, / and the auth pages lead to the dashboard.
	for _, p := range []string{"/", "/login", "/signup"} {
		if res := b.get(p); res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/dashboard/integrations" {
			t.Errorf("GET %s signed in: %d to %q", p, res.StatusCode, res.Header.Get("Location"))
		}
	}
}

func TestSignupFormReRendersWithMessages(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	taken := b.signup(password)

	tests := []struct {
		name       string
		form       url.Values
		status     int
		errorField []string
		orgName    string
		email      string
	}{
		{"invalid fields", url.Values{"orgName": {"  "}, "email": {"not-an-email"}, "password": {"short"}},
			http.StatusBadRequest, []string{"orgName", "email", "password"}, "  ", "not-an-email"},
		{"email taken in another case", url.Values{"orgName": {"Other"}, "email": {strings.ToUpper(taken)}, "password": {password}},
			http.StatusConflict, []string{"email"}, "Other", strings.ToUpper(taken)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.browser()
			tt.form.Set("_csrf", c.csrf("/signup"))
			res := c.do(request(http.MethodPost, "/signup", tt.form))
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d\n%s", res.StatusCode, tt.status, res.body)
			}
			d := res.doc(t)
			for _, f := range tt.errorField {
				msg := testid(d, f+"-error")
				if strings.TrimSpace(msg.Text()) == "" {
					t.Errorf("no message for %s", f)
				}
				input := testid(d, f+"-input")
				if v, _ := input.Attr("aria-invalid"); v != "true" {
					t.Errorf("%s input is not aria-invalid", f)
				}
				if v, _ := input.Attr("aria-describedby"); !strings.Contains(v, f+"-error") {
					t.Errorf("%s input is not described by its error: %q", f, v)
				}
			}
			if v, _ := testid(d, "orgName-input").Attr("value"); v != tt.orgName {
				t.Errorf("orgName value %q, want %q kept", v, tt.orgName)
			}
			if v, _ := testid(d, "email-input").Attr("value"); v != tt.email {
				t.Errorf("email value %q, want %q kept", v, tt.email)
			}
			if v, ok := testid(d, "password-input").Attr("value"); ok && v != "" {
				t.Errorf("the password came back in the form: %q", v)
			}
			if _, ok := c.cookies["byoc_session"]; !ok {
				t.Error("lost the session cookie")
			}
		})
	}
}

func TestLoginRefusals(t *testing.T) {
	e := newEnv(t)
	email := e.browser().signup(password)

	t.Run("wrong password, page", func(t *testing.T) {
		b := e.browser()
		token := b.csrf("/login")
		res := b.do(request(http.MethodPost, "/login", url.Values{"_csrf": {token}, "email": {email}, "password": {"wrong password!!"}}))
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", res.StatusCode)
		}
		d := res.doc(t)
		if msg := testid(d, "form-error").Text(); !strings.Contains(msg, "incorrect") {
			t.Errorf("form error %q", msg)
		}
		if v, _ := testid(d, "email-input").Attr("value"); v != email {
			t.Errorf("email value %q, want %q kept", v, email)
		}
		if strings.Contains(res.body, "wrong password!!") {
			t.Error("the password came back in the page")
		}
	})
	t.Run("unknown email reads the same", func(t *testing.T) {
		b := e.browser()
		token := b.csrf("/login")
		res := b.do(request(http.MethodPost, "/login", url.Values{"_csrf": {token}, "email": {"x" + email}, "password": {"wrong password!!"}}))
		if res.StatusCode != http.StatusUnauthorized || !strings.Contains(testid(res.doc(t), "form-error").Text(), "incorrect") {
			t.Fatalf("status %d\n%s", res.StatusCode, res.body)
		}
	})
	t.Run("wrong password, JSON", func(t *testing.T) {
		b := e.browser()
		token := b.csrf("/login")
		res := b.do(request(http.MethodPost, "/login", map[string]string{"email": email, "password": "wrong password!!"},
			"Accept", "application/json", "X-CSRF-Token", token))
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", res.StatusCode)
		}
		if code := envelopeError(t, res)["code"]; code != "invalid_credentials" {
			t.Fatalf("code %v", code)
		}
	})
	t.Run("API token, wrong password", func(t *testing.T) {
		res := e.do(request(http.MethodPost, "/api/auth/token", map[string]string{"email": email, "password": "wrong password!!"}))
		if res.StatusCode != http.StatusUnauthorized || envelopeError(t, res)["code"] != "invalid_credentials" {
			t.Fatalf("status %d\n%s", res.StatusCode, res.body)
		}
	})
	t.Run("empty fields", func(t *testing.T) {
		b := e.browser()
		token := b.csrf("/login")
		res := b.do(request(http.MethodPost, "/login", url.Values{"_csrf": {token}}))
		if res.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d, want 400", res.StatusCode)
		}
		d := res.doc(t)
		if testid(d, "email-error").Length() != 1 || testid(d, "password-error").Length() != 1 {
			t.Errorf("missing field messages\n%s", res.body)
		}
	})
}

func TestLoginStartsNewSessionAndFollowsNext(t *testing.T) {
	e := newEnv(t)
	email := e.browser().signup(password)

	tests := []struct{ next, want string }{
		{"", "/dashboard/integrations"},
		{"/dashboard/integrations?tab=vapi", "/dashboard/integrations?tab=vapi"},
		{"//evil.example/x", "/dashboard/integrations"},
		{"https://evil.example/", "/dashboard/integrations"},
		{"/\\evil.example", "/dashboard/integrations"},
	}
	for _, tt := range tests {
		t.Run("next "+tt.next, func(t *testing.T) {
			b := e.browser()
			token := b.csrf("/login")
			before := b.cookies["byoc_session"].Value
			res := b.do(request(http.MethodPost, "/login", url.Values{"_csrf": {token}, "email": {strings.ToUpper(email)}, "password": {password}, "next": {tt.next}}))
			if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != tt.want {
				t.Fatalf("%d to %q, want 303 to %q", res.StatusCode, res.Header.Get("Location"), tt.want)
			}
			if b.cookies["byoc_session"].Value == before {
				t.Fatal("login kept the anonymous session cookie")
			}
			if res := b.get("/dashboard/integrations"); res.StatusCode != http.StatusOK {
				t.Fatalf("dashboard after login: %d", res.StatusCode)
			}
		})
	}

	t.Run("the login page keeps a local next", func(t *testing.T) {
		d := e.browser().get("/login?next=%2Fdashboard%2Fintegrations").doc(t)
		if v, _ := d.Find(`input[name="next"]`).Attr("value"); v != "/dashboard/integrations" {
			t.Fatalf("next field %q", v)
		}
		d = e.browser().get("/login?next=https%3A%2F%2Fevil.example").doc(t)
		if d.Find(`input[name="next"]`).Length() != 0 {
			t.Fatal("the login page kept a foreign next")
		}
	})
}

func TestAPISignupAndToken(t *testing.T) {
	e := newEnv(t)
	email := uniqueEmail()

	res := e.do(request(http.MethodPost, "/api/auth/signup", map[string]string{"orgName": "Acme", "email": email, "password": password}))
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("signup: %d\n%s", res.StatusCode, res.body)
	}
	data := envelopeData(t, res)
	for _, k := range []string{"orgId", "userId", "token", "expiresAt"} {
		if s, _ := data[k].(string); s == "" {
			t.Errorf("signup data has no %s: %v", k, data)
		}
	}
	if exp, err := time.Parse(time.RFC3339, data["expiresAt"].(string)); err != nil || time.Until(exp) < 50*time.Minute {
		t.Errorf("expiresAt %v (%v), want about an hour ahead", data["expiresAt"], err)
	}
	if len(res.Cookies()) != 0 {
		t.Errorf("the API signup set cookies: %v", res.Cookies())
	}

	t.Run("duplicate email", func(t *testing.T) {
		res := e.do(request(http.MethodPost, "/api/auth/signup", map[string]string{"orgName": "Again", "email": strings.ToUpper(email), "password": password}))
		if res.StatusCode != http.StatusConflict {
			t.Fatalf("status %d, want 409", res.StatusCode)
		}
		er := envelopeError(t, res)
		if er["code"] != "email_taken" {
			t.Fatalf("code %v", er["code"])
		}
	})
	t.Run("bad input", func(t *testing.T) {
		res := e.do(request(http.MethodPost, "/api/auth/signup", map[string]string{"orgName": "", "email": "nope", "password": "short"}))
		if res.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d, want 400", res.StatusCode)
		}
		er := envelopeError(t, res)
		fields, _ := er["fields"].(map[string]any)
		if er["code"] != "validation_failed" || fields["orgName"] == nil || fields["email"] == nil || fields["password"] == nil {
			t.Fatalf("error %v", er)
		}
	})
	t.Run("common password", func(t *testing.T) {
		res := e.do(request(http.MethodPost, "/api/auth/signup", map[string]string{"orgName": "Common Clinic", "email": uniqueEmail(), "password": "Password1234"}))
		if res.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d, want 400", res.StatusCode)
		}
		er := envelopeError(t, res)
		fields, _ := er["fields"].(map[string]any)
		if msg, _ := fields["password"].(string); er["code"] != "validation_failed" || len(fields) != 1 || !strings.Contains(msg, "commonly used") {
			t.Fatalf("error %v, want only a password message about common passwords", er)
		}
	})

	res = e.do(request(http.MethodPost, "/api/auth/token", map[string]string{"email": email, "password": password}))
	if res.StatusCode != http.StatusOK {
		t.Fatalf("token: %d\n%s", res.StatusCode, res.body)
	}
	tok := envelopeData(t, res)
	if tok["orgId"] != data["orgId"] || tok["userId"] != data["userId"] || tok["token"] == "" {
		t.Fatalf("token data %v, signup data %v", tok, data)
	}
	bearer := "Bearer " + tok["token"].(string)

	t.Run("bearer token on the dashboard, JSON", func(t *testing.T) {
		res := e.do(request(http.MethodGet, "/dashboard/integrations", nil, "Authorization", bearer, "Accept", "application/json"))
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d\n%s", res.StatusCode, res.body)
		}
		// The dashboard's JSON is the org's integration status.
		d := envelopeData(t, res)
		if vapi, _ := d["vapi"].(map[string]any); vapi == nil || vapi["connected"] != false {
			t.Fatalf("data %v", d)
		}
		// The principal is in the request context (the access log reads it there).
		if !strings.Contains(e.log.String(), `"user_id":"`+data["userId"].(string)+`","org_id":"`+data["orgId"].(string)+`"`) {
			t.Fatal("the access log names no principal for the bearer request")
		}
	})
	t.Run("bearer token on the dashboard, page", func(t *testing.T) {
		res := e.do(request(http.MethodGet, "/dashboard/integrations", nil, "Authorization", bearer))
		if res.StatusCode != http.StatusOK || testid(res.doc(t), "org-name").Text() != "Acme" {
			t.Fatalf("status %d\n%s", res.StatusCode, res.body)
		}
	})
	for _, h := range []string{"Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer", bearer + "x"} {
		t.Run("refused Authorization "+h[:min(len(h), 12)], func(t *testing.T) {
			res := e.do(request(http.MethodGet, "/dashboard/integrations", nil, "Authorization", h, "Accept", "application/json"))
			if res.StatusCode != http.StatusUnauthorized || envelopeError(t, res)["code"] != "unauthorized" {
				t.Fatalf("status %d\n%s", res.StatusCode, res.body)
			}
		})
	}
	t.Run("bearer requests need no CSRF token; logout revokes the token", func(t *testing.T) {
		res := e.do(request(http.MethodPost, "/logout", nil, "Authorization", bearer, "Accept", "application/json"))
		if res.StatusCode != http.StatusOK {
			t.Fatalf("logout: %d\n%s", res.StatusCode, res.body)
		}
		res = e.do(request(http.MethodGet, "/dashboard/integrations", nil, "Authorization", bearer, "Accept", "application/json"))
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("after logout: %d, want 401", res.StatusCode)
		}
	})
}

func TestLogoutRevokesCopiedCookie(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signup(password)
	stolen := *b.cookies["byoc_session"]
	token := b.csrf("/dashboard/integrations")

	res := b.do(request(http.MethodPost, "/logout", url.Values{"_csrf": {token}}))
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login" {
		t.Fatalf("logout: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if c := b.cookies["byoc_session"]; c == nil || c.Value == stolen.Value {
		t.Fatal("logout did not replace the session cookie")
	}
	if d := b.get("/login").doc(t); !strings.Contains(testid(d, "flash-info").Text(), "signed out") {
		t.Error("no signed-out flash on the login page")
	}
	if res := b.get("/dashboard/integrations"); res.StatusCode != http.StatusFound {
		t.Fatalf("dashboard after logout: %d, want a redirect to login", res.StatusCode)
	}

	thief := e.browser()
	thief.cookies[stolen.Name] = &stolen
	res = thief.get("/dashboard/integrations")
	if res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), "/login") {
		t.Fatalf("copied cookie after logout: %d to %q, want a redirect to /login", res.StatusCode, res.Header.Get("Location"))
	}
	thief.cookies[stolen.Name] = &stolen
	res = thief.get("/dashboard/integrations", "Accept", "application/json")
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("copied cookie after logout, JSON: %d, want 401", res.StatusCode)
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signup(password)
	token := b.csrf("/dashboard/integrations")

	other := e.browser()
	other.signup(password)
	otherToken := other.csrf("/dashboard/integrations")

	tests := []struct {
		name    string
		req     func() *http.Request
		wantOK  bool
		browser *browser
	}{
		{"no token", func() *http.Request { return request(http.MethodPost, "/logout", url.Values{}) }, false, b},
		{"token of another session", func() *http.Request {
			return request(http.MethodPost, "/logout", url.Values{"_csrf": {otherToken}})
		}, false, b},
		{"another session's token in the header", func() *http.Request {
			return request(http.MethodPost, "/logout", nil, "X-CSRF-Token", otherToken)
		}, false, b},
		{"a tampered token", func() *http.Request {
			last := "A"
			if strings.HasSuffix(token, last) {
				last = "B"
			}
			return request(http.MethodPost, "/logout", url.Values{"_csrf": {token[:len(token)-1] + last}})
		}, false, b},
		{"no session at all", func() *http.Request {
			return request(http.MethodPost, "/login", url.Values{"_csrf": {token}, "email": {"a@b.co"}, "password": {password}})
		}, false, e.browser()},
		{"the right token in the query string", func() *http.Request {
			return request(http.MethodPost, "/logout?_csrf="+url.QueryEscape(token), url.Values{})
		}, false, b},
		{"the right token in the header", func() *http.Request {
			return request(http.MethodPost, "/logout", nil, "X-CSRF-Token", token, "HX-Request", "true")
		}, true, b},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.browser.do(tt.req())
			if tt.wantOK {
				if res.StatusCode != http.StatusOK || res.Header.Get("HX-Redirect") != "/login" {
					t.Fatalf("status %d HX-Redirect %q, want 200 to /login", res.StatusCode, res.Header.Get("HX-Redirect"))
				}
				return
			}
			if res.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d, want 403", res.StatusCode)
			}
			if testid(res.doc(t), "error-page").Length() != 1 {
				t.Fatalf("no error page\n%s", res.body)
			}
			if tt.browser == b {
				if res := b.get("/dashboard/integrations"); res.StatusCode != http.StatusOK {
					t.Fatalf("the refused request signed the user out: %d", res.StatusCode)
				}
			}
		})
	}
}

func TestCSRFInMultipartForm(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signup(password)
	token := b.csrf("/dashboard/integrations")
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	_ = w.WriteField("_csrf", token)
	_ = w.Close()
	req := request(http.MethodPost, "/logout", nil)
	req.Body = io.NopCloser(&body)
	req.ContentLength = int64(body.Len())
	req.Header.Set("Content-Type", w.FormDataContentType())
	if res := b.do(req); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("multipart logout with the token: %d, want 303", res.StatusCode)
	}
}

func TestProductionCookie(t *testing.T) {
	e := newEnv(t, production)
	res := e.do(request(http.MethodGet, "/login", nil))
	cookies := res.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	c := cookies[0]
	if c.Name != "__Host-byoc_session" || !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" || c.SameSite != http.SameSiteLaxMode {
		t.Fatalf("production cookie %+v", c)
	}
	if !strings.Contains(res.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Error("no HSTS in production")
	}
}

// TestSignInDoors pins what the one signup handler and the one login
// handler answer on each route in each format: the token routes answer a
// bearer token as JSON whatever the request asks for and never set a
// cookie; the form routes start a session and answer JSON, an htmx
// redirect or a 303.
func TestSignInDoors(t *testing.T) {
	e := newEnv(t)
	email := e.browser().signup(password)
	login := func() map[string]string { return map[string]string{"email": email, "password": password} }
	signup := func() map[string]string {
		return map[string]string{"orgName": "Door Clinic", "email": uniqueEmail(), "password": password}
	}

	tests := []struct {
		name    string
		route   string
		body    func() map[string]string
		headers []string
		status  int
		// token: the answer is tokenData and sets no cookie; otherwise it
		// signs in with a session cookie.
		token bool
		// location is the redirect of an HTML answer (HX-Redirect for htmx).
		location string
	}{
		{"token, JSON", "/api/auth/token", login, nil, 200, true, ""},
		{"token, htmx", "/api/auth/token", login, []string{"HX-Request", "true"}, 200, true, ""},
		{"token, page", "/api/auth/token", login, []string{"Accept", "text/html"}, 200, true, ""},
		{"API signup, htmx", "/api/auth/signup", signup, []string{"HX-Request", "true"}, 201, true, ""},
		{"login, JSON", "/login", login, []string{"Accept", "application/json"}, 200, false, ""},
		{"login, htmx", "/login", login, []string{"HX-Request", "true"}, 200, false, "/dashboard/integrations"},
		{"login, page", "/login", login, nil, 303, false, "/dashboard/integrations"},
		{"signup, JSON", "/signup", signup, []string{"Accept", "application/json"}, 201, false, ""},
		{"signup, htmx", "/signup", signup, []string{"HX-Request", "true"}, 200, false, "/dashboard/integrations"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := e.browser()
			headers := tt.headers
			if !tt.token {
				headers = append([]string{"X-CSRF-Token", b.csrf(tt.route)}, headers...)
			}
			res := b.do(request(http.MethodPost, tt.route, tt.body(), headers...))
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d\n%s", res.StatusCode, tt.status, res.body)
			}
			if tt.token {
				if d := envelopeData(t, res); d["token"] == nil || d["email"] != nil {
					t.Errorf("data %v, want the token data", d)
				}
				if len(res.Cookies()) != 0 {
					t.Errorf("a token route set cookies: %v", res.Cookies())
				}
				return
			}
			if len(res.Cookies()) == 0 {
				t.Error("no session cookie")
			}
			switch {
			case tt.location == "":
				if d := envelopeData(t, res); d["email"] == nil || d["token"] != nil {
					t.Errorf("data %v, want the account data", d)
				}
			case res.StatusCode == http.StatusSeeOther:
				if got := res.Header.Get("Location"); got != tt.location {
					t.Errorf("Location %q, want %q", got, tt.location)
				}
			default:
				if got := res.Header.Get("HX-Redirect"); got != tt.location {
					t.Errorf("HX-Redirect %q, want %q", got, tt.location)
				}
			}
		})
	}

	t.Run("a refused token request gets no form", func(t *testing.T) {
		res := e.do(request(http.MethodPost, "/api/auth/token", map[string]string{"email": email, "password": "wrong password!!"},
			"HX-Request", "true"))
		if res.Header.Get("X-Byoc-Status") != "401" || res.Header.Get("HX-Retarget") != "#flashes" {
			t.Fatalf("status %d, X-Byoc-Status %q, HX-Retarget %q\n%s", res.StatusCode,
				res.Header.Get("X-Byoc-Status"), res.Header.Get("HX-Retarget"), res.body)
		}
		if testid(res.doc(t), "login-form").Length() != 0 {
			t.Error("the token route answered the login form")
		}
	})
}
