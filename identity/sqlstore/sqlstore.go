// Package sqlstore implements identity.Store once, on database/sql, for
// both SQL databases the identity service runs on. identity/postgres and
// identity/sqlite open the database, migrate it and supply a Dialect for
// what differs: placeholders, how times are stored, row locks and how a
// unique violation is reported.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

// Dialect is what differs between the databases.
type Dialect struct {
	// Numbered placeholders ($1, $2): queries are written with ? and
	// rewritten.
	Numbered bool
	// TimesAsMicros stores times as integer Unix microseconds (SQLite)
	// rather than as timestamps.
	TimesAsMicros bool
	// ForUpdate is appended to a SELECT to lock the rows it reads, or ""
	// where transactions are serialized anyway.
	ForUpdate string
	// AdvisoryLock is a statement taking a lock, named by its one integer
	// argument, until the transaction ends; "" where transactions are
	// serialized anyway.
	AdvisoryLock string
	// IsUniqueViolation reports whether err is a unique constraint failure.
	IsUniqueViolation func(error) bool
}

// Store is an identity.Store on a database/sql database.
type Store struct {
	db *sql.DB
	queries
}

var _ identity.Store = (*Store)(nil)

// New returns a Store on a migrated database.
func New(db *sql.DB, d Dialect) *Store {
	return &Store{db: db, queries: queries{db: db, d: &d, cache: &sync.Map{}}}
}

// DB returns the underlying database.
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Tx runs fn in a transaction, committed if fn returns nil.
func (s *Store) Tx(ctx context.Context, fn func(identity.Tx) error) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the error that made us roll back matters more
		}
	}()
	q := s.queries
	q.db = tx
	if err := fn(q); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// AppendAudit appends in a transaction of its own: reading the chain's
// head and moving it on must not be split.
func (s *Store) AppendAudit(ctx context.Context, e *identity.AuditEvent, link func(*identity.AuditEvent) []byte) error {
	return s.Tx(ctx, func(tx identity.Tx) error { return tx.AppendAudit(ctx, e, link) })
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// queries runs the statements: on the database in Store, on a
// transaction as the identity.Tx that Tx hands its function.
type queries struct {
	db    querier
	d     *Dialect
	cache *sync.Map // query with ? → query in the dialect's placeholders
}

// sql rewrites a query written with ? placeholders for the dialect.
func (q queries) sql(query string) string {
	if !q.d.Numbered {
		return query
	}
	if v, ok := q.cache.Load(query); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	q.cache.Store(query, b.String())
	return b.String()
}

func (q queries) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := q.db.ExecContext(ctx, q.sql(query), args...)
	return res, q.wrap(err)
}

func (q queries) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := q.db.QueryContext(ctx, q.sql(query), args...)
	return rows, q.wrap(err)
}

func (q queries) row(ctx context.Context, query string, args ...any) *sql.Row {
	return q.db.QueryRowContext(ctx, q.sql(query), args...)
}

// wrap maps driver errors to the store's.
func (q queries) wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return identity.ErrNotFound
	case q.d.IsUniqueViolation != nil && q.d.IsUniqueViolation(err):
		return fmt.Errorf("%w: %v", identity.ErrConflict, err)
	}
	return err
}

// changed returns ErrNotFound when a statement touched no row.
func changed(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return identity.ErrNotFound
	}
	return nil
}

// t is a time as the dialect stores it; the zero time is NULL.
func (q queries) t(v time.Time) any {
	if v.IsZero() {
		return nil
	}
	if q.d.TimesAsMicros {
		return v.UnixMicro()
	}
	return v.UTC()
}

// scanTime reads a time column stored either way.
type scanTime struct{ t *time.Time }

func (s scanTime) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*s.t = time.Time{}
	case time.Time:
		*s.t = v.UTC()
	case int64:
		*s.t = time.UnixMicro(v).UTC()
	default:
		return fmt.Errorf("unexpected time value %T", v)
	}
	return nil
}

// jsonArg encodes a value for a JSON column.
func jsonArg(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// scanJSON decodes a JSON column into dst.
type scanJSON struct{ dst any }

func (s scanJSON) Scan(v any) error {
	var b []byte
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("unexpected JSON value %T", v)
	}
	return json.Unmarshal(b, s.dst)
}

// stringsArg returns a JSON array for a string slice, never null.
func stringsArg(ss []string) string {
	if len(ss) == 0 {
		return "[]"
	}
	s, _ := jsonArg(ss) // []string always marshals
	return s
}

// Exec runs a raw statement, for maintenance and tests.
func (s *Store) Exec(ctx context.Context, query string, args ...any) error {
	_, err := s.db.ExecContext(ctx, query, args...)
	return err
}
