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

func TestLeaseContract(t *testing.T) {
	quotatest.RunLeases(t, func(t *testing.T) quotatest.LeaseBackend {
		// One process, one state: every "instance" is the same Leases,
		// reading the clock of the first.
		var l *memquota.Leases
		return quotatest.LeaseBackend{Leaser: func(now func() time.Time) quotas.Leaser {
			if l == nil {
				l = memquota.NewLeases(memquota.WithLeaseClock(now))
			}
			return l
		}}
	})
}

// TestLeasesBoundedMemory: expired leases make room for new ones; live
// leases are never dropped to make room, and new ones are refused instead.
func TestLeasesBoundedMemory(t *testing.T) {
	clock := testclock.New(quotatest.Start)
	l := memquota.NewLeases(memquota.WithLeaseClock(clock.Now), memquota.WithMaxLeases(100))
	ctx := context.Background()
	acquire := func(id, key string) (quotas.LeaseResult, error) {
		return l.Acquire(ctx, id, []quotas.Lease{{Name: "s", Key: key, Limit: 1, TTL: time.Minute}})
	}
	for i := range 100 {
		if res, err := acquire(fmt.Sprint("req-", i), fmt.Sprintf("tenant:%d", i)); err != nil || !res.Allowed {
			t.Fatalf("lease %d: %+v %v", i, res, err)
		}
	}
	if _, err := acquire("req-new", "tenant:new"); !errors.Is(err, quotas.ErrFull) {
		t.Fatalf("a new lease with 100 live ones: %v, want ErrFull", err)
	}
	if res, err := acquire("req-other", "tenant:7"); err != nil || res.Allowed {
		t.Fatalf("a live lease still holds its slot: %+v %v", res, err)
	}
	if res, err := acquire("req-7", "tenant:7"); err != nil || !res.Allowed {
		t.Fatalf("renewing a held lease needs no room: %+v %v", res, err)
	}
	clock.Advance(time.Minute) // every lease has expired
	if res, err := acquire("req-new", "tenant:new"); err != nil || !res.Allowed {
		t.Fatalf("after the leases expired: %+v %v", res, err)
	}
	if st := l.Stats(); st.Keys != 1 || st.Leases != 1 || st.Full != 1 {
		t.Fatalf("stats %+v, want the expired leases evicted", st)
	}
	if err := l.Release(ctx, "req-new", []string{"tenant:new"}); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Keys != 0 || st.Leases != 0 {
		t.Fatalf("stats %+v after the last release, want empty", st)
	}
}

// TestLeasesRunEvictsExpired: Run drops leases as they expire, full or
// not.
func TestLeasesRunEvictsExpired(t *testing.T) {
	clock := testclock.New(quotatest.Start)
	l := memquota.NewLeases(memquota.WithLeaseClock(clock.Now), memquota.WithLeaseSweepInterval(time.Millisecond))
	ctx := context.Background()
	short := quotas.Lease{Name: "s", Key: "tenant:acme:calls", Limit: 5, TTL: time.Second}
	long := quotas.Lease{Name: "s", Key: "tenant:acme:streams", Limit: 5, TTL: time.Hour}
	if _, err := l.Acquire(ctx, "a", []quotas.Lease{short, long}); err != nil {
		t.Fatal(err)
	}
	run, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- l.Run(run) }()
	defer func() { stop(); <-done }()
	clock.Advance(time.Second)
	for deadline := time.Now().Add(5 * time.Second); l.Stats().Leases != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the expired lease was not evicted: %+v", l.Stats())
		}
	}
	if st := l.Stats(); st.Keys != 1 {
		t.Fatalf("stats %+v, want the live lease kept", st)
	}
}

// BenchmarkLeases acquires and releases two leases, as one SSE stream
// does, over 1,000 tenants.
func BenchmarkLeases(b *testing.B) { quotatest.BenchmarkLeases(b, memquota.NewLeases()) }
