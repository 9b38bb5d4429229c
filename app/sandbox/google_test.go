package sandbox_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"byoc/app/sandbox"
)

const googCallback = "https://app.example.test/api/auth/google-calendar/callback"

// googVerifier is a PKCE verifier and googChallenge its S256 challenge.
const googVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

var googChallenge = func() string {
	sum := sha256.Sum256([]byte(googVerifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}()

// googStart serves a Google stand-in that knows googCallback.
func googStart(t *testing.T) (*sandbox.Google, sandbox.GoogleURLs, string) {
	t.Helper()
	g := sandbox.NewGoogle(sandbox.GoogleOptions{RedirectURIs: []string{googCallback}})
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return g, g.URLs(srv.URL + "/"), srv.URL
}

// googAuthParams is a valid authorization request; change returns a copy
// with some values replaced ("" deletes).
func googAuthParams(change map[string]string) url.Values {
	v := url.Values{
		"client_id": {sandbox.GoogleSandboxClientID}, "redirect_uri": {googCallback}, "response_type": {"code"},
		"scope": {"https://www.googleapis.com/auth/calendar.events openid email"},
		"state": {"state-123"}, "code_challenge": {googChallenge}, "code_challenge_method": {"S256"},
		"access_type": {"offline"}, "prompt": {"consent"},
	}
	for k, val := range change {
		if val == "" {
			v.Del(k)
		} else {
			v.Set(k, val)
		}
	}
	return v
}

// googConsent runs the consent page and returns the redirect's query.
func googConsent(t *testing.T, u sandbox.GoogleURLs, params url.Values, c sandbox.GoogleConsentChoice) url.Values {
	t.Helper()
	loc, err := sandbox.GoogleConsent(t.Context(), nil, u.Auth+"?"+params.Encode(), c)
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != googCallback {
		t.Fatalf("redirected to %s, want the callback", loc)
	}
	return loc.Query()
}

// googPost posts a form and returns the status and the decoded JSON.
func googPost(t *testing.T, target string, form url.Values, header http.Header) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	return googDo(t, req)
}

func googDo(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q, body %s; want JSON", ct, raw)
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("body %q: %v", raw, err)
	}
	return resp.StatusCode, v
}

// googAPI calls the Calendar API with an access token.
func googAPI(t *testing.T, method, target, accessToken, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return googDo(t, req)
}

func googExchange(t *testing.T, u sandbox.GoogleURLs, code, verifier string) (int, map[string]any) {
	t.Helper()
	return googPost(t, u.Token, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {googCallback}, "code_verifier": {verifier},
		"client_id": {sandbox.GoogleSandboxClientID}, "client_secret": {sandbox.GoogleSandboxClientSecret},
	}, nil)
}

func googRefresh(t *testing.T, u sandbox.GoogleURLs, refreshToken string) (int, map[string]any) {
	t.Helper()
	return googPost(t, u.Token, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {refreshToken},
		"client_id": {sandbox.GoogleSandboxClientID}, "client_secret": {sandbox.GoogleSandboxClientSecret},
	}, nil)
}

func googError(v map[string]any) string {
	s, _ := v["error"].(string)
	return s
}

