package identity

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// KeyToucher records when API keys were last used, many in one write.
type KeyToucher interface {
	TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error
}

// SessionToucher records when sessions were last used, many in one write,
// moving their idle expiry on.
type SessionToucher interface {
	TouchSessions(ctx context.Context, lastSeen map[string]time.Time, idle time.Duration) error
}

// Usage batches last-use times — of API keys, or of sessions — so using
// a credential costs no write: Record notes the time in memory, Run writes
// what accumulated once per interval in one batch. Only credentials that
// verified are recorded, so the batch is bounded by those that exist. A
// batch that fails to write is kept and merged into the next.
type Usage struct {
	write func(context.Context, map[string]time.Time) error
	every time.Duration
	log   *slog.Logger

	mu      sync.Mutex
	pending map[string]time.Time
}

// NewKeyUsage returns a batcher of API key use writing to store every
// interval.
func NewKeyUsage(store KeyToucher, every time.Duration, log *slog.Logger) *Usage {
	return &Usage{write: store.TouchAPIKeys, every: every, log: log, pending: map[string]time.Time{}}
}

// NewSessionUsage returns a batcher of session use writing to store every
// interval: each use keeps its session from idling out for idle more.
func NewSessionUsage(store SessionToucher, idle, every time.Duration, log *slog.Logger) *Usage {
	write := func(ctx context.Context, m map[string]time.Time) error { return store.TouchSessions(ctx, m, idle) }
	return &Usage{write: write, every: every, log: log, pending: map[string]time.Time{}}
}

// Record notes that the credential was used at t.
func (u *Usage) Record(id string, t time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if t.After(u.pending[id]) {
		u.pending[id] = t
	}
}

// Flush writes what has accumulated.
func (u *Usage) Flush(ctx context.Context) error {
	u.mu.Lock()
	batch := u.pending
	u.pending = map[string]time.Time{}
	u.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := u.write(ctx, batch)
	if err != nil {
		for id, t := range batch {
			u.Record(id, t)
		}
	}
	return err
}

// Run flushes every interval until ctx ends, then once more, so a clean
// shutdown loses nothing.
func (u *Usage) Run(ctx context.Context) error {
	tick := time.NewTicker(u.every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if err := u.Flush(ctx); err != nil {
				u.log.LogAttrs(ctx, slog.LevelWarn, "recording credential use failed; retrying at the next flush", slog.Any("error", err))
			}
		case <-ctx.Done():
			// The run's context is over; the last flush gets its own,
			// bounded, so the final batch is written.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return u.Flush(fctx)
		}
	}
}
