package credentials

import (
	"context"
	"maps"

	"byoc/app"
)

// Statuses returns the org's status for each of the five providers, in
// app.Providers order, from the cache when it holds them. Details are masked;
// no secret appears anywhere in the result. A row that cannot be decrypted
// shows as not connected, NeedsAttention, with a VerificationError saying so;
// it never makes Statuses fail. A failed check shows as connected with
// NeedsAttention and the stored reason. EInternal when the store fails.
func (s *Service) Statuses(ctx context.Context, orgID string) ([]app.Status, error) {
	if st, ok := s.cache.getStatuses(orgID); ok {
		return cloneStatuses(st), nil
	}
	gen := s.cache.generation()
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
	s.cache.putStatuses(orgID, out, gen)
	return cloneStatuses(out), nil
}

func (s *Service) status(ctx context.Context, rec app.CredentialRecord) app.Status {
	st := app.Status{Provider: rec.Provider, LastVerified: rec.LastVerifiedAt, UpdatedAt: rec.UpdatedAt}
	if !rec.IsActive {
		return st
	}
	cfg, err := s.open(ctx, rec)
	if err != nil {
		st.NeedsAttention = true
		st.VerificationError = undecryptableStatus
		return st
	}
	st.Connected = true
	st.VerificationError = rec.VerificationError
	st.NeedsAttention = rec.VerificationError != ""
	st.Details = maskedDetails(cfg)
	return st
}

func cloneStatuses(in []app.Status) []app.Status {
	out := make([]app.Status, len(in))
	for i, st := range in {
		if st.LastVerified != nil {
			t := *st.LastVerified
			st.LastVerified = &t
		}
		st.Details = maps.Clone(st.Details)
		out[i] = st
	}
	return out
}

const dots = "••••"

// SecretSet is what a status's details show for a secret of which not even a
// few characters may be shown (the Vapi webhook secret).
const SecretSet = "set"

// maskedDetails returns the display facts of cfg: identifiers shortened,
// API keys and tokens reduced to their last four characters (none for short
// ones), signing secrets to SecretSet.
func maskedDetails(cfg app.Config) map[string]string {
	d := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			d[k] = v
		}
	}
	switch c := cfg.(type) {
	case app.VapiConfig:
		set("apiKey", maskSecret(c.APIKey))
		// A signing secret shows not even a few characters: only that it is set.
		if !c.WebhookSecret.IsZero() {
			set("webhookSecret", SecretSet)
		}
		set("region", string(c.Region))
	case app.TwilioConfig:
		set("accountSid", maskMiddle(c.AccountSID, 2, 4, dots))
		set("authToken", maskSecret(c.AuthToken))
		set("phoneNumber", maskMiddle(c.PhoneNumber, 5, 4, "•••"))
		set("whatsappNumber", maskMiddle(c.WhatsAppNumber, 5, 4, "•••"))
	case app.GoogleCalendarConfig:
		set("email", c.Email)
	case app.ResendConfig:
		set("apiKey", maskSecret(c.APIKey))
		set("fromEmail", c.FromEmail)
	case app.ElevenLabsConfig:
		set("apiKey", maskSecret(c.APIKey))
		set("voiceId", c.VoiceID)
	}
	return d
}

// maskSecret returns "••••" and the secret's last four characters, just
// "••••" for a secret too short to show any, and "" for an empty one.
func maskSecret(s app.Secret) string {
	if s.IsZero() {
		return ""
	}
	return dots + s.Last4()
}

// maskMiddle keeps the first head and last tail characters of s and puts mid
// in between; shorter values keep only their tail, or nothing when they are
// too short for that to hide anything.
func maskMiddle(s string, head, tail int, mid string) string {
	r := []rune(s)
	switch {
	case len(r) == 0:
		return ""
	case len(r) >= head+tail+3:
		return string(r[:head]) + mid + string(r[len(r)-tail:])
	case len(r) >= tail+4:
		return mid + string(r[len(r)-tail:])
	}
	return mid
}
