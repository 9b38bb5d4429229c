package web_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"golang.org/x/crypto/bcrypt"

	"byoc/app/apptest"
	"byoc/app/auth"
	"byoc/app/config"
	"byoc/app/credentials"
	"byoc/app/sandbox"
	"byoc/app/system"
	"byoc/app/system/systemtest"
	"byoc/app/web"
	"byoc/db"
	"byoc/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// sessionSecret is a session secret for servers a test makes with web.New.
var sessionSecret = []byte("test-session-secret-0123456789abcdef")

// env is one server over the test database, with its log: the whole graph
// system.Build makes, with every provider a fresh sandbox's stand-in.
type env struct {
	t     *testing.T
	srv   *web.Server
	sys   *system.System
	db    *db.DB
	sb    *sandbox.Sandbox
	creds *credentials.Service
	// google is the Google stand-in the server's Google client talks to
	// (withGoogle only; nil otherwise).
	google     *sandbox.Google
	googleURLs sandbox.GoogleURLs
	log        *apptest.LogBuffer
	bodies     *apptest.LogBuffer // every response body the tests saw
	// setup is what the server was built from (see instance).
	setup envSetup
}

// envSetup is what newEnv builds the server from; options change it first.
type envSetup struct {
	cfg  *config.Config
	opts system.Options
	// google gives the server a Google client, pointed at a Google
	// stand-in; without it the server has none, as when GOOGLE_CLIENT_ID
	// and GOOGLE_CLIENT_SECRET are not set.
	google bool
	// ready, when set, is what the server's readiness check pings instead
	// of the database.
	ready web.Pinger
	// starting leaves the server as before its invalidation listener
	// first listened (web.Server.Started not called); newEnv marks every
	// other server started, as serving it does.
	starting bool
}

type envOption func(*envSetup)

// providerTimeout bounds each call to a stand-in.
const providerTimeout = 2 * time.Second

func newEnv(t *testing.T, options ...envOption) *env {
	t.Helper()
	d := dbtest.DB(t)
	logs := &apptest.LogBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sb := sandbox.New()
	hs := httptest.NewServer(sb.Handler())
	t.Cleanup(hs.Close)

	s := envSetup{cfg: systemtest.Config(t, sb.BaseURLs(hs.URL)), opts: system.Options{Logger: logger, Accounts: auth.Options{BcryptCost: bcrypt.MinCost}}}
	s.cfg.ProviderTimeout = providerTimeout
	for _, o := range options {
		o(&s)
	}
	e := &env{t: t, db: d, sb: sb, log: logs, bodies: &apptest.LogBuffer{}}
	if s.google {
		e.google = sandbox.NewGoogle(sandbox.GoogleOptions{RedirectURIs: []string{systemtest.GoogleCallbackURL}})
		gs := httptest.NewServer(e.google)
		t.Cleanup(gs.Close)
		systemtest.WithGoogle(s.cfg, e.google, gs.URL)
		e.googleURLs = e.google.URLs(gs.URL)
	}
	e.setup = s
	sys, err := system.Build(s.cfg, d, s.opts)
	if err != nil {
		t.Fatal(err)
	}
	e.sys, e.srv, e.creds = sys, sys.Server, sys.Credentials
	if s.ready != nil {
		// The same services behind a server whose readiness check asks
		// s.ready, with the options Build gives its server.
		wo := s.opts.Web
		wo.Production, wo.SessionSecret, wo.Logger = s.cfg.Production(), []byte(s.cfg.SessionSecret.Reveal()), logger
		wo.Sandbox, wo.OpsToken, wo.TrustedProxies = s.opts.Sandbox, s.cfg.OpsToken.Reveal(), s.cfg.TrustedProxies
		e.srv, err = web.New(wo, web.Deps{Accounts: sys.Accounts, DB: s.ready, Integrations: sys.Integrations,
			Webhooks: sys.Webhooks, Credentials: sys.Credentials, Limiter: sys.Limiter, Team: sys.Team,
			Activity: sys.Activity})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !s.starting {
		e.srv.Started()
	}
	return e
}

// instance builds another instance of e's server: a second graph from the
// same configuration on the same database, as a second process behind a
// load balancer would be.
func (e *env) instance() *env {
	e.t.Helper()
	sys, err := system.Build(e.setup.cfg, e.db, e.setup.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	other := *e
	other.sys, other.srv, other.creds = sys, sys.Server, sys.Credentials
	if !e.setup.starting {
		other.srv.Started()
	}
	return &other
}

// withGoogle gives the server its Google client, as when
// GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET are set.
func withGoogle(s *envSetup) { s.google = true }

// withWeb changes the web server's options.
func withWeb(change func(*web.Options)) envOption {
	return func(s *envSetup) { change(&s.opts.Web) }
}

// production runs the server with APP_ENV=production.
func production(s *envSetup) { s.cfg.Env = config.Production }

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
	checkContract(e.t, req, res, b)
	return response{Response: res, body: string(b)}
}

// multipartForm is a form request() sends as multipart/form-data.
type multipartForm url.Values

// request builds a request; body may be nil, url.Values (a form),
// multipartForm or anything else (JSON; a string is sent as it is).
func request(method, target string, body any, headers ...string) *http.Request {
	var r io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		r, ct = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	case multipartForm:
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		for k, vs := range b {
			for _, v := range vs {
				if err := w.WriteField(k, v); err != nil {
					panic(err)
				}
			}
		}
		if err := w.Close(); err != nil {
			panic(err)
		}
		r, ct = &buf, w.FormDataContentType()
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
