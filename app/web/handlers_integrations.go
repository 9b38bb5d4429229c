package web

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/gofiber/fiber/v2"

	"byoc/app"
	"byoc/app/auth"
	"byoc/app/integrations"
	"byoc/views"
)

// The handlers of the integrations: the dashboard and the JSON API. Each
// answers JSON to API clients, the changed fragment to htmx and a full page
// (or a redirect to the dashboard with a flash) to plain navigation.
//
// HTML answers to htmx carry the outcome in the page: a refused save
// re-renders the form with its messages, a refused test or disconnect
// re-renders the card with the reason on it. Errors that are not about the
// provider (not signed in, unknown provider, internal) go to the error
// handler like everywhere else.

// integrations answers the org's integration states: the dashboard page,
// its cards fragment for htmx (the Refresh button) and the status object
// (statusData) for JSON clients. It serves both GET /dashboard/integrations
// and GET /api/integrations/status.
func (s *Server) integrations(c *fiber.Ctx) error {
	a, _ := account(c)
	sts, err := s.deps.Integrations.Statuses(c.UserContext(), a.Principal)
	if err != nil {
		return err
	}
	f := negotiate(c)
	d := views.Integrations{OrgName: a.OrgName, CanManage: a.Principal.IsAdmin()}
	if f != formatJSON {
		for _, st := range sts {
			d.Cards = append(d.Cards, s.card(c, a, st, nil))
		}
		d.Attention = views.AttentionOf(d.Cards)
	}
	if d.CanManage && f == formatPage {
		for _, st := range sts {
			spec := app.MustDescribe(st.Provider)
			if spec.OAuth {
				continue
			}
			form, err := s.configureForm(c, a, spec, st.Connected)
			if err != nil {
				return err
			}
			d.Forms = append(d.Forms, form)
		}
	}
	return s.reply(c, http.StatusOK, answer{Data: statusData(sts),
		view: view{Title: "Integrations", Page: views.IntegrationsPage(d),
			Fragment: templ.Join(views.IntegrationCards(d), views.AttentionRegion(d.Attention, true))}})
}

// configureForm is the empty Configure form of spec's provider or, for a
// stored connection (update), its Update form filled in with the stored
// non-secret values and naming the stored secrets, masked.
func (s *Server) configureForm(c *fiber.Ctx, a auth.Account, spec *app.Spec, update bool) (views.ConfigureForm, error) {
	f := views.ConfigureForm{Spec: spec, CSRFToken: s.csrfToken(c)}
	if !update {
		return f, nil
	}
	ed, err := s.deps.Integrations.Editable(c.UserContext(), a.Principal, spec.Provider)
	if err != nil {
		return f, err
	}
	f.Update, f.Values, f.Secrets = true, ed.Values, ed.Secrets
	return f, nil
}

// saveIntegration checks the provider's form or JSON body against its
// description, verifies it with the provider and stores it in place of
// whatever was stored (POST /api/integrations/:provider); see
// storeIntegration.
func (s *Server) saveIntegration(c *fiber.Ctx) error { return s.storeIntegration(c, false) }

// updateIntegration changes the stored connection (PATCH
// /api/integrations/:provider): the fields given replace the stored ones,
// every other field (and a secret given empty) keeps its stored value, and
// the merged configuration is checked and verified before it replaces the
// stored one. It answers as saveIntegration does; 404 not_configured when
// nothing is stored.
func (s *Server) updateIntegration(c *fiber.Ctx) error { return s.storeIntegration(c, true) }

