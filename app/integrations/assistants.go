package integrations

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"

	"byoc/app"
	"byoc/app/providers/vapi"
)

// assistantsLockName names the per-org lock that orders the saves and
// disconnects of a provider that manages assistants, across every instance.
const assistantsLockName = "vapi-assistants"

// VapiAssistants creates and updates assistants, and the HMAC credential
// they sign their webhooks with, in an org's Vapi account; *vapi.Client
// implements it.
type VapiAssistants interface {
	CreateAssistant(ctx context.Context, cfg app.VapiConfig, spec vapi.AssistantSpec) (vapi.Assistant, error)
	UpdateAssistantServer(ctx context.Context, cfg app.VapiConfig, id string, server vapi.Server) (vapi.Assistant, error)
	CreateWebhookCredential(ctx context.Context, cfg app.VapiConfig, name, secret string) (vapi.Credential, error)
	DeleteCredential(ctx context.Context, cfg app.VapiConfig, id string) error
}

// WebhookCredentialName is the name of the signing credential a Vapi save
// creates in the org's Vapi account.
const WebhookCredentialName = "BYOC webhook signing"

// MappingStore reads the org's assistant mappings; *db.DB implements it.
type MappingStore interface {
	AssistantMappings(ctx context.Context, orgID string) ([]app.AssistantMapping, error)
}

// saveWithAssistants saves conn, a Vapi connection, together with the org's
// assistants, filling in res. It makes sure the org has an inbound and an
// outbound assistant in the Vapi account of the key: a mapped assistant the
// account still has is reused (its server settings rewritten), a missing
// one is created (named by AssistantName). Both send their events to
// Options.PublicURL + paths.Webhooks signed by Vapi with an HMAC of the
// body and time (a webhook credential of the org's Vapi account, created
// anew by each save, see vapi.Client.CreateWebhookCredential; never the
// static X-Vapi-Secret) keyed by the org's own webhook secret: the one
// given, else the one already stored for the org, else a new random one
// (see NewWebhookSecret), so no org ever depends on a secret shared with
// others. The credentials (with the signing credential's id), the changed
// mappings and the outbound agent (with the Twilio number when Twilio is
// connected) are then saved in one transaction; a new Vapi row is saved
// HMAC-only (app.Connection.WebhookHMACOnly), a stored one keeps its
// setting; ch's entry, and a rotation entry when the save replaced a
// stored webhook secret, are stored in that same transaction. The signing
// credential the stored config named is then deleted
// from its account (a failure is logged). All of it runs under a per-org
// lock: saving again, or concurrently, on any instance, reuses the
// assistants.
//
// The assistants must exist before they are recorded, so Vapi is changed
// first; from then on the save no longer heeds ctx's cancellation (only its
// deadline), so a cancel cannot stop it half-way. When a save fails after
// that, Vapi keeps the change while the
// database keeps the previous state: a signing credential or an assistant
// created just before stays in the org's Vapi account, unused or unmapped
// (a later save creates new ones), and a reused assistant may already sign
// with a new webhook secret that is not stored; BYOC then refuses its
// webhooks (it never falls back to a shared secret for an org that has its
// own) until the save is repeated.
func (s *Service) saveWithAssistants(ctx context.Context, p app.Principal, conn app.Connection, res *SaveResult, ch *change) error {
	cfg, ok := conn.Config.(app.VapiConfig)
	if !ok {
		return app.Internal(fmt.Errorf("integrations: assistants for a %T", conn.Config))
	}
	return s.lock.WithOrgLock(ctx, p.OrgID, assistantsLockName, func(ctx context.Context) error {
		cfg, previous, err := s.withWebhookSecret(ctx, p.OrgID, cfg)
		if err != nil {
			return err
		}
		// From the first change at Vapi on, the save runs to its end
		// within its deadline: a cancel (or the server's stop) half-way
		// would leave Vapi changed while the answer said nothing was.
		ctx, finish := uncancellable(ctx)
		defer finish()
		if cfg.WebhookCredentialID, err = s.signingCredential(ctx, p, cfg); err != nil {
			return err
		}
		set, err := s.ensureAssistants(ctx, p, cfg)
		if err != nil {
			return err
		}
		keep := keepsPreviousSecret(cfg, previous, s.now())
		if keep {
			cfg.PreviousWebhookSecret = previous.PreviousWebhookSecret
			cfg.PreviousWebhookSecretUntil = previous.PreviousWebhookSecretUntil
			cfg.PreviousWebhookCredentialID = previous.PreviousWebhookCredentialID
		}
		conn.Config = cfg
		conn.WebhookHMACOnly = true
		conn.WebhookSecretNew = cfg.WebhookSecret.Reveal() != previous.WebhookSecret.Reveal()
		conn.Assistants, conn.Outbound = s.connectionRows(ctx, p.OrgID, set)
		var audit []app.AuditEntry
		if !previous.WebhookSecret.IsZero() && previous.WebhookSecret.Reveal() != cfg.WebhookSecret.Reveal() {
			audit = append(audit, newChange(p, ActionRotateSecret, app.Vapi).
				entry("Vapi's assistants now sign their webhooks with the new secret."))
		}
		detail := joinDetail(res.Detail, set.summary())
		if res.Status, err = s.creds.Save(ctx, conn, append(audit, ch.entry(detail))...); err != nil {
			return err
		}
		ch.stored()
		s.retireSigningCredential(ctx, p.OrgID, previous)
		if !keep && previous.PreviousWebhookCredentialID != "" {
			s.retireSigningCredential(ctx, p.OrgID, app.VapiConfig{APIKey: previous.APIKey, Region: previous.Region,
				WebhookCredentialID: previous.PreviousWebhookCredentialID})
		}
		res.InboundAssistantID, res.OutboundAssistantID = set.inbound.ID, set.outbound.ID
		res.Detail = detail
		return nil
	})
}

