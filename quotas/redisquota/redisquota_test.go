package redisquota_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/internal/testredis"
	"github.com/mcpauthz/mcpauthz/quotas"
	"github.com/mcpauthz/mcpauthz/quotas/quotatest"
	"github.com/mcpauthz/mcpauthz/quotas/redisquota"
)

func TestContract(t *testing.T) {
	quotatest.Run(t, func(t *testing.T) quotatest.Backend {
		rdb, p := testredis.Shared(t)
		return quotatest.Backend{
			Limiter: func(now func() time.Time) quotas.Limiter {
				return redisquota.New(rdb, redisquota.WithPrefix(p), redisquota.WithFixedClock(now))
			},
			ServerTimeLimiter: func(now func() time.Time) quotas.Limiter {
				return redisquota.New(rdb, redisquota.WithPrefix(p), redisquota.WithClock(now))
			},
		}
	})
}

// TestOneRoundTrip: a Take with three limits and a quota is one command.
func TestOneRoundTrip(t *testing.T) {
	rdb, p := testredis.Shared(t)
	l := redisquota.New(rdb, redisquota.WithPrefix(p))
	req := quotas.Request{
		Limits: []quotas.Limit{
			{Name: "a", Key: "user:u-1", Limit: 10, Window: time.Second},
			{Name: "b", Key: "tenant:acme:tools", Limit: 10, Window: time.Second},
			{Name: "c", Key: "key:k-1", Limit: 10, Window: time.Second},
		},
		Quotas: []quotas.Quota{{Name: "m", Key: "tenant:acme:requests", Limit: 10, Period: quotas.Month}},
	}
	ctx := context.Background()
	if _, err := l.Take(ctx, req); err != nil { // loads the script
		t.Fatal(err)
	}
	var sent atomic.Int64
	rdb.AddHook(counter{&sent})
	for range 10 {
		if _, err := l.Take(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if n := sent.Load(); n != 10 {
		t.Fatalf("10 Takes sent %d commands", n)
	}
}

// counter counts the commands the client sends.
type counter struct{ n *atomic.Int64 }

func (c counter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// BenchmarkTake takes three limits and a quota in one script call, as a
// tools/call under the default policy does, over 1,000 tenants.
func BenchmarkTake(b *testing.B) {
	rdb, p := testredis.Shared(b)
	quotatest.Benchmark(b, redisquota.New(rdb, redisquota.WithPrefix(p)))
}

// BenchmarkTakeFairShare is BenchmarkTake with the tenant's fair share of
// a pool of 1,000 tenants taken in the same script call.
func BenchmarkTakeFairShare(b *testing.B) {
	rdb, p := testredis.Shared(b)
	quotatest.BenchmarkFairShare(b, redisquota.New(rdb, redisquota.WithPrefix(p)))
}

// TestPoolKeysShareASlot: a pool's keys are in one Redis Cluster hash
// slot, whatever its name, so one script can keep reading them together.
func TestPoolKeysShareASlot(t *testing.T) {
	rdb, p := testredis.Shared(t)
	ctx := context.Background()
	for i, pool := range []string{"tool:search", "a}b", "{x}", "}x", "tool:%7Bq%7D"} {
		pp := fmt.Sprintf("%s:%d", p, i)
		l := redisquota.New(rdb, redisquota.WithPrefix(pp))
		req := quotas.Request{Limits: []quotas.Limit{{Name: "pool", Key: "tenant:acme", Limit: 10, Window: time.Second,
			Share: &quotas.Share{Pool: pool}}}}
		if res, err := l.Take(ctx, req); err != nil || !res.Allowed {
			t.Fatalf("pool %q: %+v %v", pool, res, err)
		}
		keys, err := rdb.Keys(ctx, pp+":fair:*").Result()
		if err != nil || len(keys) != 3 {
			t.Fatalf("pool %q: keys %q %v", pool, keys, err)
		}
		for _, k := range keys[1:] {
			if redisquota.Slot(k) != redisquota.Slot(keys[0]) {
				t.Fatalf("pool %q: %q and %q in different slots", pool, k, keys[0])
			}
		}
	}
}