// storeIntegration saves (or, with update, updates) a provider's
// connection. A success answers saveData, or for htmx the success panel
// with the provider's new card out of band and the Update form that the
// dialog shows next. A refused save answers the error, or for HTML the
// form again with the messages (never a secret value; the dialog's script
// takes only the messages from it, keeping what was typed).
func (s *Server) storeIntegration(c *fiber.Ctx, update bool) error {
	a, _ := account(c)
	provider, err := app.ParseProvider(c.Params("provider"))
	if err != nil {
		return err
	}
	spec := app.MustDescribe(provider)
	in, err := bindValues(c, spec.FormFields())
	var res integrations.SaveResult
	if err == nil {
		if update {
			res, err = s.deps.Integrations.Update(c.UserContext(), a.Principal, provider, in)
		} else {
			res, err = s.deps.Integrations.Save(c.UserContext(), a.Principal, provider, in)
		}
	}
	if err != nil {
		err = ownStop(c.UserContext(), err)
		code := app.ErrorCode(err)
		if spec.OAuth || negotiate(c) == formatJSON || code == app.EInternal || code == app.EUnauthorized ||
			code == app.EForbidden || (update && code == app.ENotConfigured) {
			return err
		}
		f := views.ConfigureForm{Spec: spec, CSRFToken: s.csrfToken(c)}
		if update {
			// The stored secrets are named again; a failure to read them
			// only leaves them out.
			if ff, ferr := s.configureForm(c, a, spec, true); ferr == nil {
				f = ff
			}
		}
		f.Values, f.Message, f.Errors = kept(spec, in), app.ErrorMessage(err), app.ErrorFields(err)
		return s.reply(c, statusOf(code), answer{
			view: view{Title: f.Title(), Page: views.ConfigurePage(f), Fragment: views.ConfigureFormFragment(f)}})
	}
	success := views.ConfigureSuccess{
		Provider: provider, Detail: res.Detail, Limited: res.Limited, Warning: res.Status.Warning,
		InboundAssistantID: res.InboundAssistantID, OutboundAssistantID: res.OutboundAssistantID,
		MaskedPhone: res.MaskedPhone, Card: s.card(c, a, res.Status, nil),
	}
	if negotiate(c) == formatFragment {
		next, err := s.configureForm(c, a, spec, true)
		if err != nil {
			return err
		}
		success.Next = &next
	}
	return s.changed(c, http.StatusOK, newSaveData(res), s.withAttention(a, views.ConfigureSuccessFragment(success)),
		defaultLanding, views.FlashSuccess, strings.TrimSpace(spec.Title+" is connected. "+res.Detail))
}

// kept are the entered values a re-rendered form may show again: never a
// key, token or secret.
func kept(spec *app.Spec, in app.Values) map[string]string {
	out := map[string]string{}
	for _, f := range spec.FormFields() {
		if !f.Secret() && in[f.Name] != "" {
			out[f.Name] = in[f.Name]
		}
	}
	return out
}

// verifyIntegration re-tests the stored credentials with the provider and
// records the outcome (POST /api/integrations/:provider/verify): verifyData,
// or for htmx the card showing the result.
func (s *Server) verifyIntegration(c *fiber.Ctx) error {
	a, _ := account(c)
	provider, err := app.ParseProvider(c.Params("provider"))
	if err != nil {
		return err
	}
	res, err := s.deps.Integrations.Verify(c.UserContext(), a.Principal, provider)
	if err != nil {
		return s.cardError(c, a, provider, err)
	}
	notice := &views.Notice{Kind: views.FlashSuccess, Message: "Connection verified."}
	if res.Limited {
		// The card's Limited notice says what the key cannot do.
		notice = &views.Notice{Kind: views.FlashWarning, Message: "Connection verified, with limited access."}
	} else if res.Detail != "" {
		notice.Message += " " + res.Detail
	}
	card := s.card(c, a, res.Status, notice)
	card.Announce = provider.Title() + ": " + notice.Message
	if res.Limited {
		card.Announce += " " + res.Status.Warning
	}
	return s.changed(c, http.StatusOK, verifyData{Provider: provider, Verified: res.Verified, LastVerified: res.VerifiedAt.UTC(),
		Limited: res.Limited, Warning: nullable(res.Status.Warning), Detail: res.Detail},
		s.withAttention(a, views.IntegrationCard(card)), defaultLanding, views.FlashSuccess, card.Announce)
}

