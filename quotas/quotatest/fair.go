package quotatest

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/internal/testclock"
	"github.com/mcpauthz/mcpauthz/quotas"
)

// The fair-share contract: a pool of 200 units a second shared by
// tenants of weights 1 (free), 3 (pro) and 10 (enterprise), each taking
// all it is admitted every tick of 50 ms on the injected clock.
const (
	poolCapacity = 200
	fairTick     = 50 * time.Millisecond
	fairWarmUp   = 2 * time.Second  // the first bursts settle
	fairMeasured = 10 * time.Second // shares are measured over this
	// fairTolerance is how far a measured share may stray from the fair
	// one, relative to it.
	fairTolerance = 0.05
	minJain       = 0.99
)

// tenant is one tenant of a fair-share pool.
type tenant struct {
	name             string
	weight, maxShare float64
}

func (tn tenant) limit() quotas.Limit {
	return quotas.Limit{
		Name: "tool_capacity", Key: "tenant:" + tn.name, Limit: poolCapacity, Window: time.Second,
		Share: &quotas.Share{Pool: "tool:search", Weight: tn.weight, MaxShare: tn.maxShare},
	}
}

// fairShares returns the share quotas.FairShare gives each tenant when all
// of them are active.
func fairShares(tenants []tenant) []float64 {
	counts := map[quotas.ShareClass]int64{}
	for _, tn := range tenants {
		counts[tn.limit().Share.Class()]++
	}
	var active []quotas.ClassCount
	for c, n := range counts {
		active = append(active, quotas.ClassCount{Class: c, Tenants: n})
	}
	out := make([]float64, len(tenants))
	for i, tn := range tenants {
		out[i] = quotas.FairShare(tn.limit().Share.Class(), active)
	}
	return out
}

// greedy takes for tn until it is refused and returns how many units it
// was admitted.
func greedy(t *testing.T, l quotas.Limiter, tn tenant) int {
	t.Helper()
	n := 0
	for range 2 * poolCapacity {
		if !take(t, l, limits(tn.limit())).Allowed {
			return n
		}
		n++
	}
	t.Fatalf("%s: twice the pool's burst admitted in one tick", tn.name)
	return n
}

// jain is Jain's fairness index of xs: 1 when all are equal, 1/n when one
// has everything.
func jain(xs []float64) float64 {
	sum, squares := 0.0, 0.0
	for _, x := range xs {
		sum += x
		squares += x * x
	}
	return sum * sum / (float64(len(xs)) * squares)
}

// fairShare: greedy tenants contending for the pool are each admitted at
// their weighted fair share.
func fairShare(t *testing.T, b Backend) {
	tier := func(name string, w, m float64) tenant { return tenant{name, w, m} }
	tests := []struct {
		name    string
		tenants []tenant
	}{
		{"weights 1, 3, 10 uncapped", []tenant{tier("free", 1, 1), tier("pro", 3, 1), tier("enterprise", 10, 1)}},
		{"1 enterprise, 2 pro, 3 free capped at 0.3", []tenant{
			tier("ent-1", 10, 0.3), tier("pro-1", 3, 0.3), tier("pro-2", 3, 0.3),
			tier("free-1", 1, 0.3), tier("free-2", 1, 0.3), tier("free-3", 1, 0.3),
		}},
		{"ten tenants, default cap", []tenant{
			tier("ent-1", 10, 0), tier("ent-2", 10, 0), tier("pro-1", 3, 0), tier("pro-2", 3, 0), tier("pro-3", 3, 0),
			tier("free-1", 0, 0), tier("free-2", 0, 0), tier("free-3", 0, 0), tier("free-4", 0, 0), tier("free-5", 0, 0),
		}},
	}
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	for _, tt := range tests {
		clock.Advance(time.Hour) // the pool is idle again
		admitted := make([]int, len(tt.tenants))
		for at := time.Duration(0); at < fairWarmUp+fairMeasured; at += fairTick {
			for j, tn := range tt.tenants {
				if n := greedy(t, l, tn); at >= fairWarmUp {
					admitted[j] += n
				}
			}
			clock.Advance(fairTick)
		}
		fair := fairShares(tt.tenants)
		ratios := make([]float64, len(tt.tenants))
		for j, tn := range tt.tenants {
			share := float64(admitted[j]) / (poolCapacity * fairMeasured.Seconds())
			ratios[j] = share / fair[j]
			t.Logf("%s: %s (weight %g) share %.4f, fair %.4f, ratio %.4f", tt.name, tn.name, tn.limit().Share.Class().Weight, share, fair[j], ratios[j])
			if math.Abs(ratios[j]-1) > fairTolerance {
				t.Errorf("%s: %s measured %.4f of the capacity, fair share %.4f", tt.name, tn.name, share, fair[j])
			}
		}
		index := jain(ratios)
		t.Logf("%s: Jain's index on share/fair share %.5f", tt.name, index)
		if index < minJain {
			t.Errorf("%s: Jain's index %.5f below %v", tt.name, index, minJain)
		}
	}
}

