// Package quotatest is the contract every quotas.Limiter meets, as an
// exported test suite: memquota runs it in process, redisquota against a
// real Redis.
package quotatest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/internal/testclock"
	"github.com/mcpauthz/mcpauthz/quotas"
)

// Backend is one shared limiter state, fresh for each test.
type Backend struct {
	// Limiter returns a limiter over the backend's state that reads the
	// time from now. Limiters from one Backend share their state, as
	// replicas share Redis.
	Limiter func(now func() time.Time) quotas.Limiter
	// ServerTimeLimiter, when the backend keeps time itself (Redis TIME),
	// returns a limiter whose rate limits follow the backend's clock and
	// whose calendar follows now; nil otherwise.
	ServerTimeLimiter func(now func() time.Time) quotas.Limiter
}

// Start is the suite's starting time: a Monday in November 2026, UTC.
var Start = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// Run runs the contract. newBackend returns a fresh, empty backend.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	tests := []struct {
		name string
		run  func(t *testing.T, b Backend)
	}{
		{"ok/steady rate", steadyRate},
		{"ok/burst", burst},
		{"ok/no burst across a window boundary", boundary},
		{"ok/cost", cost},
		{"ok/all or nothing across limits", allOrNothing},
		{"ok/all or nothing with quotas", allOrNothingQuotas},
		{"ok/keys are separate", separateKeys},
		{"ok/concurrent takers get exactly the burst", concurrency},
		{"ok/instances share the state", sharedInstances},
		{"ok/instances with skewed clocks agree", skewedClocks},
		{"ok/calendar month in the org's time zone", calendarMonth},
		{"ok/calendar day", calendarDay},
		{"ok/zero limit admits nothing", zeroLimit},
		{"ok/fair share: greedy tenants get their weighted shares", fairShare},
		{"ok/fair share: a greedy tenant is held to its max share", greedyCapped},
		{"ok/fair share: a lone tenant has the whole capacity", loneTenant},
		{"ok/fair share: all or nothing", fairAllOrNothing},
		{"fail/invalid definitions", invalid},
		{"fail/cancelled context", cancelled},
		{"fail/invalid fair shares", invalidShares},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newBackend(t)) })
	}
}

func take(t *testing.T, l quotas.Limiter, req quotas.Request) quotas.Result {
	t.Helper()
	res, err := l.Take(context.Background(), req)
	if err != nil {
		t.Fatalf("Take: %v", err)
	}
	if len(res.Limits) != len(req.Limits) || len(res.Quotas) != len(req.Quotas) {
		t.Fatalf("Take returned %d limit and %d quota states for %d and %d", len(res.Limits), len(res.Quotas), len(req.Limits), len(req.Quotas))
	}
	return res
}

func limits(ls ...quotas.Limit) quotas.Request { return quotas.Request{Limits: ls} }

func steadyRate(t *testing.T, b Backend) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	lim := quotas.Limit{Name: "r", Key: "user:u-1", Limit: 10, Window: time.Second, Burst: 1}
	// Every 10 ms for 2 s: one in ten is admitted, 20 in all.
	admitted := 0
	for range 200 {
		if take(t, l, limits(lim)).Allowed {
			admitted++
		}
		clock.Advance(10 * time.Millisecond)
	}
	if admitted != 20 {
		t.Fatalf("%d admitted in 2 s at 10/s", admitted)
	}
	if !take(t, l, limits(lim)).Allowed {
		t.Fatal("an interval after the last admission")
	}
	res := take(t, l, limits(lim))
	if res.Allowed || res.RetryAfter != 100*time.Millisecond {
		t.Fatalf("right after an admission: %+v", res)
	}
}

func burst(t *testing.T, b Backend) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	lim := quotas.Limit{Name: "r", Key: "user:u-1", Limit: 10, Window: time.Second, Burst: 5}
	for i := range 5 {
		res := take(t, l, limits(lim))
		if !res.Allowed || res.Limits[0].Remaining != int64(4-i) {
			t.Fatalf("request %d of the burst: %+v", i+1, res)
		}
	}
	res := take(t, l, limits(lim))
	if res.Allowed || res.RetryAfter != 100*time.Millisecond || res.Limits[0].Allowed || res.Limits[0].Remaining != 0 {
		t.Fatalf("past the burst: %+v", res)
	}
	if res.Limits[0].Reset != 500*time.Millisecond {
		t.Fatalf("reset %v, want 500ms (five units of 100 ms)", res.Limits[0].Reset)
	}
	clock.Advance(100 * time.Millisecond)
	if !take(t, l, limits(lim)).Allowed {
		t.Fatal("one interval later, one more is admitted")
	}
	// Idle for a window: the whole burst again, and no more.
	clock.Advance(time.Second)
	n := 0
	for range 10 {
		if take(t, l, limits(lim)).Allowed {
			n++
		}
	}
	if n != 5 {
		t.Fatalf("after a second idle, %d admitted at once, want the burst of 5", n)
	}
}

