package redisquota_test

import (
	"crypto/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/internal/testredis"
	"github.com/mcpauthz/mcpauthz/quotas"
	"github.com/mcpauthz/mcpauthz/quotas/quotatest"
	"github.com/mcpauthz/mcpauthz/quotas/redisquota"
)

func TestSlot(t *testing.T) {
	tests := []struct {
		key  string
		want int
	}{
		// The Redis Cluster specification's example: CRC16("123456789") is 0x31C3.
		{"123456789", 0x31c3 % 16384},
		{"{user1000}.following", redisquota.Slot("user1000")},
		{"foo{}{bar}", redisquota.Slot("foo{}{bar}")},
		{"foo{{bar}}zap", redisquota.Slot("{bar")},
		{"foo{bar}{zap}", redisquota.Slot("bar")},
	}
	for _, tt := range tests {
		if got := redisquota.Slot(tt.key); got != tt.want {
			t.Errorf("Slot(%q) = %d, want %d", tt.key, got, tt.want)
		}
	}
}

// TestCluster runs the limiter against a Redis Cluster of three masters.
func TestCluster(t *testing.T) {
	rdb := testredis.StartCluster(t, 3)
	t.Run("ok/slots agree with the server's", func(t *testing.T) { slotsAgree(t, rdb) })
	t.Run("contract", func(t *testing.T) {
		quotatest.Run(t, func(t *testing.T) quotatest.Backend {
			p := "mcpauthz-test-" + rand.Text()[:16]
			return quotatest.Backend{
				Limiter: func(now func() time.Time) quotas.Limiter {
					return redisquota.New(rdb, redisquota.WithPrefix(p), redisquota.WithFixedClock(now))
				},
				ServerTimeLimiter: func(now func() time.Time) quotas.Limiter {
					return redisquota.New(rdb, redisquota.WithPrefix(p), redisquota.WithClock(now))
				},
			}
		})
	})
	t.Run("ok/one round trip per slot, and a refund per slot taken", func(t *testing.T) { roundTripsPerSlot(t, rdb) })
}

// roundTripsPerSlot: a request whose keys share a hash tag is one script
// call on a cluster; one whose keys span two slots is two, and three when
// the second slot refuses and the first gives its units back.
func roundTripsPerSlot(t *testing.T, rdb *redis.ClusterClient) {
	p := "mcpauthz-test-" + rand.Text()[:16]
	l := redisquota.New(rdb, redisquota.WithPrefix(p))
	ctx := t.Context()
	var sent atomic.Int64
	rdb.AddHook(counter{&sent})
	count := func(req quotas.Request) (quotas.Result, int64) {
		t.Helper()
		l.Take(ctx, req) // loads the scripts on every node
		before := sent.Load()
		res, err := l.Take(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res, sent.Load() - before
	}
	tagged := quotas.Request{Limits: []quotas.Limit{
		{Name: "a", Key: "{tenant:acme}:users:u-1", Limit: 100, Window: time.Second},
		{Name: "b", Key: "{tenant:acme}:tools", Limit: 100, Window: time.Second},
	}}
	if _, n := count(tagged); n != 1 {
		t.Errorf("keys with one hash tag: %d commands, want 1", n)
	}
	a, b := "user:u-1", "tenant:acme:tools"
	if redisquota.Slot(p+":rl:"+a) == redisquota.Slot(p+":rl:"+b) {
		t.Fatal("the two keys share a slot; pick others")
	}
	spread := quotas.Request{Limits: []quotas.Limit{
		{Name: "a", Key: a, Limit: 100, Window: time.Hour},
		{Name: "b", Key: b, Limit: 100, Window: time.Hour},
	}}
	if res, n := count(spread); n != 2 || !res.Allowed {
		t.Errorf("keys in two slots: %d commands (allowed %v), want 2", n, res.Allowed)
	}
	// Whichever slot comes second refuses: the first is refunded.
	zero := quotas.Request{Limits: []quotas.Limit{
		{Name: "a", Key: a, Limit: 100, Window: time.Hour},
		{Name: "b", Key: b, Limit: 100, Window: time.Hour},
	}}
	first := 0
	if redisquota.Slot(p+":rl:"+a) > redisquota.Slot(p+":rl:"+b) {
		first = 1
	}
	zero.Limits[1-first].Limit = 0
	res, n := count(zero)
	if res.Allowed || n != 3 {
		t.Errorf("refused by the second slot: %d commands (allowed %v), want 3", n, res.Allowed)
	}
	// The first slot's limit has taken the two spread requests and this
	// one: the two refused requests were refunded (else 95 would be left).
	res, err := l.Take(ctx, quotas.Request{Limits: []quotas.Limit{zero.Limits[first]}})
	if err != nil || !res.Allowed || res.Limits[0].Remaining != 100-3 {
		t.Errorf("after the refunds: %+v %v; want 97 left", res, err)
	}
}

// slotsAgree: the slots computed here are the server's.
func slotsAgree(t *testing.T, rdb *redis.ClusterClient) {
	for _, key := range []string{"", "a", "mcpauthz:rl:user:u-1", "mcpauthz:q:{tenant:acme}:requests:2026-11", "x{}y", "{{}}", "ü{ñ}"} {
		want, err := rdb.ClusterKeySlot(t.Context(), key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := redisquota.Slot(key); int64(got) != want {
			t.Errorf("Slot(%q) = %d, Redis says %d", key, got, want)
		}
	}
}
