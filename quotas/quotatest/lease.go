package quotatest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/internal/testclock"
	"github.com/mcpauthz/mcpauthz/quotas"
)

// LeaseBackend is one shared lease state, fresh for each test.
type LeaseBackend struct {
	// Leaser returns a leaser over the backend's state that reads the time
	// from now. Leasers from one LeaseBackend share their state, as
	// replicas share Redis.
	Leaser func(now func() time.Time) quotas.Leaser
}

// RunLeases runs the contract of concurrent-request leases. newBackend
// returns a fresh, empty backend.
func RunLeases(t *testing.T, newBackend func(t *testing.T) LeaseBackend) {
	tests := []struct {
		name string
		run  func(t *testing.T, b LeaseBackend)
	}{
		{"ok/limit admitted exactly", leaseLimitExact},
		{"ok/release frees a slot", leaseReleaseFrees},
		{"ok/release is idempotent and unknown ids are fine", leaseReleaseIdempotent},
		{"ok/expired lease frees the slot", leaseExpiry},
		{"ok/retry after is the earliest expiry", leaseRetryAfter},
		{"ok/same id renews and counts once", leaseRenew},
		{"ok/all or nothing across keys", leaseAllOrNothing},
		{"ok/keys are separate", leaseSeparateKeys},
		{"ok/instances share the state", leaseSharedInstances},
		{"ok/zero limit admits nothing", leaseZeroLimit},
		{"ok/no leases", leaseNone},
		{"fail/invalid definitions", leaseInvalid},
		{"fail/cancelled context", leaseCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newBackend(t)) })
	}
}

// leaseTTL is long enough that a Redis set never expires in real time
// while a test runs on its fake clock.
const leaseTTL = 5 * time.Minute

func leaseAcquire(t *testing.T, l quotas.Leaser, id string, leases ...quotas.Lease) quotas.LeaseResult {
	t.Helper()
	res, err := l.Acquire(context.Background(), id, leases)
	if err != nil {
		t.Fatalf("Acquire(%q): %v", id, err)
	}
	if len(res.Leases) != len(leases) {
		t.Fatalf("Acquire returned %d lease states for %d leases", len(res.Leases), len(leases))
	}
	for i, st := range res.Leases {
		if st.Limit != leases[i].Limit {
			t.Fatalf("lease %d reports limit %d, want %d", i, st.Limit, leases[i].Limit)
		}
	}
	return res
}

func leaseRelease(t *testing.T, l quotas.Leaser, id string, keys ...string) {
	t.Helper()
	if err := l.Release(context.Background(), id, keys); err != nil {
		t.Fatalf("Release(%q): %v", id, err)
	}
}

func streamLease(key string, limit int64) quotas.Lease {
	return quotas.Lease{Name: "streams", Key: key, Limit: limit, TTL: leaseTTL}
}

