// Package integrations is the one service the dashboard and the JSON API call
// to connect, test and disconnect an org's provider credentials, for every
// provider alike: each is driven by its description in the catalog
// (app.Describe). A save checks the input against the description, verifies
// it with the provider, and only then stores it through the credential
// service; for a provider that manages assistants (Vapi) it first makes sure
// the org has its inbound and outbound assistants in its own account. Google
// Calendar connects through Google's sign-in instead of a form: its connect
// flow runs here too (google.go). Every change, and every refused attempt,
// is written to the org's audit log: a change's entry in the change's own
// transaction, so no change is stored without it (an entry the log refuses
// fails the change, which then stores nothing), and an attempt that stored
// nothing on its own.
//
// Errors are *app.Error values: EUnauthorized (no org in the principal),
// EForbidden (a member who is not an admin tried to change credentials, or
// an OAuth callback from another user or browser session), EValidation (bad
// input, with per-field messages keyed by the field names),
// EVerificationFailed (the provider refused the credentials),
// EProviderUnavailable (the provider could not be reached or timed out),
// EUnavailable (the provider refused this server's own OAuth client),
// ENotConfigured (nothing stored, or Google not set up on this server),
// EUnknownProvider and EInternal. No error, result, log line or audit entry
// carries a secret.
//
// Every save keeps one promise: it requires an admin, checks the trimmed
// input, verifies it with the provider, and only then writes. Everything a
// save stores (the credentials and the rows that belong to them) is written
// last, in one transaction, so when a save returns an error nothing of it
// is stored and the org's previous credentials for that provider are still
// stored and working.
package integrations

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"byoc/app"
	"byoc/app/paths"
)

// Audit actions written by the service.
const (
	ActionSave       = "credentials.save"
	ActionVerify     = "credentials.verify"
	ActionDisconnect = "credentials.disconnect"
	// ActionWebhookSigning changes whether Vapi's webhooks must be
	// HMAC-signed (SetWebhookHMACOnly).
	ActionWebhookSigning = "credentials.webhook_signing"
	// ActionRotateSecret replaces the org's Vapi webhook secret
	// (RotateWebhookSecret); ActionRevealSecret shows it once
	// (RevealWebhookSecret).
	ActionRotateSecret = "credentials.rotate_secret"
	ActionRevealSecret = "credentials.reveal_secret"
)

// Credentials is what the service needs of the credential service;
// *credentials.Service implements it. Each write stores the audit entries
// it is given in its own transaction: when it answers nil they are stored
// with the change, otherwise neither is (Delete: nor when nothing was
// stored to delete).
type Credentials interface {
	Save(ctx context.Context, c app.Connection, audit ...app.AuditEntry) (app.Status, error)
	Delete(ctx context.Context, orgID string, p app.Provider, audit ...app.AuditEntry) error
	Get(ctx context.Context, orgID string, p app.Provider) (app.Config, error)
	Statuses(ctx context.Context, orgID string) ([]app.Status, error)
	ForCheck(ctx context.Context, orgID string, p app.Provider) (app.Config, time.Time, error)
	RecordCheckOf(ctx context.Context, orgID string, p app.Provider, of, at time.Time, v app.Verification,
		verificationErr error, audit ...app.AuditEntry) (app.Status, error)
	SetWebhookHMACOnly(ctx context.Context, orgID string, on bool, audit ...app.AuditEntry) (app.Status, error)
	VapiFresh(ctx context.Context, orgID string) (app.VapiConfig, error)
	ReplaceVapiWebhook(ctx context.Context, orgID string, cfg app.VapiConfig, audit ...app.AuditEntry) (app.Status, error)
	RevealVapiWebhookSecret(ctx context.Context, orgID string, audit ...app.AuditEntry) (app.Secret, app.Status, error)
}

// Verifier asks a provider whether it accepts an org's config. It returns
// EVerificationFailed when the provider refuses it and EProviderUnavailable
// when the provider cannot be asked.
type Verifier interface {
	Verify(ctx context.Context, orgID string, cfg app.Config) (app.Verification, error)
}

