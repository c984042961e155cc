package extauthz

import (
	"context"
	"errors"
	"testing"
	"time"
)

type manualClock struct{ t time.Time }

func (c *manualClock) now() time.Time { return c.t }

func TestBudget(t *testing.T) {
	t.Run("ok/err by the clock, without a timer", func(t *testing.T) {
		clock := &manualClock{t: time.Now()}
		b := newBudget(context.Background(), 50*time.Millisecond, clock.now)
		defer b.release()
		if err := b.Err(); err != nil {
			t.Fatalf("fresh budget: %v", err)
		}
		if b.timed.Load() != nil {
			t.Fatal("Err armed a timer")
		}
		clock.t = clock.t.Add(50 * time.Millisecond)
		if err := b.Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("spent budget: %v", err)
		}
		select {
		case <-b.Done():
		case <-time.After(time.Second):
			t.Fatal("Done is not closed once Err reported the deadline")
		}
	})
	t.Run("ok/done closes at the deadline", func(t *testing.T) {
		b := newBudget(context.Background(), 20*time.Millisecond, time.Now)
		defer b.release()
		select {
		case <-b.Done():
		case <-time.After(2 * time.Second):
			t.Fatal("Done never closed")
		}
		if !errors.Is(b.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err after Done: %v", b.Err())
		}
	})
	t.Run("ok/parent cancellation", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		b := newBudget(parent, time.Hour, time.Now)
		defer b.release()
		cancel()
		if !errors.Is(b.Err(), context.Canceled) {
			t.Fatalf("Err = %v", b.Err())
		}
		select {
		case <-b.Done():
		case <-time.After(time.Second):
			t.Fatal("Done not closed after the parent was cancelled")
		}
	})
	t.Run("ok/earlier parent deadline wins", func(t *testing.T) {
		parent, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		pd, _ := parent.Deadline()
		b := newBudget(parent, time.Hour, time.Now)
		defer b.release()
		if d, ok := b.Deadline(); !ok || !d.Equal(pd) {
			t.Fatalf("deadline %v, want the parent's %v", d, pd)
		}
	})
	t.Run("ok/values pass through", func(t *testing.T) {
		type key struct{}
		b := newBudget(context.WithValue(context.Background(), key{}, "v"), time.Second, time.Now)
		if b.Value(key{}) != "v" {
			t.Fatal("value lost")
		}
	})
}
