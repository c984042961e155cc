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

func TestContract(t *testing.T) {
	quotatest.Run(t, func(t *testing.T) quotatest.Backend {
		// One process, one state: every "instance" is the same limiter,
		// reading the clock of the first.
		var l *memquota.Limiter
		return quotatest.Backend{Limiter: func(now func() time.Time) quotas.Limiter {
			if l == nil {
				l = memquota.New(memquota.WithClock(now))
			}
			return l
		}}
	})
}

// TestBoundedMemory: idle keys make room for new ones; active keys are
// never dropped to make room, and new keys are refused instead.
func TestBoundedMemory(t *testing.T) {
	clock := testclock.New(quotatest.Start)
	l := memquota.New(memquota.WithClock(clock.Now), memquota.WithMaxKeys(100))
	ctx := context.Background()
	take := func(key string) (quotas.Result, error) {
		return l.Take(ctx, quotas.Request{Limits: []quotas.Limit{{Name: "r", Key: key, Limit: 1, Window: time.Second}}})
	}
	for i := range 100 {
		if res, err := take(fmt.Sprintf("user:%d", i)); err != nil || !res.Allowed {
			t.Fatalf("key %d: %+v %v", i, res, err)
		}
	}
	if _, err := take("user:new"); !errors.Is(err, quotas.ErrFull) {
		t.Fatalf("a new key with 100 active ones: %v, want ErrFull", err)
	}
	if res, err := take("user:7"); err != nil || res.Allowed {
		t.Fatalf("an active key is still limited: %+v %v", res, err)
	}
	clock.Advance(time.Second) // every key is idle again
	if res, err := take("user:new"); err != nil || !res.Allowed {
		t.Fatalf("after the keys went idle: %+v %v", res, err)
	}
	if st := l.Stats(); st.Limits != 1 || st.Full != 1 {
		t.Fatalf("stats %+v, want the idle keys evicted", st)
	}
}

// BenchmarkTake takes three limits and a quota, as a tools/call under the
// default policy does, over 1,000 tenants.
func BenchmarkTake(b *testing.B) { quotatest.Benchmark(b, memquota.New()) }

// TestRunEvictsIdleKeys: Run drops keys as they go idle, full or not.
func TestRunEvictsIdleKeys(t *testing.T) {
	clock := testclock.New(quotatest.Start)
	l := memquota.New(memquota.WithClock(clock.Now), memquota.WithSweepInterval(time.Millisecond))
	ctx := context.Background()
	req := quotas.Request{
		Limits: []quotas.Limit{{Name: "r", Key: "user:u-1", Limit: 1, Window: time.Second}},
		Quotas: []quotas.Quota{{Name: "q", Key: "tenant:acme", Limit: 5, Period: quotas.Day}},
	}
	if _, err := l.Take(ctx, req); err != nil {
		t.Fatal(err)
	}
	run, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- l.Run(run) }()
	defer func() { stop(); <-done }()
	time.Sleep(20 * time.Millisecond)
	if st := l.Stats(); st.Limits != 1 || st.Quotas != 1 {
		t.Fatalf("active keys were evicted: %+v", st)
	}
	clock.Advance(time.Second) // the limit is idle; the day goes on
	for deadline := time.Now().Add(5 * time.Second); l.Stats().Limits != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the idle limit was not evicted: %+v", l.Stats())
		}
	}
	if st := l.Stats(); st.Quotas != 1 {
		t.Fatalf("the day's quota was evicted: %+v", st)
	}
	clock.Advance(24 * time.Hour)
	for deadline := time.Now().Add(5 * time.Second); l.Stats().Quotas != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the past day's quota was not evicted: %+v", l.Stats())
		}
	}
}
