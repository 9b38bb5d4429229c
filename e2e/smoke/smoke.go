package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"byoc/app/paths"
	"byoc/app/sandbox"
	"byoc/app/webhooks"
)

// Options is what a smoke run needs.
type Options struct {
	// BaseURL is the server, such as http://127.0.0.1:3000.
	BaseURL string
	// Values are the credentials to save, by provider and field (such as
	// Values["vapi"]["apiKey"]); a provider left out gets generated values
	// that the stand-ins of `byoc demo` accept (and real providers refuse).
	Values map[string]map[string]string
	// Out receives one line per step. Nothing written to it holds a value
	// of Values or the account's password or token.
	Out io.Writer
	// Client is the HTTP client (nil: one with a 30 s timeout).
	Client *http.Client
}

// keyProviders are the providers a smoke run saves, verifies and
// disconnects, in that order: every one connected with a key.
var keyProviders = []string{"vapi", "twilio", "resend", "elevenlabs"}

// statusKeys are the entries of the status answer, by JSON key.
var statusKeys = []string{"vapi", "twilio", "googleCalendar", "resend", "elevenlabs"}

// DemoValues returns credentials the stand-ins accept: well formed, random,
// and free of the words that make a stand-in fail (hex cannot spell them).
func DemoValues() map[string]map[string]string {
	return map[string]map[string]string{
		"vapi":       {"apiKey": "vapi-" + randomHex(16), "webhookSecret": "whsec-" + randomHex(16)},
		"twilio":     {"accountSid": "AC" + randomHex(16), "authToken": randomHex(16), "phoneNumber": "+12025550142"},
		"resend":     {"apiKey": "re_" + randomHex(12), "fromEmail": "smoke@example.com"},
		"elevenlabs": {"apiKey": "sk_" + randomHex(16)},
	}
}

// Run goes through the API as a new customer would: health, signup, the
// status, then for each key provider save and verify; the status; a signed
// Vapi webhook for the org's assistant (and a forged one, refused); Google
// Calendar's sign-in (finished on the stand-in's consent page when it leads
// there, then verified and disconnected); each key provider's disconnect,
// the status again, and the webhook refused once Vapi is gone. It stops at
// the first step that does not answer as expected and returns an error
// naming it; a step the server is not set up for is reported as skipped.
func Run(ctx context.Context, o Options) error {
	if o.Out == nil {
		o.Out = io.Discard
	}
	s, err := newSession(o)
	if err != nil {
		return err
	}
	steps := []step{
		{"health", s.health},
		{"sign up", s.signup},
		{"status: nothing connected", func(ctx context.Context) error { return s.expectStatus(ctx, nil) }},
	}
	for _, p := range keyProviders {
		steps = append(steps,
			step{"save " + p, func(ctx context.Context) error { return s.save(ctx, p) }},
			step{"verify " + p, func(ctx context.Context) error { return s.verify(ctx, p) }})
	}
	steps = append(steps,
		step{"status: every key provider connected", func(ctx context.Context) error { return s.expectStatus(ctx, keyProviders) }},
		step{"signed webhook accepted", s.signedWebhook},
		step{"forged webhook refused", s.forgedWebhook},
		step{"google calendar sign-in starts", s.googleConnect},
		step{"google calendar connected (stand-in)", s.googleConsent},
		step{"verify google_calendar", s.ifGoogle(func(ctx context.Context) error { return s.verify(ctx, "google_calendar") })},
		step{"disconnect google_calendar", s.ifGoogle(func(ctx context.Context) error { return s.disconnect(ctx, "google_calendar") })},
	)
	for _, p := range keyProviders {
		steps = append(steps, step{"disconnect " + p, func(ctx context.Context) error { return s.disconnect(ctx, p) }})
	}
	steps = append(steps,
		step{"status: nothing connected again", func(ctx context.Context) error { return s.expectStatus(ctx, nil) }},
		step{"webhook refused after disconnect", s.webhookAfterDisconnect},
	)
	skipped := 0
	for i, st := range steps {
		start := time.Now()
		err := st.do(ctx)
		if errors.Is(err, errSkipped) {
			skipped++
			fmt.Fprintf(o.Out, "skip %-40s %s\n", st.name, s.redact(err.Error()))
			continue
		}
		if err != nil {
			fmt.Fprintf(o.Out, "FAIL %-40s %s\n", st.name, s.redact(err.Error()))
			return fmt.Errorf("step %d of %d (%s) failed", i+1, len(steps), st.name)
		}
		fmt.Fprintf(o.Out, "ok   %-40s %s\n", st.name, time.Since(start).Round(time.Millisecond))
	}
	if skipped > 0 {
		fmt.Fprintf(o.Out, "smoke: %d steps passed, %d skipped, against %s\n", len(steps)-skipped, skipped, s.base)
		return nil
	}
	fmt.Fprintf(o.Out, "smoke: all %d steps passed against %s\n", len(steps), s.base)
	return nil
}

