package integrations_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/config"
	"byoc/app/credentials"
	"byoc/app/integrations"
	"byoc/app/keyring"
	"byoc/app/providers/google"
	"byoc/app/providers/vapi"
	"byoc/app/sandbox"
	"byoc/app/system"
	"byoc/app/system/systemtest"
	"byoc/db"
	"byoc/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// The real adapters satisfy the service's consumer-side interfaces.
var (
	_ integrations.Credentials    = (*credentials.Service)(nil)
	_ integrations.VapiAssistants = (*vapi.Client)(nil)
	_ integrations.MappingStore   = (*db.DB)(nil)
	_ integrations.AuditStore     = (*db.DB)(nil)
	_ integrations.OrgLocker      = (*db.DB)(nil)
	_ integrations.GoogleOAuth    = (*google.OAuth)(nil)
	_ integrations.StateStore     = (*db.DB)(nil)
	_ integrations.Sealer         = (*keyring.Keyring)(nil)
)

const publicURL = systemtest.PublicURL

// env is the graph system.Build wires, on the real database, with every
// provider pointed at a fresh sandbox.
type env struct {
	svc   *integrations.Service
	sys   *system.System
	cfg   *config.Config
	opts  system.Options
	sb    *sandbox.Sandbox
	urls  sandbox.URLs
	db    *db.DB
	creds *credentials.Service
	clock *apptest.Clock
	logs  *apptest.LogBuffer
	// gsb is the Google stand-in behind svc and tap the recorder of every
	// secret that crossed it; both are nil unless the env was made
	// withGoogle.
	gsb *sandbox.Google
	tap *secretTap
}

// envConfig changes how newEnv builds the graph.
type envConfig struct {
	timeout time.Duration
	// urls, when set, replaces the sandbox's base URLs.
	urls  *sandbox.URLs
	audit integrations.AuditStore
	// db, when set, replaces the shared pool (for example a smaller one).
	db *db.DB
	// google configures the server's Google client, pointed at a Google
	// stand-in.
	google bool
	// tokenAnswer, when set, rewrites the Google stand-in's token answers.
	tokenAnswer func(grantType string, body map[string]any)
}

func newEnv(t *testing.T, opts ...func(*envConfig)) *env {
	t.Helper()
	ec := envConfig{timeout: 2 * time.Second}
	for _, o := range opts {
		o(&ec)
	}
	d := dbtest.DB(t)
	if ec.db != nil {
		d = ec.db
	}
	sb := sandbox.New()
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	urls := sb.BaseURLs(srv.URL)
	if ec.urls != nil {
		urls = *ec.urls
	}
	cfg := systemtest.Config(t, urls)
	cfg.ProviderTimeout = ec.timeout
	e := &env{sb: sb, urls: sb.BaseURLs(srv.URL), db: d, cfg: cfg, logs: &apptest.LogBuffer{},
		clock: apptest.NewClock(time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC))}
	if ec.google {
		e.gsb = sandbox.NewGoogle(sandbox.GoogleOptions{RedirectURIs: []string{systemtest.GoogleCallbackURL}})
		e.tap = &secretTap{secrets: map[string]bool{}, answer: ec.tokenAnswer}
		gsrv := httptest.NewServer(e.tap.wrap(e.gsb))
		t.Cleanup(gsrv.Close)
		systemtest.WithGoogle(cfg, e.gsb, gsrv.URL)
		e.tap.add(cfg.Google.ClientSecret.Reveal())
	}
	e.opts = system.Options{
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    e.clock.Now,
		Audit:  ec.audit,
	}
	e.sys = e.build(t, nil)
	e.svc, e.creds = e.sys.Integrations, e.sys.Credentials
	return e
}

