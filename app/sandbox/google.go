package sandbox

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The Google stand-in's registered OAuth client, used when GoogleOptions
// leaves them empty. A demo sets GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET to
// these values.
const (
	GoogleSandboxClientID     = "sandbox-client-id.apps.googleusercontent.com"
	GoogleSandboxClientSecret = "sandbox-client-secret"
	// GoogleDefaultEmail is the account the consent page offers.
	GoogleDefaultEmail = "calendar-owner@example.com"
)

// Paths of the Google stand-in, relative to the root it is served at.
const (
	GoogleAuthPath     = "/o/oauth2/v2/auth"
	GoogleTokenPath    = "/token"
	GoogleRevokePath   = "/revoke"
	GoogleCalendarPath = "/calendar/v3"
)

// GoogleOptions configures NewGoogle. The zero value is a working stand-in
// with the sandbox client and any redirect URI.
type GoogleOptions struct {
	// ClientID and ClientSecret are the one registered OAuth client
	// (defaults GoogleSandboxClientID and GoogleSandboxClientSecret).
	ClientID     string
	ClientSecret string
	// RedirectURIs are the client's registered redirect URIs, compared
	// exactly as Google does. Empty accepts any absolute http(s) URI, which
	// suits a demo whose port is not known in advance.
	RedirectURIs []string
	// AccessTokenTTL is how long an access token lives (default one hour,
	// announced as expires_in 3599 like Google).
	AccessTokenTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// GoogleURLs are the values to configure BYOC with when the stand-in is
// served at a root URL: GOOGLE_AUTH_URL, GOOGLE_TOKEN_URL, GOOGLE_REVOKE_URL
// and GOOGLE_CALENDAR_BASE_URL.
type GoogleURLs struct {
	Auth, Token, Revoke, Calendar string
}

// GoogleEvent is one event of a stand-in calendar.
type GoogleEvent struct {
	ID          string
	Status      string // "confirmed" or "cancelled"
	Summary     string
	Description string
	// Start and End are the event's times; for an all-day event (AllDay)
	// only their dates count, End being the day after the last day.
	Start, End time.Time
	AllDay     bool
	// Transparency "transparent" marks an event that does not block time.
	Transparency string
	Attendees    []string
	HTMLLink     string
}

// Google stands in for Google's OAuth 2.0 server for web server apps and for
// the Calendar API (events list and insert on one calendar per account):
//
//   - GET /o/oauth2/v2/auth checks the authorization request (client_id,
//     redirect_uri, response_type=code, scope, code_challenge with
//     code_challenge_method=S256) and renders a plain-HTML consent page with
//     an editable account email (default GoogleDefaultEmail), a box per
//     scope, and "Allow" and "Deny" buttons (data-testid
//     google-consent-allow and google-consent-deny). An unknown client or
//     redirect URI gets an error page, as at Google; other errors go back to
//     the redirect URI as error=invalid_request or
//     unsupported_response_type.
//   - POST /o/oauth2/v2/auth is the consent decision: it redirects to the
//     redirect URI with code, scope and state, or with error=access_denied
//     and state.
//   - POST /token serves grant_type=authorization_code (client
//     authentication in the form or by HTTP Basic, a single-use code valid
//     ten minutes, the same redirect_uri, and PKCE: base64url(SHA-256(
//     code_verifier)) must equal the code_challenge) and
//     grant_type=refresh_token. It answers access_token, expires_in,
//     refresh_token (first grant only, as Google), scope (with "email" as
//     Google reports it: .../auth/userinfo.email), token_type and an HS256
//     id_token (keyed by the client secret) with iss (the origin the request
//     came to), aud, sub, email and email_verified (false for an email
//     containing "unverified"). Refusals use Google's JSON:
//     {"error": "invalid_grant", "error_description": ...} with 400, or
//     invalid_client with 401. A refresh token that contains "revoked", was
//     revoked, or belongs to a revoked grant is invalid_grant.
//   - POST /revoke (form field token, a refresh or an access token) revokes
//     the whole grant: 200, or 400 invalid_token for a token it does not
//     know.
//   - GET and POST /calendar/v3/calendars/{primary or the account's email}/events
//     list (timeMin, timeMax, singleEvents, orderBy=startTime, maxResults,
//     pageToken) and insert events, with a Bearer access token. An unknown,
//     expired or revoked token is answered 401 with Google's error JSON
//     (status UNAUTHENTICATED); a grant without a calendar scope 403
//     (PERMISSION_DENIED).
//
// State is per account email, which is how the helpers (for tests and the
// demo) name a connected calendar. A Google is safe for concurrent use.
type Google struct {
	opts GoogleOptions
	mux  *http.ServeMux
	page *template.Template

	mu         sync.Mutex
	codes      map[string]*gCode
	grants     map[string]*gGrant // by refresh token
	access     map[string]*gAccess
	events     map[string][]GoogleEvent // by account email
	refreshes  map[string]int           // by account email
	revokeReqs int
	failRevoke bool
}

type gCode struct {
	clientID, redirectURI, challenge, email string
	scopes                                  []string
	expires                                 time.Time
	used                                    bool
}

type gGrant struct {
	refreshToken, clientID, email string
	scopes                        []string
	revoked                       bool
}

type gAccess struct {
	grant   *gGrant
	expires time.Time
}

// Scopes the consent page and the token endpoint know.
const (
	gScopeEvents    = "https://www.googleapis.com/auth/calendar.events"
	gScopeCalendar  = "https://www.googleapis.com/auth/calendar"
	gScopeReadonly  = "https://www.googleapis.com/auth/calendar.readonly"
	gScopeUserEmail = "https://www.googleapis.com/auth/userinfo.email"
	gScopeProfile   = "https://www.googleapis.com/auth/userinfo.profile"
)

// NewGoogle returns a Google stand-in with no grants and empty calendars.
func NewGoogle(opts GoogleOptions) *Google {
	if opts.ClientID == "" {
		opts.ClientID = GoogleSandboxClientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = GoogleSandboxClientSecret
	}
	if opts.AccessTokenTTL <= 0 {
		opts.AccessTokenTTL = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	g := &Google{
		opts: opts, mux: http.NewServeMux(), page: template.Must(template.New("consent").Parse(gConsentPage)),
		codes: map[string]*gCode{}, grants: map[string]*gGrant{}, access: map[string]*gAccess{},
		events: map[string][]GoogleEvent{}, refreshes: map[string]int{},
	}
	g.mux.HandleFunc("GET "+GoogleAuthPath, g.authorize)
	g.mux.HandleFunc("POST "+GoogleAuthPath, g.decide)
	g.mux.HandleFunc("POST "+GoogleTokenPath, g.token)
	g.mux.HandleFunc("POST "+GoogleRevokePath, g.revoke)
	g.mux.HandleFunc("GET "+GoogleCalendarPath+"/calendars/{calendar}/events", g.listEvents)
	g.mux.HandleFunc("POST "+GoogleCalendarPath+"/calendars/{calendar}/events", g.insertEvent)
	g.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		gAPIError(w, http.StatusNotFound, "NOT_FOUND", "notFound", "Not Found")
	})
	return g
}

