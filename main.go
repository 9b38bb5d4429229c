// Command byoc is the BYOC server: the integrations hub where each
// organization connects its own provider accounts.
//
// Usage:
//
//	byoc [serve]                  migrate, then serve HTTP (the default)
//	byoc demo                     the same, with every provider replaced by a
//	                              local stand-in (development only)
//	byoc migrate [up|down|status] apply, roll back one, or list migrations
//	byoc rotate-keys              re-encrypt every stored credential under
//	                              ENCRYPTION_KEY (online; previous keys in
//	                              ENCRYPTION_KEYS_PREVIOUS still decrypt)
//	byoc check-rls                verify that row level security protects
//	                              every table as the migrations set it up
//	                              (exits non-zero listing each problem)
//	byoc seed [-orgs N]           add N orgs with Vapi credentials and an
//	                              assistant each, for benchmarks, and write
//	                              $DATA_DIR/seed-targets.csv (development only)
//	byoc backfill-legacy [--from DATABASE_URL] [--dry-run] [--verify]
//	                              bring orgs over from the old platform's
//	                              integrations and agents tables
//
// Configuration comes from the environment and an optional .env.local file;
// see the README for every variable. main is the only place that knows every
// package: it loads the configuration and wires the adapters into the
// services and the services into the web server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"byoc/app"
	"byoc/app/backfill"
	"byoc/app/config"
	"byoc/app/credentials"
	"byoc/app/keyring"
	"byoc/app/sandbox"
	"byoc/app/system"
	"byoc/db"
	"byoc/db/rlscheck"
	"byoc/db/seed"
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
		return serve(false)
	case "demo":
		return serve(true)
	case "migrate":
		return migrate(args)
	case "rotate-keys":
		return rotateKeys()
	case "seed":
		return seedOrgs(args)
	case "check-rls":
		return checkRLS(args)
	case "backfill-legacy":
		return backfillLegacy(args)
	case "help", "-h", "--help":
		fmt.Println("usage: byoc [serve] | byoc demo | byoc migrate [up|down|status] | byoc rotate-keys | byoc check-rls | " +
			"byoc seed [-orgs N] | byoc backfill-legacy [--from DATABASE_URL] [--dry-run] [--verify] [--batch N]")
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

// rotateKeys re-encrypts every row still sealed by a previous key. Once it
// reports no undecryptable rows, the previous keys can be removed; while
// there are any, it fails, so a script never drops a key too early.
func rotateKeys() error {
	cfg, log, err := setup()
	if err != nil {
		return err
	}
	kr, err := keyring.Parse(cfg.EncryptionKey.Reveal(), cfg.EncryptionKeysPrevious.Reveal())
	if err != nil {
		return fmt.Errorf("ENCRYPTION_KEY / ENCRYPTION_KEYS_PREVIOUS: %w", err)
	}
	ctx := context.Background()
	database, err := db.Open(ctx, cfg.DatabaseURL.Reveal(), db.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	defer database.Close()
	rep, err := credentials.New(database, kr, credentials.Options{Logger: log}).Rotate(ctx, database)
	if err != nil {
		return err
	}
	fmt.Println("key rotation:", rep)
	if rep.Undecryptable > 0 {
		return fmt.Errorf("rotate-keys: %d row(s) cannot be decrypted with any configured key (the log names them): keep every previous key until this reports none", rep.Undecryptable)
	}
	return nil
}

// checkRLS holds the database in DATABASE_URL to rlscheck.Expected and
// prints the report; any problem makes it fail. It only reads the catalog.
func checkRLS(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("check-rls: unexpected argument %q (usage: byoc check-rls)", args[0])
	}
	cfg, _, err := setup()
	if err != nil {
		return err
	}
	ctx := context.Background()
	database, err := db.Open(ctx, cfg.DatabaseURL.Reveal(), db.Options{MaxConns: 1})
	if err != nil {
		return err
	}
	defer database.Close()
	rep, err := rlscheck.Check(ctx, database.Pool)
	if err != nil {
		return err
	}
	fmt.Print(rep)
	if !rep.OK() {
		return fmt.Errorf("check-rls: %d problem(s): row level security does not protect this database as expected", len(rep.Problems))
	}
	return nil
}

