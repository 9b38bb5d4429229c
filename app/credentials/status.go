package credentials

import (
	"context"
	"maps"
	"time"

	"byoc/app"
)

// Statuses returns the org's status for each of the five providers, in
// app.Providers order, from the cache when it holds them. Details are masked;
// no secret appears anywhere in the result. A row that cannot be decrypted
// shows as not connected, NeedsAttention, with a VerificationError saying
// why (a missing encryption key, or an integrity failure: data altered or
// copied from another row); it never makes Statuses fail. A failed check
// shows as connected with NeedsAttention and the stored reason. EInternal
// when the store fails.
func (s *Service) Statuses(ctx context.Context, orgID string) ([]app.Status, error) {
	if st, ok := s.cache.getStatuses(orgID); ok {
		return cloneStatuses(st), nil
	}
	since := s.cache.g.Stamp()
	recs, err := s.store.ListCredentials(ctx, orgID)
	if err != nil {
		return nil, app.AsError(err)
	}
	byProvider := make(map[app.Provider]app.CredentialRecord, len(recs))
	for _, r := range recs {
		byProvider[r.Provider] = r
	}
	out := make([]app.Status, 0, len(app.Providers))
	for _, p := range app.Providers {
		rec, ok := byProvider[p]
		if !ok {
			out = append(out, app.Status{Provider: p})
			continue
		}
		out = append(out, s.status(ctx, rec))
	}
	s.cache.putStatuses(orgID, out, since)
	return cloneStatuses(out), nil
}

// status opens rec and returns its status.
func (s *Service) status(ctx context.Context, rec app.CredentialRecord) app.Status {
	if !rec.IsActive {
		return statusOf(rec, nil, s.now())
	}
	cfg, err := s.open(ctx, rec)
	if err != nil {
		st := statusOf(rec, nil, s.now())
		st.NeedsAttention = true
		st.VerificationError = undecryptableStatus(err)
		st.VerificationCode = ""
		return st
	}
	return statusOf(rec, cfg, s.now())
}

// statusOf is the status of rec, whose config is cfg (nil when it is not
// usable: inactive or unreadable), at time now.
func statusOf(rec app.CredentialRecord, cfg app.Config, now time.Time) app.Status {
	st := app.Status{Provider: rec.Provider, LastVerified: rec.LastVerifiedAt, LastChecked: rec.LastCheckedAt,
		UpdatedAt: rec.UpdatedAt, WebhookHMACOnly: rec.WebhookHMACOnly}
	if cfg == nil {
		return st
	}
	st.Connected = true
	st.VerificationError = rec.VerificationError
	st.VerificationCode = rec.VerificationCode
	st.NeedsAttention = rec.VerificationError != ""
	st.Limited, st.Warning = rec.Limited, rec.Warning
	st.Details = app.MustDescribe(rec.Provider).Masked(cfg)
	if vc, ok := cfg.(app.VapiConfig); ok {
		ws := &app.WebhookSecretState{Own: !vc.WebhookSecret.IsZero(), RevealedAt: rec.WebhookSecretRevealedAt}
		if vc.PreviousSecretValid(now) {
			until := vc.PreviousWebhookSecretUntil
			ws.PreviousUntil = &until
		}
		st.WebhookSecret = ws
	}
	return st
}

func cloneStatuses(in []app.Status) []app.Status {
	out := make([]app.Status, len(in))
	for i, st := range in {
		if st.LastVerified != nil {
			t := *st.LastVerified
			st.LastVerified = &t
		}
		if st.LastChecked != nil {
			t := *st.LastChecked
			st.LastChecked = &t
		}
		st.Details = maps.Clone(st.Details)
		if st.WebhookSecret != nil {
			ws := *st.WebhookSecret
			st.WebhookSecret = &ws
		}
		out[i] = st
	}
	return out
}