// VerifierFunc is a function that is a Verifier.
type VerifierFunc func(ctx context.Context, orgID string, cfg app.Config) (app.Verification, error)

// Verify implements Verifier.
func (f VerifierFunc) Verify(ctx context.Context, orgID string, cfg app.Config) (app.Verification, error) {
	return f(ctx, orgID, cfg)
}

// VerifyWith is the Verifier of a provider client whose check takes its own
// config type, such as (*resend.Client).Verify.
func VerifyWith[C app.Config](check func(context.Context, C) (app.Verification, error)) Verifier {
	return VerifierFunc(func(ctx context.Context, _ string, cfg app.Config) (app.Verification, error) {
		c, ok := cfg.(C)
		if !ok {
			return app.Verification{}, app.Internal(fmt.Errorf("integrations: a %T is not a %T", cfg, c))
		}
		return check(ctx, c)
	})
}

// What asked for a verification, as Metrics counts it.
const (
	// TriggerSave: a save checks new credentials before storing them
	// (Google Calendar: the grant its sign-in returns, exchanged and
	// checked; a person declining consent is not counted).
	TriggerSave = "save"
	// TriggerTest: an admin's Test connection re-checks the stored ones.
	TriggerTest = "test"
	// TriggerScheduled: the background re-verification re-checks the
	// stored ones (Recheck).
	TriggerScheduled = "scheduled"
)

// Outcomes of a verification, as Metrics counts them.
const (
	// VerificationOK: the provider accepted the credentials.
	VerificationOK = "ok"
	// VerificationLimited: accepted, with limited scope (a Resend
	// sending-only key, an ElevenLabs key without User: Read).
	VerificationLimited = "limited"
	// VerificationRefused: the provider refused them (EVerificationFailed).
	VerificationRefused = "refused"
	// VerificationUnavailable: the provider could not be asked (unreachable,
	// timed out, answering errors, or refusing this server's own client).
	VerificationUnavailable = "unavailable"
)

// Triggers and VerificationOutcomes list every trigger and outcome, in a
// fixed order.
var (
	Triggers             = []string{TriggerSave, TriggerTest, TriggerScheduled}
	VerificationOutcomes = []string{VerificationOK, VerificationLimited, VerificationRefused, VerificationUnavailable}
)

// Metrics counts verifications; *metrics.Metrics implements it.
type Metrics interface {
	// Verification counts one verification of provider's credentials.
	Verification(provider app.Provider, trigger, outcome string)
}

// verificationOutcome is the outcome of a verification that answered v and
// err, or false when err says that no provider was asked about the
// credentials (our own failure, or a refusal before the call).
func verificationOutcome(v app.Verification, err error) (string, bool) {
	switch app.ErrorCode(err) {
	case "":
		if v.Limited {
			return VerificationLimited, true
		}
		return VerificationOK, true
	case app.EVerificationFailed:
		return VerificationRefused, true
	case app.EProviderUnavailable, app.EUnavailable:
		return VerificationUnavailable, true
	}
	return "", false
}

// countVerification counts a verification of provider's credentials that
// trigger asked for and that answered v and err.
func (s *Service) countVerification(provider app.Provider, trigger string, v app.Verification, err error) {
	if outcome, ok := verificationOutcome(v, err); ok {
		s.metrics.Verification(provider, trigger, outcome)
	}
}

// noMetrics counts nothing.
type noMetrics struct{}

func (noMetrics) Verification(app.Provider, string, string) {}

// AuditStore appends to the org's audit log the entries of attempts that
// stored nothing (a change's entry goes with the change, see Credentials);
// *db.DB implements it.
type AuditStore interface {
	AppendAudit(ctx context.Context, e app.AuditEntry) error
}

// OrgLocker runs fn while no other instance runs work of the same name for
// the same org; *db.DB implements it.
type OrgLocker interface {
	WithOrgLock(ctx context.Context, orgID, name string, fn func(context.Context) error) error
}

