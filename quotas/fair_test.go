package quotas_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/quotas"
)

func TestFairShare(t *testing.T) {
	free := quotas.ShareClass{Weight: 1, MaxShare: 0.3}
	pro := quotas.ShareClass{Weight: 3, MaxShare: 0.3}
	enterprise := quotas.ShareClass{Weight: 10, MaxShare: 0.3}
	uncapped := func(c quotas.ShareClass) quotas.ShareClass { c.MaxShare = 1; return c }
	tests := []struct {
		name   string
		self   quotas.ShareClass
		active []quotas.ClassCount
		want   float64
	}{
		{"ok/alone, the whole capacity whatever the cap", free, []quotas.ClassCount{{free, 1}}, 1},
		{"ok/alone among empty classes", enterprise, []quotas.ClassCount{{enterprise, 1}, {free, 0}}, 1},
		{"ok/equal weights, uncapped", uncapped(free), []quotas.ClassCount{{uncapped(free), 4}}, 0.25},
		{"ok/1, 3, 10 uncapped: free", uncapped(free),
			[]quotas.ClassCount{{uncapped(free), 1}, {uncapped(pro), 1}, {uncapped(enterprise), 1}}, 1.0 / 14},
		{"ok/1, 3, 10 uncapped: enterprise", uncapped(enterprise),
			[]quotas.ClassCount{{uncapped(free), 1}, {uncapped(pro), 1}, {uncapped(enterprise), 1}}, 10.0 / 14},
		// 10/19 of the capacity is over the cap: enterprise gets 0.3 and
		// the other 0.7 goes 3:3:1:1:1.
		{"ok/1 enterprise, 2 pro, 3 free: enterprise capped", enterprise,
			[]quotas.ClassCount{{enterprise, 1}, {pro, 2}, {free, 3}}, 0.3},
		{"ok/1 enterprise, 2 pro, 3 free: pro", pro,
			[]quotas.ClassCount{{free, 3}, {pro, 2}, {enterprise, 1}}, 0.7 * 3 / 9},
		{"ok/1 enterprise, 2 pro, 3 free: free", free,
			[]quotas.ClassCount{{pro, 2}, {enterprise, 1}, {free, 3}}, 0.7 / 9},
		// Capping enterprise raises the level until pro reaches its cap too.
		{"ok/capping cascades", free,
			[]quotas.ClassCount{{enterprise, 1}, {pro, 1}, {free, 2}}, 0.2},
		{"ok/every tenant at its cap, the rest unused", free,
			[]quotas.ClassCount{{free, 1}, {pro, 1}, {enterprise, 1}}, 0.3},
		{"ok/a greedy enterprise among free tenants", enterprise,
			[]quotas.ClassCount{{enterprise, 1}, {free, 4}}, 0.3},
		{"ok/caps differ per tenant", uncapped(free),
			[]quotas.ClassCount{{uncapped(free), 1}, {quotas.ShareClass{Weight: 1, MaxShare: 0.1}, 1}}, 0.9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := quotas.FairShare(tt.self, tt.active); math.Abs(got-tt.want) > 1e-12 {
				t.Fatalf("FairShare = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestFairSharesSumToOne: shares of every active tenant add up to the
// capacity unless every tenant is at its cap.
func TestFairSharesSumToOne(t *testing.T) {
	var active []quotas.ClassCount
	for _, w := range []float64{1, 2, 3, 5, 10, 40} {
		active = append(active, quotas.ClassCount{Class: quotas.ShareClass{Weight: w, MaxShare: 0.3}, Tenants: int64(w) % 3})
	}
	sum := 0.0
	for _, c := range active {
		s := quotas.FairShare(c.Class, active)
		if s > 0.3 {
			t.Fatalf("weight %v: share %v over the cap", c.Class.Weight, s)
		}
		sum += float64(c.Tenants) * s
	}
	if math.Abs(sum-1) > 1e-12 {
		t.Fatalf("shares add up to %v", sum)
	}
}

func TestShareDefaults(t *testing.T) {
	if c := (quotas.Share{Pool: "tool:search"}).Class(); c != (quotas.ShareClass{Weight: 1, MaxShare: 0.3}) {
		t.Fatalf("defaults %+v", c)
	}
	if s := (quotas.ShareClass{Weight: 10, MaxShare: 0.3}).String(); s != "10|0.3" {
		t.Fatalf("class name %q", s)
	}
}

func TestShareValidate(t *testing.T) {
	lim := func(s quotas.Share) quotas.Limit {
		return quotas.Limit{Name: "pool", Key: "tenant:acme", Limit: 100, Window: time.Second, Share: &s}
	}
	tests := []struct {
		name  string
		share quotas.Share
		ok    bool
	}{
		{"ok/defaults", quotas.Share{Pool: "tool:search"}, true},
		{"ok/weight and uncapped", quotas.Share{Pool: "tool:search", Weight: 10, MaxShare: 1}, true},
		{"fail/no pool", quotas.Share{Weight: 1}, false},
		{"fail/negative weight", quotas.Share{Pool: "p", Weight: -1}, false},
		{"fail/weight NaN", quotas.Share{Pool: "p", Weight: math.NaN()}, false},
		{"fail/weight infinite", quotas.Share{Pool: "p", Weight: math.Inf(1)}, false},
		{"fail/weight too large", quotas.Share{Pool: "p", Weight: 2e6}, false},
		{"fail/max share over 1", quotas.Share{Pool: "p", MaxShare: 1.5}, false},
		{"fail/negative max share", quotas.Share{Pool: "p", MaxShare: -0.3}, false},
		{"fail/max share NaN", quotas.Share{Pool: "p", MaxShare: math.NaN()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := lim(tt.share).Validate()
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, quotas.ErrInvalidLimit)) {
				t.Fatalf("Validate = %v", err)
			}
		})
	}
}

func TestShareGCRA(t *testing.T) {
	pool := quotas.Limit{Key: "tenant:acme", Limit: 1000, Window: time.Second}
	tests := []struct {
		name                string
		limit               quotas.Limit
		share               float64
		interval, tolerance time.Duration
	}{
		{"ok/the whole capacity", pool, 1, time.Millisecond, time.Second},
		{"ok/a quarter: four times the interval, the same tolerance", pool, 0.25, 4 * time.Millisecond, time.Second},
		{"ok/whole microseconds", pool, 0.3, 3333 * time.Microsecond, time.Second},
		{"ok/at least one request at once", quotas.Limit{Key: "k", Limit: 10, Window: time.Second, Burst: 1, Cost: 2}, 0.5,
			200 * time.Millisecond, 400 * time.Millisecond},
		{"ok/a share of nothing waits its longest", pool, 0, (1 << 40) * time.Microsecond, (1 << 40) * time.Microsecond},
		{"ok/a capacity of nothing admits nothing", quotas.Limit{Key: "k", Window: time.Second}, 0.5, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := quotas.NewShareGCRA(tt.limit, tt.share)
			if g.Interval != int64(tt.interval) || g.Tolerance != int64(tt.tolerance) {
				t.Fatalf("interval %v tolerance %v, want %v %v", time.Duration(g.Interval), time.Duration(g.Tolerance), tt.interval, tt.tolerance)
			}
		})
	}
}