// greedyCapped: one greedy enterprise tenant among light free tenants is
// held to its max share while they are active, and has the whole pool
// once they have gone idle.
func greedyCapped(t *testing.T, b Backend) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	hog := tenant{"hog", 10, 0.3}
	light := []tenant{{"a", 1, 0.3}, {"b", 1, 0.3}, {"c", 1, 0.3}, {"d", 1, 0.3}}
	hogs, refused := 0, 0
	for at := time.Duration(0); at < fairWarmUp+fairMeasured; at += fairTick {
		if at%(100*time.Millisecond) == 0 { // 10 a second each, 5% of the pool
			for _, tn := range light {
				if !take(t, l, limits(tn.limit())).Allowed {
					refused++
				}
			}
		}
		if n := greedy(t, l, hog); at >= fairWarmUp {
			hogs += n
		}
		clock.Advance(fairTick)
	}
	share := float64(hogs) / (poolCapacity * fairMeasured.Seconds())
	t.Logf("a greedy tenant of weight 10 among 4 light ones: share %.4f (max share 0.3); light requests refused: %d", share, refused)
	if share > 0.3*(1+fairTolerance) || share < 0.3*(1-fairTolerance) {
		t.Errorf("the greedy tenant took %.4f of the pool while others were active, max share 0.3", share)
	}
	if refused != 0 {
		t.Errorf("%d requests of light tenants were refused", refused)
	}
	// The light tenants go idle: a window later the hog is alone.
	hogs = 0
	for at := time.Duration(0); at < time.Second+fairMeasured; at += fairTick {
		if n := greedy(t, l, hog); at >= 2*time.Second {
			hogs += n
		}
		clock.Advance(fairTick)
	}
	alone := float64(hogs) / (poolCapacity * (fairMeasured - time.Second).Seconds())
	t.Logf("the same tenant alone: share %.4f", alone)
	if math.Abs(alone-1) > fairTolerance {
		t.Errorf("alone in the pool the tenant took %.4f of it, want all of it", alone)
	}
}

// loneTenant: a tenant alone in the pool has all of its capacity, burst
// included, whatever its cap.
func loneTenant(t *testing.T, b Backend) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	tn := tenant{"acme", 1, 0.3}
	if n := greedy(t, l, tn); n != poolCapacity {
		t.Fatalf("from idle, %d admitted at once; want the pool's burst of %d", n, poolCapacity)
	}
	admitted := 0
	for range fairMeasured / fairTick {
		clock.Advance(fairTick)
		admitted += greedy(t, l, tn)
	}
	if want := int(poolCapacity * fairMeasured.Seconds()); admitted != want {
		t.Fatalf("%d admitted over %v alone, want %d", admitted, fairMeasured, want)
	}
}

// fairAllOrNothing: a request refused by another limit neither takes from
// the tenant's share nor makes it active in the pool.
func fairAllOrNothing(t *testing.T, b Backend) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	lim := func(tenant string) quotas.Limit {
		return quotas.Limit{Name: "pool", Key: "tenant:" + tenant, Limit: 10, Window: time.Second,
			Share: &quotas.Share{Pool: "tool:search", MaxShare: 1}}
	}
	for i := range 10 {
		if res := take(t, l, limits(lim("acme"))); !res.Allowed {
			t.Fatalf("acme alone, request %d of the burst: %+v", i+1, res)
		}
	}
	closed := quotas.Limit{Name: "closed", Key: "user:u-2", Limit: 0, Window: time.Second}
	res := take(t, l, limits(lim("globex"), closed))
	if res.Allowed || !res.Limits[0].Allowed || res.Limits[0].Remaining != 5 {
		t.Fatalf("globex, refused by another limit: %+v; want its share reported as half the burst, untaken", res)
	}
	// Had globex joined, acme's share would be half: an interval of 200 ms.
	clock.Advance(100 * time.Millisecond)
	if res := take(t, l, limits(lim("acme"))); !res.Allowed {
		t.Fatalf("acme, still alone, 100 ms later: %+v", res)
	}
	if res := take(t, l, limits(lim("globex"))); !res.Allowed || res.Limits[0].Remaining != 4 {
		t.Fatalf("globex's first admitted request: %+v; want its share's burst of 5, less this one", res)
	}
	// Now both are active: acme waits two of its old intervals.
	clock.Advance(100 * time.Millisecond)
	if res := take(t, l, limits(lim("acme"))); res.Allowed || res.RetryAfter != 100*time.Millisecond {
		t.Fatalf("acme sharing the pool with globex: %+v", res)
	}
}

// invalidShares: a share without a pool, or with a weight or cap out of
// range, is not taken.
func invalidShares(t *testing.T, b Backend) {
	l := b.Limiter(testclock.New(Start).Now)
	for name, s := range map[string]quotas.Share{
		"no pool":            {Weight: 1},
		"negative weight":    {Pool: "p", Weight: -1},
		"weight NaN":         {Pool: "p", Weight: math.NaN()},
		"weight too large":   {Pool: "p", Weight: 1e7},
		"max share over 1":   {Pool: "p", MaxShare: 1.01},
		"negative max":       {Pool: "p", MaxShare: -0.3},
		"max share NaN":      {Pool: "p", MaxShare: math.NaN()},
		"max share infinite": {Pool: "p", MaxShare: math.Inf(1)},
	} {
		req := limits(quotas.Limit{Name: "pool", Key: "tenant:acme", Limit: 10, Window: time.Second, Share: &s})
		if _, err := l.Take(context.Background(), req); !errors.Is(err, quotas.ErrInvalidLimit) {
			t.Errorf("%s: %v, want ErrInvalidLimit", name, err)
		}
	}
}