// ServeHTTP serves the stand-in's routes.
func (g *Google) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.mux.ServeHTTP(w, r) }

// URLs returns the base URLs to configure when the stand-in is served at
// root (such as "http://127.0.0.1:3001/google", with or without a trailing
// slash).
func (g *Google) URLs(root string) GoogleURLs {
	root = strings.TrimRight(root, "/")
	return GoogleURLs{
		Auth:     root + GoogleAuthPath,
		Token:    root + GoogleTokenPath,
		Revoke:   root + GoogleRevokePath,
		Calendar: root + GoogleCalendarPath,
	}
}

// Client returns the registered client's id and secret.
func (g *Google) Client() (id, secret string) { return g.opts.ClientID, g.opts.ClientSecret }

// ExpireAccessTokens makes every access token issued to the account expire
// now, so the Calendar API answers 401 until the client refreshes. It
// returns how many tokens it expired.
func (g *Google) ExpireAccessTokens(email string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	now := g.opts.Now()
	for _, a := range g.access {
		if strings.EqualFold(a.grant.email, email) && a.expires.After(now) {
			a.expires = now.Add(-time.Second)
			n++
		}
	}
	return n
}

// RevokeGrants revokes every grant of the account, as a user removing the
// app's access in their Google account does: refreshes are refused with
// invalid_grant and access tokens with 401. It returns how many it revoked.
func (g *Google) RevokeGrants(email string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, gr := range g.grants {
		if strings.EqualFold(gr.email, email) && !gr.revoked {
			gr.revoked = true
			n++
		}
	}
	return n
}

// Refreshes returns how many refresh_token grants the account was served.
func (g *Google) Refreshes(email string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refreshes[strings.ToLower(email)]
}

