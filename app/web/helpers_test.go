package web_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"golang.org/x/crypto/bcrypt"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/auth"
	"byoc/app/credentials"
	"byoc/app/integrations"
	"byoc/app/keyring"
	"byoc/app/providers/elevenlabs"
	"byoc/app/providers/google"
	"byoc/app/providers/resend"
	"byoc/app/providers/twilio"
	"byoc/app/providers/vapi"
	"byoc/app/sandbox"
	"byoc/app/web"
	"byoc/app/webhooks"
	"byoc/db"
	"byoc/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

var (
	sessionSecret = []byte("test-session-secret-0123456789abcdef")
	jwtSecret     = []byte("test-jwt-secret-0123456789abcdefghij")
)

// env is one server over the test database, with its log. Its
// integrations service is the real one, with the real credential service
// and provider clients pointed at a fresh sandbox.
type env struct {
	t     *testing.T
	srv   *web.Server
	db    *db.DB
	sb    *sandbox.Sandbox
	creds *credentials.Service
	// google is the Google stand-in behind the server's Google Calendar
	// service (the real one). The server runs the sign-in flow only with
	// web.Options.GoogleConfigured, as main sets it (withGoogle).
	google     *sandbox.Google
	googleURLs sandbox.GoogleURLs
	log        *apptest.LogBuffer
	bodies     *apptest.LogBuffer // every response body the tests saw
}

type envOption func(*web.Options, *web.Deps)

func newEnv(t *testing.T, options ...envOption) *env {
	t.Helper()
	d := dbtest.DB(t)
	tokens, err := auth.NewTokens(jwtSecret, auth.TokenOptions{Issuer: "http://byoc.test"})
	if err != nil {
		t.Fatal(err)
	}
	logs := &apptest.LogBuffer{}
	opts := web.Options{
		SessionSecret: sessionSecret,
		Logger:        slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	logger := opts.Logger
	sb := sandbox.New()
	// As in main: every change of a connection drops the org's webhook
	// routing on this instance at once.
	var hooks *webhooks.Handler
	svcs := newIntegrations(t, d, sb, logger, func(orgID string) { hooks.InvalidateOrg(orgID) })
	hooks = webhooks.New(webhooks.Deps{Mappings: d, Credentials: svcs.creds, Events: d}, webhooks.Options{Logger: logger})
	deps := web.Deps{
		Accounts:     auth.NewService(d, tokens, auth.Options{BcryptCost: bcrypt.MinCost}),
		DB:           d,
		Integrations: svcs.integ,
		Google:       svcs.google,
		Webhooks:     hooks,
		Credentials:  svcs.creds,
	}
	for _, o := range options {
		o(&opts, &deps)
	}
	srv, err := web.New(opts, deps)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, db: d, sb: sb, creds: svcs.creds, google: svcs.googleSandbox, googleURLs: svcs.googleURLs,
		log: logs, bodies: &apptest.LogBuffer{}}
}

// providerTimeout bounds each call to a stand-in.
const providerTimeout = 2 * time.Second

// services are the real services behind a test server.
type services struct {
	integ *integrations.Service
	// creds is the credential service under integ and google (tests store
	// credentials through it directly to stand for keys revoked at the
	// provider after they were saved).
	creds *credentials.Service
	// google is the Google Calendar service: integ tests and disconnects
	// Google Calendar through it, and the server runs the sign-in with it.
	google        *google.Service
	googleSandbox *sandbox.Google
	googleURLs    sandbox.GoogleURLs
}

// newIntegrations builds the real integrations service over d, with the
// provider clients pointed at sb served on a local listener and the real
// Google Calendar service pointed at a fresh Google stand-in, as main wires
// them.
func newIntegrations(t *testing.T, d *db.DB, sb *sandbox.Sandbox, logger *slog.Logger, changed func(orgID string)) services {
	t.Helper()
	hs := httptest.NewServer(sb.Handler())
	t.Cleanup(hs.Close)
	urls := sb.BaseURLs(hs.URL)
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.New(key)
	if err != nil {
		t.Fatal(err)
	}
	hc := hs.Client()
	creds := credentials.New(d, kr, credentials.Options{Logger: logger})
	gsvc, gs, gurls := newGoogle(t, d, creds, kr, logger)
	integ := integrations.New(integrations.Deps{
		Credentials: creds,
		Vapi:        vapi.New(urls.Vapi, urls.VapiEU, hc, providerTimeout),
		Twilio:      twilio.New(urls.Twilio, hc, providerTimeout),
		Resend:      resend.New(urls.Resend, hc, providerTimeout),
		ElevenLabs:  elevenlabs.New(urls.ElevenLabs, hc, providerTimeout),
		Google:      gsvc,
		Assistants:  d,
		Audit:       d,
		Locker:      d,
	}, integrations.Options{PublicURL: "http://byoc.test", Logger: logger, Changed: func(orgID string, _ app.Provider) {
		if changed != nil {
			changed(orgID)
		}
	}})
	return services{integ: integ, creds: creds, google: gsvc, googleSandbox: gs, googleURLs: gurls}
}

