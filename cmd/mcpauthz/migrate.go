package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/mcpauthz/mcpauthz/identity/postgres"
	"github.com/mcpauthz/mcpauthz/identity/sqlite"
	"github.com/mcpauthz/mcpauthz/quotas/pgusage"
)

// runMigrate is `mcpauthz migrate`: it applies the migrations embedded in
// the binary to the identity store and says what it did. Running it again
// changes nothing.
func runMigrate(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs, f := storeFlagSet("migrate", stderr)
	if err := parseCommand(fs, args, stderr); err != nil {
		return err
	}
	cfg, err := loadConfig(Defaults(), f, fs, environ)
	if err != nil {
		return err
	}
	m, err := migrateStore(ctx, cfg.Identity)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "identity store %s: %s\n", describeStore(cfg.Identity.Store), m)
	if cfg.Limits.Postgres != "" {
		m, err := migrateUsage(ctx, cfg.Limits.Postgres)
		if err != nil {
			return fmt.Errorf("limits.postgres: %w", err)
		}
		fmt.Fprintf(stdout, "quota usage store %s: %s\n", describeStore(cfg.Limits.Postgres), m)
	}
	return nil
}

// migrateUsage applies the quota usage store's migrations (its own
// tables and version table, beside the identity store's or not).
func migrateUsage(ctx context.Context, rawURL string) (m migration, err error) {
	db, err := openPostgresDB(ctx, rawURL)
	if err != nil {
		return m, err
	}
	defer db.Close()
	if m.From, err = pgusage.Version(ctx, db); err != nil {
		return m, err
	}
	if err := pgusage.Migrate(ctx, db); err != nil {
		return m, err
	}
	m.To, err = pgusage.Version(ctx, db)
	return m, err
}

// storeFlagSet returns the flags of the commands that work on the identity
// store: -config and -store.
func storeFlagSet(name string, stderr io.Writer) (*flag.FlagSet, *flags) {
	f := &flags{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "", "YAML configuration `file`")
	fs.StringVar(&f.store, "store", "", "identity store: a postgres:// `URL` or a SQLite file path (identity.store)")
	return fs, f
}

// parseCommand parses a command's flags; it takes no arguments.
func parseCommand(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	return nil
}

// migration is what migrateStore did: the schema version before and after.
type migration struct {
	From, To int64
	Created  bool // a new SQLite file
}

func (m migration) String() string {
	switch {
	case m.Created:
		return fmt.Sprintf("created, schema at version %d", m.To)
	case m.From == m.To:
		return fmt.Sprintf("schema up to date (version %d)", m.To)
	}
	return fmt.Sprintf("migrated from version %d to %d", m.From, m.To)
}

// migrateStore applies the migrations the store lacks.
func migrateStore(ctx context.Context, c IdentityConfig) (migration, error) {
	kind, err := parseStore(c.Store)
	if err != nil {
		return migration{}, fmt.Errorf("identity.store: %w", err)
	}
	if kind == storePostgres {
		return migratePostgres(ctx, c.Store)
	}
	return migrateSQLite(ctx, c.Store)
}

func migratePostgres(ctx context.Context, rawURL string) (m migration, err error) {
	db, err := openPostgresDB(ctx, rawURL)
	if err != nil {
		return m, err
	}
	defer db.Close()
	if m.From, err = schemaVersion(ctx, db, storePostgres); err != nil {
		return m, err
	}
	if err := postgres.Migrate(ctx, db); err != nil {
		return m, err
	}
	m.To, err = schemaVersion(ctx, db, storePostgres)
	return m, err
}

// openPostgresDB connects as identity/postgres does: pgx's configuration
// parsing and its database/sql driver.
func openPostgresDB(ctx context.Context, rawURL string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		// The URL may hold a password: say which setting, not what it holds.
		return nil, errors.New("identity.store: the postgres URL cannot be parsed")
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(2)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connecting to postgres: %w", err)
	}
	return db, nil
}

// migrateSQLite reads the version of an existing file, then opens it with
// identity/sqlite, which migrates on open.
func migrateSQLite(ctx context.Context, path string) (m migration, err error) {
	switch _, err := os.Stat(path); {
	case errors.Is(err, os.ErrNotExist):
		m.Created = true
	case err != nil:
		return m, fmt.Errorf("identity store: %w", err)
	default:
		if m.From, err = sqliteVersion(ctx, path); err != nil {
			return m, err
		}
	}
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		return m, fmt.Errorf("identity store %s: %w", describeStore(path), err)
	}
	defer s.Close()
	m.To, err = schemaVersion(ctx, s.DB(), storeSQLite)
	return m, err
}

func sqliteVersion(ctx context.Context, path string) (int64, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return 0, fmt.Errorf("opening %s: %w", path, err)
	}
	defer db.Close()
	return schemaVersion(ctx, db, storeSQLite)
}

// schemaVersion returns the highest migration applied, 0 for none.
func schemaVersion(ctx context.Context, db *sql.DB, kind string) (int64, error) {
	exists := `SELECT to_regclass($1) IS NOT NULL`
	if kind == storeSQLite {
		exists = `SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?)`
	}
	var ok bool
	if err := db.QueryRowContext(ctx, exists, goose.DefaultTablename).Scan(&ok); err != nil {
		return 0, fmt.Errorf("reading the schema version: %w", err)
	}
	if !ok {
		return 0, nil
	}
	var v int64
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM `+goose.DefaultTablename).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading the schema version: %w", err)
	}
	return v, nil
}