// boundary: a fixed window admits its limit just before the boundary and
// again just after it, twice the limit within moments. GCRA does not.
func boundary(t *testing.T, b Backend) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	lim := quotas.Limit{Name: "tools", Key: "tenant:acme:tools", Limit: 100, Window: 10 * time.Second}
	clock.Advance(9990 * time.Millisecond) // 10 ms before a fixed window would end
	count := func() int {
		n := 0
		for range 150 {
			if take(t, l, limits(lim)).Allowed {
				n++
			}
		}
		return n
	}
	before := count()
	clock.Advance(20 * time.Millisecond) // 10 ms into the next one
	after := count()
	if before != 100 || after > 1 {
		t.Fatalf("%d admitted before the boundary and %d after it; a fixed window would admit 100 + 100", before, after)
	}
	// Over any stretch t at most burst + t·rate: 30 s of requests every
	// 10 ms admit at most 100 + 300.
	total := before + after
	for range 3000 {
		clock.Advance(10 * time.Millisecond)
		if take(t, l, limits(lim)).Allowed {
			total++
		}
	}
	if elapsed := 30*time.Second + 20*time.Millisecond; total > 100+int(elapsed/(100*time.Millisecond))+1 || total < 300 {
		t.Fatalf("%d admitted over %v at 10/s with a burst of 100", total, elapsed)
	}
}

func cost(t *testing.T, b Backend) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	lim := quotas.Limit{Name: "tools", Key: "tenant:acme:tools", Limit: 10, Window: time.Second, Cost: 4}
	for i := range 2 {
		if res := take(t, l, limits(lim)); !res.Allowed {
			t.Fatalf("request %d costing 4 of 10: %+v", i+1, res)
		}
	}
	res := take(t, l, limits(lim))
	if res.Allowed || res.Limits[0].Remaining != 2 || res.RetryAfter != 200*time.Millisecond {
		t.Fatalf("a third costing 4 with 2 left: %+v", res)
	}
	cheap := lim
	cheap.Cost = 1
	if !take(t, l, limits(cheap)).Allowed {
		t.Fatal("a request costing 1 with 2 left is refused")
	}
	// More than the burst can never be admitted.
	huge := lim
	huge.Cost = 11
	clock.Advance(time.Hour)
	if res := take(t, l, limits(huge)); res.Allowed || res.RetryAfter <= 0 {
		t.Fatalf("a request costing more than the burst: %+v", res)
	}
}

func allOrNothing(t *testing.T, b Backend) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	wide := quotas.Limit{Name: "user", Key: "user:u-1", Limit: 10, Window: time.Second}
	narrow := quotas.Limit{Name: "tools", Key: "tenant:acme:tools", Limit: 1, Window: time.Second}
	if res := take(t, l, limits(wide, narrow)); !res.Allowed || res.Limits[0].Remaining != 9 || res.Limits[1].Remaining != 0 {
		t.Fatalf("first: %+v", res)
	}
	res := take(t, l, limits(wide, narrow))
	if res.Allowed || !res.Limits[0].Allowed || res.Limits[1].Allowed || res.RetryAfter != time.Second {
		t.Fatalf("second, refused by the narrow limit: %+v", res)
	}
	if res.Limits[0].Remaining != 9 {
		t.Fatalf("the wide limit reports %d remaining after a refused request, want 9 (untaken)", res.Limits[0].Remaining)
	}
	// Nine refusals later the wide limit still has nine.
	for range 9 {
		take(t, l, limits(wide, narrow))
	}
	if res := take(t, l, limits(wide)); !res.Allowed || res.Limits[0].Remaining != 8 {
		t.Fatalf("the wide limit alone after refused pairs: %+v", res)
	}
}

