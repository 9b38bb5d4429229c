// Package credentials is the credential service every front door shares and
// the only writer of stored credentials: it saves an org's provider
// connections (the config sealed by the keyring, with the rows that belong
// to it) in one transaction, hands configs back decrypted and typed, reports
// each provider's status with masked details, keeps Google access tokens
// fresh, and caches configs and statuses locally; every write (local, or
// announced by another instance through the database) invalidates them.
//
// Errors are *app.Error values: ENotConfigured when an org has nothing
// usable stored for a provider (including a row that can no longer be
// decrypted), EUnknownProvider for a provider outside the five, and
// EInternal when the store fails; the Google token source adds the errors
// of the token endpoint. No error, log line or status ever contains a
// secret.
package credentials

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"byoc/app"
	"byoc/app/keyring"
	"byoc/app/orgcache"
)

// Store is what the service needs from the database; *db.DB implements it.
// Every method works within the one org it is given, and every write
// publishes the cache invalidation in its transaction. A write given audit
// entries appends them in that same transaction, so the change and its
// entries are stored together or not at all (DeleteConnection: when it
// deleted credentials).
type Store interface {
	SaveConnection(ctx context.Context, rec app.CredentialRecord, mappings []app.AssistantMapping,
		outbound *app.OutboundAgent, audit ...app.AuditEntry) (app.CredentialRecord, error)
	DeleteConnection(ctx context.Context, orgID string, p app.Provider, assistants bool, audit ...app.AuditEntry) (bool, error)
	GetCredential(ctx context.Context, orgID string, p app.Provider) (app.CredentialRecord, error)
	ListCredentials(ctx context.Context, orgID string) ([]app.CredentialRecord, error)
	// RecordCheck also reports whether the check broke a working
	// connection (decided once across every instance).
	RecordCheck(ctx context.Context, orgID string, p app.Provider, o app.CheckOutcome, audit ...app.AuditEntry) (app.CredentialRecord, bool, error)
	SetWebhookHMACOnly(ctx context.Context, orgID string, on bool, audit ...app.AuditEntry) (app.CredentialRecord, error)
	ReplaceVapiWebhookSecret(ctx context.Context, orgID string, ciphertext []byte, audit ...app.AuditEntry) (app.CredentialRecord, error)
	ClaimWebhookSecretReveal(ctx context.Context, orgID string, audit ...app.AuditEntry) (app.CredentialRecord, error)
}

// Default cache lifetimes.
const (
	DefaultConfigTTL = 5 * time.Minute
	DefaultStatusTTL = time.Minute
)

// Options tunes New and names its optional collaborators. The zero value
// gives the default lifetimes, no logging and no Google token source.
type Options struct {
	// ConfigTTL is how long a decrypted config stays cached (default 5 min).
	ConfigTTL time.Duration
	// StatusTTL is how long an org's statuses stay cached (default 1 min).
	StatusTTL time.Duration
	// Logger receives warnings about undecryptable rows and a line per
	// write; never a secret. Nil discards.
	Logger *slog.Logger
	// Now is the clock of token expiry checks (default time.Now).
	Now func() time.Time
	// Google refreshes Google access tokens; without it GoogleAccessToken
	// answers that Google Calendar is not set up on this server.
	Google TokenRefresher
	// Locker, when set, makes a Google token refresh run at most once per
	// org across every instance (within this process it always does).
	Locker OrgLocker
	// Caches is the cache group the service's caches join, so that the
	// service's Invalidate and Flush reach every cache of the group (the
	// webhook routing's too). Nil: a group of the service's own.
	Caches *orgcache.Group
	// Metrics counts credential reads and Google token refreshes (nil:
	// they are not counted).
	Metrics Metrics
	// Breaks is told when a recorded check turns a working connection into
	// a failing one (nil: nobody is).
	Breaks BreakNotifier
}

// BreakNotifier is told, once per break, that an org's connection to a
// provider was working and has started failing, with the user-facing
// reason, after the store recorded the break together with the admins'
// queued notices; *alerts.Sender implements it (it sends what is queued
// now). It runs apart from the check that found the break (which does not
// wait for it), with its own time limit.
type BreakNotifier interface {
	ConnectionBroke(ctx context.Context, orgID string, p app.Provider, reason string)
}

