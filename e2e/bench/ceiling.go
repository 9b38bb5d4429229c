package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/gofiber/fiber/v2"
)

// ceilingBody is what the ceiling answers to everything: the body of the
// webhook route's plain acknowledgement.
const ceilingBody = `{"received":true}`

// ceiling serves a bare Fiber handler answering a constant on every path
// and method until SIGINT or SIGTERM: the most any Fiber route can do on
// this machine, measured next to the real routes. It runs in a process of
// its own, as the server does, so both share the machine with the load
// generator alike.
func ceiling(args []string) error {
	fs := flag.NewFlagSet("ceiling", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.SendString(ceilingBody)
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- app.Listen(*addr) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if err := app.Shutdown(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