func TestGoogleConnectRefreshAndCalendar(t *testing.T) {
	g, u, root := googStart(t)
	const email = "owner@example.com"

	q := googConsent(t, u, googAuthParams(nil), sandbox.GoogleConsentChoice{Email: email})
	if q.Get("state") != "state-123" || q.Get("code") == "" {
		t.Fatalf("callback query %v: want the state and a code", q)
	}

	status, tok := googExchange(t, u, q.Get("code"), googVerifier)
	if status != 200 {
		t.Fatalf("exchange: %d %v", status, tok)
	}
	access, _ := tok["access_token"].(string)
	refresh, _ := tok["refresh_token"].(string)
	if access == "" || refresh == "" || tok["token_type"] != "Bearer" || tok["expires_in"] != float64(3599) {
		t.Fatalf("token response %v", tok)
	}
	if want := "https://www.googleapis.com/auth/calendar.events openid https://www.googleapis.com/auth/userinfo.email"; tok["scope"] != want {
		t.Errorf("scope %q, want %q (email reported as Google does)", tok["scope"], want)
	}

	t.Run("id_token", func(t *testing.T) {
		raw, _ := tok["id_token"].(string)
		parts := strings.Split(raw, ".")
		if len(parts) != 3 {
			t.Fatalf("id_token %q is not a JWT", raw)
		}
		mac := hmac.New(sha256.New, []byte(sandbox.GoogleSandboxClientSecret))
		mac.Write([]byte(parts[0] + "." + parts[1]))
		if base64.RawURLEncoding.EncodeToString(mac.Sum(nil)) != parts[2] {
			t.Error("HS256 signature does not verify with the client secret")
		}
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var c map[string]any
		if err := json.Unmarshal(payload, &c); err != nil {
			t.Fatal(err)
		}
		if c["iss"] != root || c["aud"] != sandbox.GoogleSandboxClientID || c["email"] != email ||
			c["email_verified"] != true || c["sub"] == "" {
			t.Fatalf("claims %v", c)
		}
	})

	t.Run("code is single-use", func(t *testing.T) {
		status, body := googExchange(t, u, q.Get("code"), googVerifier)
		if status != 400 || googError(body) != "invalid_grant" {
			t.Fatalf("second exchange: %d %v; want 400 invalid_grant", status, body)
		}
	})

	events := u.Calendar + "/calendars/primary/events"
	t.Run("insert and list events", func(t *testing.T) {
		status, ev := googAPI(t, "POST", events, access,
			`{"summary":"Check-up","start":{"dateTime":"2030-05-01T09:00:00Z"},"end":{"dateTime":"2030-05-01T09:30:00+00:00"},"attendees":[{"email":"patient@example.com"}]}`)
		if status != 200 || ev["id"] == "" || ev["status"] != "confirmed" || !strings.HasPrefix(ev["htmlLink"].(string), "https://") {
			t.Fatalf("insert: %d %v", status, ev)
		}
		status, list := googAPI(t, "GET", events+"?timeMin=2030-05-01T00:00:00Z&timeMax=2030-05-02T00:00:00Z&singleEvents=true&orderBy=startTime", access, "")
		items, _ := list["items"].([]any)
		if status != 200 || len(items) != 1 || items[0].(map[string]any)["id"] != ev["id"] {
			t.Fatalf("list: %d %v", status, list)
		}
		status, list = googAPI(t, "GET", events+"?timeMin=2030-05-01T09:30:00Z&timeMax=2030-05-02T00:00:00Z", access, "")
		if items, _ := list["items"].([]any); status != 200 || len(items) != 0 {
			t.Fatalf("list after the event: %d %v; want no items", status, list)
		}
		if got := g.Events(email); len(got) != 1 || got[0].Summary != "Check-up" || len(got[0].Attendees) != 1 {
			t.Fatalf("Events = %+v", got)
		}
		for _, bad := range []string{
			`{"summary":"x","end":{"dateTime":"2030-05-01T09:30:00Z"}}`,
			`{"summary":"x","start":{"dateTime":"2030-05-01T09:30:00Z"},"end":{"dateTime":"2030-05-01T09:00:00Z"}}`,
			`{"summary":"x","start":{"dateTime":"2030-05-01T09:00:00Z"},"end":{"dateTime":"2030-05-01T09:30:00Z"},"attendees":[{"email":"nobody"}]}`,
		} {
			if status, body := googAPI(t, "POST", events, access, bad); status != 400 {
				t.Errorf("insert %s: %d %v; want 400", bad, status, body)
			}
		}
		if status, _ := googAPI(t, "GET", u.Calendar+"/calendars/someone-else@example.com/events", access, ""); status != 404 {
			t.Errorf("another account's calendar: %d, want 404", status)
		}
	})

	t.Run("expired access token is 401, refresh fixes it", func(t *testing.T) {
		if n := g.ExpireAccessTokens(email); n != 1 {
			t.Fatalf("expired %d tokens, want 1", n)
		}
		status, body := googAPI(t, "GET", events+"?maxResults=1", access, "")
		e, _ := body["error"].(map[string]any)
		if status != 401 || e["code"] != float64(401) || e["status"] != "UNAUTHENTICATED" || e["message"] == "" {
			t.Fatalf("list with an expired token: %d %v", status, body)
		}
		status, tok := googRefresh(t, u, refresh)
		if status != 200 || tok["access_token"] == "" || tok["access_token"] == access {
			t.Fatalf("refresh: %d %v", status, tok)
		}
		if _, ok := tok["refresh_token"]; ok {
			t.Errorf("refresh answered a refresh_token; Google keeps the old one")
		}
		if g.Refreshes(email) != 1 {
			t.Errorf("Refreshes = %d, want 1", g.Refreshes(email))
		}
		access = tok["access_token"].(string)
		if status, body := googAPI(t, "GET", events+"?maxResults=1", access, ""); status != 200 {
			t.Fatalf("list with the refreshed token: %d %v", status, body)
		}
	})

	t.Run("revoked grant", func(t *testing.T) {
		if n := g.RevokeGrants(email); n != 1 {
			t.Fatalf("revoked %d grants, want 1", n)
		}
		if status, body := googRefresh(t, u, refresh); status != 400 || googError(body) != "invalid_grant" ||
			body["error_description"] != "Token has been expired or revoked." {
			t.Fatalf("refresh of a revoked grant: %d %v", status, body)
		}
		if status, _ := googAPI(t, "GET", events, access, ""); status != 401 {
			t.Fatalf("access token of a revoked grant: %d, want 401", status)
		}
		if !g.IsRevoked(refresh) || !g.IsRevoked(access) {
			t.Fatal("IsRevoked = false")
		}
	})
}