// breakNoticeTimeout bounds how long one break notice may take.
const breakNoticeTimeout = time.Minute

// Metrics counts what the service does; *metrics.Metrics implements it.
type Metrics interface {
	// CredentialRead counts one read of an org's decrypted credentials:
	// hit when it was answered from memory.
	CredentialRead(hit bool)
	// GoogleRefresh counts one Google token refresh by outcome (one of
	// RefreshOutcomes).
	GoogleRefresh(outcome string)
}

// Outcomes of a Google token refresh, as Metrics counts them.
const (
	// RefreshOK: Google granted a new access token.
	RefreshOK = "ok"
	// RefreshRefused: Google refused the stored grant (invalid_grant), or
	// none is stored to refresh with; the card asks to reconnect.
	RefreshRefused = "refused"
	// RefreshUnavailable: Google could not be reached, timed out or
	// answered an error.
	RefreshUnavailable = "unavailable"
	// RefreshError: any other failure, such as Google refusing this
	// server's own OAuth client.
	RefreshError = "error"
)

// RefreshOutcomes lists every refresh outcome, in a fixed order.
var RefreshOutcomes = []string{RefreshOK, RefreshRefused, RefreshUnavailable, RefreshError}

// noMetrics counts nothing.
type noMetrics struct{}

func (noMetrics) CredentialRead(bool)  {}
func (noMetrics) GoogleRefresh(string) {}

// What Statuses shows for a row that cannot be opened, by why.
const (
	// statusKeyMissing: sealed with a key this server no longer has.
	statusKeyMissing = "Stored credentials can no longer be decrypted (encryption key not available). Reconnect to fix."
	// statusIntegrity: the key is known, but the data is damaged or was
	// sealed for another row (org or provider).
	statusIntegrity = "Stored credentials failed their integrity check: this row's data does not match its place " +
		"(it was altered or copied from another row). Reconnect to fix."
	// statusUnreadable: authentic, but not a config this server can read.
	statusUnreadable = "Stored credentials cannot be read by this server. Reconnect to fix."
)

// undecryptableStatus is what Statuses shows for a row that open refused
// with err: a missing key, an integrity failure, or an unreadable config.
func undecryptableStatus(err error) string {
	var de *keyring.DecryptError
	switch {
	case !errors.As(err, &de):
		return statusUnreadable
	case de.Reason == keyring.ReasonUnknownKey:
		return statusKeyMissing
	}
	return statusIntegrity
}

// Service is the credential service. It is safe for concurrent use.
type Service struct {
	store      Store
	kr         *keyring.Keyring
	log        *slog.Logger
	cache      *cacheLayer
	now        func() time.Time
	google     TokenRefresher
	locker     OrgLocker
	refreshing *orgLocks
	metrics    Metrics
	breaks     BreakNotifier
}

