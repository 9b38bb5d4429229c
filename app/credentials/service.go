// Package credentials is the credential service every front door shares: it
// stores an org's provider configs sealed by the keyring, hands them back
// decrypted and typed, reports each provider's connection status with masked
// details, and keeps both in a local cache that every write (local, or
// announced by another instance through the database) invalidates.
//
// Errors are *app.Error values: ENotConfigured when an org has nothing usable
// stored for a provider (including a row that can no longer be decrypted),
// EUnknownProvider for a provider outside the five, and EInternal when the
// store fails. No error, log line or status ever contains a secret.
package credentials

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"byoc/app"
	"byoc/app/keyring"
)

// Store is what the service needs from the database; *db.DB implements it.
// Every method works within the one org it is given.
type Store interface {
	UpsertCredential(ctx context.Context, rec app.CredentialRecord) (app.CredentialRecord, error)
	GetCredential(ctx context.Context, orgID string, p app.Provider) (app.CredentialRecord, error)
	ListCredentials(ctx context.Context, orgID string) ([]app.CredentialRecord, error)
	DeleteCredential(ctx context.Context, orgID string, p app.Provider) (bool, error)
	RecordVerification(ctx context.Context, orgID string, p app.Provider, at time.Time, verificationError string) error
}

// Default cache lifetimes.
const (
	DefaultConfigTTL = 5 * time.Minute
	DefaultStatusTTL = time.Minute
)

// Options tunes New. The zero value gives the default lifetimes and no logging.
type Options struct {
	// ConfigTTL is how long a decrypted config stays cached (default 5 min).
	ConfigTTL time.Duration
	// StatusTTL is how long an org's statuses stay cached (default 1 min).
	StatusTTL time.Duration
	// Logger receives warnings about undecryptable rows and a line per
	// write; never a secret. Nil discards.
	Logger *slog.Logger
}

// ErrUndecryptable is in the chain of the error Get returns for a stored row
// that cannot be opened (its key is no longer configured, it was altered, or
// it belongs to another org or provider); errors.Is finds it.
var ErrUndecryptable = errors.New("credentials: stored credentials cannot be decrypted")

// undecryptableStatus is what Statuses shows for such a row.
const undecryptableStatus = "Stored credentials can no longer be decrypted (encryption key not available). Reconnect to fix."

// Service is the credential service. It is safe for concurrent use.
type Service struct {
	store Store
	kr    *keyring.Keyring
	log   *slog.Logger
	cache *cacheLayer
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
	return &Service{store: store, kr: kr, log: log.With("component", "credentials"),
		cache: newCacheLayer(opts.ConfigTTL, opts.StatusTTL)}
}

// Save encrypts cfg and stores it as the org's credentials for cfg's
// provider, replacing what was there, active and marked as verified at
// verifiedAt (a zero time means never verified) with no verification error.
// The org's cached config and statuses are dropped here, and on every other
// instance through the database's notification. cfg may be a value or a
// pointer; nil or a type the service does not know is an EInternal error, and
// so is a store failure.
func (s *Service) Save(ctx context.Context, orgID string, cfg app.Config, verifiedAt time.Time) error {
	return s.SaveWith(ctx, orgID, cfg, verifiedAt, func(ctx context.Context, rec app.CredentialRecord) error {
		_, err := s.store.UpsertCredential(ctx, rec)
		return err
	})
}

// SaveWith is Save for a change that stores more than the credentials: it
// seals cfg into the record Save would store and hands it to store, which
// must write it as Store.UpsertCredential does, together with the change's
// other rows, in one transaction that also publishes the cache invalidation
// of the org's provider. Afterwards the org's cached config and statuses are
// dropped here, whether or not store succeeded. Errors as Save; domain
// errors of store pass through unchanged, anything else is EInternal.
func (s *Service) SaveWith(ctx context.Context, orgID string, cfg app.Config, verifiedAt time.Time,
	store func(ctx context.Context, rec app.CredentialRecord) error) error {
	cfg, err := normalize(cfg)
	if err != nil {
		return app.Internal(err)
	}
	p := cfg.Provider()
	ct, err := seal(s.kr, orgID, cfg)
	if err != nil {
		return app.Internal(fmt.Errorf("credentials: seal %s config: %w", p, err))
	}
	rec := app.CredentialRecord{OrgID: orgID, Provider: p, Ciphertext: ct}
	if !verifiedAt.IsZero() {
		rec.LastVerifiedAt = &verifiedAt
	}
	err = store(ctx, rec)
	// Invalidate even on failure: a failed commit may still have committed.
	s.Invalidate(orgID, string(p))
	if err != nil {
		return app.AsError(err)
	}
	s.log.InfoContext(ctx, "credentials saved", "org_id", orgID, "provider", p)
	return nil
}

