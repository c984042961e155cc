package extauthz

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// budget is the context of one decision: its parent's, with a deadline
// at most the decision timeout away. context.WithDeadline arms a runtime
// timer for every decision, which costs more than many decisions take;
// budget creates that timer only when something waits on Done — a backend
// call — and otherwise answers Err by reading the clock. It keeps the
// context contract: once Err is non-nil it stays so, and Done is closed by
// then if it was asked for.
type budget struct {
	parent   context.Context
	deadline time.Time
	now      func() time.Time

	mu     sync.Mutex
	timed  atomic.Pointer[timedCtx] // set once Done has been asked for
	cancel context.CancelFunc
}

type timedCtx struct{ context.Context }

var _ context.Context = (*budget)(nil)

func newBudget(parent context.Context, timeout time.Duration, now func() time.Time) *budget {
	d := now().Add(timeout)
	if pd, ok := parent.Deadline(); ok && pd.Before(d) {
		d = pd
	}
	return &budget{parent: parent, deadline: d, now: now}
}

func (b *budget) Deadline() (time.Time, bool) { return b.deadline, true }

func (b *budget) Value(key any) any { return b.parent.Value(key) }

// Done returns a channel closed at the deadline or when the parent is
// done. The first call arms the timer.
func (b *budget) Done() <-chan struct{} {
	if t := b.timed.Load(); t != nil {
		return t.Done()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if t := b.timed.Load(); t != nil {
		return t.Done()
	}
	ctx, cancel := context.WithDeadline(b.parent, b.deadline)
	b.cancel = cancel
	b.timed.Store(&timedCtx{ctx})
	return ctx.Done()
}

// Err reports why the budget is spent, without arming a timer.
func (b *budget) Err() error {
	if t := b.timed.Load(); t != nil {
		return t.Err()
	}
	if err := b.parent.Err(); err != nil {
		return err
	}
	if !b.now().Before(b.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// release stops the timer, if one was armed.
func (b *budget) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cancel != nil {
		b.cancel()
	}
}
