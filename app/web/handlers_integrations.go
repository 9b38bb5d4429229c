package web

import (
	"net/http"
	"strings"
	"time"

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
	d := views.Integrations{OrgName: a.OrgName, CanManage: a.Principal.IsAdmin()}
	for _, st := range sts {
		d.Cards = append(d.Cards, s.card(a, st, nil))
	}
	if d.CanManage && negotiate(c) == formatPage {
		for _, spec := range app.Specs() {
			if !spec.OAuth {
				d.Forms = append(d.Forms, views.ConfigureForm{Spec: spec, CSRFToken: s.csrfToken(c)})
			}
		}
	}
	return s.reply(c, http.StatusOK, answer{Data: statusData(sts),
		view: view{Title: "Integrations", Page: views.IntegrationsPage(d), Fragment: views.IntegrationCards(d)}})
}

// saveIntegration checks the provider's form or JSON body against its
// description, verifies it with the provider and stores it (POST
// /api/integrations/:provider). A success answers saveData, or for htmx the
// success panel with the provider's new card out of band. A refused save
// answers the error, or for HTML the form again with the messages (never a
// secret value).
func (s *Server) saveIntegration(c *fiber.Ctx) error {
	a, _ := account(c)
	provider, err := app.ParseProvider(c.Params("provider"))
	if err != nil {
		return err
	}
	spec := app.MustDescribe(provider)
	in, err := bindValues(c, spec.FormFields())
	var res integrations.SaveResult
	if err == nil {
		res, err = s.deps.Integrations.Save(c.UserContext(), a.Principal, provider, in)
	}
	if err != nil {
		code := app.ErrorCode(err)
		if spec.OAuth || negotiate(c) == formatJSON || code == app.EInternal || code == app.EUnauthorized {
			return err
		}
		f := views.ConfigureForm{Spec: spec, CSRFToken: s.csrfToken(c), Values: kept(spec, in),
			Message: app.ErrorMessage(err), Errors: app.ErrorFields(err)}
		return s.reply(c, statusOf(code), answer{
			view: view{Title: "Connect " + spec.Title, Page: views.ConfigurePage(f), Fragment: views.ConfigureFormFragment(f)}})
	}
	success := views.ConfigureSuccess{
		Provider: provider, Detail: res.Detail, Limited: res.Limited,
		InboundAssistantID: res.InboundAssistantID, OutboundAssistantID: res.OutboundAssistantID,
		MaskedPhone: res.MaskedPhone, Card: s.card(a, res.Status, nil),
	}
	return s.changed(c, http.StatusOK, newSaveData(res), views.ConfigureSuccessFragment(success),
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
	msg := "Connection verified."
	if res.Detail != "" {
		msg += " " + res.Detail
	}
	card := s.card(a, res.Status, &views.Notice{Kind: views.FlashSuccess, Message: msg})
	return s.changed(c, http.StatusOK, verifyData{Provider: provider, Verified: res.Verified, LastVerified: res.VerifiedAt.UTC(), Detail: res.Detail},
		views.IntegrationCard(card), defaultLanding, views.FlashSuccess, provider.Title()+": "+msg)
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
	card := s.card(a, st, &views.Notice{Kind: views.FlashInfo, Message: msg})
	return s.changed(c, http.StatusOK, disconnectData{Provider: provider, Connected: false},
		views.IntegrationCard(card), defaultLanding, views.FlashSuccess, msg)
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
	card := s.card(a, st, &views.Notice{Kind: views.FlashSuccess, Message: msg})
	return s.changed(c, http.StatusOK, webhookSigningData{Provider: app.Vapi, HMACOnly: st.WebhookHMACOnly},
		views.IntegrationCard(card), defaultLanding, views.FlashSuccess, "Vapi: "+msg)
}

// cardError answers a refused test or disconnect. API clients get the
// error. htmx gets the provider's card in its current state (a refused test
// has just turned it to Needs attention) with the reason on it, and a full
// page request goes to the dashboard with the reason as a flash. Errors that
// are not about the provider go to the error handler.
func (s *Server) cardError(c *fiber.Ctx, a auth.Account, provider app.Provider, err error) error {
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
	// The card shows the state after the refusal, so it is read again.
	st, serr := s.deps.Integrations.Status(c.UserContext(), a.Principal, provider)
	if serr != nil {
		return err
	}
	if code == app.EVerificationFailed && st.VerificationError != "" {
		msg = "The connection test failed."
	}
	card := s.card(a, st, &views.Notice{Kind: views.FlashError, Message: msg})
	return renderHTML(c, statusOf(code), views.IntegrationCard(card))
}

// card builds a provider's card for the request's account.
func (s *Server) card(a auth.Account, st app.Status, result *views.Notice) views.Card {
	return views.Card{
		Spec: app.MustDescribe(st.Provider), Status: st, CanManage: a.Principal.IsAdmin(),
		SignInReady: s.deps.Integrations.GoogleReady(), Now: time.Now(), Result: result,
	}
}

// statusData is the JSON status object: one entry per provider, keyed by
// its JSON key (vapi, twilio, googleCalendar, resend, elevenlabs). Each
// entry has connected, needsAttention, lastVerified (RFC 3339 or null),
// verificationError (a string or null), verificationCode (null, or a stable
// code such as "reconnect_needed") and the masked details flattened in
// ("apiKey": "••••abcd", "phoneNumber": "+1202•••1234"); a stored
// connection of a provider whose assistants BYOC configures (Vapi) adds
// webhookHmacOnly.
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
	Detail       string       `json:"detail"`
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
