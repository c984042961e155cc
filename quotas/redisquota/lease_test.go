package redisquota_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/internal/testclock"
	"github.com/mcpauthz/mcpauthz/internal/testredis"
	"github.com/mcpauthz/mcpauthz/quotas"
	"github.com/mcpauthz/mcpauthz/quotas/memquota"
	"github.com/mcpauthz/mcpauthz/quotas/quotatest"
	"github.com/mcpauthz/mcpauthz/quotas/redisquota"
)

func TestLeaseContract(t *testing.T) {
	quotatest.RunLeases(t, func(t *testing.T) quotatest.LeaseBackend {
		rdb, p := testredis.Shared(t)
		return quotatest.LeaseBackend{Leaser: func(now func() time.Time) quotas.Leaser {
			return redisquota.NewLeases(rdb, redisquota.WithLeasePrefix(p), redisquota.WithLeaseFixedClock(now))
		}}
	})
}

// TestLeasesSameAsMemquota drives the Redis and the in-process leases with
// the same random acquires and releases at the same random times: every
// answer must be the same, field for field.
func TestLeasesSameAsMemquota(t *testing.T) {
	rdb, p := testredis.Shared(t)
	clock := testclock.New(quotatest.Start)
	mem := memquota.NewLeases(memquota.WithLeaseClock(clock.Now))
	red := redisquota.NewLeases(rdb, redisquota.WithLeasePrefix(p), redisquota.WithLeaseFixedClock(clock.Now))
	rng := rand.New(rand.NewPCG(3, 4))
	ttls := []time.Duration{time.Second, 1500 * time.Millisecond, 5 * time.Second}
	ctx := context.Background()
	for i := range 3000 {
		id := fmt.Sprint("req-", rng.IntN(12))
		keys := rng.Perm(4)[:1+rng.IntN(3)]
		if rng.IntN(3) == 0 {
			names := make([]string, len(keys))
			for j, k := range keys {
				names[j] = fmt.Sprint("k", k)
			}
			merr, rerr := mem.Release(ctx, id, names), red.Release(ctx, id, names)
			if merr != nil || rerr != nil {
				t.Fatalf("release %d: %v, %v", i, merr, rerr)
			}
		} else {
			leases := make([]quotas.Lease, len(keys))
			for j, k := range keys {
				leases[j] = quotas.Lease{Name: fmt.Sprint("l", j), Key: fmt.Sprint("k", k), Limit: int64(rng.IntN(5)), TTL: ttls[rng.IntN(len(ttls))]}
			}
			m, merr := mem.Acquire(ctx, id, leases)
			r, rerr := red.Acquire(ctx, id, leases)
			if merr != nil || rerr != nil || !reflect.DeepEqual(m, r) {
				t.Fatalf("acquire %d %s %+v:\nmemquota   %+v %v\nredisquota %+v %v", i, id, leases, m, merr, r, rerr)
			}
		}
		clock.Advance(time.Duration(rng.IntN(100)) * time.Millisecond)
	}
}

// TestLeaseServerTime: without a fixed clock a lease's expiry is the
// server's TIME plus its TTL, under <prefix>:cc:<key>, and the set expires
// with its last lease.
func TestLeaseServerTime(t *testing.T) {
	rdb, p := testredis.Shared(t)
	l := redisquota.NewLeases(rdb, redisquota.WithLeasePrefix(p))
	ctx := context.Background()
	short := quotas.Lease{Name: "calls", Key: "tenant:acme:streams", Limit: 2, TTL: 30 * time.Second}
	long := short
	long.TTL = time.Minute
	before, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if res, err := l.Acquire(ctx, "a", []quotas.Lease{long}); err != nil || !res.Allowed {
		t.Fatalf("Acquire: %+v %v", res, err)
	}
	if res, err := l.Acquire(ctx, "b", []quotas.Lease{short}); err != nil || !res.Allowed || res.Leases[0].InUse != 2 {
		t.Fatalf("Acquire: %+v %v", res, err)
	}
	after, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	key := p + ":cc:tenant:acme:streams"
	score, err := rdb.ZScore(ctx, key, "a").Result()
	if err != nil {
		t.Fatal(err)
	}
	exp := time.UnixMicro(int64(score))
	if exp.Before(before.Add(time.Minute)) || exp.After(after.Add(time.Minute)) {
		t.Fatalf("expiry %v, want the server's time (%v–%v) plus a minute", exp, before, after)
	}
	pttl, err := rdb.PTTL(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	// The shorter lease came last; the set lives as long as the longer one.
	if pttl <= 30*time.Second || pttl > time.Minute {
		t.Fatalf("the set expires in %v, want with its last lease (about a minute)", pttl)
	}
	res, err := l.Acquire(ctx, "c", []quotas.Lease{short})
	if err != nil || res.Allowed || res.RetryAfter <= 29*time.Second || res.RetryAfter > 30*time.Second {
		t.Fatalf("a third: %+v %v, want refused until b expires in about 30 s", res, err)
	}
	if err := l.Release(ctx, "a", []string{short.Key}); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx, "b", []string{short.Key}); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Exists(ctx, key).Result(); err != nil || n != 0 {
		t.Fatalf("the set after its last release: exists %d %v", n, err)
	}
}

// TestLeaseOneRoundTrip: an Acquire across three keys and a Release are
// one command each.
func TestLeaseOneRoundTrip(t *testing.T) {
	rdb, p := testredis.Shared(t)
	l := redisquota.NewLeases(rdb, redisquota.WithLeasePrefix(p))
	leases := []quotas.Lease{
		{Name: "a", Key: "tenant:acme:streams", Limit: 100, TTL: time.Minute},
		{Name: "b", Key: "user:u-1:streams", Limit: 100, TTL: time.Minute},
		{Name: "c", Key: "tenant:acme:tool:export", Limit: 100, TTL: time.Minute},
	}
	keys := []string{leases[0].Key, leases[1].Key, leases[2].Key}
	ctx := context.Background()
	if _, err := l.Acquire(ctx, "warm", leases); err != nil { // loads the scripts
		t.Fatal(err)
	}
	if err := l.Release(ctx, "warm", keys); err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	rdb.AddHook(counter{&sent})
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		if _, err := l.Acquire(ctx, id, leases); err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx, id, keys); err != nil {
			t.Fatal(err)
		}
	}
	if n := sent.Load(); n != 10 {
		t.Fatalf("5 Acquires and 5 Releases sent %d commands", n)
	}
}

// BenchmarkLeases acquires and releases two leases, as one SSE stream
// does, in two script calls, over 1,000 tenants.
func BenchmarkLeases(b *testing.B) {
	rdb, p := testredis.Shared(b)
	quotatest.BenchmarkLeases(b, redisquota.NewLeases(rdb, redisquota.WithLeasePrefix(p)))
}