// Deps are the service's collaborators. Credentials, Verifiers (one per
// provider the server offers), Assistants, Mappings, Audit and Locker are
// required. Google, States and Sealer go together: without them Google
// Calendar's sign-in answers that it is not set up on this server.
type Deps struct {
	Credentials Credentials
	Verifiers   map[app.Provider]Verifier
	Assistants  VapiAssistants
	Mappings    MappingStore
	Audit       AuditStore
	Locker      OrgLocker
	Google      GoogleOAuth
	States      StateStore
	Sealer      Sealer
}

// Options tunes New.
type Options struct {
	// PublicURL is the app's public base URL; the assistants' webhook URL is
	// PublicURL + paths.Webhooks.
	PublicURL string
	// Logger receives a line per failed operation (never a secret); nil
	// discards.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// DefaultPhoneRegion is the region phone numbers without a country code
	// are read in (default "US").
	DefaultPhoneRegion string
	// Metrics counts every verification by provider, trigger and outcome
	// (nil: none are counted).
	Metrics Metrics
	// WebhookSecretGrace is how long a rotated-out Vapi webhook secret
	// keeps verifying webhooks (default DefaultWebhookSecretGrace).
	WebhookSecretGrace time.Duration
	// SharedWebhookSecret is the server's webhook secret for orgs without
	// one of their own (VAPI_WEBHOOK_SECRET): what a failed rotation of
	// such an org points its assistants back at. Without it such an undo
	// is reported as stuck.
	SharedWebhookSecret app.Secret
}

// SaveResult is the outcome of a successful save.
type SaveResult struct {
	Provider app.Provider
	// Status is the provider's new card state (masked details only).
	Status       app.Status
	LastVerified time.Time
	// Limited is set for credentials that are valid with limited scope (a
	// Resend sending-only key, an ElevenLabs key without User: Read).
	Limited bool
	// Detail says in plain words what the verification found.
	Detail string
	// InboundAssistantID and OutboundAssistantID are the org's assistants
	// (providers that manage assistants).
	InboundAssistantID, OutboundAssistantID string
	// MaskedPhone is the outbound number with its middle hidden (providers
	// whose config carries one).
	MaskedPhone string
}

// VerifyResult is the outcome of a successful re-test of stored credentials.
type VerifyResult struct {
	Provider   app.Provider
	Verified   bool
	VerifiedAt time.Time
	// Limited is set when the credentials work with limited scope; the
	// status's Warning says what they cannot do.
	Limited bool
	Detail  string
	Status  app.Status
}

// Service connects, tests and disconnects an org's provider credentials. It
// is safe for concurrent use.
type Service struct {
	creds      Credentials
	verifiers  map[app.Provider]Verifier
	assistants VapiAssistants
	mappings   MappingStore
	audits     AuditStore
	lock       OrgLocker
	google     GoogleOAuth
	states     StateStore
	sealer     Sealer

	webhookURL  string
	phoneRegion string
	now         func() time.Time
	log         *slog.Logger
	metrics     Metrics
	grace       time.Duration
	shared      app.Secret
}

// New returns a Service. It panics when a required field of deps is nil, or
// a provider has no verifier: that is a wiring bug, found at start-up.
func New(deps Deps, opts Options) *Service {
	var missing []string
	for name, v := range map[string]any{
		"Credentials": deps.Credentials, "Assistants": deps.Assistants, "Mappings": deps.Mappings,
		"Audit": deps.Audit, "Locker": deps.Locker,
	} {
		if v == nil {
			missing = append(missing, name)
		}
	}
	for _, p := range app.Providers {
		if deps.Verifiers[p] == nil {
			missing = append(missing, "Verifiers["+string(p)+"]")
		}
	}
	if deps.Google != nil && (deps.States == nil || deps.Sealer == nil) {
		missing = append(missing, "States and Sealer (with Google)")
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		panic("integrations: New without " + strings.Join(missing, ", "))
	}
	s := &Service{
		creds: deps.Credentials, verifiers: deps.Verifiers, assistants: deps.Assistants, mappings: deps.Mappings,
		audits: deps.Audit, lock: deps.Locker, google: deps.Google, states: deps.States, sealer: deps.Sealer,
		webhookURL:  strings.TrimRight(opts.PublicURL, "/") + paths.Webhooks,
		phoneRegion: opts.DefaultPhoneRegion,
		now:         opts.Now,
		log:         opts.Logger,
		metrics:     opts.Metrics,
		grace:       opts.WebhookSecretGrace,
		shared:      opts.SharedWebhookSecret,
	}
	if s.grace <= 0 {
		s.grace = DefaultWebhookSecretGrace
	}
	if s.metrics == nil {
		s.metrics = noMetrics{}
	}
	if s.phoneRegion == "" {
		s.phoneRegion = "US"
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "integrations")
	return s
}

