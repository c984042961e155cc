package pgusage

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrations embed.FS

// VersionTable records which of the store's migrations are applied. It is
// the store's own, apart from the identity store's, so either schema moves
// on without the other.
const VersionTable = "quota_usage_schema_version"

// migrationLock is the advisory lock replicas starting at once take around
// migrating, so one applies the migrations and the others find them done.
// It differs from goose's default, which the identity store may hold.
const migrationLock int64 = 0x6d63707175736167 // "mcpqusag"

func provider(db *sql.DB) (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLock), lock.WithLockTimeout(1, 60))
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(goose.DialectPostgres, db, sub,
		goose.WithTableName(VersionTable), goose.WithSessionLocker(locker))
}

// Migrate applies the migrations the database lacks.
func Migrate(ctx context.Context, db *sql.DB) error {
	p, err := provider(db)
	if err != nil {
		return fmt.Errorf("quota usage migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrating the quota usage store: %w", err)
	}
	return nil
}

// Pending reports whether migrations remain to be applied.
func Pending(ctx context.Context, db *sql.DB) (bool, error) {
	p, err := provider(db)
	if err != nil {
		return false, fmt.Errorf("quota usage migrations: %w", err)
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("reading the quota usage schema version: %w", err)
	}
	return pending, nil
}

// Version returns the highest migration applied, 0 for none.
func Version(ctx context.Context, db *sql.DB) (int64, error) {
	p, err := provider(db)
	if err != nil {
		return 0, fmt.Errorf("quota usage migrations: %w", err)
	}
	current, _, err := p.GetVersions(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading the quota usage schema version: %w", err)
	}
	return current, nil
}
