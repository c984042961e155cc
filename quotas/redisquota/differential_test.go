package redisquota_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/internal/testclock"
	"github.com/mcpauthz/mcpauthz/internal/testredis"
	"github.com/mcpauthz/mcpauthz/quotas"
	"github.com/mcpauthz/mcpauthz/quotas/memquota"
	"github.com/mcpauthz/mcpauthz/quotas/quotatest"
	"github.com/mcpauthz/mcpauthz/quotas/redisquota"
)

// TestSameAsMemquota drives the Redis and the in-process limiter with the
// same random requests at the same random times: every answer must be the
// same, field for field.
func TestSameAsMemquota(t *testing.T) {
	rdb, p := testredis.Shared(t)
	clock := testclock.New(quotatest.Start)
	mem := memquota.New(memquota.WithClock(clock.Now))
	red := redisquota.New(rdb, redisquota.WithPrefix(p), redisquota.WithFixedClock(clock.Now))
	rng := rand.New(rand.NewPCG(1, 2))
	windows := []time.Duration{time.Second, 10 * time.Second, time.Minute}
	ctx := context.Background()
	for i := range 3000 {
		var req quotas.Request
		for j := range 1 + rng.IntN(3) {
			req.Limits = append(req.Limits, quotas.Limit{
				Name:   fmt.Sprint("l", j),
				Key:    fmt.Sprint("k", rng.IntN(4)),
				Limit:  int64(1 + rng.IntN(20)),
				Window: windows[rng.IntN(len(windows))],
				Burst:  int64(rng.IntN(6)),
				Cost:   int64(rng.IntN(4)),
			})
		}
		if rng.IntN(3) == 0 {
			req.Quotas = append(req.Quotas, quotas.Quota{Name: "q", Key: fmt.Sprint("q", rng.IntN(2)), Limit: int64(rng.IntN(200)), Period: quotas.Day})
		}
		m, merr := mem.Take(ctx, req)
		r, rerr := red.Take(ctx, req)
		if merr != nil || rerr != nil || !reflect.DeepEqual(m, r) {
			t.Fatalf("request %d %+v:\nmemquota   %+v %v\nredisquota %+v %v", i, req, m, merr, r, rerr)
		}
		clock.Advance(time.Duration(rng.IntN(300)) * time.Millisecond)
	}
}
