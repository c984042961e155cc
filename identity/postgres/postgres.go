// Package postgres is the production identity store: PostgreSQL through
// pgx, with versioned migrations embedded in the binary. Queries are
// identity/sqlstore's; this package opens the database, migrates it and
// describes its dialect.
package postgres

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/mcpauthz/mcpauthz/identity/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect describes PostgreSQL to sqlstore.
var Dialect = sqlstore.Dialect{
	Numbered:  true,
	ForUpdate: " FOR UPDATE",
	// A transaction-scoped advisory lock: it also serializes a table
	// that is still empty, where FOR UPDATE would lock nothing.
	AdvisoryLock: "SELECT pg_advisory_xact_lock(?)",
	IsUniqueViolation: func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "23505"
	},
}

// ErrNotMigrated is returned by Open when the schema is behind the binary.
var ErrNotMigrated = errors.New("the database schema is not up to date: run mcpauthz migrate")

// Options tune the connection pool; zero values take the defaults.
type Options struct {
	MaxConns     int           // default 4
	MaxIdleConns int           // default 2
	ConnLifetime time.Duration // default 30 minutes
	// Migrate brings the schema up to date on Open instead of refusing an
	// old one.
	Migrate bool
}

// Open connects to url (a postgres:// URL or DSN) and returns the store.
func Open(ctx context.Context, url string, opts Options) (*sqlstore.Store, error) {
	cfg, err := pgconnConfig(url)
	if err != nil {
		return nil, err
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(cmp.Or(opts.MaxConns, 4))
	db.SetMaxIdleConns(cmp.Or(opts.MaxIdleConns, 2))
	db.SetConnMaxLifetime(cmp.Or(opts.ConnLifetime, 30*time.Minute))
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connecting to postgres: %w", err)
	}
	if opts.Migrate {
		if err := Migrate(ctx, db); err != nil {
			db.Close()
			return nil, err
		}
	} else if pending, err := Pending(ctx, db); err != nil || pending {
		db.Close()
		if err != nil {
			return nil, err
		}
		return nil, ErrNotMigrated
	}
	return sqlstore.New(db, Dialect), nil
}

func provider(db *sql.DB) (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(goose.DialectPostgres, db, sub)
}

// Migrate applies the migrations the database lacks.
func Migrate(ctx context.Context, db *sql.DB) error {
	p, err := provider(db)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrating postgres: %w", err)
	}
	return nil
}

// Pending reports whether migrations remain to be applied.
func Pending(ctx context.Context, db *sql.DB) (bool, error) {
	p, err := provider(db)
	if err != nil {
		return false, fmt.Errorf("migrations: %w", err)
	}
	return p.HasPending(ctx)
}
