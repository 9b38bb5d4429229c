// Package integrations is the one service the dashboard and the JSON API call
// to connect, test and disconnect an org's provider credentials. A save
// validates the input, verifies it with the provider, and only then stores it
// through the credential service; saving Vapi credentials also makes sure the
// org has its inbound and outbound assistants in its own Vapi account. Every
// change, and every refused attempt, is written to the org's audit log.
//
// Errors are *app.Error values: EForbidden (a member who is not an admin tried
// to change credentials), EUnauthorized (no org in the principal),
// EValidation (bad input, with per-field messages keyed by the JSON field
// names), EVerificationFailed (the provider refused the credentials),
// EProviderUnavailable (the provider could not be reached or timed out),
// ENotConfigured (nothing stored), EUnknownProvider and EInternal. No error,
// result, log line or audit entry carries a secret.
//
// Every save (SaveVapi, SaveTwilio, SaveResend, SaveElevenLabs) keeps one
// promise: it requires an admin, validates the trimmed input, verifies it
// with the provider, and only then writes. Everything a save stores in the
// database (the credentials and, for Vapi and Twilio, the assistant mappings
// and the outbound agent) is written last, in one transaction, so when a
// save returns an error nothing of it is stored and the org's previous
// credentials for that provider are still stored and working. A save returns EUnauthorized
// when the principal has no org, EForbidden for a non-admin, EValidation
// with per-field messages keyed by the input's JSON names,
// EVerificationFailed when the provider refuses the credentials,
// EProviderUnavailable when it cannot be reached or times out, and
// EInternal.
package integrations

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"byoc/app"
	"byoc/app/providers"
	"byoc/app/providers/google"
	"byoc/app/providers/vapi"
)

// Audit actions written by the service.
const (
	ActionSave       = "credentials.save"
	ActionVerify     = "credentials.verify"
	ActionDisconnect = "credentials.disconnect"
)

// WebhookPath is where Vapi sends the events of the assistants the service
// creates, relative to Options.PublicURL.
const WebhookPath = "/api/webhooks/vapi"

// Credentials is what the service needs of the credential service;
// *credentials.Service implements it.
type Credentials interface {
	Save(ctx context.Context, orgID string, cfg app.Config, verifiedAt time.Time) error
	SaveWith(ctx context.Context, orgID string, cfg app.Config, verifiedAt time.Time,
		store func(ctx context.Context, rec app.CredentialRecord) error) error
	Get(ctx context.Context, orgID string, p app.Provider) (app.Config, error)
	Statuses(ctx context.Context, orgID string) ([]app.Status, error)
	Disconnect(ctx context.Context, orgID string, p app.Provider) error
	RecordVerification(ctx context.Context, orgID string, p app.Provider, at time.Time, verificationErr error) error
}

// VapiClient verifies Vapi keys and creates and updates assistants;
// *vapi.Client implements it.
type VapiClient interface {
	Verify(ctx context.Context, cfg app.VapiConfig) (providers.Verification, error)
	CreateAssistant(ctx context.Context, cfg app.VapiConfig, spec vapi.AssistantSpec) (vapi.Assistant, error)
	UpdateAssistantServer(ctx context.Context, cfg app.VapiConfig, id string, server vapi.Server) (vapi.Assistant, error)
}

// TwilioClient verifies Twilio credentials; *twilio.Client implements it.
type TwilioClient interface {
	Verify(ctx context.Context, cfg app.TwilioConfig) (providers.Verification, error)
}

// ResendClient verifies Resend keys; *resend.Client implements it.
type ResendClient interface {
	Verify(ctx context.Context, cfg app.ResendConfig) (providers.Verification, error)
}

// ElevenLabsClient verifies ElevenLabs keys; *elevenlabs.Client implements it.
type ElevenLabsClient interface {
	Verify(ctx context.Context, cfg app.ElevenLabsConfig) (providers.Verification, error)
}

