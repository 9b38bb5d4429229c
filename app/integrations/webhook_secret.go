package integrations

import (
	"context"
	"fmt"
	"time"

	"byoc/app"
	"byoc/app/providers/vapi"
)

// DefaultWebhookSecretGrace is how long a rotated-out webhook secret keeps
// verifying the org's webhooks unless Options.WebhookSecretGrace says
// otherwise: long enough for every call that began before the rotation.
const DefaultWebhookSecretGrace = 24 * time.Hour

// RotationResult is the outcome of a rotation of an org's Vapi webhook
// secret.
type RotationResult struct {
	// Secret is the new secret, shown this once.
	Secret app.Secret
	// PreviousUntil is when the replaced secret (the server's shared one,
	// for an org that had none of its own) stops being accepted.
	PreviousUntil time.Time
	// Status is Vapi's new card state (masked details only).
	Status app.Status
}

// RotateWebhookSecret replaces the org's Vapi webhook secret with a new
// random one (NewWebhookSecret) and returns it, the one time it is shown.
// Under the org's Vapi lock (no save, disconnect or other rotation of the
// org runs meanwhile, on any instance), it creates a signing credential of
// the new secret in the org's Vapi account, points both of the org's
// assistants at it (PATCH, through the org's own key) and only then
// stores the new secret, with the replaced one accepted for the grace
// period (Options.WebhookSecretGrace) so that calls already under way are
// not refused; the replaced signing credential stays in the account for
// them until the next rotation or save, and the one before it is deleted.
// The store write announces the change to every instance in its
// transaction.
//
// It fails closed: when Vapi refuses or cannot be reached at any step, the
// assistants already changed are pointed back at the stored credential,
// the new credential is deleted, nothing is stored, and the old secret
// stays the only one; the error says why (the provider's own words). It
// requires an admin and is audited. It returns ENotConfigured when no Vapi
// credentials (or no assistants) are stored, EVerificationFailed when Vapi
// refuses the key, EProviderUnavailable when Vapi cannot be reached,
// EConflict when an assistant is gone from the Vapi account.
func (s *Service) RotateWebhookSecret(ctx context.Context, p app.Principal) (RotationResult, error) {
	if err := checkOrg(p); err != nil {
		return RotationResult{}, err
	}
	var res RotationResult
	err := s.mutate(ctx, p, ActionRotateSecret, app.Vapi, nil, func(ctx context.Context, now time.Time, ch *change) error {
		return s.lock.WithOrgLock(ctx, p.OrgID, assistantsLockName, func(ctx context.Context) error {
			var err error
			res, err = s.rotate(ctx, p, now, ch)
			return err
		})
	})
	if err != nil {
		return RotationResult{}, err
	}
	return res, nil
}

// rotate is RotateWebhookSecret's work under the org's lock; the new
// secret is stored with ch's entry.
func (s *Service) rotate(ctx context.Context, p app.Principal, now time.Time, ch *change) (RotationResult, error) {
	stored, err := s.creds.VapiFresh(ctx, p.OrgID)
	if err != nil {
		return RotationResult{}, err
	}
	ids, err := s.assistantIDs(ctx, p.OrgID)
	if err != nil {
		return RotationResult{}, err
	}
	secret, err := NewWebhookSecret()
	if err != nil {
		return RotationResult{}, app.Internal(err)
	}
	next := stored
	next.WebhookSecret = secret
	if next.WebhookCredentialID, err = s.signingCredential(ctx, p, next); err != nil {
		return RotationResult{}, err
	}
	var changed []string
	undo := func(err error) error {
		// Without the request's deadline: the undo must run even when the
		// request timed out, bounded by its own.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if stuck := s.undoRotation(uctx, p.OrgID, stored, next, changed); stuck != "" {
			return &app.Error{Code: app.ErrorCode(err), Fields: app.ErrorFields(err), Cause: err,
				Message: app.ErrorMessage(err) + " Vapi could not be told to go back to the current secret for assistant " +
					stuck + ", whose events are refused until a rotation succeeds: rotate again once Vapi answers."}
		}
		return err
	}
	for _, id := range ids {
		if _, err := s.assistants.UpdateAssistantServer(ctx, next, id, vapi.Server{URL: s.webhookURL, CredentialID: next.WebhookCredentialID}); err != nil {
			return RotationResult{}, undo(rotationRefused(id, err))
		}
		changed = append(changed, id)
	}
	// The replaced secret stays accepted for the grace period; an org that
	// had none of its own keeps the server's shared secret that long (an
	// empty previous secret with an end).
	next.PreviousWebhookSecret = stored.WebhookSecret
	next.PreviousWebhookSecretUntil = now.Add(s.grace)
	next.PreviousWebhookCredentialID = stored.WebhookCredentialID
	st, err := s.creds.ReplaceVapiWebhook(ctx, p.OrgID, next, ch.entry("Webhook secret rotated; the previous one is accepted until "+
		next.PreviousWebhookSecretUntil.UTC().Format(time.RFC3339)+"."))
	if err != nil {
		return RotationResult{}, undo(app.AsError(err))
	}
	ch.stored()
	// The credential of the secret before the replaced one: no call can
	// still need it once its grace is over, and a rotation inside it
	// replaces it anyway (only one previous secret is accepted).
	if old := stored.PreviousWebhookCredentialID; old != "" && old != stored.WebhookCredentialID {
		s.retireSigningCredential(ctx, p.OrgID, app.VapiConfig{APIKey: stored.APIKey, Region: stored.Region, WebhookCredentialID: old})
	}
	s.log.InfoContext(ctx, "vapi assistants signing with the rotated webhook secret", "org_id", p.OrgID,
		"credential_id", next.WebhookCredentialID)
	return RotationResult{Secret: secret, PreviousUntil: next.PreviousWebhookSecretUntil, Status: st}, nil
}

