package redisfeed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/identity"
)

// putScript writes a record unless the key holds the tombstone: a put that
// lost a race with a revocation must not bring the credential back.
// KEYS[1] the key; ARGV[1] the record, ARGV[2] its TTL in milliseconds,
// ARGV[3] the tombstone. It returns 1 if it wrote, 0 if not.
var putScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[3] then
	return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// PutSession caches a session until its absolute expiry (at most the
// maximum TTL). A session no longer active is dropped instead.
func (f *Feed) PutSession(ctx context.Context, s *identity.Session) error {
	if err := checkDigest(s.TokenDigest); err != nil {
		return err
	}
	now := f.now()
	if !s.Active(now) {
		return f.DropSessions(ctx, [][]byte{s.TokenDigest})
	}
	b, err := EncodeSession(s)
	if err != nil {
		return fmt.Errorf("redisfeed: encoding a session: %w", err)
	}
	return f.put(ctx, SessionKey(f.prefix, s.TokenDigest), b, f.ttl(now, s.ExpiresAt))
}

// PutAPIKey caches an API key until it expires or its grace ends, if it
// was rotated (at most the maximum TTL). A key no longer usable is
// dropped instead.
func (f *Feed) PutAPIKey(ctx context.Context, k *identity.APIKey) error {
	if err := checkDigest(k.TokenDigest); err != nil {
		return err
	}
	now := f.now()
	if !k.Usable(now) {
		return f.DropAPIKeys(ctx, [][]byte{k.TokenDigest})
	}
	b, err := EncodeAPIKey(k)
	if err != nil {
		return fmt.Errorf("redisfeed: encoding an API key: %w", err)
	}
	end := k.ExpiresAt
	if k.ReplacedBy != "" && !k.GraceUntil.IsZero() && (end.IsZero() || k.GraceUntil.Before(end)) {
		end = k.GraceUntil
	}
	return f.put(ctx, APIKeyKey(f.prefix, k.TokenDigest), b, f.ttl(now, end))
}

// ttl is how long a record valid until end (zero: no end) is kept.
func (f *Feed) ttl(now, end time.Time) time.Duration {
	if end.IsZero() {
		return f.maxTTL
	}
	return min(end.Sub(now), f.maxTTL)
}

func (f *Feed) put(ctx context.Context, key string, record []byte, ttl time.Duration) error {
	ms := ttl.Milliseconds()
	if ms < 1 {
		// Valid for less than Redis counts: it would have expired
		// already. Nothing to write.
		return nil
	}
	ctx, cancel := f.bounded(ctx)
	defer cancel()
	if err := putScript.Run(ctx, f.rdb, []string{key}, record, ms, tombstone).Err(); err != nil {
		return fmt.Errorf("redisfeed: writing a record: %w", err)
	}
	return nil
}

// DropSessions replaces the records of these sessions with tombstones.
func (f *Feed) DropSessions(ctx context.Context, digests [][]byte) error {
	return f.drop(ctx, digests, SessionKey)
}

// DropAPIKeys replaces the records of these API keys with tombstones.
func (f *Feed) DropAPIKeys(ctx context.Context, digests [][]byte) error {
	return f.drop(ctx, digests, APIKeyKey)
}

// drop writes a tombstone per key, one command each, so the keys may live
// on different cluster nodes.
func (f *Feed) drop(ctx context.Context, digests [][]byte, key func(string, []byte) string) error {
	// A malformed digest (a bug) does not keep the others from going.
	var bad error
	keys := make([]string, 0, len(digests))
	for _, d := range digests {
		if err := checkDigest(d); err != nil {
			bad = err
			continue
		}
		keys = append(keys, key(f.prefix, d))
	}
	if len(keys) == 0 {
		return bad
	}
	ctx, cancel := f.bounded(ctx)
	defer cancel()
	_, err := f.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Set(ctx, k, tombstone, f.maxTTL)
		}
		return nil
	})
	if err != nil {
		// A Redis out of memory refuses the tombstones but still deletes
		// (DEL frees memory): without the record, readers ask the store,
		// which knows the credential is revoked.
		_, derr := f.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.Del(ctx, k)
			}
			return nil
		})
		if derr == nil {
			err = nil
		} else {
			err = fmt.Errorf("redisfeed: dropping %d records: %w", len(keys), err)
		}
	}
	return errors.Join(err, bad)
}
