package redisquota_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/internal/testclock"
	"github.com/mcpauthz/mcpauthz/internal/testredis"
	"github.com/mcpauthz/mcpauthz/quotas"
	"github.com/mcpauthz/mcpauthz/quotas/quotatest"
	"github.com/mcpauthz/mcpauthz/quotas/redisquota"
)

func TestPersistence(t *testing.T) {
	quotatest.RunPersistence(t, func(t *testing.T) quotatest.Persistence {
		rdb, p := testredis.Shared(t)
		return quotatest.Persistence{
			Limiter: func(now func() time.Time) quotatest.PersistentLimiter {
				return redisquota.New(rdb, redisquota.WithPrefix(p), redisquota.WithFixedClock(now))
			},
			Flush: func(t *testing.T) { FlushPrefix(t, rdb, p) },
			Store: quotatest.NewMemoryStore(),
		}
	})
}

// FlushPrefix deletes every key under prefix, as a Redis that lost its
// data would have none.
func FlushPrefix(t *testing.T, rdb *redis.Client, prefix string) {
	t.Helper()
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		if err := rdb.Del(ctx, iter.Val()).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestUsageKeys: Usage reads the counters of its own prefix only, even
// when the prefix holds glob characters, and leaves out keys under the
// counters' prefix that are not counters.
func TestUsageKeys(t *testing.T) {
	rdb, p := testredis.Shared(t)
	ctx := context.Background()
	clock := testclock.New(quotatest.Start)
	q := quotas.Quota{Name: "m", Key: "tenant:acme:requests", Limit: 10, Period: quotas.Month}
	tests := []struct {
		name   string
		prefix string
		extra  map[string]string // more keys, each set with a day to live
		want   int
	}{
		{"ok/plain prefix", p + ":plain", nil, 1},
		{"ok/glob characters in the prefix", p + ":g*[a]?", map[string]string{p + ":gxa-:q:tenant:x:2026-11": "3"}, 1},
		{"ok/a prefix that starts another", p + ":pre", map[string]string{p + ":prefix:q:tenant:x:2026-11": "3"}, 1},
		{"ok/keys that are not counters", p + ":odd", map[string]string{
			p + ":odd:q:nocolon":             "3",
			p + ":odd:q:tenant:x:":           "3",
			p + ":odd:q:tenant:x:2026-11-01": "not a number",
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.extra {
				if err := rdb.Set(ctx, k, v, 24*time.Hour).Err(); err != nil {
					t.Fatal(err)
				}
			}
			if err := rdb.ZAdd(ctx, tt.prefix+":q:zset:2026-11", redis.Z{Member: "x"}).Err(); err != nil {
				t.Fatal(err)
			}
			l := redisquota.New(rdb, redisquota.WithPrefix(tt.prefix), redisquota.WithFixedClock(clock.Now))
			if _, err := l.Take(ctx, quotas.Request{Quotas: []quotas.Quota{q}}); err != nil {
				t.Fatal(err)
			}
			usage, err := l.Usage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(usage) != tt.want || usage[0].Key != q.Key || usage[0].PeriodID != "2026-11" || usage[0].Used != 1 {
				t.Fatalf("usage %+v, want only %s", usage, q.Key)
			}
			// Take keeps a month's counter until a retention after the
			// month, counted from the limiter's clock; Usage reads the expiry
			// on the server's.
			keep := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Add(redisquota.QuotaRetention).Sub(clock.Now())
			if got := time.Until(usage[0].Expires); got > keep+time.Second || got < keep-5*time.Second {
				t.Fatalf("expires in %v, want %v", got, keep)
			}
		})
	}
}

// TestUsageAcrossBatches: Usage and Restore handle more counters than fit
// one SCAN step or pipeline.
func TestUsageAcrossBatches(t *testing.T) {
	rdb, p := testredis.Shared(t)
	ctx := context.Background()
	l := redisquota.New(rdb, redisquota.WithPrefix(p))
	expires := time.Now().Add(time.Hour).Truncate(time.Second)
	const n = 2500
	usage := make([]quotas.Usage, n)
	for i := range usage {
		usage[i] = quotas.Usage{Key: fmt.Sprintf("tenant:t-%04d:requests", i), PeriodID: "2026-11", Used: int64(i + 1), Expires: expires}
	}
	if err := l.Restore(ctx, usage); err != nil {
		t.Fatal(err)
	}
	got, err := l.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got = quotas.MergeUsage(got)
	want := quotas.MergeUsage(usage)
	if len(got) != n {
		t.Fatalf("read %d counters, want %d", len(got), n)
	}
	for i := range want {
		if got[i].Key != want[i].Key || got[i].Used != want[i].Used || !got[i].Expires.Equal(want[i].Expires) {
			t.Fatalf("counter %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestRestoreWithoutScript: Restore works after the server forgot its
// scripts. The server is the test's own: flushing the shared one's scripts
// would disturb other tests.
func TestRestoreWithoutScript(t *testing.T) {
	_, addr := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	p := redisquota.DefaultPrefix
	ctx := context.Background()
	l := redisquota.New(rdb)
	u := quotas.Usage{Key: "tenant:acme:requests", PeriodID: "2026-11", Used: 4, Expires: time.Now().Add(time.Hour)}
	if err := l.Restore(ctx, []quotas.Usage{u}); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	u.Used = 6
	if err := l.Restore(ctx, []quotas.Usage{u}); err != nil {
		t.Fatal(err)
	}
	if got, err := rdb.Get(ctx, p+":q:tenant:acme:requests:2026-11").Int64(); err != nil || got != 6 {
		t.Fatalf("counter %d (%v), want 6", got, err)
	}
}
