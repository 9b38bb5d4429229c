package web

import (
	"github.com/gofiber/fiber/v2"

	"byoc/app/paths"
)

// home sends signed-in users to the dashboard and everyone else to the
// login page.
func (s *Server) home(c *fiber.Ctx) error {
	if _, ok := account(c); ok {
		return c.Redirect(defaultLanding, fiber.StatusFound)
	}
	return c.Redirect(paths.Login, fiber.StatusFound)
}
