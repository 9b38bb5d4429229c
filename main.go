// Command byoc is the BYOC server: the integrations hub where each
// organization connects its own provider accounts.
//
// Usage:
//
//	byoc [serve]                 migrate, then serve HTTP (the default)
//	byoc migrate [up|down|status] apply, roll back one, or list migrations
//
// Configuration comes from the environment and an optional .env.local file;
// see the README for every variable. main is the only place that knows every
// package: it loads the configuration and wires the adapters into the
// services and the services into the web server.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"byoc/app/auth"
	"byoc/app/config"
	"byoc/app/credentials"
	"byoc/app/keyring"
	"byoc/app/web"
	"byoc/db"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "byoc:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve()
	case "migrate":
		return migrate(args)
	case "help", "-h", "--help":
		fmt.Println("usage: byoc [serve] | byoc migrate [up|down|status]")
		return nil
	}
	return fmt.Errorf("unknown command %q (try: byoc help)", cmd)
}

// setup loads the configuration and builds the logger.
func setup() (*config.Config, *slog.Logger, error) {
	get, err := config.FromEnvironment(".env.local")
	if err != nil {
		return nil, nil, err
	}
	cfg, err := config.Load(get)
	if err != nil {
		return nil, nil, err
	}
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if cfg.Production() {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	log := slog.New(h)
	slog.SetDefault(log)
	if len(cfg.Generated) > 0 {
		log.Warn("development secrets generated and kept on disk; set them in production",
			"variables", cfg.Generated, "file", cfg.DataDir+"/dev-secrets.env")
	}
	return cfg, log, nil
}

func migrate(args []string) error {
	direction := "up"
	if len(args) > 0 {
		direction = args[0]
	}
	cfg, log, err := setup()
	if err != nil {
		return err
	}
	ctx := context.Background()
	database, err := db.Open(ctx, cfg.DatabaseURL.Reveal(), db.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	defer database.Close()
	switch direction {
	case "up":
		return database.MigrateUp(ctx, log)
	case "down":
		return database.MigrateDown(ctx, log)
	case "status":
		st, err := database.MigrationStatuses(ctx)
		if err != nil {
			return err
		}
		for _, m := range st {
			state := "pending"
			if m.Applied {
				state = "applied"
			}
			fmt.Printf("%05d  %-8s %s\n", m.Version, state, m.Name)
		}
		return nil
	}
	return fmt.Errorf("unknown migrate direction %q (up, down or status)", direction)
}

func serve() error {
	cfg, log, err := setup()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	kr, err := keyring.Parse(cfg.EncryptionKey.Reveal(), cfg.EncryptionKeysPrevious.Reveal())
	if err != nil {
		return fmt.Errorf("ENCRYPTION_KEY / ENCRYPTION_KEYS_PREVIOUS: %w", err)
	}
	database, err := db.Open(ctx, cfg.DatabaseURL.Reveal(), db.Options{})
	if err != nil {
		return err
	}
	defer database.Close()
	if err := database.MigrateUp(ctx, log); err != nil {
		return err
	}

	creds := credentials.New(database, kr, credentials.Options{Logger: log})
	// Other instances announce their writes through PostgreSQL; after a lost
	// connection anything may have been missed, so everything is dropped.
	go database.ListenInvalidations(ctx,
		func(orgID, provider string) { creds.Invalidate(orgID, provider) },
		func() { creds.Flush() })

	tokens, err := auth.NewTokens([]byte(cfg.JWTSecret.Reveal()), auth.TokenOptions{Issuer: cfg.PublicURL})
	if err != nil {
		return fmt.Errorf("JWT_SECRET: %w", err)
	}
	accounts := auth.NewService(database, tokens, auth.Options{})

	srv, err := web.New(web.Options{
		Production:    cfg.Production(),
		PublicURL:     cfg.PublicURL,
		SessionSecret: []byte(cfg.SessionSecret.Reveal()),
		Logger:        log,
	}, web.Deps{Accounts: accounts, DB: database})
	if err != nil {
		return err
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Listen(cfg.Addr()) }()
	log.Info("BYOC is serving", "url", cfg.PublicURL, "addr", cfg.Addr(), "env", cfg.Env, "key", kr.PrimaryID())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
