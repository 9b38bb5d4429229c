// Package system is the composition root: Build turns a configuration into
// the whole graph of services (the credential service, the provider
// clients, the integrations service, the webhook handler, the accounts and
// the web server) on one database. The server's main and every test
// environment build the graph here, so it is wired in one place only.
package system

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"byoc/app"
	"byoc/app/activity"
	"byoc/app/alerts"
	"byoc/app/attempts"
	"byoc/app/auth"
	"byoc/app/config"
	"byoc/app/credentials"
	"byoc/app/integrations"
	"byoc/app/keyring"
	"byoc/app/mail"
	"byoc/app/metrics"
	"byoc/app/orgcache"
	"byoc/app/providers/elevenlabs"
	"byoc/app/providers/google"
	"byoc/app/providers/resend"
	"byoc/app/providers/twilio"
	"byoc/app/providers/vapi"
	"byoc/app/reverify"
	"byoc/app/team"
	"byoc/app/web"
	"byoc/app/webhooks"
	"byoc/db"
)

// Options are what a caller supplies besides the configuration. The zero
// value is what the server uses.
type Options struct {
	// Logger receives every component's log (nil: slog.Default()).
	Logger *slog.Logger
	// Now is the clock of every service (nil: time.Now).
	Now func() time.Time
	// HTTPClient sends every provider call (nil: a plain client bounded by
	// the configured provider timeout).
	HTTPClient *http.Client
	// GoogleHTTPClient sends the calls to Google (nil: HTTPClient).
	GoogleHTTPClient *http.Client
	// Audit replaces the database as the integrations' audit log of the
	// attempts that store nothing (tests use it to make those writes
	// fail); a change's entry is stored with the change.
	Audit integrations.AuditStore
	// Sandbox marks a server whose providers are local stand-ins.
	Sandbox bool
	// Accounts tunes the accounts service (tests lower the bcrypt cost).
	Accounts auth.Options
	// Mailer replaces the mailer the configuration calls for (nil: the
	// configured one).
	Mailer mail.Mailer
	// Web tunes the web server beyond what the configuration says (body
	// size, timeouts, the sign-in delay, the metrics registry); its
	// Production, SessionSecret, Logger, Sandbox, OpsToken, TrustedProxies
	// and attempt limits come from the configuration.
	Web web.Options
}

// System is the wired graph.
type System struct {
	DB           *db.DB
	Keyring      *keyring.Keyring
	Credentials  *credentials.Service
	Integrations *integrations.Service
	Webhooks     *webhooks.Handler
	Accounts     *auth.Service
	Tokens       *auth.Tokens
	Server       *web.Server
	GoogleOAuth  *google.OAuth
	Calendar     *google.Calendar
	// Limiter keeps the attempt limits' counts in the database, shared by
	// every instance built with the same SESSION_SECRET.
	Limiter *attempts.Limiter
	// Caches is the cache group the credential service and the webhook
	// routing share; the credential service's Invalidate and Flush reach it.
	Caches *orgcache.Group
	// Verifiers ask each provider whether it accepts a config (the checks
	// a save makes); Google Calendar's checks the org's stored grant.
	Verifiers map[app.Provider]integrations.Verifier
	// Team manages the orgs' members and invitations.
	Team *team.Service
	// Mailer sends the platform's own e-mail; Outbox is it when mail is
	// kept for the development outbox page (nil otherwise).
	Mailer mail.Mailer
	Outbox *mail.Outbox
	// Sessions caches the sign-ins of the accounts service; it serves them
	// only while ListenInvalidations receives the database's changes.
	Sessions *auth.SessionCache
	// Activity reads the audit log and the webhook deliveries.
	Activity *activity.Service
	// Rechecks re-verifies every stored connection once per
	// REVERIFY_INTERVAL, sharing the work with every instance on the
	// database (see RecheckConnections).
	Rechecks *reverify.Scheduler
	// Notices delivers the queued break notices, sharing the work with
	// every instance on the database (see SendQueuedMail).
	Notices *alerts.Sender
}