// Statuses returns the org's status for each of the five providers, in
// app.Providers order, with masked details only. Any member of the org may
// read them.
func (s *Service) Statuses(ctx context.Context, p app.Principal) ([]app.Status, error) {
	if err := checkOrg(p); err != nil {
		return nil, err
	}
	return s.creds.Statuses(ctx, p.OrgID)
}

// Status returns the org's status for one provider; any member may read it.
func (s *Service) Status(ctx context.Context, p app.Principal, provider app.Provider) (app.Status, error) {
	if err := checkOrgAndProvider(p, provider); err != nil {
		return app.Status{}, err
	}
	all, err := s.creds.Statuses(ctx, p.OrgID)
	if err != nil {
		return app.Status{}, err
	}
	for _, st := range all {
		if st.Provider == provider {
			return st, nil
		}
	}
	return app.Status{Provider: provider}, nil
}

// Save checks in against the provider's description (field names as in its
// JSON body; national phone numbers read in Options.DefaultPhoneRegion),
// verifies the config with the provider and stores it, with the rows that
// belong to it, in one transaction, replacing whatever was stored. For a
// provider that manages assistants, the org's assistants are made sure of
// first (see saveWithAssistants). A config that carries an outbound number
// records it with the org's outbound agent. Errors as every save (see the
// package documentation); an OAuth provider answers EValidation (it
// connects through its sign-in).
func (s *Service) Save(ctx context.Context, p app.Principal, provider app.Provider, in app.Values) (SaveResult, error) {
	spec, err := s.keyedSpec(p, provider)
	if err != nil {
		return SaveResult{}, err
	}
	cfg, invalid := spec.Config(in, s.phoneRegion)
	return s.save(ctx, p, spec, invalid, func(context.Context) (app.Config, error) { return cfg, nil })
}

// Update changes the org's stored connection of provider: the fields in
// in replace the stored ones, every other field keeps its stored value,
// and a secret field given empty keeps the stored secret too (a form
// leaves it blank to keep it). The merged config is then checked, verified
// and stored exactly as Save does, with the same errors; nothing is stored
// unless all of it passes. It returns ENotConfigured when nothing usable is
// stored for provider.
func (s *Service) Update(ctx context.Context, p app.Principal, provider app.Provider, in app.Values) (SaveResult, error) {
	spec, err := s.keyedSpec(p, provider)
	if err != nil {
		return SaveResult{}, err
	}
	return s.save(ctx, p, spec, nil, func(ctx context.Context) (app.Config, error) {
		stored, err := s.creds.Get(ctx, p.OrgID, provider)
		if err != nil {
			return nil, err
		}
		merged := spec.Values(stored)
		for _, f := range spec.FormFields() {
			v, ok := in[f.Name]
			if !ok || (f.Secret() && strings.TrimSpace(v) == "") {
				continue
			}
			merged[f.Name] = v
		}
		return spec.Config(merged, s.phoneRegion)
	})
}

// keyedSpec is the spec of provider for a save by p: EUnauthorized without
// an org, EUnknownProvider, or EValidation for a provider that connects
// through its own sign-in.
func (s *Service) keyedSpec(p app.Principal, provider app.Provider) (*app.Spec, error) {
	if err := checkOrg(p); err != nil {
		return nil, err
	}
	spec, err := app.Describe(provider)
	if err != nil {
		return nil, err
	}
	if spec.OAuth {
		return nil, app.Errorf(app.EValidation,
			"%s is connected through its own sign-in, not with a key: open %s in a browser.", spec.Title, paths.IntegrationConnect(string(provider)))
	}
	return spec, nil
}

