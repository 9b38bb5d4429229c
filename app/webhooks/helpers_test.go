package webhooks_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/credentials"
	"byoc/app/keyring"
	"byoc/app/orgcache"
	"byoc/app/providers/twilio"
	"byoc/app/sandbox"
	"byoc/app/webhooks"
	"byoc/db"
	"byoc/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// The real adapters satisfy the handler's consumer-side interfaces.
var (
	_ webhooks.MappingResolver = (*db.DB)(nil)
	_ webhooks.EventStore      = (*db.DB)(nil)
	_ webhooks.Credentials     = (*credentials.Service)(nil)
	_ webhooks.TwilioSender    = (*twilio.Client)(nil)
)

// queryCounter is a pgx tracer that counts every statement sent on the
// connections of one pool: the ground truth for "database round trips".
type queryCounter struct{ n atomic.Int64 }

func (q *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	q.n.Add(1)
	return ctx
}

func (q *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// countingMappings, countingCreds and countingEvents wrap the real
// DB-backed implementations and count the calls that reach them.
type countingMappings struct {
	inner            webhooks.MappingResolver
	resolves, touchs atomic.Int64
	// stuckTouch makes TouchAssistant wait until its context ends, as on
	// a database that does not answer.
	stuckTouch atomic.Bool
}

func (c *countingMappings) ResolveAssistant(ctx context.Context, id string) (app.AssistantMapping, error) {
	c.resolves.Add(1)
	return c.inner.ResolveAssistant(ctx, id)
}

func (c *countingMappings) TouchAssistant(ctx context.Context, orgID, id string, at time.Time) (bool, error) {
	c.touchs.Add(1)
	if c.stuckTouch.Load() {
		<-ctx.Done()
		return false, ctx.Err()
	}
	return c.inner.TouchAssistant(ctx, orgID, id, at)
}

type countingCreds struct {
	inner        webhooks.Credentials
	vapi, twilio atomic.Int64
}

func (c *countingCreds) VapiWebhook(ctx context.Context, orgID string) (app.VapiWebhook, error) {
	c.vapi.Add(1)
	return c.inner.VapiWebhook(ctx, orgID)
}

func (c *countingCreds) Twilio(ctx context.Context, orgID string) (app.TwilioConfig, error) {
	c.twilio.Add(1)
	return c.inner.Twilio(ctx, orgID)
}

type countingEvents struct {
	inner webhooks.EventStore
	n     atomic.Int64
	fail  atomic.Bool // when set, every call fails without reaching the store
}

func (c *countingEvents) RecordCallEvent(ctx context.Context, e app.CallEvent) (bool, error) {
	c.n.Add(1)
	if c.fail.Load() {
		return false, fmt.Errorf("test: the database is down")
	}
	return c.inner.RecordCallEvent(ctx, e)
}

func (c *countingEvents) SetCallEventOutcome(ctx context.Context, orgID, dedupKey, outcome string) error {
	if c.fail.Load() {
		return fmt.Errorf("test: the database is down")
	}
	return c.inner.SetCallEventOutcome(ctx, orgID, dedupKey, outcome)
}

// env is a handler wired to the real database (through a pool of its own
// whose statements are counted), the real credential service and the real
// Twilio client pointed at the sandbox stand-in.
type env struct {
	t        testing.TB
	h        *webhooks.Handler
	db       *db.DB
	queries  *queryCounter
	creds    *credentials.Service
	mappings *countingMappings
	credsCnt *countingCreds
	events   *countingEvents
	sb       *sandbox.Sandbox
	srv      *httptest.Server // serves sb
	logs     *apptest.LogBuffer
	// caches is the group behind both the credential service and the
	// handler, as system.Build shares one (unless the env asked for the
	// handler's own).
	caches *orgcache.Group
}

type envConfig struct {
	opts     webhooks.Options
	calendar webhooks.Calendar
	noTwilio bool
	// ownCaches gives the handler a cache group apart from the credential
	// service's, so either can be emptied alone.
	ownCaches bool
	// refusals receives the refusal counts.
	refusals webhooks.RefusalStore
	// shareWith makes the new env a second instance of another's
	// deployment: the same database and provider stand-ins, its own pool,
	// caches and memory.
	shareWith *env
	// providerRefusals records the tools' refused credentials through the
	// credential service, as the server does.
	providerRefusals bool
}

var sharedKeyring = sync.OnceValue(func() *keyring.Keyring {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic(err)
	}
	kr, err := keyring.New(key)
	if err != nil {
		panic(err)
	}
	return kr
})