// RevokeRequests returns how many requests reached /revoke.
func (g *Google) RevokeRequests() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.revokeReqs
}

// IsRevoked reports whether token (a refresh or an access token the
// stand-in issued) belongs to a revoked grant.
func (g *Google) IsRevoked(token string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if gr, ok := g.grants[token]; ok {
		return gr.revoked
	}
	if a, ok := g.access[token]; ok {
		return a.grant.revoked
	}
	return false
}

// FailRevocations makes /revoke answer 503 (on) or work again (off).
func (g *Google) FailRevocations(on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failRevoke = on
}

// Events returns the account's events in start order.
func (g *Google) Events(email string) []GoogleEvent {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.events[strings.ToLower(email)])
}

// AddEvent puts an event into the account's calendar (an ID and a status
// "confirmed" are filled in when empty) and returns it.
func (g *Google) AddEvent(email string, e GoogleEvent) GoogleEvent {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.addEventLocked(strings.ToLower(email), e)
}

func (g *Google) addEventLocked(email string, e GoogleEvent) GoogleEvent {
	if e.ID == "" {
		e.ID = randomHex(13)
	}
	if e.Status == "" {
		e.Status = "confirmed"
	}
	if e.HTMLLink == "" {
		eid := base64.RawURLEncoding.EncodeToString([]byte(e.ID + " " + email))
		e.HTMLLink = "https://www.google.com/calendar/event?eid=" + eid
	}
	e.Attendees = slices.Clone(e.Attendees)
	evs := append(g.events[email], e)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Start.Before(evs[j].Start) })
	g.events[email] = evs
	return e
}

// --- authorization ---------------------------------------------------------

// gAuthRequest is a checked authorization request.
type gAuthRequest struct {
	ClientID, RedirectURI, ResponseType, Scope, State string
	Challenge, ChallengeMethod, AccessType, Prompt    string
	Scopes                                            []string
}

// gAuthProblem is a refused authorization request: shown as a page when the
// client or redirect URI cannot be trusted, else sent back to the client.
type gAuthProblem struct {
	page        bool
	status      int
	code, descr string
}

func (g *Google) checkAuthRequest(v url.Values) (gAuthRequest, *gAuthProblem) {
	req := gAuthRequest{
		ClientID: v.Get("client_id"), RedirectURI: v.Get("redirect_uri"), ResponseType: v.Get("response_type"),
		Scope: v.Get("scope"), State: v.Get("state"), Challenge: v.Get("code_challenge"),
		ChallengeMethod: v.Get("code_challenge_method"), AccessType: v.Get("access_type"), Prompt: v.Get("prompt"),
	}
	req.Scopes = strings.Fields(req.Scope)
	switch {
	case req.ClientID == "":
		return req, &gAuthProblem{page: true, status: http.StatusBadRequest, code: "invalid_request", descr: "Missing required parameter: client_id"}
	case req.ClientID != g.opts.ClientID:
		return req, &gAuthProblem{page: true, status: http.StatusUnauthorized, code: "invalid_client", descr: "The OAuth client was not found."}
	case req.RedirectURI == "":
		return req, &gAuthProblem{page: true, status: http.StatusBadRequest, code: "invalid_request", descr: "Missing required parameter: redirect_uri"}
	case !g.redirectAllowed(req.RedirectURI):
		return req, &gAuthProblem{page: true, status: http.StatusBadRequest, code: "redirect_uri_mismatch",
			descr: "The redirect URI in the request does not match the ones authorized for the OAuth client."}
	case req.ResponseType == "":
		return req, &gAuthProblem{code: "invalid_request", descr: "Missing required parameter: response_type"}
	case req.ResponseType != "code":
		return req, &gAuthProblem{code: "unsupported_response_type", descr: "Invalid response_type: " + req.ResponseType}
	case len(req.Scopes) == 0:
		return req, &gAuthProblem{code: "invalid_request", descr: "Missing required parameter: scope"}
	case req.Challenge == "":
		return req, &gAuthProblem{code: "invalid_request", descr: "Missing required parameter: code_challenge"}
	case req.ChallengeMethod != "S256":
		return req, &gAuthProblem{code: "invalid_request", descr: "Invalid code_challenge_method: this client must use S256."}
	case len(req.Challenge) < 43 || len(req.Challenge) > 128:
		return req, &gAuthProblem{code: "invalid_request", descr: "Invalid code_challenge."}
	}
	return req, nil
}

