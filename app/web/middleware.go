package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"byoc/app"
	"byoc/app/paths"
)

// contentSecurityPolicy allows only this origin's scripts and styles (no
// inline code), no plugins, no framing and forms that post to this origin.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// observe is the outermost middleware. It gives the request an id (echoed
// in X-Request-ID) and a context with a deadline, runs the rest of the
// chain, hands any error to the error handler, then writes the access log
// line and the metrics (among them the database statements the request
// sent, counted through its context). The log never contains bodies,
// cookies, the query string or the Authorization header.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	id := requestID(c.Get(fiber.HeaderXRequestID))
	c.Locals(localRequestID, id)
	c.Set(fiber.HeaderXRequestID, id)

	rctx, release := newRequestContext(s.stopping, start.Add(s.opts.RequestTimeout))
	defer release()
	ctx, queries := app.WithQueryCount(rctx)
	c.SetUserContext(ctx)

	err := c.Next()
	route := routeLabel(c, err)
	if err != nil {
		if herr := s.handleError(c, err); herr != nil {
			s.log.Error("error handler failed", "request_id", id, "err", herr)
			c.Status(fiber.StatusInternalServerError)
		}
	}

	if s.draining.Load() {
		c.Context().SetConnectionClose()
	}
	status := c.Response().StatusCode()
	elapsed := time.Since(start)
	s.metrics.observe(c.Method(), route, status, elapsed)
	s.metrics.observeQueries(route, queries.Load())

	level := slog.LevelInfo
	if route == paths.Healthz || route == paths.Readyz || route == paths.Metrics || route == paths.StaticRoute {
		level = slog.LevelDebug
	}
	if route == paths.Webhooks && err == nil {
		// The webhook handler logs each delivery itself, with this request
		// id: one line per delivery.
		level = slog.LevelDebug
	}
	if !s.log.Enabled(context.Background(), level) {
		return nil
	}
	attrs := []slog.Attr{
		slog.String("request_id", id),
		slog.String("method", c.Method()),
		slog.String("path", loggedPath(c, route)),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.Int("bytes", len(c.Response().Body())),
		slog.String("ip", s.clientIP(c)),
	}
	if p, ok := principal(c); ok {
		attrs = append(attrs, slog.String("user_id", p.UserID), slog.String("org_id", p.OrgID))
	}
	s.log.LogAttrs(context.Background(), level, "request", attrs...)
	return nil
}

// loggedPath is the request's path as the access log shows it: the route's
// pattern instead for the routes whose path holds a link's token (an
// invitation, a password reset), which is a credential until it is used.
func loggedPath(c *fiber.Ctx, route string) string {
	if route == paths.InviteRoute || route == paths.ResetRoute {
		return route
	}
	return c.Path()
}

// routeLabel names the route that answered, as declared (never the raw
// path, which would give metrics unbounded labels), or "unmatched" when the
// router found no route (its own 404 and 405 errors).
func routeLabel(c *fiber.Ctx, err error) string {
	var fe *fiber.Error
	if errors.As(err, &fe) && (fe.Code == fiber.StatusMethodNotAllowed ||
		fe.Code == fiber.StatusNotFound && strings.HasPrefix(fe.Message, "Cannot ")) {
		return "unmatched"
	}
	if r := c.Route(); r != nil {
		return r.Path
	}
	return "unmatched"
}

// requestID returns the incoming id when it is short and plain, or a new
// one: unique across instances and restarts (a random prefix per process),
// made without a system call.
func requestID(incoming string) string {
	if n := len(incoming); n >= 8 && n <= 64 {
		ok := true
		for _, r := range incoming {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
				ok = false
				break
			}
		}
		if ok {
			return incoming
		}
	}
	var b [24]byte
	copy(b[:], requestIDPrefix[:])
	n := requestIDCount.Add(1)
	const digits = "0123456789abcdef"
	for i := len(b) - 1; i >= len(requestIDPrefix); i-- {
		b[i] = digits[n&0xf]
		n >>= 4
	}
	return string(b[:])
}

// requestIDPrefix is this process's random part of the ids it makes (12
// hex digits), and requestIDCount counts them (12 hex digits after it:
// unique for 2^48 requests).
var (
	requestIDPrefix = func() (p [12]byte) {
		var r [6]byte
		_, _ = rand.Read(r[:])
		hex.Encode(p[:], r[:])
		return p
	}()
	requestIDCount atomic.Uint64
)

// recoverPanic turns a panic in a handler into an internal error, logged
// with its stack by the error handler; the server keeps running.
func (s *Server) recoverPanic(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = app.Internal(fmt.Errorf("panic: %v\n%s", r, debug.Stack()))
		}
	}()
	return c.Next()
}

// secure sets the security headers, marks responses as varying with
// HX-Request and Accept (the same URL answers a page, a fragment or JSON)
// and makes dynamic responses uncacheable (static files override it).
func (s *Server) secure(c *fiber.Ctx) error {
	s.setHeaders(c)
	return c.Next()
}

// setHeaders sets the headers of secure; the error handler calls it too.
func (s *Server) setHeaders(c *fiber.Ctx) {
	h := &c.Response().Header
	// Keys already in canonical form, as bytes: every answer carries
	// these, and normalizing them each time showed in the profiles.
	// Set rather than c.Vary, which parses what is there: nothing else
	// sets Vary, and the error handler sets the same value again.
	for _, kv := range answerHeaders {
		h.SetCanonical(kv[0], kv[1])
	}
	if s.opts.Production {
		h.SetCanonical(hstsHeader[0], hstsHeader[1])
	}
}

// answerHeaders are the headers secure sets on every answer, and
// hstsHeader the one it adds in production.
var (
	answerHeaders = [][2][]byte{
		{[]byte("Content-Security-Policy"), []byte(contentSecurityPolicy)},
		{[]byte("X-Content-Type-Options"), []byte("nosniff")},
		{[]byte("X-Frame-Options"), []byte("DENY")},
		{[]byte("Referrer-Policy"), []byte("same-origin")},
		{[]byte("Cross-Origin-Opener-Policy"), []byte("same-origin")},
		{[]byte("Permissions-Policy"), []byte("camera=(), microphone=(), geolocation=()")},
		{[]byte(fiber.HeaderCacheControl), []byte("no-store")},
		{[]byte(fiber.HeaderVary), []byte(varyOn)},
	}
	hstsHeader = [2][]byte{[]byte("Strict-Transport-Security"), []byte("max-age=" + strconv.Itoa(2*365*24*3600) + "; includeSubDomains")}
)

// varyOn is the Vary header of every answer.
const varyOn = hxRequest + ", " + fiber.HeaderAccept
