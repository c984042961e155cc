package redisquota

import (
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/internal/testclock"
	"github.com/mcpauthz/mcpauthz/internal/testredis"
	"github.com/mcpauthz/mcpauthz/quotas"
)

// TestRefundKeepsLaterTakes: a refund gives back only the part of a take
// still ahead of now, so it never erases a later request's units.
func TestRefundKeepsLaterTakes(t *testing.T) {
	rdb, p := testredis.Shared(t)
	clock := testclock.New(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	l := New(rdb, WithPrefix(p), WithFixedClock(clock.Now))
	ctx := t.Context()
	req := quotas.Request{Limits: []quotas.Limit{{Name: "l", Key: "k", Limit: 10, Window: 10 * time.Second}}} // 1 per second
	tat := func() int64 {
		v, err := rdb.Get(ctx, p+":rl:k").Int64()
		if err != nil {
			return 0
		}
		return v
	}
	start := clock.Now().UnixMicro()

	// A takes at 0 s; B at 2 s, after A's TAT (1 s) has passed.
	_, tookA, err := l.take(ctx, req, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second)
	if _, _, err := l.take(ctx, req, clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got := tat() - start; got != 3_000_000 {
		t.Fatalf("TAT after B: +%d µs, want +3 s", got)
	}
	// A's refund at 2 s finds nothing of A ahead of now: B's TAT stands.
	if err := l.refund(ctx, req, tookA, clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got := tat() - start; got != 3_000_000 {
		t.Errorf("TAT after A's late refund: +%d µs, want B's +3 s", got)
	}

	// C takes at 2 s behind B; refunded at once, it gives back all it took.
	_, tookC, err := l.take(ctx, req, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.refund(ctx, req, tookC, clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got := tat() - start; got != 3_000_000 {
		t.Errorf("TAT after C's refund: +%d µs, want B's +3 s", got)
	}
}