func (g *Google) redirectAllowed(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
		return false
	}
	return len(g.opts.RedirectURIs) == 0 || slices.Contains(g.opts.RedirectURIs, raw)
}

// refuse answers a refused authorization request.
func (g *Google) refuse(w http.ResponseWriter, r *http.Request, req gAuthRequest, p *gAuthProblem) {
	if p.page {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(p.status)
		_ = g.page.ExecuteTemplate(w, "error", map[string]string{"Code": p.code, "Description": p.descr})
		return
	}
	g.redirectBack(w, r, req.RedirectURI, url.Values{"error": {p.code}, "error_description": {p.descr}, "state": {req.State}})
}

// redirectBack sends the browser to redirectURI with params added to its
// query (an empty state is left out).
func (g *Google) redirectBack(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values) {
	u, _ := url.Parse(redirectURI) // checked by redirectAllowed
	q := u.Query()
	for k, vs := range params {
		if len(vs) == 1 && vs[0] == "" {
			continue
		}
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// authorize renders the consent page.
func (g *Google) authorize(w http.ResponseWriter, r *http.Request) {
	req, p := g.checkAuthRequest(r.URL.Query())
	if p != nil {
		g.refuse(w, r, req, p)
		return
	}
	type scopeRow struct{ Value, Label string }
	var rows []scopeRow
	for _, s := range req.Scopes {
		rows = append(rows, scopeRow{Value: s, Label: gScopeLabel(s)})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = g.page.ExecuteTemplate(w, "consent", map[string]any{
		"Req": req, "Scopes": rows, "Email": GoogleDefaultEmail,
	})
}

// decide handles the consent page's form.
func (g *Google) decide(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		g.refuse(w, r, gAuthRequest{}, &gAuthProblem{page: true, status: http.StatusBadRequest, code: "invalid_request", descr: "The form could not be read."})
		return
	}
	req, p := g.checkAuthRequest(r.PostForm)
	if p != nil {
		g.refuse(w, r, req, p)
		return
	}
	if r.PostForm.Get("decision") != "allow" {
		g.redirectBack(w, r, req.RedirectURI, url.Values{"error": {"access_denied"}, "state": {req.State}})
		return
	}
	email := strings.TrimSpace(r.PostForm.Get("email"))
	if email == "" {
		email = GoogleDefaultEmail
	}
	if at := strings.IndexByte(email, '@'); at < 1 || at == len(email)-1 || strings.ContainsAny(email, " <>\"") {
		g.refuse(w, r, req, &gAuthProblem{page: true, status: http.StatusBadRequest, code: "invalid_request", descr: "Enter a valid email address."})
		return
	}
	// Sign-in scopes are always granted; the others only when their box
	// stayed ticked (Google's granular consent).
	ticked := r.PostForm["granted_scope"]
	var granted []string
	for _, s := range req.Scopes {
		if gSignInScope(s) || slices.Contains(ticked, s) {
			granted = append(granted, gReportedScope(s))
		}
	}
	code := "4/0sandbox-" + randomHex(24)
	g.mu.Lock()
	g.codes[code] = &gCode{clientID: req.ClientID, redirectURI: req.RedirectURI, challenge: req.Challenge,
		email: strings.ToLower(email), scopes: granted, expires: g.opts.Now().Add(10 * time.Minute)}
	g.mu.Unlock()
	g.redirectBack(w, r, req.RedirectURI, url.Values{
		"code": {code}, "scope": {strings.Join(granted, " ")}, "state": {req.State}, "authuser": {"0"}, "prompt": {"consent"},
	})
}

func gSignInScope(s string) bool {
	switch s {
	case "openid", "email", "profile", gScopeUserEmail, gScopeProfile:
		return true
	}
	return false
}

// gReportedScope is the name Google's token response uses for a requested scope.
func gReportedScope(s string) string {
	switch s {
	case "email":
		return gScopeUserEmail
	case "profile":
		return gScopeProfile
	}
	return s
}

func gScopeLabel(s string) string {
	switch s {
	case gScopeEvents:
		return "View and edit events on all your calendars"
	case gScopeCalendar:
		return "See, edit, share, and permanently delete all the calendars you can access using Google Calendar"
	case gScopeReadonly:
		return "See and download any calendar you can access using your Google Calendar"
	case "openid":
		return "Associate you with your personal info on Google"
	case "email", gScopeUserEmail:
		return "See your primary Google Account email address"
	case "profile", gScopeProfile:
		return "See your personal info, including any personal info you've made publicly available"
	}
	return s
}

// --- token endpoint ---------------------------------------------------------

func gTokenError(w http.ResponseWriter, status int, code, descr string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]string{"error": code, "error_description": descr})
}