// save is the one audited save of Save and Update: invalid refuses it
// before anything else runs, config gives the config to verify and store.
func (s *Service) save(ctx context.Context, p app.Principal, spec *app.Spec, invalid error,
	config func(context.Context) (app.Config, error)) (SaveResult, error) {
	provider := spec.Provider
	var res SaveResult
	err := s.mutate(ctx, p, ActionSave, provider, invalid, func(ctx context.Context, now time.Time, ch *change) error {
		cfg, err := config(ctx)
		if err != nil {
			return err
		}
		v, err := s.verifiers[provider].Verify(ctx, p.OrgID, cfg)
		s.countVerification(provider, TriggerSave, v, err)
		if err != nil {
			return err
		}
		conn := app.Connection{OrgID: p.OrgID, Config: cfg, VerifiedAt: now, Limited: v.Limited, Warning: v.Warning()}
		res = SaveResult{Provider: provider, LastVerified: now, Limited: v.Limited, Detail: v.Detail}
		if n, ok := cfg.(app.OutboundNumberer); ok {
			conn.Outbound = &app.OutboundAgent{OrgID: p.OrgID, PhoneNumber: n.OutboundNumber()}
			res.MaskedPhone = app.MaskPhone(n.OutboundNumber())
		}
		if spec.ManagesAssistants {
			return s.saveWithAssistants(ctx, p, conn, &res, ch)
		}
		if res.Status, err = s.creds.Save(ctx, conn, ch.entry(res.Detail)); err != nil {
			return err
		}
		ch.stored()
		return nil
	})
	if err != nil {
		return SaveResult{}, err
	}
	return res, nil
}

// Editable is what the Update form of a stored connection shows: the
// stored value of every non-secret field, and each stored secret masked.
type Editable struct {
	// Values are the non-secret form fields by name, as stored.
	Values app.Values
	// Secrets are the stored secret fields by name, masked (never a
	// secret).
	Secrets map[string]string
}

// Editable returns what the Update form of the org's stored provider
// connection shows (see Editable). It requires an admin (EForbidden), and
// returns ENotConfigured when nothing usable is stored and EValidation for
// a provider that connects through its own sign-in.
func (s *Service) Editable(ctx context.Context, p app.Principal, provider app.Provider) (Editable, error) {
	spec, err := s.keyedSpec(p, provider)
	if err != nil {
		return Editable{}, err
	}
	if !p.IsAdmin() {
		return Editable{}, errNotAdmin(provider)
	}
	cfg, err := s.creds.Get(ctx, p.OrgID, provider)
	if err != nil {
		return Editable{}, err
	}
	vals, masked := spec.Values(cfg), spec.Masked(cfg)
	out := Editable{Values: app.Values{}, Secrets: map[string]string{}}
	for _, f := range spec.FormFields() {
		switch {
		case f.Secret() && masked[f.Name] != "":
			out.Secrets[f.Name] = masked[f.Name]
		case !f.Secret() && vals[f.Name] != "":
			out.Values[f.Name] = vals[f.Name]
		}
	}
	return out, nil
}

// Assistants returns the org's assistant mappings (inbound first); any
// member may read them.
func (s *Service) Assistants(ctx context.Context, p app.Principal) ([]app.AssistantMapping, error) {
	if err := checkOrg(p); err != nil {
		return nil, err
	}
	ms, err := s.mappings.AssistantMappings(ctx, p.OrgID)
	if err != nil {
		return nil, app.AsError(err)
	}
	slices.SortFunc(ms, func(a, b app.AssistantMapping) int { return strings.Compare(string(a.Role), string(b.Role)) })
	return ms, nil
}

// WebhookURL is the address BYOC's assistants send their webhooks to.
func (s *Service) WebhookURL() string { return s.webhookURL }