// disconnectIntegration deletes the stored credentials (DELETE
// /api/integrations/:provider): disconnectData, or for htmx the card back
// to Not configured. Google Calendar's authorization is revoked at Google
// first.
func (s *Server) disconnectIntegration(c *fiber.Ctx) error {
	a, _ := account(c)
	provider, err := app.ParseProvider(c.Params("provider"))
	if err != nil {
		return err
	}
	st, err := s.deps.Integrations.Disconnect(c.UserContext(), a.Principal, provider)
	if err != nil {
		return s.cardError(c, a, provider, err)
	}
	msg := provider.Title() + " disconnected."
	card := s.card(c, a, st, &views.Notice{Kind: views.FlashInfo, Message: msg})
	card.Announce = msg
	if spec := app.MustDescribe(provider); !spec.OAuth && a.Principal.IsAdmin() {
		// The dialog offers a fresh Configure form from now on.
		card.NextForm = &views.ConfigureForm{Spec: spec, CSRFToken: s.csrfToken(c)}
	}
	return s.changed(c, http.StatusOK, disconnectData{Provider: provider, Connected: false},
		s.withAttention(a, views.IntegrationCard(card)), defaultLanding, views.FlashSuccess, msg)
}

// webhookSigningInput is the body of POST /api/integrations/vapi/webhook-signing:
// {"hmacOnly": true|false}, or the form field hmacOnly=true|false.
type webhookSigningInput struct {
	HMACOnly *bool `json:"hmacOnly" form:"hmacOnly"`
}

// setWebhookSigning turns the org's HMAC-only setting of Vapi's webhooks on
// or off (POST /api/integrations/vapi/webhook-signing): webhookSigningData,
// or for htmx the Vapi card showing the outcome.
func (s *Server) setWebhookSigning(c *fiber.Ctx) error {
	a, _ := account(c)
	var in webhookSigningInput
	err := bind(c, &in)
	var st app.Status
	if err == nil {
		st, err = s.deps.Integrations.SetWebhookHMACOnly(c.UserContext(), a.Principal, in.HMACOnly)
	}
	if err != nil {
		return s.cardError(c, a, app.Vapi, err)
	}
	msg := integrations.WebhookSigningDetail(st.WebhookHMACOnly)
	card := s.card(c, a, st, &views.Notice{Kind: views.FlashSuccess, Message: msg})
	card.Announce = "Vapi: " + msg
	return s.changed(c, http.StatusOK, webhookSigningData{Provider: app.Vapi, HMACOnly: st.WebhookHMACOnly},
		views.IntegrationCard(card), defaultLanding, views.FlashSuccess, "Vapi: "+msg)
}

// cardError answers a refused test or disconnect. API clients get the
// error. htmx gets the provider's card in its current state (a refused test
// has just turned it to Needs attention) with the reason on it, and a full
// page request goes to the dashboard with the reason as a flash. Errors that
// are not about the provider go to the error handler.
func (s *Server) cardError(c *fiber.Ctx, a auth.Account, provider app.Provider, err error) error {
	err = ownStop(c.UserContext(), err)
	code := app.ErrorCode(err)
	f := negotiate(c)
	if f == formatJSON || code == app.EInternal || code == app.EUnauthorized || code == app.EUnknownProvider {
		return err
	}
	msg := app.ErrorMessage(err)
	if f == formatPage {
		s.flash(c, views.FlashError, msg)
		return redirect(c, defaultLanding)
	}
	// The card shows the state after the refusal, so it is read again
	// (briefly past the request's end when the request was stopped).
	ctx := c.UserContext()
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		defer cancel()
	}
	st, serr := s.deps.Integrations.Status(ctx, a.Principal, provider)
	if serr != nil {
		return err
	}
	var notice *views.Notice
	if code == app.EVerificationFailed && st.VerificationError != "" {
		// The card shows the recorded reason: one message, not two.
		msg = st.VerificationError
	} else {
		notice = &views.Notice{Kind: views.FlashError, Message: msg}
	}
	card := s.card(c, a, st, notice)
	card.Announce = provider.Title() + ": " + msg
	return renderHTML(c, statusOf(code), s.withAttention(a, views.IntegrationCard(card)))
}

