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
	"sync"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"golang.org/x/crypto/bcrypt"

	"byoc/app/auth"
	"byoc/app/web"
	"byoc/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

var (
	sessionSecret = []byte("test-session-secret-0123456789abcdef")
	jwtSecret     = []byte("test-jwt-secret-0123456789abcdefghij")
)

// syncBuffer is a log sink that tests can read while the server writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is one server over the test database, with its log.
type env struct {
	t      *testing.T
	srv    *web.Server
	log    *syncBuffer
	bodies *syncBuffer // every response body the tests saw
}

type envOption func(*web.Options, *web.Deps)

func newEnv(t *testing.T, options ...envOption) *env {
	t.Helper()
	d := dbtest.DB(t)
	tokens, err := auth.NewTokens(jwtSecret, auth.TokenOptions{Issuer: "http://byoc.test"})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	opts := web.Options{
		PublicURL:     "http://byoc.test",
		SessionSecret: sessionSecret,
		Logger:        slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	deps := web.Deps{Accounts: auth.NewService(d, tokens, auth.Options{BcryptCost: bcrypt.MinCost}), DB: d}
	for _, o := range options {
		o(&opts, &deps)
	}
	srv, err := web.New(opts, deps)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, log: logs, bodies: &syncBuffer{}}
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