// Build wires every service on database from cfg. It fails when a key or
// secret of cfg is unusable.
func Build(cfg *config.Config, database *db.DB, opts Options) (*System, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	kr, err := keyring.Parse(cfg.EncryptionKey.Reveal(), cfg.EncryptionKeysPrevious.Reveal())
	if err != nil {
		return nil, fmt.Errorf("ENCRYPTION_KEY / ENCRYPTION_KEYS_PREVIOUS: %w", err)
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: cfg.ProviderTimeout}
	}
	ghc := opts.GoogleHTTPClient
	if ghc == nil {
		ghc = hc
	}
	oauth := google.NewOAuth(google.OAuthConfig{
		ClientID:        cfg.Google.ClientID,
		ClientSecret:    cfg.Google.ClientSecret,
		RedirectURL:     cfg.Google.CallbackURL,
		AuthURL:         cfg.URLs.GoogleAuth,
		TokenURL:        cfg.URLs.GoogleToken,
		RevokeURL:       cfg.URLs.GoogleRevoke,
		CalendarBaseURL: cfg.URLs.GoogleCalendar,
		Timeout:         cfg.ProviderTimeout,
		HTTPClient:      ghc,
	})
	// The services record into one set of metrics, in the registry the
	// web server serves at /metrics.
	reg := opts.Web.Registry
	if reg == nil {
		reg = metrics.NewRegistry()
	}
	m, err := metrics.New(reg)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if err := metrics.RegisterDatabase(reg, func() (uint64, uint64) {
		e := database.Errors()
		return e.Statement, e.Connect
	}); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	// The platform's own mail: Resend with the platform's key, else the
	// development outbox, else none (production says so where it matters).
	mailer := opts.Mailer
	if mailer == nil {
		mailer = mail.New(mail.Options{APIKey: cfg.Mail.ResendAPIKey, From: cfg.Mail.From,
			Client: resend.New(cfg.URLs.Resend, hc, cfg.ProviderTimeout), Outbox: !cfg.Production(), Logger: log, Now: opts.Now})
	}
	// One cache group behind the credential service and the webhook
	// routing: a credential change, made here or announced by another
	// instance, reaches every cache through the credential service.
	caches := webhooks.NewCacheGroup(webhooks.Options{})
	// Break notices are queued in the database with the break; the
	// sender delivers them (see SendQueuedMail).
	notices := alerts.New(database, mailer, alerts.Options{PublicURL: cfg.PublicURL, Logger: log, Now: opts.Now, Metrics: m})
	creds := credentials.New(database, kr, credentials.Options{
		Logger: log, Now: opts.Now, Google: oauth, Locker: database, Caches: caches, Metrics: m,
		Breaks: notices,
	})
	calendar := google.NewCalendar(oauth, creds, log)
	twilioClient := twilio.New(cfg.URLs.Twilio, hc, cfg.ProviderTimeout)
	vapiClient := vapi.New(cfg.URLs.Vapi, cfg.URLs.VapiEU, hc, cfg.ProviderTimeout)

	hooks := webhooks.New(webhooks.Deps{
		Mappings:         database,
		Credentials:      creds,
		Events:           database,
		Twilio:           twilioClient,
		Calendar:         calendar,
		Refusals:         database,
		ProviderRefusals: creds,
	}, webhooks.Options{DefaultSecret: cfg.VapiWebhookSecret, Debug: cfg.WebhookDebug, Logger: log, Now: opts.Now,
		Caches: caches, Metrics: m})

	var audit integrations.AuditStore = database
	if opts.Audit != nil {
		audit = opts.Audit
	}
	verifiers := map[app.Provider]integrations.Verifier{
		app.Vapi:           integrations.VerifyWith(vapiClient.Verify),
		app.Twilio:         integrations.VerifyWith(twilioClient.Verify),
		app.Resend:         integrations.VerifyWith(resend.New(cfg.URLs.Resend, hc, cfg.ProviderTimeout).Verify),
		app.ElevenLabs:     integrations.VerifyWith(elevenlabs.New(cfg.URLs.ElevenLabs, hc, cfg.ProviderTimeout).Verify),
		app.GoogleCalendar: calendar,
	}
	integ := integrations.New(integrations.Deps{
		Credentials: creds,
		Verifiers:   verifiers,
		Assistants:  vapiClient,
		Mappings:    database,
		Audit:       audit,
		Locker:      database,
		Google:      oauth,
		States:      database,
		Sealer:      kr,
	}, integrations.Options{PublicURL: cfg.PublicURL, Logger: log, Now: opts.Now, Metrics: m,
		WebhookSecretGrace: cfg.WebhookSecretGrace, SharedWebhookSecret: cfg.VapiWebhookSecret})

	tokens, err := auth.NewTokens([]byte(cfg.JWTSecret.Reveal()), auth.TokenOptions{Issuer: cfg.PublicURL})
	if err != nil {
		return nil, fmt.Errorf("JWT_SECRET: %w", err)
	}
	// Sign-ins are cached in the same group, dropped by the changes the
	// database announces (see auth.SessionCache); ListenInvalidations
	// turns the cache on while it receives them.
	sessions := auth.NewSessionCache(database, caches, 0)
	ao := opts.Accounts
	ao.Mailer, ao.PublicURL, ao.Logger, ao.Now = mailer, cfg.PublicURL, log, opts.Now
	accounts := auth.NewService(sessions, tokens, ao)
	teams := team.New(database, mailer, team.Options{PublicURL: cfg.PublicURL, Logger: log, Now: opts.Now})
	outbox, _ := mailer.(*mail.Outbox)
	limiter, err := attempts.New(database, []byte(cfg.SessionSecret.Reveal()), attempts.Options{Now: opts.Now, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("SESSION_SECRET: %w", err)
	}

	wo := opts.Web
	wo.Registry = reg
	wo.Production = cfg.Production()
	wo.SessionSecret = []byte(cfg.SessionSecret.Reveal())
	wo.Logger = log
	wo.Sandbox = opts.Sandbox
	wo.OpsToken = cfg.OpsToken.Reveal()
	wo.TrustedProxies = cfg.TrustedProxies
	wo.AttemptsPerIP, wo.AttemptsPerEmail, wo.AttemptWindow = cfg.Limits.AttemptsPerIP, cfg.Limits.AttemptsPerEmail, cfg.Limits.AttemptWindow
	wo.ProviderCallsPerOrg, wo.ProviderCallsPerIP = cfg.Limits.ProviderCallsPerOrg, cfg.Limits.ProviderCallsPerIP
	acts, err := activity.New(database, []byte(cfg.SessionSecret.Reveal()), opts.Now)
	if err != nil {
		return nil, fmt.Errorf("SESSION_SECRET: %w", err)
	}
	wo.ReverifyInterval = cfg.ReverifyInterval
	deps := web.Deps{Accounts: accounts, DB: database, Integrations: integ, Webhooks: hooks,
		Credentials: creds, Limiter: limiter, Team: teams, SignIns: sessions, Activity: acts, Cancels: database}
	if outbox != nil {
		deps.Outbox = outbox
	}
	srv, err := web.New(wo, deps)
	if err != nil {
		return nil, err
	}
	return &System{DB: database, Keyring: kr, Credentials: creds, Integrations: integ, Webhooks: hooks,
		Accounts: accounts, Tokens: tokens, Server: srv, GoogleOAuth: oauth, Calendar: calendar, Limiter: limiter,
		Caches: caches, Verifiers: verifiers, Team: teams, Mailer: mailer, Outbox: outbox, Sessions: sessions, Activity: acts,
		Rechecks: reverify.New(database, integ, reverify.Options{Interval: cfg.ReverifyInterval, Now: opts.Now, Logger: log}),
		Notices:  notices,
	}, nil
}