// attentionTimeout bounds the status read of withAttention.
const attentionTimeout = 2 * time.Second

// withAttention is fragment followed by the dashboard's attention region
// as it stands now, swapped in out of band: a change to one connection
// updates the banner above the cards too. The statuses are read when the
// fragment is rendered (htmx answers only); when they cannot be read the
// region is left out and the banner stays as it was until the next load.
func (s *Server) withAttention(a auth.Account, fragment templ.Component) templ.Component {
	region := templ.ComponentFunc(func(ctx context.Context, w io.Writer) error {
		ctx, cancel := context.WithTimeout(ctx, attentionTimeout)
		defer cancel()
		sts, err := s.deps.Integrations.Statuses(ctx, a.Principal)
		if err != nil {
			s.log.WarnContext(ctx, "reading the statuses for the attention banner failed", "org_id", a.Principal.OrgID, "err", err)
			return nil
		}
		now := time.Now()
		cards := make([]views.Card, 0, len(sts))
		for _, st := range sts {
			cards = append(cards, views.Card{Spec: app.MustDescribe(st.Provider), Status: st,
				Stale: views.NotCheckedRecently(st, s.opts.ReverifyInterval, now)})
		}
		return views.AttentionRegion(views.AttentionOf(cards), true).Render(ctx, w)
	})
	return templ.Join(fragment, region)
}

// card builds a provider's card for the request's account. A stored
// connection of a provider that manages assistants lists them and the
// webhook URL they call (a failure to read them is logged and leaves them
// out: the card still tells the state).
func (s *Server) card(c *fiber.Ctx, a auth.Account, st app.Status, result *views.Notice) views.Card {
	card := views.Card{
		Spec: app.MustDescribe(st.Provider), Status: st, CanManage: a.Principal.IsAdmin(),
		SignInReady: s.deps.Integrations.GoogleReady(), Now: time.Now(), Result: result,
	}
	card.Stale = views.NotCheckedRecently(st, s.opts.ReverifyInterval, card.Now)
	if card.Spec.ManagesAssistants && (st.Connected || st.NeedsAttention) {
		card.WebhookURL = s.deps.Integrations.WebhookURL()
		ms, err := s.deps.Integrations.Assistants(c.UserContext(), a.Principal)
		if err != nil {
			s.log.ErrorContext(c.UserContext(), "reading the assistants for the card failed", "org_id", a.Principal.OrgID, "err", err)
		}
		card.Assistants = ms
		if s.deps.Activity != nil {
			at, seen, err := s.deps.Activity.LastDelivery(c.UserContext(), a.Principal)
			if err != nil {
				s.log.ErrorContext(c.UserContext(), "reading the last delivery for the card failed", "org_id", a.Principal.OrgID, "err", err)
			} else {
				card.LastDelivery = &views.LastDelivery{At: at, Any: seen}
			}
		}
	}
	return card
}

