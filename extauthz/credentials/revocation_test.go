package credentials

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/redisfeed"
	"github.com/mcpauthz/mcpauthz/internal/testredis"
)

// recorder is an Evictor that remembers what it was told.
type recorder struct {
	mu     sync.Mutex
	events []identity.Event
	purges int
}

func (r *recorder) Evict(ev identity.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) Purge() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.purges++
}

func (r *recorder) state() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events), r.purges
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
	}
}

// TestRevocations: events reach the evictors; a paused Redis turns the
// caches to the degraded age within two pings; when it answers again,
// nothing is purged: the live age returns for reads made since, and reads
// from before keep the degraded age.
func TestRevocations(t *testing.T) {
	cmd, addr := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	rec := &recorder{}
	var mu sync.Mutex
	var changes []bool
	var clock atomic.Int64 // offset from the real time, to age reads at will
	now := func() time.Time { return time.Now().Add(time.Duration(clock.Load())) }
	r := NewRevocations(rdb, "test", []Evictor{rec}, withPing(100*time.Millisecond), WithMaxAges(time.Minute, time.Second),
		WithLiveness(func(live bool) { mu.Lock(); changes = append(changes, live); mu.Unlock() }), withRevocationClock(now))
	if r.MaxAge() != time.Second || r.Live() {
		t.Fatal("live before subscribing")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		start := time.Now()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("Run took %v to stop", took)
		}
	}()
	eventually(t, "live", r.Live)
	// Nothing read before is trusted past the degraded age; what is read
	// from now on is, as time goes by, up to the live age.
	if age := r.MaxAge(); age != time.Second {
		t.Fatalf("max age just after going live %v, want the degraded 1s", age)
	}
	clock.Add(int64(30 * time.Second))
	if age := r.MaxAge(); age < 30*time.Second || age > 31*time.Second {
		t.Fatalf("max age 30s after going live %v, want the 30s since", age)
	}
	clock.Add(int64(time.Hour))
	if r.MaxAge() != time.Minute {
		t.Fatalf("live max age %v", r.MaxAge())
	}
	if _, purges := rec.state(); purges != 0 {
		t.Fatalf("%d purges on subscribing, want none", purges)
	}

	feed, err := redisfeed.New(rdb, redisfeed.WithPrefix("test"))
	if err != nil {
		t.Fatal(err)
	}
	ev := identity.Event{Kind: identity.EventSessionsRevoked, UserID: "u1", SessionIDs: []string{"s1"}}
	if err := feed.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the event", func() bool { n, _ := rec.state(); return n == 1 })
	if got := rec.events[0]; got.Kind != ev.Kind || got.SessionIDs[0] != "s1" {
		t.Fatalf("event %+v", got)
	}
	rdb.Publish(context.Background(), redisfeed.Channel("test"), "not an event")
	eventually(t, "a purge for garbage", func() bool { _, p := rec.state(); return p == 1 })
	rdb.Publish(context.Background(), redisfeed.Channel("test"), `{"kind":"a.kind.from.a.newer.version"}`)
	eventually(t, "a purge for an unknown kind", func() bool { _, p := rec.state(); return p == 2 })

	// Paused: no answer to the ping, degraded.
	cmd.Process.Signal(syscall.SIGSTOP)
	eventually(t, "degraded while paused", func() bool { return !r.Live() })
	if r.MaxAge() != time.Second {
		t.Fatalf("degraded max age %v", r.MaxAge())
	}
	_, before := rec.state()
	cmd.Process.Signal(syscall.SIGCONT)
	eventually(t, "live again", r.Live)
	if _, after := rec.state(); after != before {
		t.Fatal("a purge on subscribing again")
	}
	if age := r.MaxAge(); age > 2*time.Second {
		t.Fatalf("max age just after going live again %v: reads made while events were missed are trusted past the degraded age", age)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(changes) != "[true false true]" {
		t.Fatalf("liveness reported %v", changes)
	}
}