func newEnv(t testing.TB, opts ...func(*envConfig)) *env {
	t.Helper()
	cfg := envConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	pcfg, err := pgxpool.ParseConfig(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	qc := &queryCounter{}
	pcfg.ConnConfig.Tracer = qc
	pcfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	d := &db.DB{Pool: pool}

	sb, srv := sandbox.New(), (*httptest.Server)(nil)
	if cfg.shareWith != nil {
		sb, srv = cfg.shareWith.sb, cfg.shareWith.srv
	} else {
		srv = httptest.NewServer(sb.Handler())
		t.Cleanup(srv.Close)
	}
	logs := &apptest.LogBuffer{}
	o := cfg.opts
	g := o.Caches
	if g == nil {
		g = webhooks.NewCacheGroup(o)
		o.Caches = g
	}
	credCaches := g
	if cfg.ownCaches {
		credCaches = nil
	}
	creds := credentials.New(d, sharedKeyring(), credentials.Options{Caches: credCaches})
	e := &env{t: t, db: d, queries: qc, creds: creds, sb: sb, srv: srv, logs: logs, caches: g,
		mappings: &countingMappings{inner: d},
		credsCnt: &countingCreds{inner: creds},
		events:   &countingEvents{inner: d},
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	deps := webhooks.Deps{Mappings: e.mappings, Credentials: e.credsCnt, Events: e.events, Calendar: cfg.calendar,
		Refusals: cfg.refusals}
	if !cfg.noTwilio {
		deps.Twilio = twilio.New(sb.BaseURLs(srv.URL).Twilio, srv.Client(), 2*time.Second)
	}
	if cfg.providerRefusals {
		deps.ProviderRefusals = creds
	}
	e.h = webhooks.New(deps, o)
	return e
}

func withOptions(o webhooks.Options) func(*envConfig) { return func(c *envConfig) { c.opts = o } }

// withOwnCaches gives the handler a cache group of its own.
func withOwnCaches(c *envConfig) { c.ownCaches = true }

func sharing(other *env) func(*envConfig) { return func(c *envConfig) { c.shareWith = other } }

func withCalendar(cal webhooks.Calendar) func(*envConfig) {
	return func(c *envConfig) { c.calendar = cal }
}

func newUUID(t testing.TB) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// mapAssistant maps a new assistant id to the org as its inbound assistant.
func mapAssistant(t testing.TB, orgID string) string {
	t.Helper()
	id := newUUID(t)
	if err := dbtest.DB(t).SaveAssistantMapping(context.Background(),
		app.AssistantMapping{VapiAssistantID: id, OrgID: orgID, Role: app.Inbound, Name: "Receptionist"}); err != nil {
		t.Fatal(err)
	}
	return id
}

// setVapi stores the org's Vapi credentials with the given webhook secret
// ("" for none).
func (e *env) setVapi(orgID, webhookSecret string) {
	e.t.Helper()
	cfg := app.VapiConfig{APIKey: app.NewSecret("vapi-private-key-" + orgID[:8]), WebhookSecret: app.NewSecret(webhookSecret), Region: app.VapiUS}
	if _, err := e.creds.Save(context.Background(), app.Connection{OrgID: orgID, Config: cfg, VerifiedAt: time.Now()}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) setTwilio(orgID string, cfg app.TwilioConfig) {
	e.t.Helper()
	if _, err := e.creds.Save(context.Background(), app.Connection{OrgID: orgID, Config: cfg, VerifiedAt: time.Now()}); err != nil {
		e.t.Fatal(err)
	}
}

// org is a mapped org with its own webhook secret.
type org struct {
	id, assistant, secret string
}

func (e *env) newOrg(secret string) org {
	e.t.Helper()
	o := org{id: dbtest.SeedOrg(e.t, "webhooks test"), secret: secret}
	o.assistant = mapAssistant(e.t, o.id)
	if secret != "" {
		e.setVapi(o.id, secret)
	}
	return o
}

// msg builds a webhook body.
func msg(typ, assistantID string, fields map[string]any) []byte {
	m := map[string]any{"type": typ, "call": map[string]any{"id": "call-" + assistantID[:8], "assistantId": assistantID, "orgId": "vapi-org-1"}}
	for k, v := range fields {
		m[k] = v
	}
	b, err := json.Marshal(map[string]any{"message": m})
	if err != nil {
		panic(err)
	}
	return b
}

// header is a case-insensitive header set, as every HTTP server offers.
type header map[string]string

func (h header) canonical() http.Header {
	out := http.Header{}
	for k, v := range h {
		out.Set(k, v)
	}
	return out
}

func req(body []byte, h header, at time.Time) webhooks.Request {
	hh := h.canonical()
	return webhooks.Request{Header: hh.Get, Body: body, ReceivedAt: at}
}

// hmacHeaders signs body at ts (seconds, or whatever unit ts is in).
func hmacHeaders(secret string, ts int64, body []byte) header {
	s := strconv.FormatInt(ts, 10)
	return header{"X-Signature": apptest.VapiSignature(secret, s, body), "X-Timestamp": s}
}

// handle sends body authenticated with X-Vapi-Secret.
func (e *env) handle(secret string, body []byte) webhooks.Response {
	return e.h.Handle(context.Background(), req(body, header{"X-Vapi-Secret": secret}, time.Now()))
}

func encode(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// decode turns a response body into generic JSON for assertions.
func decode(t testing.TB, r webhooks.Response) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(encode(t, r.Body)), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func errorCode(t testing.TB, r webhooks.Response) string {
	t.Helper()
	m := decode(t, r)
	if m["success"] != false {
		t.Errorf("error body %v lacks success: false", m)
	}
	e, _ := m["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func (e *env) outcome(name string) uint64 { return e.h.Stats().Outcomes[name] }

func callEventCount(t testing.TB, orgID string) int {
	t.Helper()
	var n int
	if err := dbtest.DB(t).Pool.QueryRow(context.Background(),
		`select count(*) from call_events where org_id = $1`, orgID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