// New returns a Service that keeps credentials in store, sealed by kr.
func New(store Store, kr *keyring.Keyring, opts Options) *Service {
	if opts.ConfigTTL <= 0 {
		opts.ConfigTTL = DefaultConfigTTL
	}
	if opts.StatusTTL <= 0 {
		opts.StatusTTL = DefaultStatusTTL
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	g := opts.Caches
	if g == nil {
		g = orgcache.NewGroup(orgcache.Options{})
	}
	m := opts.Metrics
	if m == nil {
		m = noMetrics{}
	}
	return &Service{store: store, kr: kr, log: log.With("component", "credentials"),
		cache: newCacheLayer(g, opts.ConfigTTL, opts.StatusTTL), now: now,
		google: opts.Google, locker: opts.Locker, refreshing: newOrgLocks(), metrics: m, breaks: opts.Breaks}
}

// Save stores the connection c: c.Config sealed as the org's credentials for
// its provider (replacing what was there, active, verified at c.VerifiedAt,
// with no verification error; a new row takes c.WebhookHMACOnly, a stored
// one keeps its setting) together with c's assistant mappings and
// outbound agent, in one transaction. It returns the status it wrote (masked
// details only), read from nothing else. Every cache of the org's provider
// is dropped here, and on every other instance through the database's
// notification. The audit entries (each of c's org) are stored in the
// same transaction: when one cannot be, nothing is. A config the catalog
// does not describe is EInternal, and so is a store failure; EConflict
// passes through from the store.
func (s *Service) Save(ctx context.Context, c app.Connection, audit ...app.AuditEntry) (app.Status, error) {
	cfg, err := app.ConfigValue(c.Config)
	if err != nil {
		return app.Status{}, app.Internal(fmt.Errorf("credentials: save: %w", err))
	}
	c.Config = cfg
	p := cfg.Provider()
	ct, err := Seal(s.kr, c.OrgID, cfg)
	if err != nil {
		return app.Status{}, app.Internal(fmt.Errorf("credentials: seal %s config: %w", p, err))
	}
	rec := app.CredentialRecord{OrgID: c.OrgID, Provider: p, Ciphertext: ct, WebhookHMACOnly: c.WebhookHMACOnly,
		WebhookSecretNew: c.WebhookSecretNew, Limited: c.Limited, Warning: c.Warning}
	if !c.Limited {
		rec.Warning = ""
	}
	if !c.VerifiedAt.IsZero() {
		rec.LastVerifiedAt = &c.VerifiedAt
	}
	rec, err = s.store.SaveConnection(ctx, rec, c.Assistants, c.Outbound, audit...)
	// Invalidate even on failure: a failed commit may still have committed.
	s.Invalidate(c.OrgID, string(p))
	if err != nil {
		return app.Status{}, app.AsError(err)
	}
	s.log.InfoContext(ctx, "credentials saved", "org_id", c.OrgID, "provider", p)
	return statusOf(rec, c.Config, s.now()), nil
}

// Delete deletes the org's credentials for provider p together with the
// rows the connection owns (for a provider that manages assistants: the
// org's assistant mappings and outbound assistant, also when no credentials
// are left to delete), in one transaction with the audit entries, and
// drops them from every cache. It returns ENotConfigured when no
// credentials were stored (no entry is stored then), EUnknownProvider for
// a provider outside the five and EInternal when the store fails.
func (s *Service) Delete(ctx context.Context, orgID string, p app.Provider, audit ...app.AuditEntry) error {
	spec, err := app.Describe(p)
	if err != nil {
		return err
	}
	deleted, err := s.store.DeleteConnection(ctx, orgID, p, spec.ManagesAssistants, audit...)
	s.Invalidate(orgID, string(p))
	if err != nil {
		return app.AsError(err)
	}
	if !deleted {
		return notConfigured(p)
	}
	s.log.InfoContext(ctx, "credentials disconnected", "org_id", orgID, "provider", p)
	return nil
}

// Get returns the org's decrypted config for provider p, typed (for example
// app.VapiConfig), from the cache when it holds it. It returns
// ENotConfigured when nothing (or only an inactive row) is stored, and also,
// with a message asking the user to enter the credentials again and with
// ErrUndecryptable in its chain, when the stored row cannot be decrypted or
// decoded; the reason is logged.
func (s *Service) Get(ctx context.Context, orgID string, p app.Provider) (app.Config, error) {
	return s.get(ctx, orgID, p, true)
}

// get is Get, from the cache only when cached is set (a caller that must
// see what another instance wrote a moment ago reads the store). Each call
// is a credential read: counted, and logged at debug level.
func (s *Service) get(ctx context.Context, orgID string, p app.Provider, cached bool) (_ app.Config, err error) {
	if _, err := app.Describe(p); err != nil {
		return nil, err
	}
	start := time.Now()
	key := configKey(orgID, p)
	if v, ok := s.cache.getConfig(key); ok && cached {
		s.metrics.CredentialRead(true)
		logRead(ctx, s.log, orgID, p, true, start, nil)
		return cloneConfig(v), nil
	}
	s.metrics.CredentialRead(false)
	defer func() { logRead(ctx, s.log, orgID, p, false, start, err) }()
	since := s.cache.g.Stamp()
	_, cfg, err := s.load(ctx, orgID, p)
	if err != nil {
		return nil, err
	}
	s.cache.putConfig(key, cfg, since)
	return cloneConfig(cfg), nil
}

// logRead writes the debug line of one credential read: the org, the
// provider, whether the cache answered, how long the read took and, when
// it failed, the error's code. Never a secret; nothing is built when debug
// lines are not logged.
func logRead(ctx context.Context, log *slog.Logger, orgID string, p app.Provider, hit bool, start time.Time, err error) {
	if !log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	cache := "miss"
	if hit {
		cache = "hit"
	}
	attrs := []slog.Attr{slog.String("org_id", orgID), slog.String("provider", string(p)), slog.String("cache", cache),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000)}
	if err != nil {
		attrs = append(attrs, slog.String("code", app.ErrorCode(err)))
	}
	log.LogAttrs(ctx, slog.LevelDebug, "credential read", attrs...)
}