// GoogleCalendar tests and disconnects an org's Google Calendar connection,
// which is made through Google's sign-in rather than with a key;
// *google.Service implements it. Both methods check the principal and write
// the audit entry themselves.
type GoogleCalendar interface {
	Verify(ctx context.Context, p app.Principal) (google.VerifyResult, error)
	Disconnect(ctx context.Context, p app.Principal) error
}

// AssistantStore keeps the org's assistant mappings and outbound agent set-up,
// and stores them together with the sealed credentials they belong to in one
// transaction; *db.DB implements it.
type AssistantStore interface {
	AssistantMappings(ctx context.Context, orgID string) ([]app.AssistantMapping, error)
	DeleteAssistantMappings(ctx context.Context, orgID string) ([]string, error)
	ClearOutboundAssistant(ctx context.Context, orgID string) error
	SaveVapiConnection(ctx context.Context, rec app.CredentialRecord, mappings []app.AssistantMapping, agent app.OutboundAgent) error
	SaveTwilioConnection(ctx context.Context, rec app.CredentialRecord, agent app.OutboundAgent) error
}

// AuditStore appends to the org's audit log; *db.DB implements it.
type AuditStore interface {
	AppendAudit(ctx context.Context, e app.AuditEntry) error
}

// OrgLocker runs fn while no other instance runs work of the same name for
// the same org; *db.DB implements it.
type OrgLocker interface {
	WithOrgLock(ctx context.Context, orgID, name string, fn func(context.Context) error) error
}

// Deps are the service's collaborators. Every field is required except
// Google: without it, testing or disconnecting Google Calendar answers that
// it is not set up on this server.
type Deps struct {
	Credentials Credentials
	Vapi        VapiClient
	Twilio      TwilioClient
	Resend      ResendClient
	ElevenLabs  ElevenLabsClient
	Google      GoogleCalendar
	Assistants  AssistantStore
	Audit       AuditStore
	Locker      OrgLocker
}

// Options tunes New.
type Options struct {
	// PublicURL is the app's public base URL; the assistants' webhook URL is
	// PublicURL + WebhookPath.
	PublicURL string
	// Logger receives a line per failed operation (never a secret); nil
	// discards.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// DefaultPhoneRegion is the region phone numbers without a country code
	// are read in (default "US").
	DefaultPhoneRegion string
	// Changed, when set, is called after every attempted change of an org's
	// key-based provider connection (whether or not it succeeded), so caches
	// on this instance that the database's invalidation notice would reach
	// only a moment later (the webhook routing) are dropped at once. Google
	// Calendar's test and disconnect, run by the Google service, do not call
	// it.
	Changed func(orgID string, provider app.Provider)
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
	// InboundAssistantID and OutboundAssistantID are the org's Vapi
	// assistants (Vapi only).
	InboundAssistantID, OutboundAssistantID string
	// MaskedPhone is the SMS number with its middle hidden (Twilio only).
	MaskedPhone string
}

// VerifyResult is the outcome of a successful re-test of stored credentials.
type VerifyResult struct {
	Provider   app.Provider
	Verified   bool
	VerifiedAt time.Time
	Detail     string
	Status     app.Status
}

// Service connects, tests and disconnects an org's provider credentials. It
// is safe for concurrent use.
type Service struct {
	creds      Credentials
	vapi       VapiClient
	twilio     TwilioClient
	resend     ResendClient
	elevenlabs ElevenLabsClient
	google     GoogleCalendar
	assistants AssistantStore
	audits     AuditStore
	lock       OrgLocker

	webhookURL  string
	phoneRegion string
	changed     func(orgID string, provider app.Provider)
	now         func() time.Time
	log         *slog.Logger
}

