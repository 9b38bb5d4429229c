package web

import (
	"context"
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

// configurable are the providers connected with a key through a form, in
// dashboard order. Google Calendar connects through Google's sign-in.
var configurable = []app.Provider{app.Vapi, app.Twilio, app.Resend, app.ElevenLabs}

// errGoogleOAuth answers a save of Google Calendar credentials.
var errGoogleOAuth = app.Errorf(app.EValidation,
	"Google Calendar is connected through Google's sign-in, not with a key: open /api/integrations/google_calendar/connect in a browser.")

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
		for _, p := range configurable {
			d.Forms = append(d.Forms, views.ConfigureForm{Provider: p, CSRFToken: s.csrfToken(c)})
		}
	}
	return s.respond(c, http.StatusOK, statusData(sts),
		view{Title: "Integrations", Page: views.IntegrationsPage(d), Fragment: views.IntegrationCards(d)})
}

// saveIntegration validates the provider's form or JSON body, verifies it
// with the provider and stores it (POST /api/integrations/:provider). A
// success answers saveData, or for htmx the success panel with the
// provider's new card out of band. A refused save answers the error, or for
// HTML the form again with the messages (never a secret value).
func (s *Server) saveIntegration(c *fiber.Ctx) error {
	a, _ := account(c)
	provider, err := app.ParseProvider(c.Params("provider"))
	if err != nil {
		return err
	}
	if provider == app.GoogleCalendar {
		return errGoogleOAuth
	}
	res, kept, err := s.save(c, a.Principal, provider)
	if err != nil {
		code := app.ErrorCode(err)
		if negotiate(c) == formatJSON || code == app.EInternal || code == app.EUnauthorized {
			return err
		}
		f := views.ConfigureForm{Provider: provider, CSRFToken: s.csrfToken(c), Values: kept,
			Message: app.ErrorMessage(err), Errors: app.ErrorFields(err)}
		return s.respond(c, statusOf(code), nil,
			view{Title: "Connect " + provider.Title(), Page: views.ConfigurePage(f), Fragment: views.ConfigureFormFragment(f)})
	}
	success := views.ConfigureSuccess{
		Provider: provider, Detail: res.Detail, Limited: res.Limited,
		InboundAssistantID: res.InboundAssistantID, OutboundAssistantID: res.OutboundAssistantID,
		MaskedPhone: res.MaskedPhone, Card: s.card(a, res.Status, nil),
	}
	return s.changed(c, http.StatusOK, newSaveData(res), views.ConfigureSuccessFragment(success),
		defaultLanding, views.FlashSuccess, strings.TrimSpace(provider.Title()+" is connected. "+res.Detail))
}

// save binds the provider's input and calls its Save method. kept are the
// entered values that may be shown again: never a key, token or secret.
func (s *Server) save(c *fiber.Ctx, p app.Principal, provider app.Provider) (integrations.SaveResult, map[string]string, error) {
	svc := s.deps.Integrations
	switch provider {
	case app.Vapi:
		return saveWith(c, p, svc.SaveVapi, func(in integrations.VapiInput) map[string]string {
			return map[string]string{"region": in.Region}
		})
	case app.Twilio:
		return saveWith(c, p, svc.SaveTwilio, func(in integrations.TwilioInput) map[string]string {
			return map[string]string{"accountSid": in.AccountSID, "phoneNumber": in.PhoneNumber, "whatsappNumber": in.WhatsAppNumber}
		})
	case app.Resend:
		return saveWith(c, p, svc.SaveResend, func(in integrations.ResendInput) map[string]string {
			return map[string]string{"fromEmail": in.FromEmail}
		})
	case app.ElevenLabs:
		return saveWith(c, p, svc.SaveElevenLabs, func(in integrations.ElevenLabsInput) map[string]string {
			return map[string]string{"voiceId": in.VoiceID}
		})
	}
	return integrations.SaveResult{}, nil, errGoogleOAuth
}

// saveWith decodes the request body into an In and saves it with save.
func saveWith[In any](c *fiber.Ctx, p app.Principal,
	save func(context.Context, app.Principal, In) (integrations.SaveResult, error),
	keep func(In) map[string]string) (integrations.SaveResult, map[string]string, error) {
	var in In
	if err := bind(c, &in); err != nil {
		return integrations.SaveResult{}, nil, err
	}
	res, err := save(c.UserContext(), p, in)
	return res, keep(in), err
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
		Status: st, CanManage: a.Principal.IsAdmin(), GoogleConfigured: s.googleReady(),
		Now: time.Now(), Result: result,
	}
}

// statusData is the JSON status object: one entry per provider, keyed by
// its JSON key (vapi, twilio, googleCalendar, resend, elevenlabs). Each
// entry has connected, needsAttention, lastVerified (RFC 3339 or null),
// verificationError (a string or null) and the masked details flattened in
// ("apiKey": "••••abcd", "phoneNumber": "+1202•••1234").
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

// disconnectData is the JSON answer of a disconnect.
type disconnectData struct {
	Provider  app.Provider `json:"provider"`
	Connected bool         `json:"connected"`
}