func TestGoogleAuthorizeRefusals(t *testing.T) {
	_, u, _ := googStart(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tests := []struct {
		name       string
		change     map[string]string
		wantStatus int
		wantError  string // on the error page, or in the redirect
	}{
		{"no client id", map[string]string{"client_id": ""}, 400, "invalid_request"},
		{"unknown client", map[string]string{"client_id": "other.apps.googleusercontent.com"}, 401, "invalid_client"},
		{"unregistered redirect URI", map[string]string{"redirect_uri": "https://evil.example/cb"}, 400, "redirect_uri_mismatch"},
		{"implicit flow", map[string]string{"response_type": "token"}, 302, "unsupported_response_type"},
		{"no scope", map[string]string{"scope": ""}, 302, "invalid_request"},
		{"no code challenge", map[string]string{"code_challenge": ""}, 302, "invalid_request"},
		{"plain challenge method", map[string]string{"code_challenge_method": "plain"}, 302, "invalid_request"},
		{"no challenge method", map[string]string{"code_challenge_method": ""}, 302, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := noRedirect.Get(u.Auth + "?" + googAuthParams(tt.change).Encode())
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			page, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.wantStatus, page)
			}
			if tt.wantStatus != 302 {
				if !strings.Contains(string(page), "<code>"+tt.wantError+"</code>") {
					t.Fatalf("error page does not name %s: %s", tt.wantError, page)
				}
				return
			}
			loc, _ := resp.Location()
			if loc.Host != "app.example.test" || loc.Query().Get("error") != tt.wantError || loc.Query().Get("state") != "state-123" {
				t.Fatalf("redirected to %s, want the callback with error=%s and the state", loc, tt.wantError)
			}
		})
	}
}

func TestGoogleConsentDenied(t *testing.T) {
	_, u, _ := googStart(t)
	q := googConsent(t, u, googAuthParams(nil), sandbox.GoogleConsentChoice{Deny: true})
	if q.Get("error") != "access_denied" || q.Get("state") != "state-123" || q.Has("code") {
		t.Fatalf("callback query %v; want error=access_denied with the state and no code", q)
	}
}

