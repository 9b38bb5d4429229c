package web

import (
	"context"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readyTimeout bounds the database ping of /readyz.
const readyTimeout = 2 * time.Second

// healthz answers 200 while the process serves requests (liveness).
func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// readyz answers 200 when the database answers and 503 otherwise, or
// while the server drains before a shutdown (readiness: take the instance
// out of the load balancer).
func (s *Server) readyz(c *fiber.Ctx) error {
	if s.draining.Load() {
		return c.Status(http.StatusServiceUnavailable).JSON(fiber.Map{"status": "draining"})
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), readyTimeout)
	defer cancel()
	if err := s.deps.DB.Ping(ctx); err != nil {
		id, _ := c.Locals(localRequestID).(string)
		s.log.Warn("not ready: database ping failed", "request_id", id, "err", err)
		return c.Status(http.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "database": "down"})
	}
	return c.JSON(fiber.Map{"status": "ok", "database": "up"})
}

// metricsHandler serves the registry in the Prometheus text format.
func (s *Server) metricsHandler() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry}))
}

// openAPIDoc serves the JSON API's OpenAPI description (app/openapi).
func (s *Server) openAPIDoc(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(s.openAPI)
}
