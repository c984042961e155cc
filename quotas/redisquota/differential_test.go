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

// TestSameAsMemquotaFairShare does the same with fair-share limits among
// them: tenants of several weights and caps coming and going in two pools,
// a tenant now and then changing class.
func TestSameAsMemquotaFairShare(t *testing.T) {
	rdb, p := testredis.Shared(t)
	clock := testclock.New(quotatest.Start)
	mem := memquota.New(memquota.WithClock(clock.Now))
	red := redisquota.New(rdb, redisquota.WithPrefix(p), redisquota.WithFixedClock(clock.Now))
	rng := rand.New(rand.NewPCG(3, 4))
	windows := []time.Duration{time.Second, 2 * time.Second, time.Second + 500*time.Nanosecond}
	weights := []float64{0, 1, 3, 10, 2.5}
	caps := []float64{0, 0.3, 0.5, 1, 0.25}
	ctx := context.Background()
	admitted := 0
	for i := range 4000 {
		var req quotas.Request
		for j := range 1 + rng.IntN(2) {
			l := quotas.Limit{
				Name:   fmt.Sprint("l", j),
				Key:    fmt.Sprint("tenant:", rng.IntN(8)),
				Limit:  int64(rng.IntN(60)),
				Window: windows[rng.IntN(len(windows))],
				Burst:  int64(rng.IntN(10)),
				Cost:   int64(rng.IntN(3)),
			}
			if rng.IntN(4) != 0 {
				l.Share = &quotas.Share{Pool: fmt.Sprint("tool:", rng.IntN(2)), Weight: weights[rng.IntN(len(weights))], MaxShare: caps[rng.IntN(len(caps))]}
			} else {
				l.Key = fmt.Sprint("user:", rng.IntN(3))
			}
			req.Limits = append(req.Limits, l)
		}
		if rng.IntN(4) == 0 {
			req.Quotas = append(req.Quotas, quotas.Quota{Name: "q", Key: "q", Limit: int64(rng.IntN(500)), Period: quotas.Day})
		}
		m, merr := mem.Take(ctx, req)
		r, rerr := red.Take(ctx, req)
		if merr != nil || rerr != nil || !reflect.DeepEqual(m, r) {
			t.Fatalf("request %d %+v:\nmemquota   %+v %v\nredisquota %+v %v", i, req, m, merr, r, rerr)
		}
		if m.Allowed {
			admitted++
		}
		clock.Advance(time.Duration(rng.IntN(120)) * time.Millisecond)
	}
	t.Logf("%d of 4000 admitted", admitted)
	if admitted < 1000 || admitted > 3000 {
		t.Fatalf("%d of 4000 admitted: the requests should be admitted and refused alike", admitted)
	}
}
