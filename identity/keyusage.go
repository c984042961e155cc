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

// KeyUsage batches API key last-use times so authenticating a key costs
// no write: Record notes the time in memory, Run writes what accumulated
// once per interval in one batch. Only keys that authenticated are
// recorded, so the batch is bounded by the keys that exist. A batch that
// fails to write is kept and merged into the next.
type KeyUsage struct {
	store KeyToucher
	every time.Duration
	log   *slog.Logger

	mu      sync.Mutex
	pending map[string]time.Time
}

// NewKeyUsage returns a batcher writing to store every interval.
func NewKeyUsage(store KeyToucher, every time.Duration, log *slog.Logger) *KeyUsage {
	return &KeyUsage{store: store, every: every, log: log, pending: map[string]time.Time{}}
}

// Record notes that the key was used at t.
func (u *KeyUsage) Record(keyID string, t time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if t.After(u.pending[keyID]) {
		u.pending[keyID] = t
	}
}

// Flush writes what has accumulated.
func (u *KeyUsage) Flush(ctx context.Context) error {
	u.mu.Lock()
	batch := u.pending
	u.pending = map[string]time.Time{}
	u.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := u.store.TouchAPIKeys(ctx, batch)
	if err != nil {
		for id, t := range batch {
			u.Record(id, t)
		}
	}
	return err
}

// Run flushes every interval until ctx ends, then once more, so a clean
// shutdown loses nothing.
func (u *KeyUsage) Run(ctx context.Context) error {
	tick := time.NewTicker(u.every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if err := u.Flush(ctx); err != nil {
				u.log.LogAttrs(ctx, slog.LevelWarn, "recording API key use failed; retrying at the next flush", slog.Any("error", err))
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