// Verify re-tests the org's stored credentials for provider with the
// provider and records the outcome: last_verified_at on success, the
// provider's reason as verification_error on refusal (the card then needs
// attention). It requires an admin. It returns ENotConfigured when nothing
// usable is stored (also for a row that can no longer be decrypted),
// EVerificationFailed when the provider refuses the credentials (after
// recording that) and EProviderUnavailable when the provider cannot be
// reached (nothing is recorded: the credentials are not known to be bad).
func (s *Service) Verify(ctx context.Context, p app.Principal, provider app.Provider) (VerifyResult, error) {
	if err := checkOrgAndProvider(p, provider); err != nil {
		return VerifyResult{}, err
	}
	if app.MustDescribe(provider).OAuth && !s.GoogleReady() {
		return VerifyResult{}, errGoogleNotSetUp()
	}
	var res VerifyResult
	err := s.mutate(ctx, p, ActionVerify, provider, nil, func(ctx context.Context, now time.Time, ch *change) error {
		var err error
		res, err = s.check(ctx, p.OrgID, provider, TriggerTest, now, ch)
		return err
	})
	if err != nil {
		return VerifyResult{}, err
	}
	return res, nil
}

// Recheck is the background re-verification of the org's stored
// credentials for provider: the same check and record as Verify (an admin's
// Test connection), counted with TriggerScheduled and audited as the
// system's (no actor), without a principal. It returns what Verify would;
// a provider this server cannot check (Google Calendar without Google
// set up) is ENotConfigured, unaudited, as Verify refuses it.
func (s *Service) Recheck(ctx context.Context, orgID string, provider app.Provider) (VerifyResult, error) {
	system := app.Principal{OrgID: orgID}
	if err := checkOrgAndProvider(system, provider); err != nil {
		return VerifyResult{}, err
	}
	if app.MustDescribe(provider).OAuth && !s.GoogleReady() {
		return VerifyResult{}, errGoogleNotSetUp()
	}
	ch := newChange(system, ActionVerify, provider)
	res, err := s.check(ctx, orgID, provider, TriggerScheduled, s.now().UTC().Truncate(time.Microsecond), ch)
	if err := s.finish(ctx, ch, err); err != nil {
		return VerifyResult{}, err
	}
	return res, nil
}

// check re-tests the org's stored credentials for provider, which trigger
// asked for at now, and records the outcome (see Verify) with ch's entry.
func (s *Service) check(ctx context.Context, orgID string, provider app.Provider, trigger string, now time.Time,
	ch *change) (VerifyResult, error) {
	// The stored credentials, not a cached copy that another instance's
	// save may have replaced: the outcome is recorded against the very
	// credentials checked, or not at all.
	cfg, version, err := s.creds.ForCheck(ctx, orgID, provider)
	if err != nil {
		return VerifyResult{}, err
	}
	if app.MustDescribe(provider).OAuth {
		// Checking an OAuth grant may refresh its token, which stores the
		// grant again: that is this check's own change, not a replacement.
		version = time.Time{}
	}
	v, err := s.verifiers[provider].Verify(ctx, orgID, cfg)
	s.countVerification(provider, trigger, v, err)
	switch app.ErrorCode(err) {
	case "":
	case app.EVerificationFailed:
		if _, rerr := s.creds.RecordCheckOf(ctx, orgID, provider, version, now, app.Verification{}, err, ch.failure(err)); rerr != nil {
			return VerifyResult{}, rerr
		}
		ch.stored()
		return VerifyResult{}, err
	default:
		return VerifyResult{}, err
	}
	st, err := s.creds.RecordCheckOf(ctx, orgID, provider, version, now, v, nil, ch.entry(v.Detail))
	if err != nil {
		return VerifyResult{}, err
	}
	ch.stored()
	return VerifyResult{Provider: provider, Verified: true, VerifiedAt: now, Limited: v.Limited, Detail: v.Detail, Status: st}, nil
}

