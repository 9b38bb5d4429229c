package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"byoc/app"
	"byoc/app/config"
	"byoc/app/credentials"
	"byoc/app/keyring"
	"byoc/db"
	"byoc/db/seed"
)

// storm saves Vapi credentials of its orgs through the real credential
// service, on its own connections to the bench database, at a steady rate:
// each save seals a new API key (same webhook secret) and announces the
// change in its transaction, so the server's listener drops those orgs'
// entries, exactly as a save made on another instance would.
type storm struct {
	svc     *credentials.Service
	db      *db.DB
	targets []seed.Target
	// perSave is how many statements one save takes (see calibrate); -1
	// when they cannot be counted.
	perSave float64

	saves, failures, missed atomic.Int64
}

// stormWorkers is how many saves may run at once.
const stormWorkers = 16

// newStorm builds the credential service the way the server does, from the
// same configuration (the development secrets in dataDir hold the key the
// orgs were sealed with).
func newStorm(ctx context.Context, dataDir, dbURL string, targets []seed.Target) (*storm, error) {
	get, err := config.FromEnvironment(".env.local")
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(func(name string) (string, bool) {
		switch name {
		case "DATA_DIR":
			return dataDir, true
		case "DATABASE_URL":
			return dbURL, true
		}
		return get(name)
	})
	if err != nil {
		return nil, err
	}
	kr, err := keyring.Parse(cfg.EncryptionKey.Reveal(), cfg.EncryptionKeysPrevious.Reveal())
	if err != nil {
		return nil, fmt.Errorf("ENCRYPTION_KEY: %w", err)
	}
	d, err := db.Open(ctx, dbURL, db.Options{MaxConns: stormWorkers})
	if err != nil {
		return nil, err
	}
	return &storm{svc: credentials.New(d, kr, credentials.Options{}), db: d, targets: targets, perSave: -1}, nil
}

func (s *storm) close() { s.db.Close() }

// save changes the credentials of target i.
func (s *storm) save(ctx context.Context, i int) {
	tg := s.targets[i%len(s.targets)]
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	_, err := s.svc.Save(ctx, app.Connection{OrgID: tg.OrgID, VerifiedAt: time.Now(),
		Config: app.VapiConfig{APIKey: app.NewSecret("bench-" + hex.EncodeToString(key)), WebhookSecret: tg.WebhookSecret,
			Region: app.VapiUS}})
	if err != nil {
		if ctx.Err() == nil {
			s.failures.Add(1)
		}
		return
	}
	s.saves.Add(1)
}

// run saves credentials of its orgs in turn, rate a second, until ctx
// ends. A save that finds every worker busy is counted as missed, never
// queued.
func (s *storm) run(ctx context.Context, rate int) {
	ticks := make(chan int)
	var wg sync.WaitGroup
	for range stormWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ticks {
				s.save(ctx, i)
			}
		}()
	}
	defer wg.Wait()
	defer close(ticks)
	start := time.Now()
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	sent := 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			due := int(now.Sub(start).Seconds() * float64(rate))
			for ; sent < due; sent++ {
				select {
				case ticks <- sent:
				default:
					s.missed.Add(1)
				}
			}
		}
	}
}

// start runs the storm at rate saves a second until the returned function
// is called; that function waits for the saves in flight and returns how
// many saves succeeded meanwhile.
func (s *storm) start(ctx context.Context, rate int) func() int64 {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	from := s.saves.Load()
	go func() {
		defer close(done)
		s.run(ctx, rate)
	}()
	return func() int64 {
		cancel()
		<-done
		return s.saves.Load() - from
	}
}

// calibrate saves n credentials one at a time while nothing else runs and
// sets perSave, so the statements of a run during the storm can be told
// apart from the server's own.
func (s *storm) calibrate(ctx context.Context, p *prober, n int) {
	before := p.statements(ctx)
	for i := range n {
		s.save(ctx, i)
	}
	if after := p.statements(ctx); before >= 0 && after >= 0 {
		s.perSave = float64(after-before) / float64(n)
	}
}
