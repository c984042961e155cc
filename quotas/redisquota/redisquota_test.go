package redisquota_test

import (
	"context"
	"crypto/rand"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/quotas"
	"github.com/mcpauthz/mcpauthz/quotas/quotatest"
	"github.com/mcpauthz/mcpauthz/quotas/redisquota"
)

// client connects to the Redis of MCPAUTHZ_TEST_REDIS_URL; the test skips
// without one, and fails when it is set but unreachable.
func client(t testing.TB) *redis.Client {
	t.Helper()
	url := os.Getenv("MCPAUTHZ_TEST_REDIS_URL")
	if url == "" {
		t.Skip("MCPAUTHZ_TEST_REDIS_URL is not set")
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("MCPAUTHZ_TEST_REDIS_URL: %v", err)
	}
	return rdb
}

// prefix is a key prefix of the test's own on the shared Redis; its keys
// are deleted when the test ends.
func prefix(t testing.TB, rdb *redis.Client) string {
	p := "mcpauthz-test-" + rand.Text()[:12]
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, p+":*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return p
}

func TestContract(t *testing.T) {
	rdb := client(t)
	quotatest.Run(t, func(t *testing.T) quotatest.Backend {
		p := prefix(t, rdb)
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
	rdb := client(t)
	l := redisquota.New(rdb, redisquota.WithPrefix(prefix(t, rdb)))
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
	rdb := client(b)
	quotatest.Benchmark(b, redisquota.New(rdb, redisquota.WithPrefix(prefix(b, rdb))))
}