// nullable is s, or nil when it is empty (a JSON null).
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// statusData is the JSON status object: one entry per provider, keyed by
// its JSON key (vapi, twilio, googleCalendar, resend, elevenlabs). Each
// entry has connected, needsAttention, lastVerified (the last check that
// passed: RFC 3339 or null), lastChecked (the last check of either outcome),
// limited (the provider accepted the credentials with limited scope),
// warning (what that means in plain words, or null), verificationError (a string or null), verificationCode (null, or a stable
// code such as "reconnect_needed") and the masked details flattened in
// ("apiKey": "••••abcd", "phoneNumber": "+1202•••1234"); a stored
// connection of a provider whose assistants BYOC configures (Vapi) adds
// webhookHmacOnly and, when connected, webhookSecret: {own (the org has a
// secret of its own), revealedAt (when the current secret was shown, or
// null: it can be revealed once), previousValidUntil (when the secret a
// rotation replaced stops being accepted, or null)}; never the secret.
func statusData(sts []app.Status) map[string]map[string]any {
	byProvider := make(map[app.Provider]app.Status, len(sts))
	for _, st := range sts {
		byProvider[st.Provider] = st
	}
	out := make(map[string]map[string]any, len(app.Providers))
	for _, p := range app.Providers {
		st, ok := byProvider[p]
		if !ok {
			st = app.Status{Provider: p}
		}
		e := make(map[string]any, len(st.Details)+4)
		for k, v := range st.Details {
			e[k] = v
		}
		e["connected"] = st.Connected
		e["needsAttention"] = st.NeedsAttention
		e["lastVerified"] = nil
		if st.LastVerified != nil {
			e["lastVerified"] = st.LastVerified.UTC()
		}
		e["lastChecked"] = nil
		if st.LastChecked != nil {
			e["lastChecked"] = st.LastChecked.UTC()
		}
		e["limited"] = st.Limited
		e["warning"] = nullable(st.Warning)
		e["verificationError"] = nil
		if st.VerificationError != "" {
			e["verificationError"] = st.VerificationError
		}
		e["verificationCode"] = nil
		if st.VerificationCode != "" {
			e["verificationCode"] = st.VerificationCode
		}
		if app.MustDescribe(p).ManagesAssistants && (st.Connected || st.NeedsAttention) {
			e["webhookHmacOnly"] = st.WebhookHMACOnly
		}
		if ws := st.WebhookSecret; ws != nil {
			w := map[string]any{"own": ws.Own, "revealedAt": nil, "previousValidUntil": nil}
			if ws.RevealedAt != nil {
				w["revealedAt"] = ws.RevealedAt.UTC()
			}
			if ws.PreviousUntil != nil {
				w["previousValidUntil"] = ws.PreviousUntil.UTC()
			}
			e["webhookSecret"] = w
		}
		out[p.JSONKey()] = e
	}
	return out
}

// saveData is the JSON answer of a save.
type saveData struct {
	Provider     app.Provider `json:"provider"`
	Connected    bool         `json:"connected"`
	LastVerified time.Time    `json:"lastVerified"`
	// Limited is set for credentials that are valid with limited scope.
	Limited bool   `json:"limited"`
	Detail  string `json:"detail"`
	// Vapi only: the org's assistants.
	InboundAssistantID  string `json:"inboundAssistantId,omitempty"`
	OutboundAssistantID string `json:"outboundAssistantId,omitempty"`
	// Twilio only: the masked SMS number.
	PhoneNumber string `json:"phoneNumber,omitempty"`
}

func newSaveData(res integrations.SaveResult) saveData {
	return saveData{
		Provider: res.Provider, Connected: true, LastVerified: res.LastVerified.UTC(),
		Limited: res.Limited, Detail: res.Detail,
		InboundAssistantID: res.InboundAssistantID, OutboundAssistantID: res.OutboundAssistantID,
		PhoneNumber: res.MaskedPhone,
	}
}

// verifyData is the JSON answer of a successful connection test.
type verifyData struct {
	Provider     app.Provider `json:"provider"`
	Verified     bool         `json:"verified"`
	LastVerified time.Time    `json:"lastVerified"`
	// Limited and Warning as in the status entry.
	Limited bool   `json:"limited"`
	Warning any    `json:"warning"`
	Detail  string `json:"detail"`
}

// webhookSigningData is the JSON answer of a change of the HMAC-only
// webhook setting.
type webhookSigningData struct {
	Provider app.Provider `json:"provider"`
	HMACOnly bool         `json:"hmacOnly"`
}

// disconnectData is the JSON answer of a disconnect.
type disconnectData struct {
	Provider  app.Provider `json:"provider"`
	Connected bool         `json:"connected"`
}
