package redisfeed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/identity"
)

// Defaults of the options.
const (
	DefaultTimeout = time.Second
	// DefaultMaxTTL bounds how long a record outlives its last write: a
	// revocation whose tombstone could not be written leaves the record
	// trusted at most this long. Sidecars write back what they read from
	// the store, so records of credentials in use stay.
	DefaultMaxTTL = 10 * time.Minute
)

// Feed writes sessions and API keys through to Redis and publishes
// revocation events; it also reads the records back. It is safe for
// concurrent use.
type Feed struct {
	rdb     redis.UniversalClient
	prefix  string
	timeout time.Duration
	maxTTL  time.Duration
	now     func() time.Time
}

var (
	_ identity.EventPublisher = (*Feed)(nil)
	_ identity.Cache          = (*Feed)(nil)
)

// Option configures a Feed.
type Option func(*Feed)

// WithPrefix sets the prefix of every key and of the channel (default
// DefaultPrefix).
func WithPrefix(p string) Option { return func(f *Feed) { f.prefix = p } }

// WithTimeout bounds each Redis call (default DefaultTimeout, also used
// for a duration that is not positive); a caller's earlier deadline still
// wins.
func WithTimeout(d time.Duration) Option { return func(f *Feed) { f.timeout = d } }

// WithMaxTTL caps how long any record or tombstone lives (default
// DefaultMaxTTL, also used for anything under a second).
func WithMaxTTL(d time.Duration) Option { return func(f *Feed) { f.maxTTL = d } }

// WithClock sets the clock that record TTLs are counted from (default
// time.Now); give it the identity service's.
func WithClock(now func() time.Time) Option { return func(f *Feed) { f.now = now } }

// ErrNoDeadlines: the client would not stop a call at its context's
// deadline, so a hung Redis would hold callers for the client's read
// timeout (seconds), not the Feed's.
var ErrNoDeadlines = errors.New("redisfeed: the Redis client must set ContextTimeoutEnabled")

// New returns a Feed on a Redis client (a single node, a cluster or a
// failover client alike). The client must honour context deadlines
// (ContextTimeoutEnabled), or its calls are not bounded: ErrNoDeadlines.
func New(rdb redis.UniversalClient, opts ...Option) (*Feed, error) {
	if rdb == nil {
		return nil, errors.New("redisfeed: no Redis client")
	}
	if !honoursDeadlines(rdb) {
		return nil, ErrNoDeadlines
	}
	f := &Feed{rdb: rdb, prefix: DefaultPrefix, timeout: DefaultTimeout, maxTTL: DefaultMaxTTL, now: time.Now}
	for _, o := range opts {
		o(f)
	}
	if f.timeout <= 0 {
		f.timeout = DefaultTimeout
	}
	if f.maxTTL < time.Second {
		f.maxTTL = DefaultMaxTTL
	}
	return f, nil
}

// honoursDeadlines reports whether a client stops calls at their
// context's deadline, as far as its kind tells.
func honoursDeadlines(rdb redis.UniversalClient) bool {
	switch c := rdb.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	}
	return true
}

// Channel is the channel this Feed publishes on.
func (f *Feed) Channel() string { return Channel(f.prefix) }

// bounded returns ctx bounded by the Feed's timeout.
func (f *Feed) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, f.timeout)
}

// Publish publishes a revocation event.
func (f *Feed) Publish(ctx context.Context, ev identity.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("redisfeed: encoding an event: %w", err)
	}
	ctx, cancel := f.bounded(ctx)
	defer cancel()
	if err := f.rdb.Publish(ctx, f.Channel(), b).Err(); err != nil {
		return fmt.Errorf("redisfeed: publishing %s: %w", ev.Kind, err)
	}
	return nil
}

// Session returns the cached session whose token has this digest:
// ErrMiss when none is cached, ErrRevoked when it was revoked. The caller
// still checks it is active.
func (f *Feed) Session(ctx context.Context, digest []byte) (*identity.Session, error) {
	b, err := f.get(ctx, digest, SessionKey)
	if err != nil {
		return nil, err
	}
	s, err := DecodeSession(b)
	if err != nil {
		return nil, err
	}
	s.TokenDigest = append([]byte(nil), digest...)
	return s, nil
}

// APIKey returns the cached API key whose secret has this digest: ErrMiss
// when none is cached, ErrRevoked when it was revoked. The caller still
// checks it is usable, and from where.
func (f *Feed) APIKey(ctx context.Context, digest []byte) (*identity.APIKey, error) {
	b, err := f.get(ctx, digest, APIKeyKey)
	if err != nil {
		return nil, err
	}
	k, err := DecodeAPIKey(b)
	if err != nil {
		return nil, err
	}
	k.TokenDigest = append([]byte(nil), digest...)
	return k, nil
}

func (f *Feed) get(ctx context.Context, digest []byte, key func(string, []byte) string) ([]byte, error) {
	if err := checkDigest(digest); err != nil {
		return nil, err
	}
	ctx, cancel := f.bounded(ctx)
	defer cancel()
	b, err := f.rdb.Get(ctx, key(f.prefix, digest)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrMiss
	}
	if err != nil {
		return nil, fmt.Errorf("redisfeed: reading a record: %w", err)
	}
	return b, nil
}
