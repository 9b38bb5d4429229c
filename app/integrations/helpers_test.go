package integrations_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/credentials"
	"byoc/app/integrations"
	"byoc/app/keyring"
	"byoc/app/providers/elevenlabs"
	"byoc/app/providers/google"
	"byoc/app/providers/resend"
	"byoc/app/providers/twilio"
	"byoc/app/providers/vapi"
	"byoc/app/sandbox"
	"byoc/db"
	"byoc/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// The real adapters satisfy the service's consumer-side interfaces.
var (
	_ integrations.Credentials      = (*credentials.Service)(nil)
	_ integrations.VapiClient       = (*vapi.Client)(nil)
	_ integrations.TwilioClient     = (*twilio.Client)(nil)
	_ integrations.ResendClient     = (*resend.Client)(nil)
	_ integrations.ElevenLabsClient = (*elevenlabs.Client)(nil)
	_ integrations.GoogleCalendar   = (*google.Service)(nil)
	_ integrations.AssistantStore   = (*db.DB)(nil)
	_ integrations.AuditStore       = (*db.DB)(nil)
	_ integrations.OrgLocker        = (*db.DB)(nil)
)

const publicURL = "https://byoc.example.com"

// env is one service wired to the real database, the real credential
// service and the real provider clients pointed at a fresh sandbox.
type env struct {
	svc   *integrations.Service
	sb    *sandbox.Sandbox
	urls  sandbox.URLs
	db    *db.DB
	creds *credentials.Service
	clock *apptest.Clock
	logs  *apptest.LogBuffer
	// google is the Google Calendar service behind svc and gsb its Google
	// stand-in; both are nil unless the env was made withGoogle.
	google *google.Service
	gsb    *sandbox.Google
}

// envConfig changes how newEnv wires the service.
type envConfig struct {
	timeout time.Duration
	// urls, when set, replaces the sandbox's base URLs.
	urls    *sandbox.URLs
	audit   integrations.AuditStore
	changed func(orgID string, provider app.Provider)
	// db, when set, replaces the shared pool (for example a smaller one).
	db *db.DB
	// google wires the real Google Calendar service, pointed at a Google
	// stand-in, into Deps.Google.
	google bool
}

func newEnv(t *testing.T, opts ...func(*envConfig)) *env {
	t.Helper()
	cfg := envConfig{timeout: 2 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	d := dbtest.DB(t)
	if cfg.db != nil {
		d = cfg.db
	}
	sb := sandbox.New()
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	urls := sb.BaseURLs(srv.URL)
	if cfg.urls != nil {
		urls = *cfg.urls
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.New(key)
	if err != nil {
		t.Fatal(err)
	}
	logs := &apptest.LogBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	creds := credentials.New(d, kr, credentials.Options{Logger: logger})
	clk := apptest.NewClock(time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC))
	var audit integrations.AuditStore = d
	if cfg.audit != nil {
		audit = cfg.audit
	}
	hc := srv.Client()
	var gsvc *google.Service
	var gsb *sandbox.Google
	var gcal integrations.GoogleCalendar // a nil *google.Service must stay a nil interface
	if cfg.google {
		gsb = sandbox.NewGoogle(sandbox.GoogleOptions{RedirectURIs: []string{googleCallbackURL}})
		gsrv := httptest.NewServer(gsb)
		t.Cleanup(gsrv.Close)
		gurls := gsb.URLs(gsrv.URL)
		id, secret := gsb.Client()
		gsvc = google.NewService(google.Deps{
			OAuth: google.NewOAuth(google.OAuthConfig{
				ClientID: id, ClientSecret: app.NewSecret(secret), RedirectURL: googleCallbackURL,
				AuthURL: gurls.Auth, TokenURL: gurls.Token, RevokeURL: gurls.Revoke, CalendarBaseURL: gurls.Calendar,
				Timeout: cfg.timeout, HTTPClient: gsrv.Client(),
			}),
			Credentials: creds, States: d, Audit: audit, Sealer: kr, Locker: d,
		}, google.Options{Logger: logger, Now: clk.Now})
		gcal = gsvc
	}
	svc := integrations.New(integrations.Deps{
		Credentials: creds,
		Vapi:        vapi.New(urls.Vapi, urls.VapiEU, hc, cfg.timeout),
		Twilio:      twilio.New(urls.Twilio, hc, cfg.timeout),
		Resend:      resend.New(urls.Resend, hc, cfg.timeout),
		ElevenLabs:  elevenlabs.New(urls.ElevenLabs, hc, cfg.timeout),
		Google:      gcal,
		Assistants:  d,
		Audit:       audit,
		Locker:      d,
	}, integrations.Options{PublicURL: publicURL + "/", Logger: logger, Now: clk.Now, DefaultPhoneRegion: "US",
		Changed: cfg.changed})
	return &env{svc: svc, sb: sb, urls: sb.BaseURLs(srv.URL), db: d, creds: creds, clock: clk, logs: logs,
		google: gsvc, gsb: gsb}
}

// googleCallbackURL is the Google callback the stand-in sends the browser
// back to.
const googleCallbackURL = "https://byoc.example.com/api/auth/google-calendar/callback"

// withGoogle wires the real Google Calendar service into the service.
func withGoogle(c *envConfig) { c.google = true }

// connectGoogle runs Google's sign-in for admin through the Google service,
// allowing access as the stand-in's default account, and returns the
// stored grant.
func (e *env) connectGoogle(t *testing.T, admin app.Principal) app.GoogleCalendarConfig {
	t.Helper()
	ctx := context.Background()
	binding := "csrf-" + apptest.RandomHex(8)
	authURL, err := e.google.ConnectURL(ctx, admin, binding)
	if err != nil {
		t.Fatal(err)
	}
	back, err := sandbox.GoogleConsent(ctx, nil, authURL, sandbox.GoogleConsentChoice{})
	if err != nil {
		t.Fatal(err)
	}
	q := back.Query()
	if _, err := e.google.Callback(ctx, admin, binding, google.CallbackQuery{
		State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error")}); err != nil {
		t.Fatal(err)
	}
	cfg, err := e.creds.GoogleCalendar(ctx, admin.OrgID)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// withPool wires the service to a pool of its own with n connections.
func withPool(t *testing.T, n int32) func(*envConfig) {
	d, err := db.Open(context.Background(), dbtest.URL(t), db.Options{MaxConns: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return func(c *envConfig) { c.db = d }
}

func withTimeout(d time.Duration) func(*envConfig) { return func(c *envConfig) { c.timeout = d } }

func withChanged(f func(orgID string, provider app.Provider)) func(*envConfig) {
	return func(c *envConfig) { c.changed = f }
}

func withAllURLs(u string) func(*envConfig) {
	return func(c *envConfig) {
		c.urls = &sandbox.URLs{Vapi: u, VapiEU: u, Twilio: u, Resend: u, ElevenLabs: u}
	}
}

// closedURL is the URL of a port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
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
	ctx := context.Background()
	pool := dbtest.DB(t).Pool
	orgID := dbtest.SeedOrg(t, name)
	user := func(role app.Role) app.Principal {
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
		return app.Principal{UserID: id, OrgID: orgID, OrgName: name, Email: email, Role: role}
	}
	return user(app.RoleAdmin), user(app.RoleMember)
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