func (g *Google) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		gTokenError(w, http.StatusBadRequest, "invalid_request", "The request body could not be read.")
		return
	}
	f := r.PostForm
	id, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 2.3.1: Basic credentials are form-encoded first.
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = f.Get("client_id"), f.Get("client_secret")
	}
	if id != g.opts.ClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(g.opts.ClientSecret)) != 1 {
		gTokenError(w, http.StatusUnauthorized, "invalid_client", "Unauthorized")
		return
	}
	switch gt := f.Get("grant_type"); gt {
	case "authorization_code":
		g.exchangeCode(w, r, f)
	case "refresh_token":
		g.refresh(w, r, f)
	case "":
		gTokenError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: grant_type")
	default:
		gTokenError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+clipValue(gt))
	}
}

func (g *Google) exchangeCode(w http.ResponseWriter, r *http.Request, f url.Values) {
	code := f.Get("code")
	if code == "" {
		gTokenError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: code")
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.codes[code]
	switch {
	case !ok:
		gTokenError(w, http.StatusBadRequest, "invalid_grant", "Malformed auth code.")
		return
	case c.used || g.opts.Now().After(c.expires):
		gTokenError(w, http.StatusBadRequest, "invalid_grant", "Bad Request")
		return
	}
	// Any attempt with the right client uses the code up.
	c.used = true
	switch {
	case c.clientID != g.opts.ClientID:
		gTokenError(w, http.StatusBadRequest, "invalid_grant", "Bad Request")
		return
	case f.Get("redirect_uri") != c.redirectURI:
		gTokenError(w, http.StatusBadRequest, "redirect_uri_mismatch", "Bad Request")
		return
	case f.Get("code_verifier") == "":
		gTokenError(w, http.StatusBadRequest, "invalid_grant", "Missing code verifier.")
		return
	}
	sum := sha256.Sum256([]byte(f.Get("code_verifier")))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(c.challenge)) != 1 {
		gTokenError(w, http.StatusBadRequest, "invalid_grant", "Invalid code verifier.")
		return
	}
	gr := &gGrant{refreshToken: "1//0sandbox-" + randomHex(24), clientID: c.clientID, email: c.email, scopes: c.scopes}
	g.grants[gr.refreshToken] = gr
	g.issueLocked(w, r, gr, true)
}

func (g *Google) refresh(w http.ResponseWriter, r *http.Request, f url.Values) {
	rt := f.Get("refresh_token")
	if rt == "" {
		gTokenError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: refresh_token")
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	gr, ok := g.grants[rt]
	if !ok || gr.revoked || has(rt, "revoked") || gr.clientID != g.opts.ClientID {
		gTokenError(w, http.StatusBadRequest, "invalid_grant", "Token has been expired or revoked.")
		return
	}
	g.refreshes[gr.email]++
	g.issueLocked(w, r, gr, false)
}

// issueLocked answers a new access token of gr (and its refresh token when
// withRefresh, as only the first exchange does at Google).
func (g *Google) issueLocked(w http.ResponseWriter, r *http.Request, gr *gGrant, withRefresh bool) {
	now := g.opts.Now()
	at := "ya29.sandbox-" + randomHex(24)
	g.access[at] = &gAccess{grant: gr, expires: now.Add(g.opts.AccessTokenTTL)}
	body := map[string]any{
		"access_token": at,
		"expires_in":   int(g.opts.AccessTokenTTL.Seconds()) - 1,
		"scope":        strings.Join(gr.scopes, " "),
		"token_type":   "Bearer",
	}
	if withRefresh {
		body["refresh_token"] = gr.refreshToken
	}
	if slices.Contains(gr.scopes, "openid") {
		body["id_token"] = g.idToken(r, gr, now)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, body)
}

// idToken returns an HS256 JWT (keyed by the client secret) about gr's
// account. Its issuer is the origin the request came to.
func (g *Google) idToken(r *http.Request, gr *gGrant, now time.Time) string {
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	sub := new(strings.Builder)
	for _, b := range sha256.Sum256([]byte("sub\x00" + gr.email)) {
		fmt.Fprintf(sub, "%d", b%10)
		if sub.Len() == 21 {
			break
		}
	}
	claims := map[string]any{
		"iss":            scheme + "://" + r.Host,
		"azp":            gr.clientID,
		"aud":            gr.clientID,
		"sub":            sub.String(),
		"email":          gr.email,
		"email_verified": !has(gr.email, "unverified"),
		"iat":            now.Unix(),
		"exp":            now.Add(time.Hour).Unix(),
	}
	header, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	payload, _ := json.Marshal(claims)
	signing := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	mac := hmac.New(sha256.New, []byte(g.opts.ClientSecret))
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// --- revocation -------------------------------------------------------------

func (g *Google) revoke(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	_ = r.ParseForm()
	tok := r.Form.Get("token")
	g.mu.Lock()
	defer g.mu.Unlock()
	g.revokeReqs++
	if g.failRevoke {
		gTokenError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The service is currently unavailable.")
		return
	}
	var gr *gGrant
	if x, ok := g.grants[tok]; ok {
		gr = x
	} else if a, ok := g.access[tok]; ok {
		gr = a.grant
	}
	if tok == "" || gr == nil || gr.revoked {
		gTokenError(w, http.StatusBadRequest, "invalid_token", "Token expired or revoked")
		return
	}
	gr.revoked = true
	writeJSON(w, http.StatusOK, map[string]any{})
}

// --- Calendar API -----------------------------------------------------------

// gAPIError answers Google's API error shape.
func gAPIError(w http.ResponseWriter, status int, statusName, reason, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/", error="invalid_token"`)
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code":    status,
		"message": msg,
		"errors":  []map[string]string{{"message": msg, "domain": "global", "reason": reason}},
		"status":  statusName,
	}})
}

