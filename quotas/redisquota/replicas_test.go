package redisquota_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/internal/testredis"
	"github.com/mcpauthz/mcpauthz/quotas/redisquota"
)

func TestReplicas(t *testing.T) {
	rdb, p := testredis.Shared(t)
	log := slog.New(slog.DiscardHandler)
	a := redisquota.NewReplicas(rdb, p, "a", 100*time.Millisecond, log)
	b := redisquota.NewReplicas(rdb, p, "b", 100*time.Millisecond, log)
	if a.Count() != 0 {
		t.Fatalf("count before any heartbeat: %d, want 0 (not known)", a.Count())
	}
	ctx := t.Context()
	for _, r := range []*redisquota.Replicas{a, b, a} {
		if err := r.Beat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if a.Count() != 2 {
		t.Errorf("a counts %d replicas, want 2", a.Count())
	}
	// b stops beating: after three heartbeats it no longer counts.
	time.Sleep(350 * time.Millisecond)
	if err := a.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Count() != 1 {
		t.Errorf("a counts %d replicas after b went quiet, want 1", a.Count())
	}
	// A replica that stops withdraws at once.
	bctx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- b.Run(bctx) }()
	for deadline := time.Now().Add(2 * time.Second); b.Count() != 2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if b.Count() != 2 {
		t.Fatalf("b counts %d after it started, want 2", b.Count())
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := a.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Count() != 1 {
		t.Errorf("a counts %d after b stopped, want 1", a.Count())
	}
}
