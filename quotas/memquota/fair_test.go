package memquota_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/internal/testclock"
	"github.com/mcpauthz/mcpauthz/quotas"
	"github.com/mcpauthz/mcpauthz/quotas/memquota"
	"github.com/mcpauthz/mcpauthz/quotas/quotatest"
)

// TestPoolTenantsBounded: a tenant active in a pool counts as a key;
// tenants gone idle leave their pool and make room, active ones are never
// dropped.
func TestPoolTenantsBounded(t *testing.T) {
	clock := testclock.New(quotatest.Start)
	l := memquota.New(memquota.WithClock(clock.Now), memquota.WithMaxKeys(10))
	ctx := context.Background()
	take := func(tenant string) (quotas.Result, error) {
		return l.Take(ctx, quotas.Request{Limits: []quotas.Limit{{
			Name: "pool", Key: tenant, Limit: 100, Window: time.Second,
			Share: &quotas.Share{Pool: "tool:search", Weight: 3},
		}}})
	}
	for i := range 10 {
		if res, err := take(fmt.Sprint("tenant:", i)); err != nil || !res.Allowed {
			t.Fatalf("tenant %d: %+v %v", i, res, err)
		}
	}
	if _, err := take("tenant:new"); !errors.Is(err, quotas.ErrFull) {
		t.Fatalf("a new tenant with 10 active ones: %v, want ErrFull", err)
	}
	if st := l.Stats(); st.Shares != 10 || st.Full != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A tenant stays active a window past its arrival time: at most 100 ms
	// ahead, for the last of ten tenants of equal weight.
	clock.Advance(time.Second)
	if _, err := take("tenant:new"); !errors.Is(err, quotas.ErrFull) {
		t.Fatalf("a window after their last request the tenants are still active: %v", err)
	}
	clock.Advance(100 * time.Millisecond)
	if res, err := take("tenant:new"); err != nil || !res.Allowed || res.Limits[0].Remaining != 99 {
		t.Fatalf("alone in the pool once the others went idle: %+v %v", res, err)
	}
	if st := l.Stats(); st.Shares != 1 {
		t.Fatalf("stats %+v, want the idle tenants evicted", st)
	}
}

// BenchmarkTakeFairShare is BenchmarkTake with the tenant's tool calls
// taken as a fair share of one pool.
func BenchmarkTakeFairShare(b *testing.B) { quotatest.BenchmarkFairShare(b, memquota.New()) }
