package web

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/singleflight"
)

// readyPingTimeout bounds the database ping of /readyz: well within a load
// balancer's check interval (500 ms in deploy/haproxy/haproxy.cfg), so a
// database that does not answer at all (a lost network path) reads as
// "database down" rather than as a health check that timed out.
const readyPingTimeout = 250 * time.Millisecond

// readiness is /readyz's view of the database: concurrent probes share one
// ping, and whether the last one failed is kept, so that a change is
// logged once rather than on every probe.
type readiness struct {
	pings singleflight.Group
	down  atomic.Bool
}

// healthz answers 200 while the process serves requests (liveness).
func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// readyz answers whether a load balancer should send this instance
// traffic. It answers 503 only for what belongs to this instance alone:
// draining before a shutdown ({"status":"draining"}), or not started yet
// ({"status":"starting"}: its invalidation listener has not listened once,
// see Started).
//
// The database is shared by every instance, so its state never makes an
// instance unready: when it does not answer a ping within readyPingTimeout,
// /readyz answers 200 {"status":"degraded","database":"down"}, otherwise
// 200 {"status":"ok","database":"up"}. Failing readiness on it would take
// every instance out of the load balancer at once and refuse everything,
// while each instance still verifies warm webhooks from its caches and
// refuses writes with a fast 503 unavailable.
//
// The trade-off: an instance cannot cheaply tell a database that is down
// for everyone from one that only it cannot reach (its own network path or
// connection limit), since the database is the only witness the instances
// share. Such an instance stays in rotation and refuses the writes it is
// sent although its peers could serve them; it shows as database connect
// errors on that instance alone (byoc_db_errors_total{kind="connect"},
// which its failed pings count too), and deploy/README.md says what to do.
// A ping that waits longer than readyPingTimeout for a free pool
// connection reads as "database down" as well: the answer informs, it
// never takes the instance out.
func (s *Server) readyz(c *fiber.Ctx) error {
	switch {
	case s.draining.Load():
		return c.Status(http.StatusServiceUnavailable).JSON(fiber.Map{"status": "draining"})
	case !s.started.Load():
		return c.Status(http.StatusServiceUnavailable).JSON(fiber.Map{"status": "starting"})
	}
	ctx := c.UserContext()
	// The ping outlives the request that started it (another probe may be
	// waiting for it) but never readyPingTimeout.
	_, err, _ := s.ready.pings.Do("ping", func() (any, error) {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyPingTimeout)
		defer cancel()
		return nil, s.deps.DB.Ping(pctx)
	})
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	id, _ := c.Locals(localRequestID).(string)
	if err != nil {
		if !s.ready.down.Swap(true) {
			s.log.Warn("readiness: the database does not answer; serving from the caches", "request_id", id, "err", err)
		}
		return c.JSON(fiber.Map{"status": "degraded", "database": "down"})
	}
	if s.ready.down.Swap(false) {
		s.log.Info("readiness: the database answers again", "request_id", id)
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