// step is one request (or a few) of the run and what its answer must be.
type step struct {
	name string
	do   func(context.Context) error
}

// errSkipped marks a step the run cannot take here (Google's sign-in on a
// server without a Google client, or consent at Google itself): reported,
// not a failure.
var errSkipped = errors.New("skipped")

// session is one smoke run's account and what it learned on the way.
type session struct {
	base   string
	hc     *http.Client
	values map[string]map[string]string

	email, password, token string
	assistantID            string
	// authURL is where Google's sign-in starts; google is set once the
	// stand-in's consent connected Google Calendar.
	authURL string
	google  bool
}

func newSession(o Options) (*session, error) {
	u, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("the URL must be http(s)://host[:port], got %q", o.BaseURL)
	}
	s := &session{base: u.String(), hc: o.Client, values: DemoValues()}
	if s.hc == nil {
		s.hc = &http.Client{Timeout: 30 * time.Second}
	}
	for p, v := range o.Values {
		s.values[p] = v
	}
	if s.values["vapi"]["webhookSecret"] == "" {
		return nil, fmt.Errorf("the Vapi values need a webhookSecret: the smoke signs a webhook with it")
	}
	s.email = "smoke-" + randomHex(6) + "@example.com"
	s.password = "Pw-" + randomHex(12)
	return s, nil
}

// secrets are every value the run must never print.
func (s *session) secrets() []string {
	out := []string{s.password, s.token}
	for _, fields := range s.values {
		for _, v := range fields {
			if len(v) >= 8 && !strings.HasPrefix(v, "+") && !strings.Contains(v, "@") {
				out = append(out, v)
			}
		}
	}
	return out
}

// redact replaces every secret of the run in text.
func (s *session) redact(text string) string {
	for _, v := range s.secrets() {
		if v != "" {
			text = strings.ReplaceAll(text, v, "[redacted]")
		}
	}
	return text
}

// answer is a decoded response.
type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

// data returns the envelope's data object.
func (a answer) data() map[string]any {
	d, _ := a.body["data"].(map[string]any)
	return d
}

// problem describes an unexpected answer: its status and, for the error
// envelope, its code and message (never the raw body).
func (a answer) problem(want int) error {
	msg := fmt.Sprintf("HTTP %d, want %d", a.status, want)
	if e, ok := a.body["error"].(map[string]any); ok {
		msg += fmt.Sprintf(": %v: %v", e["code"], e["message"])
	}
	return fmt.Errorf("%s", msg)
}

// call sends a JSON request (body nil for none) with the session's bearer
// token when it has one, plus extra headers, and decodes a JSON answer.
func (s *session) call(ctx context.Context, method, path string, body any, headers ...string) (answer, error) {
	var rd io.Reader
	var raw []byte
	if body != nil {
		if b, ok := body.([]byte); ok {
			raw = b
		} else {
			var err error
			if raw, err = json.Marshal(body); err != nil {
				return answer{}, err
			}
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, rd)
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if a.raw, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20)); err != nil {
		return a, fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(a.raw, &a.body); err != nil {
			return a, fmt.Errorf("%s %s: the answer is not JSON", method, path)
		}
	}
	// An answer must never repeat a secret of the run (the token only
	// comes back from sign-up, before it is known).
	for _, v := range s.secrets() {
		if v != "" && bytes.Contains(a.raw, []byte(v)) {
			return a, fmt.Errorf("%s %s: the answer holds a secret the smoke sent", method, path)
		}
	}
	return a, nil
}

// expect calls and requires the status want.
func (s *session) expect(ctx context.Context, want int, method, path string, body any, headers ...string) (answer, error) {
	a, err := s.call(ctx, method, path, body, headers...)
	if err != nil {
		return a, err
	}
	if a.status != want {
		return a, fmt.Errorf("%s %s: %w", method, path, a.problem(want))
	}
	return a, nil
}