// googleCallbackURL is the server's Google callback, registered with the
// Google stand-in.
const googleCallbackURL = "http://byoc.test/api/auth/google-calendar/callback"

// newGoogle builds the real Google Calendar service over d and creds with
// its OAuth client pointed at a fresh Google stand-in served on a local
// listener, and returns both with the stand-in's URLs.
func newGoogle(t *testing.T, d *db.DB, creds *credentials.Service, kr *keyring.Keyring, logger *slog.Logger) (*google.Service, *sandbox.Google, sandbox.GoogleURLs) {
	t.Helper()
	gs := sandbox.NewGoogle(sandbox.GoogleOptions{RedirectURIs: []string{googleCallbackURL}})
	hs := httptest.NewServer(gs)
	t.Cleanup(hs.Close)
	urls := gs.URLs(hs.URL)
	id, secret := gs.Client()
	return google.NewService(google.Deps{
		OAuth: google.NewOAuth(google.OAuthConfig{
			ClientID: id, ClientSecret: app.NewSecret(secret), RedirectURL: googleCallbackURL,
			AuthURL: urls.Auth, TokenURL: urls.Token, RevokeURL: urls.Revoke, CalendarBaseURL: urls.Calendar,
			Timeout: providerTimeout, HTTPClient: hs.Client(),
		}),
		Credentials: creds, States: d, Audit: d, Sealer: kr, Locker: d,
	}, google.Options{Logger: logger}), gs, urls
}

// response is a finished response with its body read.
type response struct {
	*http.Response
	body string
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, r.body)
	}
	return m
}

func (r response) doc(t *testing.T) *goquery.Document {
	t.Helper()
	d, err := goquery.NewDocumentFromReader(strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// testid returns the elements with data-testid=id.
func testid(d *goquery.Document, id string) *goquery.Selection {
	return d.Find(`[data-testid="` + id + `"]`)
}

// do sends req to the server in memory.
func (e *env) do(req *http.Request) response {
	e.t.Helper()
	res, err := e.srv.Test(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	_, _ = e.bodies.Write(b)
	return response{Response: res, body: string(b)}
}

// request builds a request; body may be nil, url.Values (a form) or
// anything else (JSON).
func request(method, target string, body any, headers ...string) *http.Request {
	var r io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		r, ct = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	case string:
		r, ct = strings.NewReader(b), "application/json"
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			panic(err)
		}
		r, ct = bytes.NewReader(raw), "application/json"
	}
	req := httptest.NewRequest(method, target, r)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

// browser keeps cookies across requests like a browser does.
type browser struct {
	e       *env
	cookies map[string]*http.Cookie
}

func (e *env) browser() *browser { return &browser{e: e, cookies: map[string]*http.Cookie{}} }

func (b *browser) do(req *http.Request) response {
	b.e.t.Helper()
	for _, c := range b.cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	res := b.e.do(req)
	for _, c := range res.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	return res
}

func (b *browser) get(target string, headers ...string) response {
	b.e.t.Helper()
	return b.do(request(http.MethodGet, target, nil, headers...))
}

// csrf loads a page and returns its CSRF token, checking that the meta tag
// and the form field agree.
func (b *browser) csrf(page string) string {
	t := b.e.t
	t.Helper()
	res := b.get(page)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", page, res.StatusCode)
	}
	d := res.doc(t)
	meta, _ := d.Find(`meta[name="csrf-token"]`).Attr("content")
	field, _ := d.Find(`input[name="_csrf"]`).First().Attr("value")
	if meta == "" || meta != field {
		t.Fatalf("GET %s: CSRF meta %q and form field %q", page, meta, field)
	}
	return meta
}

// signup signs a new org up through the form and returns its email.
func (b *browser) signup(password string) string {
	t := b.e.t
	t.Helper()
	email := uniqueEmail()
	token := b.csrf("/signup")
	res := b.do(request(http.MethodPost, "/signup", url.Values{
		"_csrf": {token}, "orgName": {"Acme Dental"}, "email": {email}, "password": {password},
	}))
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/dashboard/integrations" {
		t.Fatalf("signup: %d to %q\n%s", res.StatusCode, res.Header.Get("Location"), res.body)
	}
	return strings.ToLower(email)
}

func uniqueEmail() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "Owner." + hex.EncodeToString(b[:]) + "@Example.com"
}

const password = "a long enough password"

// envelopeError returns the error object of a failure envelope.
func envelopeError(t *testing.T, r response) map[string]any {
	t.Helper()
	m := r.json(t)
	if m["success"] != false {
		t.Fatalf("success is %v, want false: %s", m["success"], r.body)
	}
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object: %s", r.body)
	}
	return e
}

// envelopeData returns the data of a success envelope.
func envelopeData(t *testing.T, r response) map[string]any {
	t.Helper()
	m := r.json(t)
	if m["success"] != true {
		t.Fatalf("success is %v, want true: %s", m["success"], r.body)
	}
	d, ok := m["data"].(map[string]any)
	if !ok {
		t.Fatalf("no data object: %s", r.body)
	}
	return d
}
