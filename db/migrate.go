package db

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"byoc/migrations"
)

// MigrationStatus is one migration and whether it is applied.
type MigrationStatus struct {
	Version int64
	Name    string
	Applied bool
}

// migrator opens a goose provider on the pool. A PostgreSQL session lock
// makes concurrent starts of several instances take turns.
func (d *DB) migrator() (*goose.Provider, *sql.DB, error) {
	sqlDB := stdlib.OpenDBFromPool(d.Pool)
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		sqlDB.Close()
		return nil, nil, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS,
		goose.WithSessionLocker(locker), goose.WithLogger(goose.NopLogger()))
	if err != nil {
		sqlDB.Close()
		return nil, nil, err
	}
	return p, sqlDB, nil
}

// MigrateUp applies every pending migration and logs each one applied.
func (d *DB) MigrateUp(ctx context.Context, log *slog.Logger) error {
	p, sqlDB, err := d.migrator()
	if err != nil {
		return fmt.Errorf("db: migrate: %w", err)
	}
	defer sqlDB.Close()
	results, err := p.Up(ctx)
	for _, r := range results {
		log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	if err != nil {
		return fmt.Errorf("db: migrate up: %w", err)
	}
	return nil
}

// MigrateDown rolls back the most recent migration (the documented way back).
func (d *DB) MigrateDown(ctx context.Context, log *slog.Logger) error {
	p, sqlDB, err := d.migrator()
	if err != nil {
		return fmt.Errorf("db: migrate: %w", err)
	}
	defer sqlDB.Close()
	r, err := p.Down(ctx)
	if r != nil && r.Source != nil {
		log.Info("migration rolled back", "version", r.Source.Version, "file", r.Source.Path)
	}
	if err != nil {
		return fmt.Errorf("db: migrate down: %w", err)
	}
	return nil
}

// MigrationStatuses lists every known migration and whether it is applied.
func (d *DB) MigrationStatuses(ctx context.Context) ([]MigrationStatus, error) {
	p, sqlDB, err := d.migrator()
	if err != nil {
		return nil, fmt.Errorf("db: migrate: %w", err)
	}
	defer sqlDB.Close()
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("db: migration status: %w", err)
	}
	out := make([]MigrationStatus, 0, len(st))
	for _, s := range st {
		out = append(out, MigrationStatus{Version: s.Source.Version, Name: s.Source.Path, Applied: s.State == goose.StateApplied})
	}
	return out, nil
}
