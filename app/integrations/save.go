package integrations

import (
	"context"
	"time"

	"byoc/app"
	"byoc/app/providers"
	"byoc/app/providers/twilio"
)

// SaveVapi validates in (region "" means "us"), verifies the key with Vapi
// in its region, and makes sure the org has an inbound and an outbound
// assistant in that Vapi account: a mapped assistant the account still has
// is reused (its server settings rewritten), a missing one is created (named
// by AssistantName). Both send their events to Options.PublicURL +
// WebhookPath signed with the org's own webhook secret: the one given, else
// the one already stored for the org, else a new random one (see
// NewWebhookSecret), so no org ever depends on a secret shared with others.
// It then stores the credentials, the assistant mappings and the outbound
// agent (with the Twilio number when Twilio is connected) in one
// transaction. All of it runs under a per-org lock: saving again, or
// concurrently, on any instance, reuses the assistants. Errors as every save
// (see the package documentation).
//
// The assistants must exist before they are recorded, so Vapi is changed
// first. When a save fails after that, Vapi keeps the change while the
// database keeps the previous state: an assistant created just before stays
// in the org's Vapi account, unmapped (a later save creates a new one), and
// a reused assistant may already send a new webhook secret that is not
// stored; BYOC then refuses its webhooks (it never falls back to a shared
// secret for an org that has its own) until the save is repeated.
func (s *Service) SaveVapi(ctx context.Context, p app.Principal, in VapiInput) (SaveResult, error) {
	if err := checkOrg(p); err != nil {
		return SaveResult{}, err
	}
	cfg, invalid := in.Config()
	var res SaveResult
	err := s.mutate(ctx, p, ActionSave, app.Vapi, invalid, func(ctx context.Context, now time.Time) (string, error) {
		v, err := s.vapi.Verify(ctx, cfg)
		if err != nil {
			return "", err
		}
		var set assistantSet
		err = s.lock.WithOrgLock(ctx, p.OrgID, vapiLockName, func(ctx context.Context) error {
			cfg, err := s.withWebhookSecret(ctx, p.OrgID, cfg)
			if err != nil {
				return err
			}
			if set, err = s.ensureAssistants(ctx, p, cfg); err != nil {
				return err
			}
			mappings, agent := s.connectionRows(ctx, p.OrgID, set)
			return s.creds.SaveWith(ctx, p.OrgID, cfg, now, func(ctx context.Context, rec app.CredentialRecord) error {
				return s.assistants.SaveVapiConnection(ctx, rec, mappings, agent)
			})
		})
		if err != nil {
			return "", err
		}
		res = s.saved(ctx, p.OrgID, app.Vapi, now, v)
		res.InboundAssistantID = set.inbound.ID
		res.OutboundAssistantID = set.outbound.ID
		res.Detail = joinDetail(v.Detail, set.summary())
		return res.Detail, nil
	})
	if err != nil {
		return SaveResult{}, err
	}
	return res, nil
}

// SaveTwilio validates in (numbers are normalized to E.164, reading national
// numbers in Options.DefaultPhoneRegion), verifies the account with Twilio,
// and stores the credentials and the SMS number as the outbound agent's
// number in one transaction. The result carries the masked SMS number.
// Errors as every save (see the package documentation).
func (s *Service) SaveTwilio(ctx context.Context, p app.Principal, in TwilioInput) (SaveResult, error) {
	if err := checkOrg(p); err != nil {
		return SaveResult{}, err
	}
	cfg, invalid := in.Config(s.phoneRegion)
	var res SaveResult
	err := s.mutate(ctx, p, ActionSave, app.Twilio, invalid, func(ctx context.Context, now time.Time) (string, error) {
		v, err := s.twilio.Verify(ctx, cfg)
		if err != nil {
			return "", err
		}
		agent := app.OutboundAgent{OrgID: p.OrgID, PhoneNumber: cfg.PhoneNumber}
		err = s.creds.SaveWith(ctx, p.OrgID, cfg, now, func(ctx context.Context, rec app.CredentialRecord) error {
			return s.assistants.SaveTwilioConnection(ctx, rec, agent)
		})
		if err != nil {
			return "", err
		}
		res = s.saved(ctx, p.OrgID, app.Twilio, now, v)
		res.MaskedPhone = twilio.MaskPhone(cfg.PhoneNumber)
		return v.Detail, nil
	})
	if err != nil {
		return SaveResult{}, err
	}
	return res, nil
}

// SaveResend validates in (the key starts with "re_"; the sender, when
// given, is a plain address), verifies the key with Resend and stores it. A
// sending-only key is accepted with Limited set. Errors as every save (see
// the package documentation).
func (s *Service) SaveResend(ctx context.Context, p app.Principal, in ResendInput) (SaveResult, error) {
	if err := checkOrg(p); err != nil {
		return SaveResult{}, err
	}
	cfg, invalid := in.Config()
	return s.saveSimple(ctx, p, app.Resend, cfg, invalid, func(ctx context.Context) (providers.Verification, error) {
		return s.resend.Verify(ctx, cfg)
	})
}

// SaveElevenLabs validates in (the voice ID, when given, is letters and
// digits), verifies the key with ElevenLabs and stores it. A key without the
// User: Read permission is accepted with Limited set. Errors as every save
// (see the package documentation).
func (s *Service) SaveElevenLabs(ctx context.Context, p app.Principal, in ElevenLabsInput) (SaveResult, error) {
	if err := checkOrg(p); err != nil {
		return SaveResult{}, err
	}
	cfg, invalid := in.Config()
	return s.saveSimple(ctx, p, app.ElevenLabs, cfg, invalid, func(ctx context.Context) (providers.Verification, error) {
		return s.elevenlabs.Verify(ctx, cfg)
	})
}

// saveSimple verifies and stores a config that needs nothing else.
func (s *Service) saveSimple(ctx context.Context, p app.Principal, provider app.Provider, cfg app.Config, invalid error,
	verify func(context.Context) (providers.Verification, error)) (SaveResult, error) {
	var res SaveResult
	err := s.mutate(ctx, p, ActionSave, provider, invalid, func(ctx context.Context, now time.Time) (string, error) {
		v, err := verify(ctx)
		if err != nil {
			return "", err
		}
		if err := s.creds.Save(ctx, p.OrgID, cfg, now); err != nil {
			return "", err
		}
		res = s.saved(ctx, p.OrgID, provider, now, v)
		return v.Detail, nil
	})
	if err != nil {
		return SaveResult{}, err
	}
	return res, nil
}

// saved builds the result of a save that has been stored.
func (s *Service) saved(ctx context.Context, orgID string, provider app.Provider, now time.Time, v providers.Verification) SaveResult {
	return SaveResult{
		Provider: provider,
		Status: s.statusAfterWrite(ctx, orgID, provider,
			app.Status{Provider: provider, Connected: true, LastVerified: &now}),
		LastVerified: now,
		Limited:      v.Limited,
		Detail:       v.Detail,
	}
}

// joinDetail joins two plain-words sentences.
func joinDetail(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + " " + b
}