// load reads the org's row for p from the store and opens it; errors as
// Get.
func (s *Service) load(ctx context.Context, orgID string, p app.Provider) (app.CredentialRecord, app.Config, error) {
	rec, err := s.store.GetCredential(ctx, orgID, p)
	if err != nil {
		return app.CredentialRecord{}, nil, app.AsError(err)
	}
	if !rec.IsActive {
		return app.CredentialRecord{}, nil, notConfigured(p)
	}
	cfg, err := s.open(ctx, rec)
	if err != nil {
		return app.CredentialRecord{}, nil, &app.Error{
			Code:    app.ENotConfigured,
			Message: fmt.Sprintf("The stored %s credentials can no longer be decrypted; please enter them again.", p.Title()),
			Cause:   err,
		}
	}
	return rec, cfg, nil
}

// VapiWebhook returns what verifies the org's Vapi webhooks: the webhook
// secret stored with its Vapi credentials and the row's HMAC-only setting,
// read from the store. The webhook routing caches it, and counts and logs
// its reads as credential reads (a hit when its cache answers, a miss when
// it calls this), so this does not. Errors as Get.
func (s *Service) VapiWebhook(ctx context.Context, orgID string) (app.VapiWebhook, error) {
	rec, cfg, err := s.load(ctx, orgID, app.Vapi)
	if err != nil {
		return app.VapiWebhook{}, err
	}
	vc, ok := cfg.(app.VapiConfig)
	if !ok {
		return app.VapiWebhook{}, app.Internal(fmt.Errorf("credentials: vapi config has type %T", cfg))
	}
	w := app.VapiWebhook{Secret: vc.WebhookSecret, HMACOnly: rec.WebhookHMACOnly}
	if !vc.PreviousWebhookSecretUntil.IsZero() && !vc.WebhookSecret.IsZero() {
		w.Previous, w.PreviousUntil = vc.PreviousWebhookSecret, vc.PreviousWebhookSecretUntil
	}
	return w, nil
}

// VapiFresh returns the org's Vapi config read from the store, never from
// a cache: what a change made under the org's lock must start from, even
// when another instance wrote it a moment ago. Errors as Get.
func (s *Service) VapiFresh(ctx context.Context, orgID string) (app.VapiConfig, error) {
	cfg, err := s.get(ctx, orgID, app.Vapi, false)
	if err != nil {
		return app.VapiConfig{}, err
	}
	vc, ok := cfg.(app.VapiConfig)
	if !ok {
		return app.VapiConfig{}, app.Internal(fmt.Errorf("credentials: vapi config has type %T", cfg))
	}
	return vc, nil
}

// ReplaceVapiWebhook stores cfg, the org's Vapi config after a rotation of
// its webhook secret (the new secret and signing credential, the previous
// ones with the end of their grace period), in place of the stored config,
// and marks the new secret as shown: the rotation answers it. The row's
// verification state, HMAC-only setting and assistant mappings stay. Every
// cache of the org's Vapi credentials (the webhook routing's secret entry
// among them) is dropped here and, through the database's notification in
// the same transaction, on every other instance. The audit entries are
// stored in that transaction too. It returns ENotConfigured when no active
// Vapi credentials are stored and EInternal when sealing or the store
// fails.
func (s *Service) ReplaceVapiWebhook(ctx context.Context, orgID string, cfg app.VapiConfig, audit ...app.AuditEntry) (app.Status, error) {
	ct, err := Seal(s.kr, orgID, cfg)
	if err != nil {
		return app.Status{}, app.Internal(fmt.Errorf("credentials: seal vapi config: %w", err))
	}
	rec, err := s.store.ReplaceVapiWebhookSecret(ctx, orgID, ct, audit...)
	s.Invalidate(orgID, string(app.Vapi))
	if err != nil {
		return app.Status{}, app.AsError(err)
	}
	s.log.InfoContext(ctx, "vapi webhook secret rotated", "org_id", orgID)
	return statusOf(rec, cfg, s.now()), nil
}

