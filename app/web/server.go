// Package web is BYOC's HTTP front door: the Fiber server, its middleware,
// the handlers and the response helpers. It is the only package that knows
// Fiber; services are reached through the small interfaces declared here and
// see only context.Context and domain types.
//
// Every handler answers in the format the request asks for through one
// helper, reply (respond.go): JSON in the {"success", "data" | "error"}
// envelope for API clients, an HTML fragment for HTMX requests (htmx.go
// reads and writes the htmx headers), a full page or a redirect otherwise.
// Handlers return errors; one error handler (errors.go) gives each code of
// the catalogue in package app its one status and answers in the same
// format. Route paths come from package paths (routes.go declares them all).
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"byoc/app"
	"byoc/app/activity"
	"byoc/app/attempts"
	"byoc/app/auth"
	"byoc/app/integrations"
	"byoc/app/mail"
	"byoc/app/metrics"
	"byoc/app/openapi"
	"byoc/app/team"
	"byoc/static"
)

// readBufferSize caps a request's line and headers: larger ones are
// answered 413 payload_too_large.
const readBufferSize = 16 << 10

// Defaults for Options.
const (
	DefaultRequestTimeout = 30 * time.Second
	DefaultBodyLimit      = 1 << 20
	DefaultSessionTTL     = 12 * time.Hour
)

// Options configures the server. SessionSecret is required; the rest have
// defaults.
type Options struct {
	// Production turns on Secure cookies with the __Host- prefix and HSTS.
	Production bool
	// TrustedProxies are the addresses or CIDR ranges of the reverse
	// proxies in front of the server. Only requests from them may name the
	// client's IP in X-Forwarded-For (used by the access log and the
	// attempt limits). Empty: the peer address is the client.
	TrustedProxies []string
	// SessionSecret (at least 32 bytes) keys the session cookie: the HMAC
	// and AES keys are derived from it with HKDF-SHA256.
	SessionSecret []byte
	// Logger receives the access log and the errors (nil: slog.Default()).
	Logger *slog.Logger
	// RequestTimeout bounds each request's context (0: DefaultRequestTimeout).
	RequestTimeout time.Duration
	// BodyLimit caps request bodies in bytes (0: DefaultBodyLimit).
	BodyLimit int
	// SessionTTL is the absolute lifetime of a sign-in (0: DefaultSessionTTL).
	SessionTTL time.Duration
	// Registry receives the HTTP metrics and is served at /metrics (the
	// composition root registers the services' metrics in it too). Nil: a
	// private registry with the Go and process collectors.
	Registry *prometheus.Registry
	// Sandbox says the providers are local stand-ins (demo mode): the
	// dashboard header then shows a "Sandbox" badge.
	Sandbox bool
	// AttemptsPerIP caps the failed sign-ins (POST /login and
	// /api/auth/token together) per client address within AttemptWindow,
	// and apart from them the signups (POST /signup and /api/auth/signup)
	// per client address (0: DefaultAttemptsPerIP). See ratelimit.go.
	AttemptsPerIP int
	// AttemptsPerEmail caps the failed sign-ins per e-mail from one client
	// address within AttemptWindow; from all addresses together, three times
	// as many make every further sign-in to the e-mail wait AttemptDelay
	// (0: DefaultAttemptsPerEmail).
	AttemptsPerEmail int
	// AttemptWindow is the sliding window of the sign-in and signup limits
	// (0: DefaultAttemptWindow).
	AttemptWindow time.Duration
	// AttemptDelay is how long a sign-in to an e-mail over its ceiling
	// waits before its password is checked (0: DefaultAttemptDelay).
	AttemptDelay time.Duration
	// ProviderCallsPerOrg and ProviderCallsPerIP cap the provider-calling
	// requests (saving credentials, the connection test, the start of
	// Google's sign-in) per org and per client address within a minute
	// (0: DefaultProviderCallsPerOrg, DefaultProviderCallsPerIP).
	ProviderCallsPerOrg int
	ProviderCallsPerIP  int
	// ReverifyInterval is how often stored connections are re-checked in
	// the background (0: never); a connection whose last passed check is
	// older than twice it shows "Not checked recently".
	ReverifyInterval time.Duration
	// OpsToken is the bearer token of the operator routes (/api/debug/*).
	// Empty: those routes do not exist.
	OpsToken string
}

