package web

import (
	"bytes"
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"byoc/app"
	"byoc/app/webhooks"
)

// Webhooks is the Vapi webhook handler; *webhooks.Handler implements it.
type Webhooks interface {
	Handle(ctx context.Context, r webhooks.Request) webhooks.Response
	Stats() webhooks.Stats
	CacheStats() webhooks.CacheStats
}

// vapiWebhook hands a Vapi webhook to the webhook handler: the raw bytes as
// received (copied, since Fiber reuses its buffers), the headers, and the
// request id and client address for the handler's log line, which is the
// delivery's one line at the info level (observe logs the route's access
// line at debug). The handler's answer already has its final shape (Vapi's
// tool results, or the error envelope, every 401 identical), so it is
// written as it is, never through the error handler.
func (s *Server) vapiWebhook(c *fiber.Ctx) error {
	id, _ := c.Locals(localRequestID).(string)
	res := s.deps.Webhooks.Handle(c.UserContext(), webhooks.Request{
		Header:     func(name string) string { return c.Get(name) },
		Body:       bytes.Clone(c.Body()),
		ReceivedAt: time.Now(),
		RequestID:  id,
		ClientIP:   s.clientIP(c),
	})
	body, err := res.JSON()
	if err != nil {
		return app.Internal(err)
	}
	c.Status(res.Status).Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(body)
}