// uncancellable returns ctx without its cancellation but with its values
// and deadline: what runs under it ends by the deadline, never half-way
// because its caller gave up.
func uncancellable(ctx context.Context) (context.Context, context.CancelFunc) {
	detached := context.WithoutCancel(ctx)
	if d, ok := ctx.Deadline(); ok {
		return context.WithDeadline(detached, d)
	}
	return context.WithCancel(detached)
}

// keepsPreviousSecret reports whether a save of cfg over the stored
// config previous keeps the secret a rotation replaced accepted for the
// rest of its grace period: the save keeps the current secret and the
// Vapi account (a save after a rotation must not cut calls still signed
// with the previous secret short).
func keepsPreviousSecret(cfg, previous app.VapiConfig, now time.Time) bool {
	return previous.PreviousSecretValid(now) && cfg.WebhookSecret.Reveal() == previous.WebhookSecret.Reveal() &&
		cfg.APIKey.Reveal() == previous.APIKey.Reveal() && cfg.Region == previous.Region
}

// signingCredential creates the webhook credential the org's assistants
// sign their events with, an HMAC of cfg's webhook secret, and returns its
// id.
func (s *Service) signingCredential(ctx context.Context, p app.Principal, cfg app.VapiConfig) (string, error) {
	c, err := s.assistants.CreateWebhookCredential(ctx, cfg, WebhookCredentialName, cfg.WebhookSecret.Reveal())
	switch {
	case app.ErrorCode(err) == app.EValidation:
		// Vapi refused the credential BYOC asked for: nothing the user
		// typed can fix that.
		return "", app.Internal(fmt.Errorf("integrations: create the webhook signing credential: %w", err))
	case err != nil:
		return "", err
	case c.ID == "":
		return "", app.Internal(errors.New("integrations: Vapi created a credential without an id"))
	}
	s.log.InfoContext(ctx, "vapi webhook signing credential created", "org_id", p.OrgID, "credential_id", c.ID)
	return c.ID, nil
}