// Disconnect deletes the org's stored credentials for provider, with the
// rows that belong to them, in one transaction, and returns the provider's
// new status (not connected). For a provider that manages assistants the
// org's assistant mappings go and its outbound assistant is forgotten
// (keeping the outbound number); the assistants themselves stay in the
// org's account. An OAuth provider's authorization is first revoked at the
// provider (see revokeGrant). It requires an admin. It returns
// ENotConfigured when nothing was stored.
func (s *Service) Disconnect(ctx context.Context, p app.Principal, provider app.Provider) (app.Status, error) {
	if err := checkOrgAndProvider(p, provider); err != nil {
		return app.Status{}, err
	}
	spec := app.MustDescribe(provider)
	if spec.OAuth && !s.GoogleReady() {
		// The grant could not be revoked: it stays until the server can.
		return app.Status{}, errGoogleNotSetUp()
	}
	err := s.mutate(ctx, p, ActionDisconnect, provider, nil, func(ctx context.Context, _ time.Time, ch *change) error {
		detail := spec.Title + " disconnected."
		if spec.OAuth {
			note, err := s.revokeGrant(ctx, p.OrgID, provider)
			if err != nil {
				return err
			}
			detail += note
		}
		del := func(ctx context.Context) error {
			if err := s.creds.Delete(ctx, p.OrgID, provider, ch.entry(detail)); err != nil {
				return err
			}
			ch.stored()
			return nil
		}
		if spec.ManagesAssistants {
			// Under the lock of the saves, so a save running meanwhile
			// cannot re-create mappings for a key that is gone.
			return s.lock.WithOrgLock(ctx, p.OrgID, assistantsLockName, del)
		}
		return del(ctx)
	})
	if err != nil {
		return app.Status{}, err
	}
	return app.Status{Provider: provider}, nil
}

// SetWebhookHMACOnly sets whether the org's Vapi webhooks are accepted only
// with an HMAC signature of their body and time (the static X-Vapi-Secret
// and bearer credentials then being refused), and returns Vapi's new status.
// It requires an admin and is audited like every change. hmacOnly nil is
// EValidation (field "hmacOnly"); it returns ENotConfigured when the org has
// no Vapi credentials stored.
func (s *Service) SetWebhookHMACOnly(ctx context.Context, p app.Principal, hmacOnly *bool) (app.Status, error) {
	if err := checkOrg(p); err != nil {
		return app.Status{}, err
	}
	var invalid error
	if hmacOnly == nil {
		invalid = app.ValidationError(map[string]string{"hmacOnly": "Say whether Vapi's webhooks must be HMAC-signed: true or false."})
	}
	var st app.Status
	err := s.mutate(ctx, p, ActionWebhookSigning, app.Vapi, invalid, func(ctx context.Context, _ time.Time, ch *change) error {
		var err error
		if st, err = s.creds.SetWebhookHMACOnly(ctx, p.OrgID, *hmacOnly, ch.entry(WebhookSigningDetail(*hmacOnly))); err != nil {
			return err
		}
		ch.stored()
		return nil
	})
	if err != nil {
		return app.Status{}, err
	}
	return st, nil
}

// WebhookSigningDetail says in plain words which Vapi webhooks are accepted.
func WebhookSigningDetail(hmacOnly bool) string {
	if hmacOnly {
		return "Vapi webhooks are accepted only with an HMAC signature."
	}
	return "Vapi webhooks are accepted with an HMAC signature or the webhook secret."
}

// change is the audit entry of one audited change (see mutate). The store
// write that makes the change is handed the entry (entry for a success,
// failure for a failure it records, such as a check the provider refused)
// and appends it in its own transaction; once that write answered nil,
// stored records that the entry is in the log, so no second one is
// written.
type change struct {
	base    app.AuditEntry
	written bool
}

// newChange starts the entry of p's action on provider.
func newChange(p app.Principal, action string, provider app.Provider) *change {
	return &change{base: app.AuditEntry{OrgID: p.OrgID, ActorID: p.UserID, Action: action, Provider: provider}}
}

// entry is the change's entry as a success with detail.
func (c *change) entry(detail string) app.AuditEntry {
	e := c.base
	e.Outcome, e.Detail = app.OutcomeSuccess, detail
	return e
}

// failure is the change's entry as a failure with err's user-facing words
// (see auditDetail).
func (c *change) failure(err error) app.AuditEntry {
	e := c.base
	e.Outcome, e.Detail = app.OutcomeFailure, auditDetail(app.AsError(err))
	return e
}

// stored records that a store write committed the change's entry.
func (c *change) stored() { c.written = true }