// RevealVapiWebhookSecret returns the org's current Vapi webhook secret,
// once: the first call for a secret marks it as shown (atomically in the
// database, so concurrent calls on any number of instances show it at
// most once) and every later call returns EConflict until a rotation or
// a save with another secret. It returns ENotConfigured when no Vapi
// credentials are stored (or they cannot be decrypted) and when the org
// has no secret of its own (a rotation makes one), and EInternal when the
// store fails. The audit entries are stored in the claim's transaction;
// whether there is a secret to show is read first, so a claim and its
// entries are stored only for a secret the call then answers. The secret
// is never logged.
func (s *Service) RevealVapiWebhookSecret(ctx context.Context, orgID string, audit ...app.AuditEntry) (app.Secret, app.Status, error) {
	_, cfg, err := s.load(ctx, orgID, app.Vapi)
	if err != nil {
		return app.Secret{}, app.Status{}, err
	}
	if vc, ok := cfg.(app.VapiConfig); ok && vc.WebhookSecret.IsZero() {
		return app.Secret{}, app.Status{}, errNoOwnWebhookSecret()
	}
	rec, err := s.store.ClaimWebhookSecretReveal(ctx, orgID, audit...)
	s.Invalidate(orgID, string(app.StatusScope))
	if err != nil {
		return app.Secret{}, app.Status{}, app.AsError(err)
	}
	cfg, err = s.open(ctx, rec)
	if err != nil {
		return app.Secret{}, app.Status{}, &app.Error{Code: app.ENotConfigured,
			Message: "The stored Vapi credentials can no longer be decrypted; please enter them again.", Cause: err}
	}
	vc, ok := cfg.(app.VapiConfig)
	if !ok {
		return app.Secret{}, app.Status{}, app.Internal(fmt.Errorf("credentials: vapi config has type %T", cfg))
	}
	if vc.WebhookSecret.IsZero() {
		return app.Secret{}, app.Status{}, errNoOwnWebhookSecret()
	}
	s.log.InfoContext(ctx, "vapi webhook secret revealed", "org_id", orgID)
	return vc.WebhookSecret, statusOf(rec, cfg, s.now()), nil
}

// SetWebhookHMACOnly sets whether the org's Vapi webhooks are accepted only
// with an HMAC signature (app.CredentialRecord.WebhookHMACOnly) and returns
// Vapi's new status. The caches of the org's Vapi credentials (the webhook
// routing's secret entry among them) are dropped here and, through the
// database's notification, on every other instance. The audit entries are
// stored in the same transaction as the setting. It returns
// ENotConfigured when no Vapi credentials are stored and EInternal when
// the store fails.
func (s *Service) SetWebhookHMACOnly(ctx context.Context, orgID string, on bool, audit ...app.AuditEntry) (app.Status, error) {
	rec, err := s.store.SetWebhookHMACOnly(ctx, orgID, on, audit...)
	s.Invalidate(orgID, string(app.Vapi))
	if err != nil {
		return app.Status{}, app.AsError(err)
	}
	s.log.InfoContext(ctx, "vapi webhook signing changed", "org_id", orgID, "hmac_only", on)
	return s.status(ctx, rec), nil
}

// Vapi returns the org's Vapi config; errors as Get.
func (s *Service) Vapi(ctx context.Context, orgID string) (app.VapiConfig, error) {
	return getTyped[app.VapiConfig](ctx, s, orgID, app.Vapi)
}

// Twilio returns the org's Twilio config; errors as Get.
func (s *Service) Twilio(ctx context.Context, orgID string) (app.TwilioConfig, error) {
	return getTyped[app.TwilioConfig](ctx, s, orgID, app.Twilio)
}

