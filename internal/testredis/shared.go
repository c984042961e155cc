package testredis

import (
	"context"
	"crypto/rand"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Shared returns a client on the shared Redis of MCPAUTHZ_TEST_REDIS_URL
// and a key prefix of the test's own. The test is skipped when the
// variable is unset and fails when Redis cannot be reached; its keys are
// deleted and the client closed when it ends.
func Shared(t testing.TB) (*redis.Client, string) {
	t.Helper()
	url := os.Getenv("MCPAUTHZ_TEST_REDIS_URL")
	if url == "" {
		t.Skip("MCPAUTHZ_TEST_REDIS_URL is not set")
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opt.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		t.Fatalf("redis at MCPAUTHZ_TEST_REDIS_URL: %v", err)
	}
	prefix := "mcpauthz-test-" + rand.Text()[:16]
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		rdb.Close()
	})
	return rdb, prefix
}