func allOrNothingQuotas(t *testing.T, b Backend) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	lim := quotas.Limit{Name: "user", Key: "user:u-1", Limit: 10, Window: time.Second}
	month := quotas.Quota{Name: "monthly", Key: "tenant:acme:requests", Limit: 2, Period: quotas.Month}
	req := quotas.Request{Limits: []quotas.Limit{lim}, Quotas: []quotas.Quota{month}}
	for i := range 2 {
		res := take(t, l, req)
		if !res.Allowed || res.Quotas[0].Used != int64(i+1) || res.Quotas[0].Remaining != int64(1-i) {
			t.Fatalf("request %d: %+v", i+1, res)
		}
	}
	res := take(t, l, req)
	wantReset := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if res.Allowed || res.Quotas[0].Allowed || res.Quotas[0].Used != 2 || !res.Quotas[0].Resets.Equal(wantReset) || res.RetryAfter != wantReset.Sub(Start) {
		t.Fatalf("past the quota: %+v", res)
	}
	if res.Limits[0].Remaining != 8 {
		t.Fatalf("a request refused by the quota took from the limit: %+v", res.Limits[0])
	}
	// And a request refused by a limit takes nothing from the quota.
	other := quotas.Quota{Name: "monthly", Key: "tenant:globex:requests", Limit: 5, Period: quotas.Month}
	zero := quotas.Limit{Name: "closed", Key: "user:u-2", Limit: 0, Window: time.Second}
	take(t, l, quotas.Request{Limits: []quotas.Limit{zero}, Quotas: []quotas.Quota{other}})
	if res := take(t, l, quotas.Request{Quotas: []quotas.Quota{other}}); res.Quotas[0].Used != 1 {
		t.Fatalf("globex's quota after one refused and one admitted request: %+v", res.Quotas[0])
	}
}

func separateKeys(t *testing.T, b Backend) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	acme := quotas.Limit{Name: "tools", Key: "tenant:acme:tools", Limit: 1, Window: time.Minute}
	globex := acme
	globex.Key = "tenant:globex:tools"
	if !take(t, l, limits(acme)).Allowed || take(t, l, limits(acme)).Allowed {
		t.Fatal("acme: want one admitted")
	}
	if !take(t, l, limits(globex)).Allowed {
		t.Fatal("acme's use counted against globex")
	}
	q := quotas.Quota{Name: "m", Key: "tenant:acme:requests", Limit: 1, Period: quotas.Month}
	q2 := q
	q2.Key = "tenant:globex:requests"
	if !take(t, l, quotas.Request{Quotas: []quotas.Quota{q}}).Allowed || !take(t, l, quotas.Request{Quotas: []quotas.Quota{q2}}).Allowed {
		t.Fatal("quotas of two tenants are not separate")
	}
}

// concurrency: 16 goroutines at one instant; exactly the burst admitted.
func concurrency(t *testing.T, b Backend) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	lim := quotas.Limit{Name: "r", Key: "user:u-1", Limit: 5, Window: time.Hour}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range 4 {
				res, err := l.Take(context.Background(), limits(lim))
				if err != nil {
					t.Error(err)
					return
				}
				if res.Allowed {
					admitted.Add(1)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := admitted.Load(); n != 5 {
		t.Fatalf("%d of 64 concurrent requests admitted, want exactly the burst of 5", n)
	}
}

func sharedInstances(t *testing.T, b Backend) {
	clock := testclock.New(Start)
	l1, l2 := b.Limiter(clock.Now), b.Limiter(clock.Now)
	lim := quotas.Limit{Name: "r", Key: "tenant:acme:tools", Limit: 5, Window: time.Hour}
	q := quotas.Quota{Name: "m", Key: "tenant:acme:requests", Limit: 4, Period: quotas.Month}
	n := 0
	for i := range 6 {
		l := l1
		if i%2 == 1 {
			l = l2
		}
		if take(t, l, limits(lim)).Allowed {
			n++
		}
		take(t, l, quotas.Request{Quotas: []quotas.Quota{q}})
	}
	if n != 5 {
		t.Fatalf("two instances admitted %d against one limit of 5", n)
	}
	if res := take(t, l1, quotas.Request{Quotas: []quotas.Quota{q}}); res.Allowed || res.Quotas[0].Used != 4 {
		t.Fatalf("two instances share a quota of 4: %+v", res.Quotas[0])
	}
}

// skewedClocks: replicas whose clocks disagree by an hour still agree on
// a limit, because the backend's clock counts.
func skewedClocks(t *testing.T, b Backend) {
	if b.ServerTimeLimiter == nil {
		t.Skip("the backend has no clock of its own: one process, one clock")
	}
	slow := func() time.Time { return time.Now().Add(-time.Hour) }
	fast := func() time.Time { return time.Now().Add(time.Hour) }
	l1, l2 := b.ServerTimeLimiter(slow), b.ServerTimeLimiter(fast)
	lim := quotas.Limit{Name: "r", Key: "user:u-1", Limit: 4, Window: time.Hour}
	n := 0
	for i := range 8 {
		l := l1
		if i%2 == 1 {
			l = l2
		}
		if take(t, l, limits(lim)).Allowed {
			n++
		}
	}
	if n != 4 {
		t.Fatalf("instances an hour apart admitted %d against a limit of 4 per hour", n)
	}
}

func calendarMonth(t *testing.T, b Backend) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	// 22:00 on 30 November in New York is already 1 December in UTC.
	clock := testclock.New(time.Date(2026, 11, 30, 22, 0, 0, 0, ny))
	l := b.Limiter(clock.Now)
	q := quotas.Quota{Name: "monthly", Key: "tenant:acme:requests", Limit: 3, Period: quotas.Month, Location: ny}
	utc := quotas.Quota{Name: "monthly", Key: "tenant:globex:requests", Limit: 3, Period: quotas.Month}
	req := quotas.Request{Quotas: []quotas.Quota{q}}
	for range 3 {
		if !take(t, l, req).Allowed {
			t.Fatal("within the quota")
		}
	}
	res := take(t, l, req)
	december := time.Date(2026, 12, 1, 0, 0, 0, 0, ny)
	if res.Allowed || !res.Quotas[0].Resets.Equal(december) || res.RetryAfter != 2*time.Hour {
		t.Fatalf("past the quota at 22:00 New York time: %+v", res)
	}
	// A UTC organization is in December already; its November is gone.
	if r := take(t, l, quotas.Request{Quotas: []quotas.Quota{utc}}); !r.Allowed || !r.Quotas[0].Resets.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("the UTC organization: %+v", r)
	}
	clock.Advance(2*time.Hour - time.Second)
	if take(t, l, req).Allowed {
		t.Fatal("a second before midnight in New York the quota is still spent")
	}
	clock.Advance(time.Second)
	res = take(t, l, req)
	if !res.Allowed || res.Quotas[0].Used != 1 || res.Quotas[0].Remaining != 2 {
		t.Fatalf("at midnight in New York the month starts afresh: %+v", res)
	}
}