// Accounts is what the web layer needs from the accounts service
// (*auth.Service implements it).
type Accounts interface {
	Signup(ctx context.Context, in auth.SignupInput) (auth.Account, error)
	Login(ctx context.Context, email, password string) (auth.Account, error)
	Logout(ctx context.Context, userID string) error
	ResolveSession(ctx context.Context, userID, orgID string, version int) (auth.Account, error)
	ResolveToken(ctx context.Context, token string) (auth.Account, error)
	IssueToken(a auth.Account) (auth.Token, error)

	// Invitations, password reset and change (see package auth).
	Invitation(ctx context.Context, token string) (auth.Invitation, error)
	AcceptInvite(ctx context.Context, token, password string) (auth.Account, error)
	RequestPasswordReset(ctx context.Context, email string) error
	PasswordResetEmail(ctx context.Context, token string) (string, error)
	ResetPassword(ctx context.Context, token, password string) (auth.Account, error)
	ChangePassword(ctx context.Context, a auth.Account, current, next string) (auth.Account, error)
}

// Team is what the web layer needs from the team service (*team.Service
// implements it).
type Team interface {
	Team(ctx context.Context, p app.Principal) (team.Team, error)
	Invite(ctx context.Context, p app.Principal, email, role string) (team.Invited, error)
	RevokeInvite(ctx context.Context, p app.Principal, inviteID string) error
	SetRole(ctx context.Context, p app.Principal, userID, role string) (app.Member, error)
	Remove(ctx context.Context, p app.Principal, userID string) (app.Member, error)
}

// Outbox is the development outbox the page /dev/outbox shows
// (*mail.Outbox implements it).
type Outbox interface {
	Messages() []mail.Message
}

// Pinger reports whether the database answers (*db.DB implements it).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Integrations is what the web layer needs from the integrations service
// (*integrations.Service implements it). Every method takes the request's
// principal and returns *app.Error values.
type Integrations interface {
	Statuses(ctx context.Context, p app.Principal) ([]app.Status, error)
	Status(ctx context.Context, p app.Principal, provider app.Provider) (app.Status, error)
	Save(ctx context.Context, p app.Principal, provider app.Provider, in app.Values) (integrations.SaveResult, error)
	Update(ctx context.Context, p app.Principal, provider app.Provider, in app.Values) (integrations.SaveResult, error)
	Editable(ctx context.Context, p app.Principal, provider app.Provider) (integrations.Editable, error)
	Assistants(ctx context.Context, p app.Principal) ([]app.AssistantMapping, error)
	WebhookURL() string
	Verify(ctx context.Context, p app.Principal, provider app.Provider) (integrations.VerifyResult, error)
	Disconnect(ctx context.Context, p app.Principal, provider app.Provider) (app.Status, error)
	SetWebhookHMACOnly(ctx context.Context, p app.Principal, hmacOnly *bool) (app.Status, error)
	RotateWebhookSecret(ctx context.Context, p app.Principal) (integrations.RotationResult, error)
	RevealWebhookSecret(ctx context.Context, p app.Principal) (app.Secret, app.Status, error)
	// Google Calendar's sign-in.
	GoogleReady() bool
	ConnectURL(ctx context.Context, p app.Principal, sessionBinding string) (string, error)
	APIConnectURL(ctx context.Context, p app.Principal) (string, error)
	Callback(ctx context.Context, p app.Principal, sessionBinding string, q integrations.CallbackQuery) (string, error)
}

// Deps are the services the handlers call. Every field is required.
type Deps struct {
	Accounts     Accounts
	DB           Pinger
	Integrations Integrations
	// Webhooks serves POST /api/webhooks/vapi and the webhook statistics.
	Webhooks Webhooks
	// Credentials is the credential cache the operator routes report on.
	Credentials CredentialCache
	// Limiter keeps the attempt limits' counts, shared by every instance.
	Limiter Limiter
	// Team manages the org's members and invitations.
	Team Team
	// Outbox, when set (development without a mail key), is served at
	// /dev/outbox; production never serves it.
	Outbox Outbox
	// SignIns is the sign-in cache the operator routes report on; nil
	// leaves it out.
	SignIns SignInCache
	// Activity reads the audit log and the webhook deliveries; nil leaves
	// the activity routes out.
	Activity Activity
	// Cancels, when set, passes a cancel that finds no running request on
	// this instance on to every instance (*db.DB implements it; each
	// instance's listener hands it to CancelForwarded, and the answer back
	// to CancelAcknowledged). Without it such a cancel answers 404.
	Cancels CancelRequester
}

// CancelRequester asks every instance to stop a user's running request,
// and tells every instance that it stopped one.
type CancelRequester interface {
	RequestCancel(ctx context.Context, userID, attemptID string) error
	AckCancel(ctx context.Context, userID, attemptID string) error
}