// leaseLimitExact: 16 goroutines at one instant, 64 requests; exactly the
// limit admitted.
func leaseLimitExact(t *testing.T, b LeaseBackend) {
	l := b.Leaser(testclock.New(Start).Now)
	lease := streamLease("tenant:acme:streams", 5)
	var admitted atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range 4 {
				res, err := l.Acquire(context.Background(), fmt.Sprintf("req-%d-%d", g, i), []quotas.Lease{lease})
				if err != nil {
					t.Error(err)
					return
				}
				if res.Allowed {
					admitted.Add(1)
				} else if res.RetryAfter != leaseTTL || res.Leases[0].InUse != 5 {
					t.Errorf("a refusal with five leases taken at one instant: %+v", res)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := admitted.Load(); n != 5 {
		t.Fatalf("%d of 64 concurrent requests admitted, want exactly the limit of 5", n)
	}
}

func leaseReleaseFrees(t *testing.T, b LeaseBackend) {
	l := b.Leaser(testclock.New(Start).Now)
	lease := streamLease("tenant:acme:streams", 2)
	for i, id := range []string{"a", "b"} {
		if res := leaseAcquire(t, l, id, lease); !res.Allowed || res.Leases[0].InUse != int64(i+1) {
			t.Fatalf("lease %s: %+v", id, res)
		}
	}
	if res := leaseAcquire(t, l, "c", lease); res.Allowed || res.Leases[0].InUse != 2 || res.Leases[0].Allowed {
		t.Fatalf("a third with a limit of 2: %+v", res)
	}
	leaseRelease(t, l, "a", lease.Key)
	if res := leaseAcquire(t, l, "c", lease); !res.Allowed || res.Leases[0].InUse != 2 {
		t.Fatalf("after a release: %+v", res)
	}
	if res := leaseAcquire(t, l, "d", lease); res.Allowed {
		t.Fatalf("one release frees one slot: %+v", res)
	}
}

func leaseReleaseIdempotent(t *testing.T, b LeaseBackend) {
	l := b.Leaser(testclock.New(Start).Now)
	lease := streamLease("tenant:acme:streams", 2)
	leaseAcquire(t, l, "a", lease)
	leaseAcquire(t, l, "b", lease)
	leaseRelease(t, l, "a", lease.Key)
	leaseRelease(t, l, "a", lease.Key) // again: must not free b's slot
	leaseRelease(t, l, "never-seen", lease.Key)
	leaseRelease(t, l, "never-seen", "tenant:nobody:streams")
	leaseRelease(t, l, "a") // no keys
	if res := leaseAcquire(t, l, "c", lease); !res.Allowed || res.Leases[0].InUse != 2 {
		t.Fatalf("after releasing a twice, b and c hold the two slots: %+v", res)
	}
	if res := leaseAcquire(t, l, "d", lease); res.Allowed {
		t.Fatalf("a repeated release freed a slot it did not hold: %+v", res)
	}
}

func leaseExpiry(t *testing.T, b LeaseBackend) {
	clock := testclock.New(Start)
	l := b.Leaser(clock.Now)
	lease := quotas.Lease{Name: "calls", Key: "tenant:acme:calls", Limit: 1, TTL: 30 * time.Second}
	leaseAcquire(t, l, "a", lease)
	clock.Advance(10 * time.Second)
	if res := leaseAcquire(t, l, "b", lease); res.Allowed || res.RetryAfter != 20*time.Second || res.Leases[0].RetryAfter != 20*time.Second {
		t.Fatalf("10 s into a 30 s lease: %+v", res)
	}
	clock.Advance(20*time.Second - time.Microsecond)
	if res := leaseAcquire(t, l, "b", lease); res.Allowed || res.RetryAfter != time.Microsecond {
		t.Fatalf("a microsecond before the lease expires: %+v", res)
	}
	clock.Advance(time.Microsecond)
	if res := leaseAcquire(t, l, "b", lease); !res.Allowed || res.Leases[0].InUse != 1 {
		t.Fatalf("at its expiry the lease counts for nothing: %+v", res)
	}
	leaseRelease(t, l, "a", lease.Key) // late: the release of an expired lease
	if res := leaseAcquire(t, l, "c", lease); res.Allowed {
		t.Fatalf("the late release of a freed b's slot: %+v", res)
	}
}

func leaseRetryAfter(t *testing.T, b LeaseBackend) {
	clock := testclock.New(Start)
	l := b.Leaser(clock.Now)
	long := quotas.Lease{Name: "calls", Key: "tenant:acme:calls", Limit: 2, TTL: 60 * time.Second}
	short := long
	short.TTL = 10 * time.Second
	leaseAcquire(t, l, "a", long) // expires at 60 s
	clock.Advance(5 * time.Second)
	leaseAcquire(t, l, "b", short) // expires at 15 s
	clock.Advance(time.Second)
	if res := leaseAcquire(t, l, "c", long); res.Allowed || res.RetryAfter != 9*time.Second {
		t.Fatalf("at 6 s, with leases to 60 s and 15 s: %+v", res)
	}
}

func leaseRenew(t *testing.T, b LeaseBackend) {
	clock := testclock.New(Start)
	l := b.Leaser(clock.Now)
	lease := quotas.Lease{Name: "calls", Key: "tenant:acme:calls", Limit: 1, TTL: 30 * time.Second}
	leaseAcquire(t, l, "a", lease)
	clock.Advance(20 * time.Second)
	if res := leaseAcquire(t, l, "a", lease); !res.Allowed || res.Leases[0].InUse != 1 {
		t.Fatalf("the holder acquiring again: %+v", res)
	}
	clock.Advance(20 * time.Second) // past the first expiry, before the renewed one
	if res := leaseAcquire(t, l, "b", lease); res.Allowed || res.RetryAfter != 10*time.Second {
		t.Fatalf("the renewed lease still holds the slot: %+v", res)
	}
}

func leaseAllOrNothing(t *testing.T, b LeaseBackend) {
	l := b.Leaser(testclock.New(Start).Now)
	tenant := streamLease("tenant:acme:streams", 10)
	tool := streamLease("tenant:acme:tool:export", 1)
	if res := leaseAcquire(t, l, "a", tenant, tool); !res.Allowed || res.Leases[0].InUse != 1 || res.Leases[1].InUse != 1 {
		t.Fatalf("first: %+v", res)
	}
	res := leaseAcquire(t, l, "b", tenant, tool)
	if res.Allowed || !res.Leases[0].Allowed || res.Leases[1].Allowed || res.RetryAfter != leaseTTL {
		t.Fatalf("second, refused by the tool's lease: %+v", res)
	}
	if res.Leases[0].InUse != 1 {
		t.Fatalf("the tenant's lease reports %d in use after a refused acquire, want 1 (untaken)", res.Leases[0].InUse)
	}
	if res := leaseAcquire(t, l, "c", tenant); !res.Allowed || res.Leases[0].InUse != 2 {
		t.Fatalf("the refused pair took a tenant slot: %+v", res)
	}
	// Releasing both keys of a frees the tool for b.
	leaseRelease(t, l, "a", tenant.Key, tool.Key)
	if res := leaseAcquire(t, l, "b", tenant, tool); !res.Allowed || res.Leases[0].InUse != 2 || res.Leases[1].InUse != 1 {
		t.Fatalf("after a released both: %+v", res)
	}
}

// leaseSeparateKeys: one tenant's full cap is not another's.
func leaseSeparateKeys(t *testing.T, b LeaseBackend) {
	l := b.Leaser(testclock.New(Start).Now)
	acme, globex := streamLease("tenant:acme:streams", 1), streamLease("tenant:globex:streams", 1)
	if !leaseAcquire(t, l, "a", acme).Allowed || leaseAcquire(t, l, "b", acme).Allowed {
		t.Fatal("acme: want one admitted")
	}
	if res := leaseAcquire(t, l, "c", globex); !res.Allowed || res.Leases[0].InUse != 1 {
		t.Fatalf("acme's leases counted against globex: %+v", res)
	}
	// Releasing a on globex's key does not free acme's slot.
	leaseRelease(t, l, "a", globex.Key)
	if leaseAcquire(t, l, "d", acme).Allowed {
		t.Fatal("a release on globex's key freed acme's slot")
	}
}

func leaseSharedInstances(t *testing.T, b LeaseBackend) {
	clock := testclock.New(Start)
	l1, l2 := b.Leaser(clock.Now), b.Leaser(clock.Now)
	lease := streamLease("tenant:acme:streams", 3)
	n := 0
	for i := range 6 {
		l := l1
		if i%2 == 1 {
			l = l2
		}
		if leaseAcquire(t, l, fmt.Sprint("req-", i), lease).Allowed {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("two instances admitted %d against one cap of 3", n)
	}
	leaseRelease(t, l2, "req-0", lease.Key) // acquired through l1
	if res := leaseAcquire(t, l1, "req-6", lease); !res.Allowed || res.Leases[0].InUse != 3 {
		t.Fatalf("a release through the other instance: %+v", res)
	}
}

func leaseZeroLimit(t *testing.T, b LeaseBackend) {
	l := b.Leaser(testclock.New(Start).Now)
	res := leaseAcquire(t, l, "a", streamLease("tenant:acme:streams", 0))
	if res.Allowed || res.RetryAfter != leaseTTL || res.Leases[0].InUse != 0 {
		t.Fatalf("a cap of 0: %+v", res)
	}
}

func leaseNone(t *testing.T, b LeaseBackend) {
	l := b.Leaser(testclock.New(Start).Now)
	if res := leaseAcquire(t, l, "a"); !res.Allowed || res.Leases == nil {
		t.Fatalf("no leases: %+v", res)
	}
}

func leaseInvalid(t *testing.T, b LeaseBackend) {
	l := b.Leaser(testclock.New(Start).Now)
	ok := streamLease("k", 1)
	for name, tt := range map[string]struct {
		id     string
		leases []quotas.Lease
	}{
		"no id":           {"", []quotas.Lease{ok}},
		"no key":          {"a", []quotas.Lease{{Name: "s", Limit: 1, TTL: time.Second}}},
		"negative":        {"a", []quotas.Lease{{Name: "s", Key: "k", Limit: -1, TTL: time.Second}}},
		"no ttl":          {"a", []quotas.Lease{{Name: "s", Key: "k", Limit: 1}}},
		"negative ttl":    {"a", []quotas.Lease{{Name: "s", Key: "k", Limit: 1, TTL: -time.Second}}},
		"sub-µs ttl":      {"a", []quotas.Lease{{Name: "s", Key: "k", Limit: 1, TTL: time.Nanosecond}}},
		"key named twice": {"a", []quotas.Lease{ok, ok}},
	} {
		if _, err := l.Acquire(context.Background(), tt.id, tt.leases); !errors.Is(err, quotas.ErrInvalidLimit) {
			t.Errorf("Acquire, %s: %v, want ErrInvalidLimit", name, err)
		}
	}
	if err := l.Release(context.Background(), "", []string{"k"}); !errors.Is(err, quotas.ErrInvalidLimit) {
		t.Errorf("Release without an id: %v, want ErrInvalidLimit", err)
	}
	if err := l.Release(context.Background(), "a", []string{""}); !errors.Is(err, quotas.ErrInvalidLimit) {
		t.Errorf("Release of an empty key: %v, want ErrInvalidLimit", err)
	}
	// Nothing invalid was taken.
	if res := leaseAcquire(t, l, "b", ok); !res.Allowed || res.Leases[0].InUse != 1 {
		t.Fatalf("after invalid acquires: %+v", res)
	}
}

func leaseCancelled(t *testing.T, b LeaseBackend) {
	l := b.Leaser(testclock.New(Start).Now)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	lease := streamLease("k", 1)
	if _, err := l.Acquire(ctx, "a", []quotas.Lease{lease}); !errors.Is(err, quotas.ErrBackendUnavailable) {
		t.Fatalf("Acquire with a cancelled context: %v, want ErrBackendUnavailable", err)
	}
	if err := l.Release(ctx, "a", []string{lease.Key}); !errors.Is(err, quotas.ErrBackendUnavailable) {
		t.Fatalf("Release with a cancelled context: %v, want ErrBackendUnavailable", err)
	}
	if res := leaseAcquire(t, l, "b", lease); !res.Allowed {
		t.Fatalf("a cancelled Acquire took a slot: %+v", res)
	}
}

// BenchmarkLeases acquires a tenant's and a user's stream lease and
// releases them, as one SSE stream does, cycling over 1,000 tenants. The
// caps are high enough that every request is admitted.
func BenchmarkLeases(b *testing.B, l quotas.Leaser) {
	leases := make([][]quotas.Lease, 1000)
	keys := make([][]string, len(leases))
	for i := range leases {
		leases[i] = []quotas.Lease{
			{Name: "tenant_streams", Key: fmt.Sprintf("tenant:org-%d:streams", i), Limit: 1e6, TTL: time.Hour},
			{Name: "user_streams", Key: fmt.Sprintf("user:u-%d:streams", i), Limit: 1e6, TTL: time.Hour},
		}
		keys[i] = []string{leases[i][0].Key, leases[i][1].Key}
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id := fmt.Sprint("req-", i)
		n := i % len(leases)
		res, err := l.Acquire(ctx, id, leases[n])
		if err != nil || !res.Allowed {
			b.Fatal(res, err)
		}
		if err := l.Release(ctx, id, keys[n]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