// GoogleCalendar returns the org's Google Calendar grant; errors as Get.
func (s *Service) GoogleCalendar(ctx context.Context, orgID string) (app.GoogleCalendarConfig, error) {
	return getTyped[app.GoogleCalendarConfig](ctx, s, orgID, app.GoogleCalendar)
}

// Resend returns the org's Resend config; errors as Get.
func (s *Service) Resend(ctx context.Context, orgID string) (app.ResendConfig, error) {
	return getTyped[app.ResendConfig](ctx, s, orgID, app.Resend)
}

// ElevenLabs returns the org's ElevenLabs config; errors as Get.
func (s *Service) ElevenLabs(ctx context.Context, orgID string) (app.ElevenLabsConfig, error) {
	return getTyped[app.ElevenLabsConfig](ctx, s, orgID, app.ElevenLabs)
}

func getTyped[T app.Config](ctx context.Context, s *Service, orgID string, p app.Provider) (T, error) {
	var zero T
	cfg, err := s.Get(ctx, orgID, p)
	if err != nil {
		return zero, err
	}
	typed, ok := cfg.(T)
	if !ok {
		return zero, app.Internal(fmt.Errorf("credentials: %s config has type %T", p, cfg))
	}
	return typed, nil
}

// RecordVerification stores the outcome of checking the org's stored
// credentials for p at time at, as RecordCheck does, for a check that
// found full access when it passed.
func (s *Service) RecordVerification(ctx context.Context, orgID string, p app.Provider, at time.Time, verificationErr error) (app.Status, error) {
	return s.RecordCheck(ctx, orgID, p, at, app.Verification{}, verificationErr)
}

// RecordCheck stores the outcome of checking the org's stored credentials
// for p at time at: verificationErr nil means they passed, with the scope
// v found (Status.Limited and Status.Warning); otherwise its user-facing
// message (app.ErrorMessage, never its cause) and its reason
// (app.ErrorReason) are kept and shown in the status, and the scope found
// by the last passed check stays. Every check sets Status.LastChecked, a
// passed one Status.LastVerified too. It returns the provider's new status,
// built from the row it updated. Only the cached statuses are dropped
// (app.StatusScope): the decrypted configs, webhook secrets and mappings
// stay warm. A failed check that breaks a working connection (decided by
// the store, once across every instance) is passed on to Options.Breaks
// in the background. The audit entries are stored in the same transaction
// as the outcome: when one cannot be, nothing is recorded. It returns
// ENotConfigured when nothing is stored.
func (s *Service) RecordCheck(ctx context.Context, orgID string, p app.Provider, at time.Time, v app.Verification,
	verificationErr error, audit ...app.AuditEntry) (app.Status, error) {
	return s.RecordCheckOf(ctx, orgID, p, time.Time{}, at, v, verificationErr, audit...)
}

// ForCheck returns the org's stored config for p read from the store
// (never a cache) with its version, the UpdatedAt that RecordCheckOf
// takes: what a check must verify so that its outcome is recorded against
// the very credentials it checked. Errors as Get.
func (s *Service) ForCheck(ctx context.Context, orgID string, p app.Provider) (app.Config, time.Time, error) {
	if _, err := app.Describe(p); err != nil {
		return nil, time.Time{}, err
	}
	start := time.Now()
	s.metrics.CredentialRead(false)
	rec, cfg, err := s.load(ctx, orgID, p)
	logRead(ctx, s.log, orgID, p, false, start, err)
	if err != nil {
		return nil, time.Time{}, err
	}
	return cfg, rec.UpdatedAt, nil
}