func TestGoogleConsentPageMarkup(t *testing.T) {
	_, u, _ := googStart(t)
	resp, err := http.Get(u.Auth + "?" + googAuthParams(nil).Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`data-testid="google-consent-allow"`, `data-testid="google-consent-deny"`, `data-testid="google-consent-email"`,
		`value="` + sandbox.GoogleDefaultEmail + `"`, sandbox.GoogleSandboxClientID, "calendar.events",
	} {
		if !strings.Contains(string(page), want) {
			t.Errorf("consent page lacks %s", want)
		}
	}
	if strings.Contains(string(page), "<script") {
		t.Error("consent page uses JavaScript; plain forms are enough")
	}
}

func TestGoogleTokenRefusals(t *testing.T) {
	_, u, _ := googStart(t)
	code := func(t *testing.T) string {
		t.Helper()
		return googConsent(t, u, googAuthParams(nil), sandbox.GoogleConsentChoice{}).Get("code")
	}
	exchange := func(c, verifier, redirect string) url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirect}, "code_verifier": {verifier}}
	}
	creds := url.Values{"client_id": {sandbox.GoogleSandboxClientID}, "client_secret": {sandbox.GoogleSandboxClientSecret}}
	with := func(a, b url.Values) url.Values {
		out := url.Values{}
		for _, v := range []url.Values{a, b} {
			for k, vs := range v {
				out[k] = vs
			}
		}
		return out
	}
	tests := []struct {
		name       string
		form       func(t *testing.T) url.Values
		header     http.Header
		wantStatus int
		wantError  string
		wantDescr  string
	}{
		{"wrong client secret", func(t *testing.T) url.Values {
			return with(exchange(code(t), googVerifier, googCallback), url.Values{"client_id": {sandbox.GoogleSandboxClientID}, "client_secret": {"nope"}})
		}, nil, 401, "invalid_client", ""},
		{"wrong PKCE verifier", func(t *testing.T) url.Values {
			return with(exchange(code(t), strings.Repeat("x", 43), googCallback), creds)
		}, nil, 400, "invalid_grant", "Invalid code verifier."},
		{"missing PKCE verifier", func(t *testing.T) url.Values {
			return with(exchange(code(t), "", googCallback), creds)
		}, nil, 400, "invalid_grant", "Missing code verifier."},
		{"other redirect URI", func(t *testing.T) url.Values {
			return with(exchange(code(t), googVerifier, "https://app.example.test/other"), creds)
		}, nil, 400, "redirect_uri_mismatch", ""},
		{"unknown code", func(t *testing.T) url.Values {
			return with(exchange("4/0nope", googVerifier, googCallback), creds)
		}, nil, 400, "invalid_grant", ""},
		{"unknown refresh token", func(t *testing.T) url.Values {
			return with(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"1//0unknown"}}, creds)
		}, nil, 400, "invalid_grant", "Token has been expired or revoked."},
		{"refresh token marked revoked", func(t *testing.T) url.Values {
			return with(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"1//0revoked"}}, creds)
		}, nil, 400, "invalid_grant", "Token has been expired or revoked."},
		{"unsupported grant type", func(t *testing.T) url.Values {
			return with(url.Values{"grant_type": {"password"}}, creds)
		}, nil, 400, "unsupported_grant_type", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := googPost(t, u.Token, tt.form(t), tt.header)
			if status != tt.wantStatus || googError(body) != tt.wantError {
				t.Fatalf("%d %v; want %d %s", status, body, tt.wantStatus, tt.wantError)
			}
			if tt.wantDescr != "" && body["error_description"] != tt.wantDescr {
				t.Fatalf("error_description %q, want %q", body["error_description"], tt.wantDescr)
			}
		})
	}

	t.Run("client authentication by HTTP Basic", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		req.SetBasicAuth(url.QueryEscape(sandbox.GoogleSandboxClientID), url.QueryEscape(sandbox.GoogleSandboxClientSecret))
		status, body := googPost(t, u.Token, exchange(code(t), googVerifier, googCallback), req.Header)
		if status != 200 || body["access_token"] == "" {
			t.Fatalf("%d %v", status, body)
		}
	})

	t.Run("a failed exchange uses the code up", func(t *testing.T) {
		c := code(t)
		if status, _ := googExchange(t, u, c, strings.Repeat("y", 43)); status != 400 {
			t.Fatalf("wrong verifier: %d", status)
		}
		if status, body := googExchange(t, u, c, googVerifier); status != 400 || googError(body) != "invalid_grant" {
			t.Fatalf("retry with the right verifier: %d %v; want invalid_grant", status, body)
		}
	})

	t.Run("a code expires after ten minutes", func(t *testing.T) {
		var skew atomic.Int64
		g2 := sandbox.NewGoogle(sandbox.GoogleOptions{Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }})
		srv := httptest.NewServer(g2)
		defer srv.Close()
		u2 := g2.URLs(srv.URL)
		q := googConsent(t, u2, googAuthParams(nil), sandbox.GoogleConsentChoice{})
		skew.Store(int64(11 * time.Minute))
		if status, body := googExchange(t, u2, q.Get("code"), googVerifier); status != 400 || googError(body) != "invalid_grant" {
			t.Fatalf("late exchange: %d %v", status, body)
		}
	})
}