// Activity is what the web layer needs from the activity service
// (*activity.Service implements it).
type Activity interface {
	Audit(ctx context.Context, p app.Principal, in activity.AuditInput) (activity.AuditPage, error)
	Deliveries(ctx context.Context, p app.Principal, cursor, limit string) (activity.DeliveriesPage, error)
	LastDelivery(ctx context.Context, p app.Principal) (time.Time, bool, error)
}

// SignInCache is the accounts' sign-in cache as operators see it;
// *auth.SessionCache implements it.
type SignInCache interface {
	Stats() auth.CacheStats
}

// Limiter counts attempts for the limits (*attempts.Limiter implements
// it). Count returns a verdict per key, in order; both return EUnavailable
// when the counts cannot be written.
type Limiter interface {
	Count(ctx context.Context, keys ...attempts.Key) ([]attempts.Verdict, error)
	Settle(ctx context.Context, undo, clear []attempts.Key) error
}

// Server is the HTTP server. Create it with New.
type Server struct {
	app      *fiber.App
	opts     Options
	log      *slog.Logger
	deps     Deps
	sessions *sessionStore
	assets   *assets
	metrics  *httpMetrics
	registry *prometheus.Registry
	proxies  []netip.Prefix
	limits   limitRules
	// draining is set by Drain: /readyz answers 503 and every answer
	// closes its connection.
	draining atomic.Bool
	// started is set by Started: until then /readyz answers 503.
	started atomic.Bool
	// ready coalesces /readyz's database pings and remembers the last
	// answer (handlers_ops.go).
	ready readiness
	// openAPI is the JSON API's OpenAPI description, served as it is.
	openAPI []byte
	// stopping is the parent of every request's context; halt cancels it
	// (with errRestarting) shortly before Shutdown's deadline.
	stopping context.Context
	halt     context.CancelCauseFunc
	// attempts are the requests their users may cancel (inflight.go).
	attempts inflight
}

