// Package pgusage keeps quota usage in PostgreSQL, so that a Redis which
// loses its data does not reset a month of usage: a Syncer copies the
// limiter's quota counters into the Store every interval and raises them
// back from it on start and whenever they are seen to go back.
package pgusage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/mcpauthz/mcpauthz/quotas"
)

// ErrNotMigrated is returned by Open when the schema is behind the binary.
var ErrNotMigrated = errors.New("the quota usage schema is not up to date: run mcpauthz migrate")

// saveBatch is how many records one upsert carries.
const saveBatch = 1000

// Store is a quotas.UsageStore in PostgreSQL: one row per quota counter,
// which only ever goes up.
type Store struct {
	pool *pgxpool.Pool
}

var _ quotas.UsageStore = (*Store)(nil)

// Options tune the store; zero values take the defaults.
type Options struct {
	MaxConns int32 // default 2: one syncer round at a time needs one
	// Migrate brings the schema up to date on Open instead of refusing an
	// old one.
	Migrate bool
}

// Open connects to url (a postgres:// URL or DSN) and returns the store.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The string may hold a password, and so may the parser's error
		// (a URL error quotes the URL): say nothing of either.
		return nil, errors.New("quota usage store: the postgres connection string cannot be parsed")
	}
	cfg.MaxConns = cmp.Or(opts.MaxConns, 2)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("quota usage store: %w", err)
	}
	if err := open(ctx, pool, opts); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool}, nil
}

// open checks the connection and the schema, migrating it if asked to.
func open(ctx context.Context, pool *pgxpool.Pool, opts Options) error {
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("quota usage store: connecting to postgres: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool) // closing it leaves the pool open
	defer db.Close()
	if opts.Migrate {
		return Migrate(ctx, db)
	}
	pending, err := Pending(ctx, db)
	if err != nil {
		return err
	}
	if pending {
		return ErrNotMigrated
	}
	return nil
}

// Close closes the store's connections.
func (s *Store) Close() { s.pool.Close() }

// upsert writes a batch of counters, each column an array. A row only
// changes when its count or expiry goes up, so saving an unchanged counter
// every interval leaves no dead row behind.
const upsert = `
INSERT INTO quota_usage AS q (key, period_id, used, expires_at, updated_at)
SELECT u.key, u.period_id, u.used, u.expires_at, now()
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[]) AS u (key, period_id, used, expires_at)
ON CONFLICT (key, period_id) DO UPDATE SET
    used = GREATEST(q.used, EXCLUDED.used),
    expires_at = GREATEST(q.expires_at, EXCLUDED.expires_at),
    updated_at = EXCLUDED.updated_at
WHERE EXCLUDED.used > q.used OR EXCLUDED.expires_at > q.expires_at`

// Save records usage, keeping for each counter the greater of the stored
// and the given count, and the later expiry. Records are merged and sorted
// first, so concurrent saves from several replicas lock rows in the same
// order and cannot deadlock; each batch of saveBatch is one statement.
func (s *Store) Save(ctx context.Context, usage []quotas.Usage) error {
	if err := quotas.ValidateUsage(usage); err != nil {
		return err
	}
	merged := quotas.MergeUsage(usage)
	for len(merged) > 0 {
		batch := merged[:min(len(merged), saveBatch)]
		merged = merged[len(batch):]
		keys := make([]string, len(batch))
		periods := make([]string, len(batch))
		used := make([]int64, len(batch))
		expires := make([]time.Time, len(batch))
		for i, u := range batch {
			keys[i], periods[i], used[i], expires[i] = u.Key, u.PeriodID, u.Used, u.Expires
		}
		if _, err := s.pool.Exec(ctx, upsert, keys, periods, used, expires); err != nil {
			return fmt.Errorf("saving quota usage: %w", err)
		}
	}
	return nil
}

// Load returns every counter that has not expired at now, sorted by key
// and period.
func (s *Store) Load(ctx context.Context, now time.Time) ([]quotas.Usage, error) {
	rows, err := s.pool.Query(ctx, `
SELECT key, period_id, used, expires_at FROM quota_usage
WHERE expires_at > $1 ORDER BY key, period_id`, now)
	if err != nil {
		return nil, fmt.Errorf("loading quota usage: %w", err)
	}
	defer rows.Close()
	var out []quotas.Usage
	for rows.Next() {
		var u quotas.Usage
		if err := rows.Scan(&u.Key, &u.PeriodID, &u.Used, &u.Expires); err != nil {
			return nil, fmt.Errorf("loading quota usage: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loading quota usage: %w", err)
	}
	return out, nil
}

// Prune deletes the counters expired at now and returns how many.
func (s *Store) Prune(ctx context.Context, now time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM quota_usage WHERE expires_at <= $1`, now)
	if err != nil {
		return 0, fmt.Errorf("pruning quota usage: %w", err)
	}
	return tag.RowsAffected(), nil
}