// mutate runs one audited change: it checks that p is an admin, returns
// invalid (a validation error) when it is not nil, and otherwise runs fn
// with the time of the change and ch, the change's audit entry, which the
// store write that makes the change stores with it (see change). An
// attempt whose entry no write stored (a refusal, or a failure that stored
// nothing) is then written to the audit log on its own (see finish).
func (s *Service) mutate(ctx context.Context, p app.Principal, action string, provider app.Provider,
	invalid error, fn func(ctx context.Context, now time.Time, ch *change) error) error {
	ch := newChange(p, action, provider)
	var err error
	switch {
	case !p.IsAdmin():
		err = errNotAdmin(provider)
	case invalid != nil:
		err = invalid
	default:
		err = fn(ctx, s.now().UTC().Truncate(time.Microsecond), ch)
	}
	return s.finish(ctx, ch, err)
}

// finish ends the audited change ch, which answered err: unless a store
// write stored its entry with the change, the entry (err's failure, or a
// success) is appended now, and a failure is logged. It returns err as an
// *app.Error.
func (s *Service) finish(ctx context.Context, ch *change, err error) error {
	if err != nil {
		err = app.AsError(err)
	}
	if !ch.written {
		e := ch.entry("")
		if err != nil {
			e = ch.failure(err)
		}
		s.audit(ctx, e)
	}
	if err != nil {
		p := app.Principal{OrgID: ch.base.OrgID, UserID: ch.base.ActorID}
		s.logFailure(ctx, p, ch.base.Action, ch.base.Provider, err)
	}
	return err
}

// audit appends e, the entry of an attempt that stored nothing. A failing
// write is logged at error level and does not change the answer: nothing
// was stored, and the attempt has been refused (or failed) either way.
func (s *Service) audit(ctx context.Context, e app.AuditEntry) {
	// The entry is written even when the request's time is up: then in
	// the background, so that a slow database never holds the answer past
	// the request's deadline.
	written := make(chan struct{})
	go func() {
		defer close(written)
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if aerr := s.audits.AppendAudit(actx, e); aerr != nil {
			s.log.ErrorContext(actx, "audit log write failed", "org_id", e.OrgID, "user_id", e.ActorID,
				"action", e.Action, "provider", e.Provider, "outcome", e.Outcome, "err", aerr)
		}
	}()
	select {
	case <-written:
	case <-ctx.Done():
	}
}

// auditDetail is what the audit log keeps of a failure: the names of the
// invalid fields (never their values) or the user-facing message.
func auditDetail(err error) string {
	if app.ErrorCode(err) == app.EValidation {
		if fields := app.ErrorFields(err); len(fields) > 0 {
			names := make([]string, 0, len(fields))
			for k := range fields {
				names = append(names, k)
			}
			slices.Sort(names)
			return "invalid input: " + strings.Join(names, ", ")
		}
	}
	return app.ErrorMessage(err)
}

// logFailure logs a failed change: our own faults at error level with
// their cause; a provider that cannot be used (down, slow, limiting, which
// a tenant can bring about with a key of its choosing) at warning level,
// naming it; any other refusal at info level.
func (s *Service) logFailure(ctx context.Context, p app.Principal, action string, provider app.Provider, err error) {
	attrs := []any{"org_id", p.OrgID, "user_id", p.UserID, "action", action, "provider", provider,
		"code", app.ErrorCode(err)}
	switch app.ErrorCode(err) {
	case app.EInternal:
		s.log.ErrorContext(ctx, "integration change failed", append(attrs, "err", err)...)
	case app.EProviderUnavailable:
		s.log.WarnContext(ctx, "provider unavailable", append(attrs, "reason", app.ErrorMessage(err))...)
	default:
		s.log.InfoContext(ctx, "integration change refused", append(attrs, "reason", app.ErrorMessage(err))...)
	}
}

func checkOrg(p app.Principal) error {
	if p.OrgID == "" {
		return app.Errorf(app.EUnauthorized, "Please sign in.")
	}
	return nil
}

func checkOrgAndProvider(p app.Principal, provider app.Provider) error {
	if err := checkOrg(p); err != nil {
		return err
	}
	_, err := app.ParseProvider(string(provider))
	return err
}