// retireSigningCredential deletes the signing credential the org's previous
// Vapi config named, with that config's key (the account it was made in),
// once the new one is stored. A failure is logged and leaves it unused in
// that account.
func (s *Service) retireSigningCredential(ctx context.Context, orgID string, previous app.VapiConfig) {
	if previous.WebhookCredentialID == "" {
		return
	}
	err := s.assistants.DeleteCredential(ctx, previous, previous.WebhookCredentialID)
	if err != nil && app.ErrorCode(err) != app.ENotFound {
		s.log.WarnContext(ctx, "deleting the replaced vapi webhook signing credential failed", "org_id", orgID,
			"credential_id", previous.WebhookCredentialID, "err", err)
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

// defaultOrgName stands in for an org without a name in assistant names.
const defaultOrgName = "BYOC"

// assistantSet is the org's pair of assistants after ensureAssistants.
type assistantSet struct {
	inbound, outbound                 vapi.Assistant
	inboundCreated, outboundCreated   bool
	inboundRemapped, outboundRemapped bool // the mapping must be (re)written
}

func (a assistantSet) summary() string {
	word := func(created bool) string {
		if created {
			return "created"
		}
		return "reused"
	}
	return fmt.Sprintf("Inbound assistant %s, outbound assistant %s.", word(a.inboundCreated), word(a.outboundCreated))
}

// ensureAssistants returns the org's inbound and outbound assistants in the
// Vapi account of cfg: a mapped assistant is reused when that account still
// has it, otherwise a new one is created. A reused assistant's server
// settings are always rewritten (see ensureAssistant), so a changed webhook
// secret or public URL reaches Vapi. The caller holds the org's Vapi lock, so
// two saves never both create. Nothing is written to the database here.
func (s *Service) ensureAssistants(ctx context.Context, p app.Principal, cfg app.VapiConfig) (assistantSet, error) {
	mappings, err := s.mappings.AssistantMappings(ctx, p.OrgID)
	if err != nil {
		return assistantSet{}, err
	}
	mapped := map[app.AssistantRole]string{}
	for _, m := range mappings {
		mapped[m.Role] = m.VapiAssistantID
	}
	var set assistantSet
	for _, role := range []app.AssistantRole{app.Inbound, app.Outbound} {
		a, created, err := s.ensureAssistant(ctx, p, cfg, role, mapped[role])
		if err != nil {
			return assistantSet{}, err
		}
		remapped := a.ID != mapped[role]
		if role == app.Inbound {
			set.inbound, set.inboundCreated, set.inboundRemapped = a, created, remapped
		} else {
			set.outbound, set.outboundCreated, set.outboundRemapped = a, created, remapped
		}
	}
	return set, nil
}

func (s *Service) ensureAssistant(ctx context.Context, p app.Principal, cfg app.VapiConfig, role app.AssistantRole,
	mappedID string) (vapi.Assistant, bool, error) {
	if mappedID != "" {
		a, err := s.reuseAssistant(ctx, p, cfg, role, mappedID)
		switch {
		case err == nil:
			return a, false, nil
		case app.ErrorCode(err) != app.ENotFound:
			return vapi.Assistant{}, false, err
		}
		// Deleted in Vapi, or the org switched to another Vapi account.
	}
	a, err := s.assistants.CreateAssistant(ctx, cfg, s.assistantSpec(p.OrgName, role, cfg))
	if err != nil {
		if app.ErrorCode(err) == app.EValidation {
			// Vapi refused the assistant BYOC asked for: nothing the user
			// typed can fix that.
			return vapi.Assistant{}, false, app.Internal(fmt.Errorf("integrations: create %s assistant: %w", role, err))
		}
		return vapi.Assistant{}, false, err
	}
	if a.ID == "" {
		return vapi.Assistant{}, false, app.Internal(errors.New("integrations: Vapi created an assistant without an id"))
	}
	s.log.InfoContext(ctx, "vapi assistant created", "org_id", p.OrgID, "role", role, "assistant_id", a.ID)
	return a, true, nil
}

// reuseAssistant points the org's existing assistant id at BYOC's webhook,
// signed with the signing credential of cfg (which replaces any inline
// secret), and returns it. It updates unconditionally,
// one PATCH per assistant and save: Vapi's GET answer does not reliably say
// whether (let alone which) secret is set, and the PATCH doubles as the check
// that the account still has the assistant. It returns ENotFound when the
// account has no such assistant; any other failure fails the save, as a
// failed create does, so credentials are never stored while Vapi still sends
// the old secret or URL.
func (s *Service) reuseAssistant(ctx context.Context, p app.Principal, cfg app.VapiConfig, role app.AssistantRole,
	id string) (vapi.Assistant, error) {
	a, err := s.assistants.UpdateAssistantServer(ctx, cfg, id, vapi.Server{URL: s.webhookURL, CredentialID: cfg.WebhookCredentialID})
	switch {
	case err == nil:
	case app.ErrorCode(err) == app.ENotFound:
		return vapi.Assistant{}, err
	case app.ErrorCode(err) == app.EValidation:
		// Vapi refused the settings BYOC asked for: nothing the user typed
		// can fix that.
		return vapi.Assistant{}, app.Internal(fmt.Errorf("integrations: update the server of %s assistant %s: %w", role, id, err))
	default:
		s.log.WarnContext(ctx, "updating the vapi assistant's server failed", "org_id", p.OrgID, "role", role,
			"assistant_id", id, "err", err)
		return vapi.Assistant{}, err
	}
	if a.ID == "" {
		a.ID = id
	}
	s.log.InfoContext(ctx, "vapi assistant server updated", "org_id", p.OrgID, "role", role, "assistant_id", a.ID,
		"signing_credential", cfg.WebhookCredentialID)
	return a, nil
}

// connectionRows returns what a Vapi save stores with the credentials: the
// mappings that changed and the outbound agent (with the org's Twilio number
// when Twilio is connected).
func (s *Service) connectionRows(ctx context.Context, orgID string, set assistantSet) ([]app.AssistantMapping, *app.OutboundAgent) {
	var mappings []app.AssistantMapping
	for _, m := range []struct {
		a       vapi.Assistant
		role    app.AssistantRole
		changed bool
	}{{set.inbound, app.Inbound, set.inboundRemapped}, {set.outbound, app.Outbound, set.outboundRemapped}} {
		if m.changed {
			mappings = append(mappings, app.AssistantMapping{VapiAssistantID: m.a.ID, OrgID: orgID, Role: m.role, Name: m.a.Name})
		}
	}
	agent := &app.OutboundAgent{OrgID: orgID, VapiAssistantID: set.outbound.ID}
	if cfg, err := s.creds.Get(ctx, orgID, app.Twilio); err == nil {
		if n, ok := cfg.(app.OutboundNumberer); ok {
			agent.PhoneNumber = n.OutboundNumber()
		}
	} else if app.ErrorCode(err) != app.ENotConfigured {
		// The number is optional here (a Twilio save records it too).
		s.log.WarnContext(ctx, "reading the Twilio number for the outbound agent failed", "org_id", orgID, "err", err)
	}
	return mappings, agent
}

// withWebhookSecret returns cfg with the webhook secret the org's assistants
// are to sign their events with: cfg's own, else the one stored with the
// org's Vapi credentials (so saving again does not rotate it), else a new one
// from NewWebhookSecret; and the stored config (zero when none is usable),
// whose signing credential the save replaces. The caller holds the org's
// Vapi lock. It fails only when the stored credentials cannot be read for
// another reason than there being none usable.
func (s *Service) withWebhookSecret(ctx context.Context, orgID string, cfg app.VapiConfig) (app.VapiConfig, app.VapiConfig, error) {
	// Read from the store, not a cache: under the org's lock, the save must
	// start from what another instance's rotation or save stored a moment
	// ago, or it would write the secret before that back.
	previous, err := s.creds.VapiFresh(ctx, orgID)
	if err != nil && app.ErrorCode(err) != app.ENotConfigured {
		return cfg, previous, err
	}
	switch {
	case !cfg.WebhookSecret.IsZero():
	case !previous.WebhookSecret.IsZero():
		cfg.WebhookSecret = previous.WebhookSecret
	default:
		secret, err := NewWebhookSecret()
		if err != nil {
			return cfg, previous, app.Internal(err)
		}
		cfg.WebhookSecret = secret
		s.log.InfoContext(ctx, "vapi webhook secret generated", "org_id", orgID)
	}
	return cfg, previous, nil
}

// NewWebhookSecret returns a new random webhook secret: 32 bytes from the
// system's secure random source, base64url-encoded without padding (43
// characters).
func NewWebhookSecret() (app.Secret, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return app.Secret{}, fmt.Errorf("integrations: generate a webhook secret: %w", err)
	}
	return app.NewSecret(base64.RawURLEncoding.EncodeToString(b)), nil
}

// assistantSpec describes the org's assistant for role.
func (s *Service) assistantSpec(orgName string, role app.AssistantRole, cfg app.VapiConfig) vapi.AssistantSpec {
	display := strings.Join(strings.Fields(orgName), " ")
	if display == "" {
		display = defaultOrgName
	}
	spec := vapi.AssistantSpec{
		Name:               AssistantName(orgName, role),
		ServerURL:          s.webhookURL,
		ServerCredentialID: cfg.WebhookCredentialID,
	}
	if role == app.Inbound {
		spec.FirstMessage = fmt.Sprintf("Hello, thank you for calling %s. How can I help you today?", display)
		spec.SystemPrompt = fmt.Sprintf("You are the friendly, professional receptionist of %s. You answer incoming "+
			"calls, find out what the caller needs, answer questions about the business, take messages and help "+
			"callers book, move or cancel appointments. Keep your answers short and clear, confirm names, dates and "+
			"phone numbers by repeating them, and never make up information you do not have: offer to take a "+
			"message instead.", display)
	} else {
		spec.FirstMessage = fmt.Sprintf("Hello, this is the assistant of %s calling.", display)
		spec.SystemPrompt = fmt.Sprintf("You are the friendly, professional assistant of %s, placing calls on its "+
			"behalf: appointment reminders, confirmations and follow-ups. Say who you are and why you are calling "+
			"at the start, keep the call short, confirm any change by repeating it, and end the call politely if "+
			"the person is busy or asks not to be called.", display)
	}
	return spec
}

// AssistantName is the name of the org's assistant for role: the org's name
// followed by "Inbound" or "Outbound", at most vapi.MaxNameLength
// characters. A long org name is cut on a character boundary and ends with
// "…"; an empty one is replaced by "BYOC". Length is counted in UTF-16 code
// units, as Vapi's (JavaScript) validation counts it, which is never less
// than the number of characters.
func AssistantName(orgName string, role app.AssistantRole) string {
	suffix := " Inbound"
	if role == app.Outbound {
		suffix = " Outbound"
	}
	name := strings.Join(strings.Fields(orgName), " ")
	if name == "" {
		name = defaultOrgName
	}
	room := vapi.MaxNameLength - len(suffix)
	if utf16Len(name) <= room {
		return name + suffix
	}
	var b strings.Builder
	used := 1 // the ellipsis
	for _, r := range name {
		n := utf16.RuneLen(r)
		if n < 0 {
			n = 1 // invalid UTF-8 becomes U+FFFD
		}
		if used+n > room {
			break
		}
		used += n
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String()) + "…" + suffix
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if l := utf16.RuneLen(r); l > 0 {
			n += l
		} else {
			n++
		}
	}
	return n
}
