package redisquota_test

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/internal/testredis"
	"github.com/mcpauthz/mcpauthz/quotas"
	"github.com/mcpauthz/mcpauthz/quotas/memquota"
	"github.com/mcpauthz/mcpauthz/quotas/redisquota"
)

// TestRedisFaults: with Redis paused, then killed, every Take answers
// within the decision budget; limits fall back to this instance's share
// and admit no more than it; once Redis is back the limits are shared
// again.
func TestRedisFaults(t *testing.T) {
	cmd, addr := testredis.Start(t)
	const (
		budget   = 100 * time.Millisecond
		timeout  = 20 * time.Millisecond
		replicas = 4
	)
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1,
		DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout})
	defer rdb.Close()
	f := quotas.NewFallback(redisquota.New(rdb), memquota.New(), func() int { return replicas },
		quotas.WithSharedTimeout(timeout), quotas.WithRetryInterval(50*time.Millisecond))
	// 400 per second with a burst of 40: an instance's share is 100 per
	// second with a burst of 10.
	lim := quotas.Limit{Name: "tenant", Key: "tenant:acme", Limit: 400, Window: time.Second, Burst: 40}
	req := quotas.Request{Limits: []quotas.Limit{lim}}

	// run takes as fast as it can for d and returns the admissions and
	// how many were decided by the fallback.
	run := func(phase string, d time.Duration) (admitted, fallbacks int, elapsed time.Duration) {
		t.Helper()
		start := time.Now()
		for time.Since(start) < d {
			t0 := time.Now()
			res, err := f.Take(t.Context(), req)
			if took := time.Since(t0); took >= budget {
				t.Errorf("%s: a Take took %v, over the %v budget", phase, took, budget)
			}
			if err != nil {
				t.Fatalf("%s: %v", phase, err)
			}
			if res.Allowed {
				admitted++
			}
			if res.Fallback {
				fallbacks++
			}
		}
		return admitted, fallbacks, time.Since(start)
	}
	// share is the most an instance may admit alone over d.
	share := func(d time.Duration) int { return 10 + int(d.Seconds()*100) + 1 }

	if _, fb, _ := run("redis up", 100*time.Millisecond); fb != 0 {
		t.Fatalf("redis up: %d fallbacks", fb)
	}
	time.Sleep(200 * time.Millisecond) // let the shared limit refill

	cmd.Process.Signal(syscall.SIGSTOP)
	admitted, fb, d := run("redis paused", 500*time.Millisecond)
	if fb == 0 || admitted > share(d) {
		t.Errorf("redis paused: admitted %d in %v (share %d), %d fallbacks", admitted, d, share(d), fb)
	}
	t.Logf("redis paused: admitted %d of an instance share of %d in %v", admitted, share(d), d.Round(time.Millisecond))

	cmd.Process.Signal(syscall.SIGCONT)
	cmd.Process.Kill()
	cmd.Wait()
	admitted, fb, d = run("redis killed", 500*time.Millisecond)
	if fb == 0 || admitted > share(d)+share(0) {
		t.Errorf("redis killed: admitted %d in %v, %d fallbacks", admitted, d, fb)
	}
	if !f.Stats().Down {
		t.Error("the fallback does not report the shared limiter down")
	}

	// The same server, on the same port, empty.
	restarted := exec.Command(cmd.Path, cmd.Args[1:]...)
	if err := restarted.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restarted.Process.Kill(); restarted.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for f.Stats().Down && time.Now().Before(deadline) {
		run("redis restarting", 20*time.Millisecond)
	}
	if f.Stats().Down {
		t.Fatal("the fallback did not go back to Redis after it restarted")
	}
	if _, fb, _ := run("redis back", 100*time.Millisecond); fb != 0 {
		t.Errorf("redis back: %d fallbacks", fb)
	}
}