// New returns a Service. It panics when a field of deps is nil: that is a
// wiring bug, found at start-up.
func New(deps Deps, opts Options) *Service {
	var missing []string
	for name, v := range map[string]any{
		"Credentials": deps.Credentials, "Vapi": deps.Vapi, "Twilio": deps.Twilio, "Resend": deps.Resend,
		"ElevenLabs": deps.ElevenLabs, "Assistants": deps.Assistants, "Audit": deps.Audit, "Locker": deps.Locker,
	} {
		if v == nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		panic("integrations: New without " + strings.Join(missing, ", "))
	}
	s := &Service{
		creds: deps.Credentials, vapi: deps.Vapi, twilio: deps.Twilio, resend: deps.Resend,
		elevenlabs: deps.ElevenLabs, google: deps.Google, assistants: deps.Assistants, audits: deps.Audit, lock: deps.Locker,
		webhookURL:  strings.TrimRight(opts.PublicURL, "/") + WebhookPath,
		phoneRegion: opts.DefaultPhoneRegion,
		changed:     opts.Changed,
		now:         opts.Now,
		log:         opts.Logger,
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
// read them. It returns EUnauthorized when p has no org and EInternal when
// the store fails.
func (s *Service) Statuses(ctx context.Context, p app.Principal) ([]app.Status, error) {
	if err := checkOrg(p); err != nil {
		return nil, err
	}
	return s.creds.Statuses(ctx, p.OrgID)
}

// Status returns the org's status for one provider; errors as Statuses, and
// EUnknownProvider for a provider outside the five.
func (s *Service) Status(ctx context.Context, p app.Principal, provider app.Provider) (app.Status, error) {
	if err := checkOrg(p); err != nil {
		return app.Status{}, err
	}
	if _, err := app.ParseProvider(string(provider)); err != nil {
		return app.Status{}, err
	}
	return s.status(ctx, p.OrgID, provider)
}

func (s *Service) status(ctx context.Context, orgID string, provider app.Provider) (app.Status, error) {
	all, err := s.creds.Statuses(ctx, orgID)
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

// statusAfterWrite reads the provider's status after a write that already
// succeeded. A failed read does not undo the write, so it is logged and a
// status built from what the service knows is returned instead.
func (s *Service) statusAfterWrite(ctx context.Context, orgID string, provider app.Provider, fallback app.Status) app.Status {
	st, err := s.status(ctx, orgID, provider)
	if err != nil {
		s.log.WarnContext(ctx, "reading the status after a write failed", "org_id", orgID, "provider", provider, "err", err)
		return fallback
	}
	return st
}

// Verify re-tests the org's stored credentials for provider with the
// provider and records the outcome: last_verified_at on success, the
// provider's reason as verification_error on refusal (the card then needs
// attention). It requires an admin. It returns EForbidden, ENotConfigured
// when nothing usable is stored (also for a row that can no longer be
// decrypted), EVerificationFailed when the provider refuses the credentials
// (after recording that), EProviderUnavailable when the provider cannot be
// reached (nothing is recorded: the credentials are not known to be bad),
// EUnknownProvider and EInternal.
//
// Google Calendar is tested by the Google service (Deps.Google), which
// refreshes the access token when needed and audits the test itself; it
// returns ENotConfigured also when the server has no Google service.
func (s *Service) Verify(ctx context.Context, p app.Principal, provider app.Provider) (VerifyResult, error) {
	if err := checkOrgAndProvider(p, provider); err != nil {
		return VerifyResult{}, err
	}
	if provider == app.GoogleCalendar {
		return s.verifyGoogle(ctx, p)
	}
	var res VerifyResult
	err := s.mutate(ctx, p, ActionVerify, provider, nil, func(ctx context.Context, now time.Time) (string, error) {
		cfg, err := s.creds.Get(ctx, p.OrgID, provider)
		if err != nil {
			return "", err
		}
		v, err := s.verifyStored(ctx, cfg)
		switch app.ErrorCode(err) {
		case "":
		case app.EVerificationFailed:
			if rerr := s.creds.RecordVerification(ctx, p.OrgID, provider, now, err); rerr != nil {
				return "", rerr
			}
			return "", err
		default:
			return "", err
		}
		if err := s.creds.RecordVerification(ctx, p.OrgID, provider, now, nil); err != nil {
			return "", err
		}
		res = VerifyResult{
			Provider: provider, Verified: true, VerifiedAt: now, Detail: v.Detail,
			Status: s.statusAfterWrite(ctx, p.OrgID, provider,
				app.Status{Provider: provider, Connected: true, LastVerified: &now}),
		}
		return v.Detail, nil
	})
	if err != nil {
		return VerifyResult{}, err
	}
	return res, nil
}

// verifyStored asks the provider about a stored config.
func (s *Service) verifyStored(ctx context.Context, cfg app.Config) (providers.Verification, error) {
	switch c := cfg.(type) {
	case app.VapiConfig:
		return s.vapi.Verify(ctx, c)
	case app.TwilioConfig:
		return s.twilio.Verify(ctx, c)
	case app.ResendConfig:
		return s.resend.Verify(ctx, c)
	case app.ElevenLabsConfig:
		return s.elevenlabs.Verify(ctx, c)
	}
	return providers.Verification{}, app.Internal(fmt.Errorf("integrations: no verifier for %T", cfg))
}

// Disconnect deletes the org's stored credentials for provider and returns
// the provider's new status (not connected). For Vapi it also removes the
// org's assistant mappings and forgets its outbound assistant (keeping the
// outbound phone number); the assistants themselves stay in the org's Vapi
// account. For Google Calendar the Google service (Deps.Google) first
// revokes the authorization at Google, then deletes it, and audits the
// disconnect itself. It requires an admin. It returns EForbidden,
// ENotConfigured when nothing was stored (and for Google Calendar when the
// server has no Google service), EUnknownProvider and EInternal.
func (s *Service) Disconnect(ctx context.Context, p app.Principal, provider app.Provider) (app.Status, error) {
	if err := checkOrgAndProvider(p, provider); err != nil {
		return app.Status{}, err
	}
	if provider == app.GoogleCalendar {
		return s.disconnectGoogle(ctx, p)
	}
	var st app.Status
	err := s.mutate(ctx, p, ActionDisconnect, provider, nil, func(ctx context.Context, _ time.Time) (string, error) {
		if provider != app.Vapi {
			if err := s.creds.Disconnect(ctx, p.OrgID, provider); err != nil {
				return "", err
			}
		} else {
			// Under the same lock as SaveVapi, so a save running meanwhile
			// cannot re-create mappings for a key that is gone.
			err := s.lock.WithOrgLock(ctx, p.OrgID, vapiLockName, func(ctx context.Context) error {
				derr := s.creds.Disconnect(ctx, p.OrgID, app.Vapi)
				if derr != nil && app.ErrorCode(derr) != app.ENotConfigured {
					return derr
				}
				// Also without stored credentials: mappings left over by an
				// interrupted save are cleaned up.
				if _, err := s.assistants.DeleteAssistantMappings(ctx, p.OrgID); err != nil {
					return err
				}
				if err := s.assistants.ClearOutboundAssistant(ctx, p.OrgID); err != nil {
					return err
				}
				return derr
			})
			if err != nil {
				return "", err
			}
		}
		st = s.statusAfterWrite(ctx, p.OrgID, provider, app.Status{Provider: provider})
		return provider.Title() + " disconnected.", nil
	})
	if err != nil {
		return app.Status{}, err
	}
	return st, nil
}

// verifyGoogle tests the org's Google Calendar connection with the Google
// service and reports it like the other providers' tests. The Google service
// writes the audit entry.
func (s *Service) verifyGoogle(ctx context.Context, p app.Principal) (VerifyResult, error) {
	if s.google == nil {
		return VerifyResult{}, errGoogleNotSetUp()
	}
	r, err := s.google.Verify(ctx, p)
	if err != nil {
		return VerifyResult{}, app.AsError(err)
	}
	at := r.VerifiedAt
	return VerifyResult{
		Provider: app.GoogleCalendar, Verified: true, VerifiedAt: at, Detail: r.Detail,
		Status: s.statusAfterWrite(ctx, p.OrgID, app.GoogleCalendar, app.Status{Provider: app.GoogleCalendar,
			Connected: true, LastVerified: &at, Details: map[string]string{"email": r.Email}}),
	}, nil
}

// disconnectGoogle revokes and deletes the org's Google Calendar connection
// with the Google service and returns the provider's new status. The Google
// service writes the audit entry.
func (s *Service) disconnectGoogle(ctx context.Context, p app.Principal) (app.Status, error) {
	if s.google == nil {
		return app.Status{}, errGoogleNotSetUp()
	}
	if err := s.google.Disconnect(ctx, p); err != nil {
		return app.Status{}, app.AsError(err)
	}
	return s.statusAfterWrite(ctx, p.OrgID, app.GoogleCalendar, app.Status{Provider: app.GoogleCalendar}), nil
}

// errGoogleNotSetUp answers a test or disconnect of Google Calendar on a
// server without a Google service.
func errGoogleNotSetUp() error {
	return app.Errorf(app.ENotConfigured, "Google Calendar is not set up on this server.")
}

// mutate runs one audited change: it checks that p is an admin, returns
// invalid (a validation error) when it is not nil, and otherwise runs fn
// with the time of the change. Whatever happens is written to the audit log
// with fn's detail (on success) or the error's user-facing message.
func (s *Service) mutate(ctx context.Context, p app.Principal, action string, provider app.Provider,
	invalid error, fn func(ctx context.Context, now time.Time) (string, error)) error {
	var detail string
	var err error
	switch {
	case !p.IsAdmin():
		err = app.Errorf(app.EForbidden, "Only an admin of the organization can change its %s connection.", provider.Title())
	case invalid != nil:
		err = invalid
	default:
		detail, err = fn(ctx, s.now().UTC().Truncate(time.Microsecond))
		if s.changed != nil {
			s.changed(p.OrgID, provider)
		}
	}
	if err != nil {
		err = app.AsError(err)
	}
	s.audit(ctx, p, action, provider, detail, err)
	if err != nil {
		s.logFailure(ctx, p, action, provider, err)
	}
	return err
}

// audit appends one entry. A failing audit write is logged at error level
// and does not fail the operation: the change has already happened (or been
// refused) at the provider and in the credential store, and reporting it as
// failed would invite a retry that changes nothing but the log.
func (s *Service) audit(ctx context.Context, p app.Principal, action string, provider app.Provider, detail string, err error) {
	e := app.AuditEntry{
		OrgID: p.OrgID, ActorID: p.UserID, Action: action, Provider: provider,
		Outcome: app.OutcomeSuccess, Detail: detail,
	}
	if err != nil {
		e.Outcome = app.OutcomeFailure
		e.Detail = auditDetail(err)
	}
	// The entry is written even when the request was cancelled meanwhile.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if aerr := s.audits.AppendAudit(actx, e); aerr != nil {
		s.log.ErrorContext(ctx, "audit log write failed", "org_id", p.OrgID, "user_id", p.UserID,
			"action", action, "provider", provider, "outcome", e.Outcome, "err", aerr)
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

func (s *Service) logFailure(ctx context.Context, p app.Principal, action string, provider app.Provider, err error) {
	attrs := []any{"org_id", p.OrgID, "user_id", p.UserID, "action", action, "provider", provider,
		"code", app.ErrorCode(err)}
	if app.ErrorCode(err) == app.EInternal {
		s.log.ErrorContext(ctx, "integration change failed", append(attrs, "err", err)...)
		return
	}
	s.log.InfoContext(ctx, "integration change refused", attrs...)
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
