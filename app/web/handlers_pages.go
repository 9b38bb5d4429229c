package web

import (
	"net/http"

	"github.com/gofiber/fiber/v2"

	"byoc/views"
)

// home sends signed-in users to the dashboard and everyone else to the
// login page.
func (s *Server) home(c *fiber.Ctx) error {
	if _, ok := account(c); ok {
		return c.Redirect(defaultLanding, fiber.StatusFound)
	}
	return c.Redirect("/login", fiber.StatusFound)
}

// integrationsData is the JSON answer of the dashboard.
type integrationsData struct {
	Org  orgData  `json:"org"`
	User userData `json:"user"`
}

type orgData struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type userData struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Role  string `json:"role"`
}

// integrationsPage is the dashboard (signed-in users only, by cookie or
// bearer token). JSON clients get the org and the user.
func (s *Server) integrationsPage(c *fiber.Ctx) error {
	a, _ := account(c)
	p := a.Principal
	data := integrationsData{
		Org:  orgData{ID: p.OrgID, Name: a.OrgName},
		User: userData{ID: p.UserID, Email: p.Email, Role: string(p.Role)},
	}
	page := views.IntegrationsPage(views.Integrations{OrgName: a.OrgName})
	return s.respond(c, http.StatusOK, data, view{Title: "Integrations", Page: page})
}