// calendarOf authenticates a Calendar API request and returns the account
// whose calendar it names; it has answered the request when ok is false.
func (g *Google) calendarOf(w http.ResponseWriter, r *http.Request) (email string, ok bool) {
	auth := r.Header.Get("Authorization")
	tok, found := strings.CutPrefix(auth, "Bearer ")
	g.mu.Lock()
	a, known := g.access[strings.TrimSpace(tok)]
	valid := found && known && !a.grant.revoked && g.opts.Now().Before(a.expires)
	var scopes []string
	if valid {
		email, scopes = a.grant.email, a.grant.scopes
	}
	g.mu.Unlock()
	if !valid {
		gAPIError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "authError",
			"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.")
		return "", false
	}
	write := r.Method != http.MethodGet
	if !slices.Contains(scopes, gScopeEvents) && !slices.Contains(scopes, gScopeCalendar) &&
		(write || !slices.Contains(scopes, gScopeReadonly)) {
		gAPIError(w, http.StatusForbidden, "PERMISSION_DENIED", "insufficientPermissions", "Request had insufficient authentication scopes.")
		return "", false
	}
	if cal := r.PathValue("calendar"); cal != "primary" && !strings.EqualFold(cal, email) {
		gAPIError(w, http.StatusNotFound, "NOT_FOUND", "notFound", "Not Found")
		return "", false
	}
	return email, true
}

func (g *Google) listEvents(w http.ResponseWriter, r *http.Request) {
	email, ok := g.calendarOf(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	bad := func(msg string) { gAPIError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "invalid", msg) }
	var timeMin, timeMax time.Time
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"timeMin", &timeMin}, {"timeMax", &timeMax}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				bad("Bad Request")
				return
			}
			*p.dst = t
		}
	}
	if !timeMin.IsZero() && !timeMax.IsZero() && !timeMax.After(timeMin) {
		bad("The specified time range is empty.")
		return
	}
	if ob := q.Get("orderBy"); ob != "" && ob != "updated" && (ob != "startTime" || q.Get("singleEvents") != "true") {
		bad("The requested ordering is not available for the particular query.")
		return
	}
	maxResults := 250
	if v := q.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			bad("Invalid value for maxResults.")
			return
		}
		maxResults = min(n, 2500)
	}
	offset := 0
	if v := q.Get("pageToken"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			bad("Invalid page token.")
			return
		}
		offset = n
	}

	var items []map[string]any
	for _, e := range g.Events(email) {
		if e.Status == "cancelled" ||
			(!timeMin.IsZero() && !e.End.After(timeMin)) || (!timeMax.IsZero() && !e.Start.Before(timeMax)) {
			continue
		}
		items = append(items, gEventJSON(e))
	}
	body := map[string]any{
		"kind": "calendar#events", "summary": email, "timeZone": "UTC", "accessRole": "owner",
		"updated": g.opts.Now().UTC().Format(time.RFC3339Nano), "items": []map[string]any{},
	}
	if offset < len(items) {
		end := min(offset+maxResults, len(items))
		body["items"] = items[offset:end]
		if end < len(items) {
			body["nextPageToken"] = strconv.Itoa(end)
		}
	}
	writeJSON(w, http.StatusOK, body)
}