func TestGoogleScopeUnticked(t *testing.T) {
	_, u, _ := googStart(t)
	q := googConsent(t, u, googAuthParams(nil), sandbox.GoogleConsentChoice{Untick: []string{"https://www.googleapis.com/auth/calendar.events"}})
	if strings.Contains(q.Get("scope"), "calendar") {
		t.Fatalf("scope %q still grants the calendar", q.Get("scope"))
	}
	status, tok := googExchange(t, u, q.Get("code"), googVerifier)
	if status != 200 || strings.Contains(tok["scope"].(string), "calendar") {
		t.Fatalf("exchange: %d %v", status, tok)
	}
	status, body := googAPI(t, "GET", u.Calendar+"/calendars/primary/events?maxResults=1", tok["access_token"].(string), "")
	e, _ := body["error"].(map[string]any)
	if status != 403 || e["status"] != "PERMISSION_DENIED" {
		t.Fatalf("list without the scope: %d %v; want 403 PERMISSION_DENIED", status, body)
	}
}

func TestGoogleRevoke(t *testing.T) {
	g, u, _ := googStart(t)
	q := googConsent(t, u, googAuthParams(nil), sandbox.GoogleConsentChoice{})
	_, tok := googExchange(t, u, q.Get("code"), googVerifier)
	refresh := tok["refresh_token"].(string)

	g.FailRevocations(true)
	if status, _ := googPost(t, u.Revoke, url.Values{"token": {refresh}}, nil); status != 503 {
		t.Fatalf("failing revoke: %d, want 503", status)
	}
	if g.IsRevoked(refresh) {
		t.Fatal("a failed revocation revoked")
	}
	g.FailRevocations(false)
	if status, body := googPost(t, u.Revoke, url.Values{"token": {refresh}}, nil); status != 200 {
		t.Fatalf("revoke: %d %v", status, body)
	}
	if !g.IsRevoked(refresh) || !g.IsRevoked(tok["access_token"].(string)) {
		t.Fatal("revoking the refresh token did not revoke the grant")
	}
	if status, body := googPost(t, u.Revoke, url.Values{"token": {"unknown"}}, nil); status != 400 || googError(body) != "invalid_token" {
		t.Fatalf("revoke of an unknown token: %d %v; want 400 invalid_token", status, body)
	}
	if n := g.RevokeRequests(); n != 3 {
		t.Fatalf("RevokeRequests = %d, want 3", n)
	}
}