// build builds another graph on the env's database, logs, clock and keys,
// from the env's configuration as change leaves it.
func (e *env) build(t *testing.T, change func(*config.Config)) *system.System {
	t.Helper()
	cfg := *e.cfg
	if change != nil {
		change(&cfg)
	}
	sys, err := system.Build(&cfg, e.db, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	return sys
}

// withGoogle configures the server's Google client.
func withGoogle(c *envConfig) { c.google = true }

// withPool builds the graph on a pool of its own with n connections.
func withPool(t *testing.T, n int32) func(*envConfig) {
	d, err := db.Open(context.Background(), dbtest.URL(t), db.Options{MaxConns: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return func(c *envConfig) { c.db = d }
}

func withTimeout(d time.Duration) func(*envConfig) { return func(c *envConfig) { c.timeout = d } }

func withAllURLs(u string) func(*envConfig) {
	return func(c *envConfig) {
		c.urls = &sandbox.URLs{Vapi: u, VapiEU: u, Twilio: u, Resend: u, ElevenLabs: u}
	}
}

// Credential values for the sandbox. A word in a key picks the stand-in's
// behaviour (see package sandbox).
func vapiKey(words ...string) string {
	return "vapi-" + strings.Join(append(words, "key"), "-") + "-" + apptest.RandomHex(8)
}
func twilioSID() string { return "AC" + apptest.RandomHex(16) }
func twilioToken(words ...string) string {
	return strings.Join(append(words, apptest.RandomHex(16)), "-")
}
func resendKey(words ...string) string {
	return "re_" + strings.Join(append(words, apptest.RandomHex(12)), "_")
}
func elevenLabsKey(words ...string) string {
	return "sk_" + strings.Join(append(words, apptest.RandomHex(16)), "_")
}
func webhookSecret() string { return "whsec-" + apptest.RandomHex(12) }

// seedOrg inserts an org with an admin and a member and returns both.
func seedOrg(t *testing.T, name string) (admin, member app.Principal) {
	t.Helper()
	orgID := dbtest.SeedOrg(t, name)
	return addUser(t, orgID, name, app.RoleAdmin), addUser(t, orgID, name, app.RoleMember)
}

// addUser adds a user with role to the org.
func addUser(t *testing.T, orgID, orgName string, role app.Role) app.Principal {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.DB(t).Pool
	email := fmt.Sprintf("%s-%s@example.com", role, apptest.RandomHex(6))
	var id string
	if err := pool.QueryRow(ctx, `insert into users (email, password_hash) values ($1, 'x') returning id::text`,
		email).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `insert into org_members (org_id, user_id, role) values ($1, $2, $3)`,
		orgID, id, string(role)); err != nil {
		t.Fatal(err)
	}
	return app.Principal{UserID: id, OrgID: orgID, OrgName: orgName, Email: email, Role: role}
}

func (e *env) statusOf(t *testing.T, p app.Principal, provider app.Provider) app.Status {
	t.Helper()
	st, err := e.svc.Status(context.Background(), p, provider)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (e *env) audit(t *testing.T, orgID string) []app.AuditEntry {
	t.Helper()
	log, err := e.db.AuditLog(context.Background(), orgID, 100)
	if err != nil {
		t.Fatal(err)
	}
	return log
}

// lastAudit returns the newest audit entry of the org and fails when there
// is none.
func (e *env) lastAudit(t *testing.T, orgID string) app.AuditEntry {
	t.Helper()
	log := e.audit(t, orgID)
	if len(log) == 0 {
		t.Fatal("the audit log is empty")
	}
	return log[0]
}

func (e *env) mappings(t *testing.T, orgID string) []app.AssistantMapping {
	t.Helper()
	m, err := e.db.AssistantMappings(context.Background(), orgID)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// mappingCount counts the org's mappings through the raw pool, past the
// service's view.
func (e *env) mappingCount(t *testing.T, orgID string) int {
	t.Helper()
	var n int
	if err := e.db.Pool.QueryRow(context.Background(),
		`select count(*) from assistant_org_mapping where org_id = $1`, orgID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) credentialRows(t *testing.T, orgID string) int {
	t.Helper()
	var n int
	if err := e.db.Pool.QueryRow(context.Background(),
		`select count(*) from org_credentials where org_id = $1`, orgID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// deleteVapiAssistant deletes an assistant in the stand-in, as the org could
// in Vapi's dashboard.
func (e *env) deleteVapiAssistant(t *testing.T, key, id string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, e.urls.Vapi+"/assistant/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("delete assistant: %s", res.Status)
	}
}

// assertNoLeak fails when a secret (of at least 8 characters: shorter test
// values match too much by chance) appears in the logs, the org's audit log
// or any of the given values (printed with %+v and %#v).
func (e *env) assertNoLeak(t *testing.T, orgID string, secrets []string, values ...any) {
	t.Helper()
	var texts []string
	texts = append(texts, e.logs.String())
	for _, a := range e.audit(t, orgID) {
		texts = append(texts, fmt.Sprintf("%+v", a))
	}
	for _, v := range values {
		texts = append(texts, fmt.Sprintf("%+v %#v", v, v))
	}
	for _, s := range secrets {
		if len(s) < 8 {
			continue
		}
		for _, text := range texts {
			if strings.Contains(text, s) {
				t.Errorf("a secret leaked: %q appears in\n%s", s, text)
			}
		}
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := app.ErrorCode(err); got != code {
		t.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// secretTap sits in front of the Google stand-in and remembers every secret
// that crosses it: the client secret, authorization codes, PKCE verifiers,
// access, refresh and id tokens. With answer set it rewrites the token
// endpoint's successful answers, as a Google that leaves something out.
type secretTap struct {
	mu      sync.Mutex
	secrets map[string]bool
	answer  func(grantType string, body map[string]any)
	// last is the latest token answer as Google gave it.
	last map[string]any
}

// lastToken returns a field of the latest token answer as Google gave it.
func (s *secretTap) lastToken(field string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, _ := s.last[field].(string)
	return v
}

func (s *secretTap) add(vs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range vs {
		if len(v) >= 8 {
			s.secrets[v] = true
		}
	}
}

func (s *secretTap) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for v := range s.secrets {
		out = append(out, v)
	}
	return out
}

// recorder keeps an answer so the tap can read (and rewrite) it.
type recorder struct {
	header http.Header
	status int
	buf    bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(status int)      { r.status = status }
func (r *recorder) Write(p []byte) (int, error) { return r.buf.Write(p) }

func (s *secretTap) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var form url.Values
		if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			form, _ = url.ParseQuery(string(body))
			s.add(form.Get("code"), form.Get("code_verifier"), form.Get("refresh_token"), form.Get("token"), form.Get("client_secret"))
		}
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			s.add(tok)
		}
		rec := &recorder{header: w.Header(), status: http.StatusOK}
		h.ServeHTTP(rec, r)
		out := rec.buf.Bytes()
		var body map[string]any
		if json.Unmarshal(out, &body) == nil {
			for _, k := range []string{"access_token", "refresh_token", "id_token"} {
				if v, ok := body[k].(string); ok {
					s.add(v)
				}
			}
			if strings.HasSuffix(r.URL.Path, sandbox.GoogleTokenPath) && rec.status == http.StatusOK {
				s.mu.Lock()
				s.last = maps.Clone(body)
				s.mu.Unlock()
			}
			if s.answer != nil && strings.HasSuffix(r.URL.Path, sandbox.GoogleTokenPath) && rec.status == http.StatusOK {
				s.answer(form.Get("grant_type"), body)
				out, _ = json.Marshal(body)
				w.Header().Del("Content-Length")
			}
		}
		if loc, err := url.Parse(w.Header().Get("Location")); err == nil {
			s.add(loc.Query().Get("code"))
		}
		w.WriteHeader(rec.status)
		_, _ = w.Write(out)
	})
}