// gEventTime is the start or end of an event on the wire.
type gEventTime struct {
	DateTime string `json:"dateTime,omitempty"`
	Date     string `json:"date,omitempty"`
	TimeZone string `json:"timeZone,omitempty"`
}

func (t gEventTime) parse() (time.Time, bool, error) {
	switch {
	case t.DateTime != "":
		v, err := time.Parse(time.RFC3339, t.DateTime)
		return v, false, err
	case t.Date != "":
		v, err := time.Parse(time.DateOnly, t.Date)
		return v, true, err
	}
	return time.Time{}, false, nil
}

func gEventJSON(e GoogleEvent) map[string]any {
	at := func(t time.Time) gEventTime {
		if e.AllDay {
			return gEventTime{Date: t.UTC().Format(time.DateOnly)}
		}
		return gEventTime{DateTime: t.UTC().Format(time.RFC3339)}
	}
	out := map[string]any{
		"kind": "calendar#event", "id": e.ID, "status": e.Status, "htmlLink": e.HTMLLink,
		"summary": e.Summary, "start": at(e.Start), "end": at(e.End),
	}
	if e.Description != "" {
		out["description"] = e.Description
	}
	if e.Transparency != "" {
		out["transparency"] = e.Transparency
	}
	if len(e.Attendees) > 0 {
		var as []map[string]string
		for _, a := range e.Attendees {
			as = append(as, map[string]string{"email": a, "responseStatus": "needsAction"})
		}
		out["attendees"] = as
	}
	return out
}

func (g *Google) insertEvent(w http.ResponseWriter, r *http.Request) {
	email, ok := g.calendarOf(w, r)
	if !ok {
		return
	}
	bad := func(msg string) { gAPIError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "invalid", msg) }
	var in struct {
		Summary      string     `json:"summary"`
		Description  string     `json:"description"`
		Start        gEventTime `json:"start"`
		End          gEventTime `json:"end"`
		Transparency string     `json:"transparency"`
		Attendees    []struct {
			Email string `json:"email"`
		} `json:"attendees"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		bad("Parse Error")
		return
	}
	start, startDay, err := in.Start.parse()
	if err != nil {
		bad("Invalid start time.")
		return
	}
	end, endDay, err := in.End.parse()
	if err != nil {
		bad("Invalid end time.")
		return
	}
	switch {
	case start.IsZero():
		bad("Missing start time.")
		return
	case end.IsZero():
		bad("Missing end time.")
		return
	case startDay != endDay:
		bad("Start and end times must either both be date or both be dateTime.")
		return
	case !end.After(start):
		bad("The specified time range is empty.")
		return
	}
	e := GoogleEvent{Summary: in.Summary, Description: in.Description, Start: start, End: end, AllDay: startDay,
		Transparency: in.Transparency}
	for _, a := range in.Attendees {
		if at := strings.IndexByte(a.Email, '@'); at < 1 || at == len(a.Email)-1 {
			bad("Invalid attendee email.")
			return
		}
		e.Attendees = append(e.Attendees, a.Email)
	}
	g.mu.Lock()
	e = g.addEventLocked(email, e)
	g.mu.Unlock()
	writeJSON(w, http.StatusOK, gEventJSON(e))
}

// GoogleConsentChoice is what GoogleConsent answers on the consent page.
type GoogleConsentChoice struct {
	// Deny presses "Deny" instead of "Allow".
	Deny bool
	// Email is the account to sign in as ("" keeps GoogleDefaultEmail).
	Email string
	// Untick lists scopes whose box is unticked before allowing.
	Untick []string
}

var (
	gFormRE  = regexp.MustCompile(`(?s)<form method="post" action="([^"]*)">(.*?)</form>`)
	gInputRE = regexp.MustCompile(`<input ([^>]*)>`)
	gAttrRE  = regexp.MustCompile(`([a-z_-]+)(?:="([^"]*)")?`)
)