// seedOrgs makes sure the database holds the benchmark's orgs (see package
// db/seed) and writes the load generator's targets file into DATA_DIR.
// Production refuses it: the orgs are fake and the file holds their webhook
// secrets.
func seedOrgs(args []string) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	orgs := fs.Int("orgs", seed.DefaultOrgs, "how many orgs the database should hold")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("seed: unexpected argument %q (usage: byoc seed [-orgs N])", fs.Arg(0))
	}
	cfg, log, err := setup()
	if err != nil {
		return err
	}
	if cfg.Production() {
		return errors.New("seed (fake orgs for benchmarks) is refused when APP_ENV=production")
	}
	kr, err := keyring.Parse(cfg.EncryptionKey.Reveal(), cfg.EncryptionKeysPrevious.Reveal())
	if err != nil {
		return fmt.Errorf("ENCRYPTION_KEY / ENCRYPTION_KEYS_PREVIOUS: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	database, err := db.Open(ctx, cfg.DatabaseURL.Reveal(), db.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	defer database.Close()
	if err := database.MigrateUp(ctx, log); err != nil {
		return err
	}
	rep, err := seed.Run(ctx, database, kr, seed.Options{Orgs: *orgs, Out: filepath.Join(cfg.DataDir, seed.TargetsFile)})
	if err != nil {
		return err
	}
	fmt.Println("seed:", rep)
	return nil
}

// backfillLegacy brings orgs over from the old platform's tables (see
// package app/backfill), read from DATABASE_URL or --from, and prints what
// it did. Rows that failed make it exit non-zero, after the report.
func backfillLegacy(args []string) error {
	fs := flag.NewFlagSet("backfill-legacy", flag.ContinueOnError)
	from := fs.String("from", "", "the old platform's database URL (default: DATABASE_URL)")
	dryRun := fs.Bool("dry-run", false, "report what would be done; write nothing")
	verify := fs.Bool("verify", false, "ask each provider to accept the credentials before bringing them over")
	batch := fs.Int("batch", backfill.DefaultBatchSize, "orgs per transaction")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("backfill-legacy: unexpected argument %q (see byoc help)", fs.Arg(0))
	}
	cfg, log, err := setup()
	if err != nil {
		return err
	}
	legacyKey, err := backfill.ParseLegacyKey(cfg.LegacyEncryptionKey.Reveal())
	if err != nil {
		return fmt.Errorf("LEGACY_ENCRYPTION_KEY: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	database, err := db.Open(ctx, cfg.DatabaseURL.Reveal(), db.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	defer database.Close()
	if err := backfillSchema(ctx, database, *dryRun, log); err != nil {
		return err
	}
	source := database
	if *from != "" {
		if source, err = db.Open(ctx, *from, db.Options{MaxConns: 2}); err != nil {
			return fmt.Errorf("--from: %w", err)
		}
		defer source.Close()
	}
	sys, err := system.Build(cfg, database, system.Options{Logger: log})
	if err != nil {
		return err
	}
	opts := backfill.Options{Legacy: legacyKey, Keyring: sys.Keyring, DryRun: *dryRun, Verify: *verify,
		BatchSize: *batch, Logger: log, Verifiers: map[app.Provider]backfill.Verifier{}}
	for p, v := range sys.Verifiers {
		opts.Verifiers[p] = v
	}
	// A legacy grant is not stored yet: Google checks its refresh token.
	opts.Verifiers[app.GoogleCalendar] = backfill.GoogleGrant(sys.GoogleOAuth)
	rep, err := backfill.Run(ctx, source, database, opts)
	fmt.Print(rep)
	if err != nil {
		return err
	}
	if n := rep.Failed(); n > 0 {
		return fmt.Errorf("backfill-legacy: failed rows: %d (listed above); fix them and run it again", n)
	}
	return nil
}

// backfillSchema brings BYOC's schema up to date before a backfill; a dry
// run changes nothing, so it only checks that nothing is pending.
func backfillSchema(ctx context.Context, database *db.DB, dryRun bool, log *slog.Logger) error {
	if !dryRun {
		return database.MigrateUp(ctx, log)
	}
	st, err := database.MigrationStatuses(ctx)
	if err != nil {
		return err
	}
	for _, m := range st {
		if !m.Applied {
			return errors.New("backfill-legacy: the database has pending migrations; a dry run changes nothing, so run `byoc migrate up` first")
		}
	}
	return nil
}

// serve runs the server until SIGINT or SIGTERM. With sandbox set, the
// provider stand-ins run on a loopback listener of their own and every
// provider base URL points at them; production refuses that.
func serve(sandboxed bool) error {
	cfg, log, err := setup()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if sandboxed {
		if cfg.Production() {
			return errors.New("demo mode (provider stand-ins) is refused when APP_ENV=production")
		}
		closeSandbox, err := useSandbox(cfg, log)
		if err != nil {
			return err
		}
		// The stand-ins outlive the server, so a save still running at
		// shutdown is not cut off by its provider going away first.
		defer closeSandbox()
	}

	database, err := db.Open(ctx, cfg.DatabaseURL.Reveal(), db.Options{}) // pool size: DATABASE_URL's pool_max_conns, else db.DefaultMaxConns
	if err != nil {
		return err
	}
	defer database.Close()
	if err := database.MigrateUp(ctx, log); err != nil {
		return err
	}
	sys, err := system.Build(cfg, database, system.Options{Logger: log, Sandbox: sandboxed})
	if err != nil {
		return err
	}
	go sys.ListenInvalidations(ctx)
	go sys.SweepAttempts(ctx)
	// The refusal counts are flushed periodically and once more after the
	// server stopped answering (so the counts of the drain and the
	// shutdown are kept), before the database closes.
	flushCtx, stopFlushing := context.WithCancel(context.Background())
	defer stopFlushing()
	flushed := make(chan struct{})
	go func() { defer close(flushed); sys.FlushRefusals(flushCtx) }()
	// Re-verification stops claiming at shutdown; the checks under way
	// finish (never cut short and blamed on the provider) and are waited for.
	rechecked := make(chan struct{})
	go func() { defer close(rechecked); sys.RecheckConnections(ctx) }()
	// The queued mail's sender stops claiming at shutdown; the sends under
	// way finish and are recorded, and are waited for.
	mailed := make(chan struct{})
	go func() { defer close(mailed); sys.SendQueuedMail(ctx) }()
	srv := sys.Server

	errc := make(chan error, 1)
	go func() { errc <- srv.Listen(cfg.Addr()) }()
	log.Info("BYOC is serving", "url", cfg.PublicURL, "addr", cfg.Addr(), "env", cfg.Env, "key", sys.Keyring.PrimaryID())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if cfg.ShutdownDrain > 0 {
		// Health checks see 503 now; requests are still served until the
		// load balancer has stopped sending them.
		log.Info("draining before shutdown", "drain", cfg.ShutdownDrain)
		srv.Drain()
		select {
		case err := <-errc:
			return err
		case <-time.After(cfg.ShutdownDrain):
		}
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	stopFlushing()
	select {
	case <-flushed:
	case <-shutdownCtx.Done():
	}
	select {
	case <-rechecked:
	case <-shutdownCtx.Done():
	}
	select {
	case <-mailed:
	case <-shutdownCtx.Done():
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// useSandbox serves the provider stand-ins on a free loopback port until
// the returned function closes them, and points every provider URL of cfg
// at them. Without a Google client
// of its own, the demo uses the stand-in's registered client. One sandbox
// serves the process, so what a flow creates (assistants, sent messages,
// calendar events) stays visible to the next.
func useSandbox(cfg *config.Config, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	root := "http://" + ln.Addr().String()

	sb := sandbox.New()
	urls := sb.BaseURLs(root)
	cfg.URLs.Vapi, cfg.URLs.VapiEU, cfg.URLs.Twilio = urls.Vapi, urls.VapiEU, urls.Twilio
	cfg.URLs.Resend, cfg.URLs.ElevenLabs = urls.Resend, urls.ElevenLabs

	if !cfg.Google.Configured() {
		cfg.Google.ClientID = sandbox.GoogleSandboxClientID
		cfg.Google.ClientSecret = app.NewSecret(sandbox.GoogleSandboxClientSecret)
	}
	gs := sandbox.NewGoogle(sandbox.GoogleOptions{
		ClientID:     cfg.Google.ClientID,
		ClientSecret: cfg.Google.ClientSecret.Reveal(),
		RedirectURIs: []string{cfg.Google.CallbackURL},
	})
	gurls := gs.URLs(root + "/google")
	cfg.URLs.GoogleAuth, cfg.URLs.GoogleToken = gurls.Auth, gurls.Token
	cfg.URLs.GoogleRevoke, cfg.URLs.GoogleCalendar = gurls.Revoke, gurls.Calendar

	mux := http.NewServeMux()
	mux.Handle("/google/", http.StripPrefix("/google", gs))
	mux.Handle("/", sb.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Warn("sandbox mode: every provider is a local stand-in; nothing reaches a real provider", "stand_ins", root)
	return func() { _ = srv.Close() }, nil
}