// New builds the server with every route (see routes.go). It fails when the
// options are unusable (a short session secret) or a dependency is missing.
func New(opts Options, deps Deps) (*Server, error) {
	if deps.Accounts == nil || deps.DB == nil || deps.Integrations == nil || deps.Webhooks == nil || deps.Credentials == nil ||
		deps.Limiter == nil || deps.Team == nil {
		return nil, errors.New("web: Deps.Accounts, DB, Integrations, Webhooks, Credentials, Limiter and Team are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.BodyLimit <= 0 {
		opts.BodyLimit = DefaultBodyLimit
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.AttemptsPerIP <= 0 {
		opts.AttemptsPerIP = DefaultAttemptsPerIP
	}
	if opts.AttemptsPerEmail <= 0 {
		opts.AttemptsPerEmail = DefaultAttemptsPerEmail
	}
	if opts.AttemptWindow <= 0 {
		opts.AttemptWindow = DefaultAttemptWindow
	}
	if opts.AttemptDelay <= 0 {
		opts.AttemptDelay = DefaultAttemptDelay
	}
	if opts.ProviderCallsPerOrg <= 0 {
		opts.ProviderCallsPerOrg = DefaultProviderCallsPerOrg
	}
	if opts.ProviderCallsPerIP <= 0 {
		opts.ProviderCallsPerIP = DefaultProviderCallsPerIP
	}
	proxies, err := parseProxies(opts.TrustedProxies)
	if err != nil {
		return nil, err
	}
	sessions, err := newSessionStore(opts.SessionSecret, opts.Production, opts.SessionTTL)
	if err != nil {
		return nil, err
	}
	reg := opts.Registry
	if reg == nil {
		reg = metrics.NewRegistry()
	}
	metrics, err := newHTTPMetrics(reg)
	if err != nil {
		return nil, err
	}
	if err := reg.Register(newStatsCollector(deps.Credentials, deps.Webhooks)); err != nil {
		return nil, err
	}
	assets, err := loadAssets(static.FS)
	if err != nil {
		return nil, fmt.Errorf("web: load static files: %w", err)
	}
	openAPI, err := openapi.JSON()
	if err != nil {
		return nil, fmt.Errorf("web: the OpenAPI document: %w", err)
	}
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		deps:     deps,
		sessions: sessions,
		assets:   assets,
		metrics:  metrics,
		registry: reg,
		proxies:  proxies,
		limits:   newLimitRules(opts),
		openAPI:  openAPI,
		attempts: inflight{m: map[attemptKey]context.CancelCauseFunc{}, waiting: map[attemptKey]chan struct{}{},
			perUser: map[string]int{}},
	}
	s.stopping, s.halt = context.WithCancelCause(context.Background())
	for _, name := range []string{cssFile, htmxFile} {
		if !assets.has(name) {
			s.log.Warn("static file missing: build it before `go build` (make css)", "file", "static/"+name)
		}
	}
	cfg := fiber.Config{
		AppName:               "byoc",
		DisableStartupMessage: true,
		BodyLimit:             opts.BodyLimit,
		// Request line plus headers. fasthttp's default of 4 KiB refuses a
		// browser that carries a few other cookies for the domain besides
		// ours; 16 KiB leaves room for them.
		ReadBufferSize: readBufferSize,
		// Multipart bodies are parsed when a handler asks for the form, not
		// for every request on every route while it is read; a broken one
		// is then a validation error of that handler.
		DisablePreParseMultipartForm: true,
		ReadTimeout:                  opts.RequestTimeout + 5*time.Second,
		WriteTimeout:                 opts.RequestTimeout + 5*time.Second,
		IdleTimeout:                  2 * time.Minute,
		ErrorHandler:                 s.handleError,
	}
	if len(opts.TrustedProxies) > 0 {
		cfg.EnableTrustedProxyCheck = true
		cfg.TrustedProxies = opts.TrustedProxies
		cfg.ProxyHeader = fiber.HeaderXForwardedFor
	}
	s.app = fiber.New(cfg)
	s.keepPathOfUnreadRequests()
	s.routes()
	routes := make([]string, 0, 64)
	for _, r := range s.app.GetRoutes() {
		routes = append(routes, r.Path)
	}
	s.metrics.byRoute(routes)
	return s, nil
}

// keepPathOfUnreadRequests makes a request whose headers fasthttp could not
// read (over readBufferSize) keep its path for the error handler, so that it
// is answered in the format of its path (JSON under /api/) like any other.
// fasthttp clears such a request before Fiber's handler sees it; only the
// start of what it read, quoted in its error, still holds the request line.
//
// A connection on which no byte of a request arrived before the read
// timeout is closed without an answer: fasthttp would otherwise write an
// error page nobody asked for, which a client or proxy that opened the
// connection ahead of time would read as the answer to the request it
// sends next.
func (s *Server) keepPathOfUnreadRequests() {
	srv := s.app.Server()
	answer := srv.ErrorHandler
	srv.ErrorHandler = func(fctx *fasthttp.RequestCtx, err error) {
		if nothingRead(err) {
			_ = fctx.Conn().Close()
			return
		}
		if path, ok := unreadRequestPath(err); ok {
			fctx.Request.SetRequestURI(path)
		}
		answer(fctx, err)
	}
}

// Listen serves HTTP on addr until Shutdown.
func (s *Server) Listen(addr string) error { return s.app.Listen(addr) }

// Serve serves HTTP on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.app.Listener(ln) }

// Shutdown stops accepting connections and waits for running requests to
// finish, or for ctx to end. When ctx has a deadline, the requests still
// running shortly before it are stopped (shutdownMargin): each then answers
// 503 unavailable saying the server is restarting, rather than being cut
// off or blaming a provider for our own stop.
func (s *Server) Shutdown(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok {
		t := time.AfterFunc(time.Until(d)-shutdownMargin, func() { s.halt(errRestarting) })
		defer t.Stop()
	}
	return s.app.ShutdownWithContext(ctx)
}

// Drain prepares a Shutdown behind a load balancer: from now on /readyz
// answers 503 (so health checks take the instance out of rotation) and
// every answer closes its connection (so no idle connection to this
// instance stays pooled), while requests are still served as usual.
func (s *Server) Drain() { s.draining.Store(true) }

// Started tells the server that its instance has finished starting: the
// invalidation listener receives every instance's changes, so what the
// caches hold from now on is kept current. Until then /readyz answers 503
// (starting), so a load balancer sends the instance no traffic. Calling it
// again changes nothing.
func (s *Server) Started() { s.started.Store(true) }

// account returns the signed-in account of the request, if any.
func account(c *fiber.Ctx) (auth.Account, bool) {
	a, ok := c.Locals(localAccount).(auth.Account)
	return a, ok
}

// principal returns the principal of the request, if signed in.
func principal(c *fiber.Ctx) (app.Principal, bool) {
	return app.PrincipalFrom(c.UserContext())
}

// Keys of c.Locals.
const (
	localRequestID = "byoc.requestID"
	localAccount   = "byoc.account"
	localAuthKind  = "byoc.authKind"
	localSession   = "byoc.session"
	// localErrorLanding is where the error handler sends a browser whose
	// request failed (see landOnErrorAt).
	localErrorLanding = "byoc.errorLanding"
)