// GoogleConsent plays the browser on the stand-in's consent page, for Go
// tests of the connect flow: it opens authURL (the URL a ConnectURL
// returned) with hc, fills in the page's form as a person would per c, and
// submits it. It returns where the stand-in redirects the browser (the
// callback URL with code and state, or with error=access_denied), without
// following it. An error page or any other answer is an error quoting it.
func GoogleConsent(ctx context.Context, hc *http.Client, authURL string, c GoogleConsentChoice) (*url.URL, error) {
	own := &http.Client{}
	if hc != nil {
		*own = *hc
	}
	own.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	fetch := func(method, target string, form url.Values) (*http.Response, []byte, error) {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, target, body)
		if err != nil {
			return nil, nil, err
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := own.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp, raw, err
	}
	resp, page, err := fetch(http.MethodGet, authURL, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusFound {
		return resp.Location()
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("consent page: %s: %s", resp.Status, clipValue(string(page)))
	}
	m := gFormRE.FindSubmatch(page)
	if m == nil {
		return nil, fmt.Errorf("consent page: no form in %s", clipValue(string(page)))
	}
	form := url.Values{}
	for _, in := range gInputRE.FindAllSubmatch(m[2], -1) {
		attrs := map[string]string{}
		for _, a := range gAttrRE.FindAllSubmatch(in[1], -1) {
			attrs[string(a[1])] = html.UnescapeString(string(a[2]))
		}
		_, checked := attrs["checked"]
		switch name, value := attrs["name"], attrs["value"]; {
		case name == "":
		case attrs["type"] == "checkbox":
			if checked && !slices.Contains(c.Untick, value) {
				form.Add(name, value)
			}
		case name == "email" && c.Email != "":
			form.Set(name, c.Email)
		default:
			form.Add(name, value)
		}
	}
	form.Set("decision", "allow")
	if c.Deny {
		form.Set("decision", "deny")
	}
	action, err := resp.Request.URL.Parse(html.UnescapeString(string(m[1])))
	if err != nil {
		return nil, err
	}
	resp, page, err = fetch(http.MethodPost, action.String(), form)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusFound {
		return nil, fmt.Errorf("consent decision: %s: %s", resp.Status, clipValue(string(page)))
	}
	return resp.Location()
}

// clipValue shortens a value quoted in an error.
func clipValue(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

const gConsentPage = `{{define "consent"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - Google Accounts (sandbox)</title>
<link rel="icon" href="data:,">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#202124}
.box{border:1px solid #dadce0;border-radius:8px;padding:1.5rem}label{display:block;margin:.4rem 0}
button{padding:.5rem 1.2rem;border-radius:4px;border:1px solid #dadce0;margin-right:.5rem;cursor:pointer}
.allow{background:#1a73e8;color:#fff;border-color:#1a73e8}code{font-size:.85em}</style></head>
<body><div class="box" data-testid="google-consent">
<p><small>Google sandbox (a local stand-in, not Google)</small></p>
<h1>Choose what <code data-testid="google-consent-client">{{.Req.ClientID}}</code> can access</h1>
<form method="post" action="">
<input type="hidden" name="client_id" value="{{.Req.ClientID}}">
<input type="hidden" name="redirect_uri" value="{{.Req.RedirectURI}}">
<input type="hidden" name="response_type" value="{{.Req.ResponseType}}">
<input type="hidden" name="scope" value="{{.Req.Scope}}">
<input type="hidden" name="state" value="{{.Req.State}}">
<input type="hidden" name="code_challenge" value="{{.Req.Challenge}}">
<input type="hidden" name="code_challenge_method" value="{{.Req.ChallengeMethod}}">
<input type="hidden" name="access_type" value="{{.Req.AccessType}}">
<input type="hidden" name="prompt" value="{{.Req.Prompt}}">
<label>Google account <input type="email" name="email" value="{{.Email}}" data-testid="google-consent-email" required></label>
<fieldset><legend>This app wants to</legend>
{{range .Scopes}}<label><input type="checkbox" name="granted_scope" value="{{.Value}}" checked data-testid="google-consent-scope"> {{.Label}} <code>{{.Value}}</code></label>
{{end}}</fieldset>
<p><button type="submit" name="decision" value="deny" data-testid="google-consent-deny">Deny</button>
<button type="submit" name="decision" value="allow" class="allow" data-testid="google-consent-allow">Allow</button></p>
</form></div></body></html>{{end}}
{{define "error"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Error - Google Accounts (sandbox)</title><link rel="icon" href="data:,"></head>
<body><h1>Access blocked: this request is invalid</h1>
<p data-testid="google-error">Error: <code>{{.Code}}</code></p><p>{{.Description}}</p></body></html>{{end}}`
