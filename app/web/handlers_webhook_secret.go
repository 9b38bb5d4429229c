package web

import (
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"byoc/app"
	"byoc/app/auth"
	"byoc/views"
)

// rotateWebhookSecret replaces the org's Vapi webhook secret (POST
// /api/integrations/vapi/webhook-secret/rotate): webhookSecretData with the
// new secret, the one time it is answered, or for htmx the Vapi card
// showing it with a copy button. Admins only; audited; the secret is never
// logged and the answer is never stored by a cache.
func (s *Server) rotateWebhookSecret(c *fiber.Ctx) error {
	a, _ := account(c)
	res, err := s.deps.Integrations.RotateWebhookSecret(c.UserContext(), a.Principal)
	if err != nil {
		return s.cardError(c, a, app.Vapi, err)
	}
	msg := "Webhook secret rotated. Copy it now: it is not shown again."
	if !res.PreviousUntil.IsZero() {
		msg += " The previous secret is accepted until " + res.PreviousUntil.UTC().Format("2 Jan 2006 15:04 MST") + "."
	}
	data := webhookSecretData{Provider: app.Vapi, Secret: res.Secret.Reveal()}
	if !res.PreviousUntil.IsZero() {
		until := res.PreviousUntil.UTC()
		data.PreviousValidUntil = &until
	}
	return s.secretShown(c, a, res.Status, res.Secret, msg, data)
}

// revealWebhookSecret shows the org's current Vapi webhook secret once
// (POST /api/integrations/vapi/webhook-secret/reveal): webhookSecretData,
// or for htmx the Vapi card showing it; a secret already shown is refused
// with 409 conflict (rotate to get a new one). Admins only; every attempt
// is audited.
func (s *Server) revealWebhookSecret(c *fiber.Ctx) error {
	a, _ := account(c)
	secret, st, err := s.deps.Integrations.RevealWebhookSecret(c.UserContext(), a.Principal)
	if err != nil {
		return s.cardError(c, a, app.Vapi, err)
	}
	data := webhookSecretData{Provider: app.Vapi, Secret: secret.Reveal()}
	if ws := st.WebhookSecret; ws != nil && ws.PreviousUntil != nil {
		until := ws.PreviousUntil.UTC()
		data.PreviousValidUntil = &until
	}
	return s.secretShown(c, a, st, secret, "Copy the webhook secret now: it is not shown again.", data)
}

// secretShown answers a rotation or reveal: data to API clients, the Vapi
// card with the secret to htmx and to a plain browser post (a page: a
// flash lives in the session cookie, where a secret must never go). No
// cache may keep the answer.
func (s *Server) secretShown(c *fiber.Ctx, a auth.Account, st app.Status, secret app.Secret, msg string, data webhookSecretData) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	card := s.card(c, a, st, &views.Notice{Kind: views.FlashSuccess, Message: msg})
	card.ShownSecret = secret
	card.Announce = "Vapi: " + msg
	fragment := views.IntegrationCard(card)
	return s.reply(c, http.StatusOK, answer{Data: data, view: view{Fragment: fragment, Page: fragment, Title: "Webhook secret"},
		Location: defaultLanding})
}

// webhookSecretData is the JSON answer of a rotation or reveal of the
// org's Vapi webhook secret: the secret itself, shown this once, and when
// the secret a rotation replaced stops being accepted (null: none is).
type webhookSecretData struct {
	Provider           app.Provider `json:"provider"`
	Secret             string       `json:"secret"`
	PreviousValidUntil *time.Time   `json:"previousValidUntil"`
}