func calendarDay(t *testing.T, b Backend) {
	clock := testclock.New(time.Date(2026, 11, 25, 23, 59, 0, 0, time.UTC))
	l := b.Limiter(clock.Now)
	req := quotas.Request{Quotas: []quotas.Quota{{Name: "daily", Key: "key:k-1:calls", Limit: 1, Period: quotas.Day}}}
	if !take(t, l, req).Allowed {
		t.Fatal("first of the day")
	}
	if res := take(t, l, req); res.Allowed || res.RetryAfter != time.Minute {
		t.Fatalf("second of the day: %+v", res)
	}
	clock.Advance(time.Minute)
	if !take(t, l, req).Allowed {
		t.Fatal("first of the next day")
	}
}

func zeroLimit(t *testing.T, b Backend) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	res := take(t, l, limits(quotas.Limit{Name: "closed", Key: "user:u-1", Limit: 0, Window: time.Minute}))
	if res.Allowed || res.RetryAfter != time.Minute {
		t.Fatalf("a limit of 0: %+v", res)
	}
	if res := take(t, l, quotas.Request{Quotas: []quotas.Quota{{Name: "none", Key: "tenant:acme", Limit: 0, Period: quotas.Day}}}); res.Allowed {
		t.Fatalf("a quota of 0: %+v", res)
	}
}

func invalid(t *testing.T, b Backend) {
	l := b.Limiter(testclock.New(Start).Now)
	for name, req := range map[string]quotas.Request{
		"no key":            limits(quotas.Limit{Name: "r", Limit: 1, Window: time.Second}),
		"no window":         limits(quotas.Limit{Name: "r", Key: "k", Limit: 1}),
		"negative":          limits(quotas.Limit{Name: "r", Key: "k", Limit: -1, Window: time.Second}),
		"negative cost":     limits(quotas.Limit{Name: "r", Key: "k", Limit: 1, Window: time.Second, Cost: -1}),
		"unknown period":    {Quotas: []quotas.Quota{{Name: "q", Key: "k", Limit: 1, Period: "week"}}},
		"quota without key": {Quotas: []quotas.Quota{{Name: "q", Limit: 1, Period: quotas.Day}}},
	} {
		if _, err := l.Take(context.Background(), req); !errors.Is(err, quotas.ErrInvalidLimit) {
			t.Errorf("%s: %v, want ErrInvalidLimit", name, err)
		}
	}
}

func cancelled(t *testing.T, b Backend) {
	l := b.Limiter(testclock.New(Start).Now)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := l.Take(ctx, limits(quotas.Limit{Name: "r", Key: "k", Limit: 1, Window: time.Second}))
	if !errors.Is(err, quotas.ErrBackendUnavailable) {
		t.Fatalf("Take with a cancelled context: %v, want ErrBackendUnavailable", err)
	}
}