// SweepAttempts deletes the attempt limits' expired counts periodically
// until ctx ends (see attempts.Limiter.Run).
func (s *System) SweepAttempts(ctx context.Context) { s.Limiter.Run(ctx, 0) }

// FlushRefusals stores the webhook refusal counts periodically until ctx
// ends, and once more then (see webhooks.Handler.RunRefusalFlush).
func (s *System) FlushRefusals(ctx context.Context) { s.Webhooks.RunRefusalFlush(ctx, 0) }

// RecheckConnections re-verifies the stored connections that are due,
// periodically, until ctx ends; with REVERIFY_INTERVAL=0 it returns at
// once (see reverify.Scheduler.Run).
func (s *System) RecheckConnections(ctx context.Context) { s.Rechecks.Run(ctx) }

// SendQueuedMail delivers the queued break notices that are due, until
// ctx ends and the sends under way are recorded (see alerts.Sender.Run).
func (s *System) SendQueuedMail(ctx context.Context) { s.Notices.Run(ctx) }

// ListenInvalidations applies every instance's credential changes to this
// instance's caches until ctx ends: each notification goes to the credential
// service (which passes it on to every cache), and after a lost connection,
// when notifications may have been missed, everything is flushed. The
// sign-in cache is used only while it listens. The server is ready (see
// web.Server.Started) once it has listened the first time; a later lost
// connection is the database's state, shared by every instance, and does
// not make it unready again. It also hands the requests to cancel that any
// instance passes on to this instance's server.
func (s *System) ListenInvalidations(ctx context.Context) {
	s.DB.Listen(ctx, db.Listeners{
		Invalidate: func(orgID, provider string) { s.Credentials.Invalidate(orgID, provider) },
		Flush:      s.Credentials.Flush,
		Listening: func(on bool) {
			s.Sessions.Listening(on)
			if on {
				s.Server.Started()
			}
		},
		Cancel: s.Server.CancelForwarded, CancelAck: s.Server.CancelAcknowledged,
	})
}