func (s *session) health(ctx context.Context) error {
	for _, p := range []string{paths.Healthz, paths.Readyz} {
		if _, err := s.expect(ctx, http.StatusOK, http.MethodGet, p, nil); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) signup(ctx context.Context) error {
	a, err := s.expect(ctx, http.StatusCreated, http.MethodPost, paths.APISignup, map[string]string{
		"orgName": "Smoke " + randomHex(4), "email": s.email, "password": s.password,
	})
	if err != nil {
		return err
	}
	tok, _ := a.data()["token"].(string)
	if tok == "" || a.data()["orgId"] == nil {
		return fmt.Errorf("the signup answer has no token or orgId")
	}
	s.token = tok
	return nil
}

// expectStatus requires exactly the providers in connected to be connected
// (and none to need attention), each showing only masked secrets.
func (s *session) expectStatus(ctx context.Context, connected []string) error {
	a, err := s.expect(ctx, http.StatusOK, http.MethodGet, paths.APIStatus, nil)
	if err != nil {
		return err
	}
	for _, key := range statusKeys {
		e, ok := a.data()[key].(map[string]any)
		if !ok {
			return fmt.Errorf("the status has no entry %q", key)
		}
		want := false
		for _, p := range connected {
			want = want || p == key
		}
		if e["connected"] != want || e["needsAttention"] != false {
			return fmt.Errorf("%s: connected %v, needsAttention %v; want connected %v", key, e["connected"], e["needsAttention"], want)
		}
		if key := s.values[key]["apiKey"]; want && key != "" {
			if masked, _ := e["apiKey"].(string); !strings.HasSuffix(masked, key[len(key)-4:]) || len(masked) >= len(key) {
				return fmt.Errorf("the status does not show the masked key (its last four characters)")
			}
		}
	}
	return nil
}

func (s *session) save(ctx context.Context, provider string) error {
	a, err := s.expect(ctx, http.StatusOK, http.MethodPost, paths.Integration(provider), s.values[provider])
	if err != nil {
		return err
	}
	if a.data()["connected"] != true {
		return fmt.Errorf("the save answered connected %v", a.data()["connected"])
	}
	if provider == "vapi" {
		id, _ := a.data()["inboundAssistantId"].(string)
		if id == "" {
			return fmt.Errorf("the Vapi save named no inbound assistant")
		}
		s.assistantID = id
	}
	return nil
}

func (s *session) verify(ctx context.Context, provider string) error {
	a, err := s.expect(ctx, http.StatusOK, http.MethodPost, paths.IntegrationVerify(provider), nil)
	if err != nil {
		return err
	}
	if a.data()["verified"] != true {
		return fmt.Errorf("the test answered verified %v", a.data()["verified"])
	}
	return nil
}

func (s *session) disconnect(ctx context.Context, provider string) error {
	a, err := s.expect(ctx, http.StatusOK, http.MethodDelete, paths.Integration(provider), nil)
	if err != nil {
		return err
	}
	if a.data()["connected"] != false {
		return fmt.Errorf("the disconnect answered connected %v", a.data()["connected"])
	}
	return nil
}

// event is a Vapi status-update for the org's inbound assistant, as Vapi
// sends it, with a fresh call id.
func (s *session) event() []byte {
	raw, _ := json.Marshal(map[string]any{"message": map[string]any{
		"type": "status-update", "status": "in-progress", "timestamp": time.Now().UnixMilli(),
		"call": map[string]any{"id": "smoke-call-" + randomHex(8), "assistantId": s.assistantID},
	}})
	return raw
}

// signed sends body signed as Vapi signs it: an HMAC-SHA256 of
// "{timestamp}.{body}" under secret, in hex, with the timestamp in seconds.
func (s *session) signed(ctx context.Context, body []byte, secret string) (answer, error) {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	hook := *s
	hook.token = "" // Vapi sends no bearer token
	return hook.call(ctx, http.MethodPost, paths.Webhooks, body,
		webhooks.HeaderSignature, hex.EncodeToString(mac.Sum(nil)), webhooks.HeaderTimestamp, ts)
}

func (s *session) signedWebhook(ctx context.Context) error {
	a, err := s.signed(ctx, s.event(), s.values["vapi"]["webhookSecret"])
	if err != nil {
		return err
	}
	if a.status != http.StatusOK || a.body["received"] != true {
		return fmt.Errorf("a webhook signed with the org's secret: %w", a.problem(http.StatusOK))
	}
	return nil
}

// refused requires the webhook answer's error code.
func refused(a answer, status int, code string) error {
	e, _ := a.body["error"].(map[string]any)
	if a.status != status || e["code"] != code {
		return fmt.Errorf("want %d %s: %w", status, code, a.problem(status))
	}
	return nil
}

func (s *session) forgedWebhook(ctx context.Context) error {
	a, err := s.signed(ctx, s.event(), "not-"+s.values["vapi"]["webhookSecret"])
	if err != nil {
		return err
	}
	return refused(a, http.StatusUnauthorized, "invalid_signature")
}

func (s *session) webhookAfterDisconnect(ctx context.Context) error {
	a, err := s.signed(ctx, s.event(), s.values["vapi"]["webhookSecret"])
	if err != nil {
		return err
	}
	return refused(a, http.StatusNotFound, "unknown_assistant")
}

// googleConnect starts Google's sign-in as an API client: the answer is the
// consent page's address with a state and a PKCE challenge. Finishing it
// takes a person at a browser.
func (s *session) googleConnect(ctx context.Context) error {
	a, err := s.call(ctx, http.MethodGet, paths.GoogleConnect, nil)
	if err != nil {
		return err
	}
	if refused(a, http.StatusNotFound, "not_configured") == nil {
		return fmt.Errorf("%w: the server has no Google client", errSkipped)
	}
	if a.status != http.StatusOK {
		return fmt.Errorf("GET %s: %w", paths.GoogleConnect, a.problem(http.StatusOK))
	}
	raw, _ := a.data()["authUrl"].(string)
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("the connect answer has no authUrl")
	}
	q := u.Query()
	for _, k := range []string{"client_id", "redirect_uri", "state", "code_challenge"} {
		if q.Get(k) == "" {
			return fmt.Errorf("the authUrl has no %s", k)
		}
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("access_type") != "offline" {
		return fmt.Errorf("the authUrl asks for code_challenge_method %q, access_type %q; want S256, offline",
			q.Get("code_challenge_method"), q.Get("access_type"))
	}
	s.authURL = raw
	return nil
}

// googleConsent finishes Google's sign-in when it leads to the stand-in of
// `byoc demo` (a loopback address), as a person at a browser would: sign in
// with the form, consent on the stand-in's page, return to the callback.
// Against Google itself it is skipped: consent there takes a person.
func (s *session) googleConsent(ctx context.Context) error {
	if s.authURL == "" {
		return fmt.Errorf("%w: the sign-in did not start", errSkipped)
	}
	u, _ := url.Parse(s.authURL)
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: consent at %s takes a person at a browser", errSkipped, u.Hostname())
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	browser := &http.Client{Jar: jar, Timeout: s.hc.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// Google returns the browser to PUBLIC_URL's callback, so the browser
	// signs in there: its session cookie belongs to that origin, which may
	// name the server otherwise than the smoke's URL (localhost, 127.0.0.1).
	callback, err := url.Parse(u.Query().Get("redirect_uri"))
	if err != nil || callback.Host == "" {
		return fmt.Errorf("the authUrl has no usable redirect_uri")
	}
	origin := callback.Scheme + "://" + callback.Host
	if err := s.signInForm(ctx, browser, origin); err != nil {
		return err
	}
	back, err := sandbox.GoogleConsent(ctx, browser, s.authURL, sandbox.GoogleConsentChoice{})
	if err != nil {
		return fmt.Errorf("the stand-in's consent page: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, back.String(), nil)
	if err != nil {
		return err
	}
	resp, err := browser.Do(req)
	if err != nil {
		return fmt.Errorf("the callback: %w", err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != paths.Dashboard {
		return fmt.Errorf("the callback answered HTTP %d to %q, want 303 to %s", resp.StatusCode, loc, paths.Dashboard)
	}
	a, err := s.expect(ctx, http.StatusOK, http.MethodGet, paths.APIStatus, nil)
	if err != nil {
		return err
	}
	if e, _ := a.data()["googleCalendar"].(map[string]any); e["connected"] != true {
		return fmt.Errorf("after the callback Google Calendar shows connected %v", e["connected"])
	}
	s.google = true
	return nil
}

// ifGoogle runs fn only once Google Calendar is connected.
func (s *session) ifGoogle(fn func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		if !s.google {
			return fmt.Errorf("%w: Google Calendar is not connected", errSkipped)
		}
		return fn(ctx)
	}
}

// csrfMeta finds the CSRF token a page carries for its forms.
var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)"`)

// signInForm signs the account in with the browser form, leaving the
// session cookie in browser's jar.
func (s *session) signInForm(ctx context.Context, browser *http.Client, origin string) error {
	resp, err := get(ctx, browser, origin+paths.Login)
	if err != nil {
		return err
	}
	m := csrfMeta.FindSubmatch(resp.body)
	if resp.StatusCode != http.StatusOK || m == nil {
		return fmt.Errorf("the login page (HTTP %d) has no CSRF token", resp.StatusCode)
	}
	form := url.Values{"email": {s.email}, "password": {s.password}, "_csrf": {html.UnescapeString(string(m[1]))}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, origin+paths.Login, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := browser.Do(req)
	if err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther && res.StatusCode != http.StatusFound {
		return fmt.Errorf("signing in with the form answered HTTP %d, want a redirect", res.StatusCode)
	}
	return nil
}

// page is a browser answer.
type page struct {
	StatusCode int
	body       []byte
}

// get fetches target with a browser's client, without following redirects.
func get(ctx context.Context, browser *http.Client, target string) (page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return page{}, err
	}
	resp, err := browser.Do(req)
	if err != nil {
		return page{}, fmt.Errorf("GET %s: %w", req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return page{StatusCode: resp.StatusCode, body: body}, err
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("smoke: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}