// Get returns the org's decrypted config for provider p, typed (for example
// app.VapiConfig), from the cache when it holds it. It returns
// ENotConfigured when nothing (or only an inactive row) is stored, and also,
// with a message asking the user to enter the credentials again and with
// ErrUndecryptable in its chain, when the stored row cannot be decrypted or
// decoded; the reason is logged. EUnknownProvider for a provider outside the
// five; EInternal when the store fails.
func (s *Service) Get(ctx context.Context, orgID string, p app.Provider) (app.Config, error) {
	if err := checkProvider(p); err != nil {
		return nil, err
	}
	key := configKey(orgID, p)
	if v, ok := s.cache.getConfig(key); ok {
		return cloneConfig(v), nil
	}
	gen := s.cache.generation()
	rec, err := s.store.GetCredential(ctx, orgID, p)
	if err != nil {
		return nil, app.AsError(err)
	}
	if !rec.IsActive {
		return nil, notConfigured(p)
	}
	cfg, err := s.open(ctx, rec)
	if err != nil {
		return nil, &app.Error{
			Code:    app.ENotConfigured,
			Message: fmt.Sprintf("The stored %s credentials can no longer be decrypted; please enter them again.", p.Title()),
			Cause:   err,
		}
	}
	s.cache.putConfig(key, cfg, gen)
	return cloneConfig(cfg), nil
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

// Disconnect deletes the org's credentials for provider p and drops them
// from the caches (here and, through the database, on every instance). It
// returns ENotConfigured when nothing was stored, EUnknownProvider for a
// provider outside the five and EInternal when the store fails.
func (s *Service) Disconnect(ctx context.Context, orgID string, p app.Provider) error {
	if err := checkProvider(p); err != nil {
		return err
	}
	deleted, err := s.store.DeleteCredential(ctx, orgID, p)
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

// RecordVerification stores the outcome of checking the org's stored
// credentials for p at time at: verificationErr nil means they passed;
// otherwise its user-facing message (app.ErrorMessage, never its cause) is
// kept and shown in the status. Caches are invalidated as for Save. It returns
// ENotConfigured when nothing is stored, EUnknownProvider for a provider
// outside the five and EInternal when the store fails.
func (s *Service) RecordVerification(ctx context.Context, orgID string, p app.Provider, at time.Time, verificationErr error) error {
	if err := checkProvider(p); err != nil {
		return err
	}
	msg := ""
	if verificationErr != nil {
		msg = app.ErrorMessage(verificationErr)
	}
	err := s.store.RecordVerification(ctx, orgID, p, at, msg)
	s.Invalidate(orgID, string(p))
	if err != nil {
		return app.AsError(err)
	}
	s.log.InfoContext(ctx, "credentials verification recorded", "org_id", orgID, "provider", p,
		"verified", verificationErr == nil, "code", app.ErrorCode(verificationErr))
	return nil
}

// open decrypts rec and logs why when it cannot. The returned error has
// ErrUndecryptable in its chain and no plaintext.
func (s *Service) open(ctx context.Context, rec app.CredentialRecord) (app.Config, error) {
	cfg, err := open(s.kr, rec)
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
	return nil, fmt.Errorf("%w: %w", ErrUndecryptable, err)
}

func checkProvider(p app.Provider) error {
	_, err := app.ParseProvider(string(p))
	return err
}

func notConfigured(p app.Provider) error {
	return app.Errorf(app.ENotConfigured, "No %s credentials are stored for this organization.", p.Title())
}
