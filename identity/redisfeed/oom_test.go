package redisfeed_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/identity/redisfeed"
	"github.com/mcpauthz/mcpauthz/internal/testredis"
)

// TestDropWhenOutOfMemory: a Redis that refuses writes (maxmemory with
// noeviction) still deletes, so a revoked session's record is gone and
// readers ask the store, rather than the record outliving the revocation.
func TestDropWhenOutOfMemory(t *testing.T) {
	_, addr := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	defer rdb.Close()
	ctx := context.Background()
	f := newFeed(t, rdb, redisfeed.WithClock(at(t0)), redisfeed.WithMaxTTL(time.Hour))
	s := testSession()
	if err := f.PutSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "probe", "x", 0).Err(); err == nil {
		t.Fatal("the server still accepts writes; the test needs it out of memory")
	}
	if err := f.DropSessions(ctx, [][]byte{s.TokenDigest}); err != nil {
		t.Fatalf("drop: %v", err)
	}
	if _, err := f.Session(ctx, s.TokenDigest); !errors.Is(err, redisfeed.ErrMiss) {
		t.Fatalf("after a drop out of memory the record is %v, want gone", err)
	}
}