// assistantIDs returns the ids of the org's mapped assistants, inbound
// first; ENotConfigured when there are none.
func (s *Service) assistantIDs(ctx context.Context, orgID string) ([]string, error) {
	ms, err := s.mappings.AssistantMappings(ctx, orgID)
	if err != nil {
		return nil, app.AsError(err)
	}
	var ids []string
	for _, role := range []app.AssistantRole{app.Inbound, app.Outbound} {
		for _, m := range ms {
			if m.Role == role {
				ids = append(ids, m.VapiAssistantID)
			}
		}
	}
	if len(ids) == 0 {
		return nil, app.Errorf(app.ENotConfigured,
			"This organization has no Vapi assistants yet. Save the Vapi credentials again to create them.")
	}
	return ids, nil
}

// undoRotation points the assistants a failed rotation already changed
// back at the stored signing credential (for an org without a secret of
// its own: at the server's shared secret, which is what verifies its
// webhooks) and deletes the credential it made, so the stored secret
// stays the only one Vapi signs with. It
// returns the id of an assistant it could not point back ("" when all
// went back): that assistant keeps signing with the new credential, which
// is then kept (deleting it would leave the assistant signing with
// nothing), and its events are refused until a rotation or a save
// succeeds. Failures are logged.
func (s *Service) undoRotation(ctx context.Context, orgID string, stored, next app.VapiConfig, changed []string) string {
	stuck := ""
	for _, id := range changed {
		srv := vapi.Server{URL: s.webhookURL, CredentialID: stored.WebhookCredentialID}
		if srv.CredentialID == "" {
			srv.Secret = stored.WebhookSecret.Reveal()
		}
		if srv.CredentialID == "" && srv.Secret == "" {
			srv.Secret = s.shared.Reveal()
		}
		if srv.CredentialID == "" && srv.Secret == "" {
			// Nothing would verify its events: an empty server object
			// is no undo. It keeps the new credential, and says so.
			s.log.ErrorContext(ctx, "no secret to point a vapi assistant back at", "org_id", orgID, "assistant_id", id)
			stuck = id
			continue
		}
		if _, err := s.assistants.UpdateAssistantServer(ctx, stored, id, srv); err != nil {
			s.log.ErrorContext(ctx, "pointing a vapi assistant back at its signing credential failed", "org_id", orgID,
				"assistant_id", id, "err", err)
			stuck = id
		}
	}
	if stuck == "" {
		s.retireSigningCredential(ctx, orgID, next)
	}
	return stuck
}

// rotationRefused says in plain words why Vapi refused to change the
// assistant id during a rotation.
func rotationRefused(id string, err error) error {
	switch app.ErrorCode(err) {
	case app.ENotFound:
		return &app.Error{Code: app.EConflict, Cause: err, Message: "Vapi has no assistant " + id +
			" in the connected account any more, so the webhook secret was not rotated. Save the Vapi credentials " +
			"again to recreate the assistants, then rotate."}
	case app.EValidation:
		return app.Internal(fmt.Errorf("integrations: rotate: update the server of assistant %s: %w", id, err))
	case app.EVerificationFailed, app.EProviderUnavailable:
		return &app.Error{Code: app.ErrorCode(err), Cause: err, Fields: app.ErrorFields(err),
			Message: "The webhook secret was not rotated, the current one stays in use. " + app.ErrorMessage(err)}
	}
	return err
}

// RevealWebhookSecret returns the org's current Vapi webhook secret, once
// per secret: a secret that was already shown (revealed before, or
// answered by the rotation that made it) is refused with EConflict, and
// only a rotation brings a new one to show. Every attempt is audited. It
// requires an admin and returns ENotConfigured when no Vapi credentials or
// no own secret are stored.
func (s *Service) RevealWebhookSecret(ctx context.Context, p app.Principal) (app.Secret, app.Status, error) {
	if err := checkOrg(p); err != nil {
		return app.Secret{}, app.Status{}, err
	}
	var secret app.Secret
	var st app.Status
	err := s.mutate(ctx, p, ActionRevealSecret, app.Vapi, nil, func(ctx context.Context, _ time.Time, ch *change) error {
		var err error
		if secret, st, err = s.creds.RevealVapiWebhookSecret(ctx, p.OrgID, ch.entry("Webhook secret revealed.")); err != nil {
			return err
		}
		ch.stored()
		return nil
	})
	if err != nil {
		return app.Secret{}, app.Status{}, err
	}
	return secret, st, nil
}