// RecordCheckOf is RecordCheck of the credentials of version of (from
// ForCheck; the zero time for whatever is stored): when they were replaced
// while the check ran, nothing is recorded, no break is decided, and it
// returns EConflict.
func (s *Service) RecordCheckOf(ctx context.Context, orgID string, p app.Provider, of, at time.Time, v app.Verification,
	verificationErr error, audit ...app.AuditEntry) (app.Status, error) {
	if _, err := app.Describe(p); err != nil {
		return app.Status{}, err
	}
	o := app.CheckOutcome{At: at, Limited: v.Limited, Warning: v.Warning(), Of: of}
	if verificationErr != nil {
		o = app.CheckOutcome{At: at, Error: app.ErrorMessage(verificationErr), Code: app.ErrorReason(verificationErr), Of: of}
	}
	rec, broke, err := s.store.RecordCheck(ctx, orgID, p, o, audit...)
	// What the credentials hold did not change, only their status.
	s.Invalidate(orgID, string(app.StatusScope))
	if err != nil {
		return app.Status{}, app.AsError(err)
	}
	if broke && s.breaks != nil {
		s.log.WarnContext(ctx, "connection broke", "org_id", orgID, "provider", p, "code", app.ErrorCode(verificationErr))
		go func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, breakNoticeTimeout)
			defer cancel()
			s.breaks.ConnectionBroke(ctx, orgID, p, o.Error)
		}(context.WithoutCancel(ctx))
	}
	s.log.InfoContext(ctx, "credentials verification recorded", "org_id", orgID, "provider", p,
		"verified", verificationErr == nil, "limited", o.Limited, "code", app.ErrorCode(verificationErr))
	return s.status(ctx, rec), nil
}

// open decrypts rec and logs why when it cannot. The returned error has
// ErrUndecryptable in its chain and no plaintext.
func (s *Service) open(ctx context.Context, rec app.CredentialRecord) (app.Config, error) {
	cfg, err := Open(s.kr, rec)
	if err == nil {
		return cfg, nil
	}
	attrs := []any{"org_id", rec.OrgID, "provider", rec.Provider, "err", err}
	var de *keyring.DecryptError
	if errors.As(err, &de) {
		attrs = append(attrs, "reason", de.Reason.String(), "key_id", de.KeyID)
	} else {
		attrs = append(attrs, "reason", "bad_plaintext")
	}
	s.log.WarnContext(ctx, "stored credentials cannot be decrypted", attrs...)
	return nil, fmt.Errorf("%w: %w", app.ErrUndecryptable, err)
}

func errNoOwnWebhookSecret() error {
	return app.Errorf(app.ENotConfigured, "This organization has no webhook secret of its own yet. Rotate to create one.")
}

func notConfigured(p app.Provider) error {
	return app.Errorf(app.ENotConfigured, "No %s credentials are stored for this organization.", p.Title())
}

// Table is the table name bound into every ciphertext's additional data.
const Table = "org_credentials"

// aad binds a ciphertext to its row.
func aad(orgID string, p app.Provider) keyring.AAD {
	return keyring.AAD{Table: Table, OrgID: orgID, Provider: string(p)}
}

// Seal encodes cfg (a value of a config type the catalog describes) in its
// stored form and encrypts it with kr's primary key, bound to the org's row
// of cfg's provider: the ciphertext Save stores. Bulk writers that insert
// rows themselves (byoc seed) seal with it, so there is one stored format.
func Seal(kr *keyring.Keyring, orgID string, cfg app.Config) ([]byte, error) {
	spec, err := app.Describe(cfg.Provider())
	if err != nil {
		return nil, err
	}
	plaintext, err := spec.Encode(cfg)
	if err != nil {
		return nil, err
	}
	defer clear(plaintext)
	return kr.Seal(plaintext, aad(orgID, cfg.Provider()))
}

// Open decrypts and decodes the config stored in rec, as Get does but
// without the cache or the log line. Its errors carry no plaintext; a
// keyring failure is a *keyring.DecryptError.
func Open(kr *keyring.Keyring, rec app.CredentialRecord) (app.Config, error) {
	spec, err := app.Describe(rec.Provider)
	if err != nil {
		return nil, err
	}
	plaintext, err := kr.Open(rec.Ciphertext, aad(rec.OrgID, rec.Provider))
	if err != nil {
		return nil, err
	}
	defer clear(plaintext)
	return spec.Decode(plaintext)
}

// cloneConfig copies the parts of a config that share memory, so callers
// cannot change what the cache holds.
func cloneConfig(cfg app.Config) app.Config {
	if g, ok := cfg.(app.GoogleCalendarConfig); ok && g.Scopes != nil {
		g.Scopes = append([]string(nil), g.Scopes...)
		return g
	}
	return cfg
}
