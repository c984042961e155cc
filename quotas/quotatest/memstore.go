package quotatest

import (
	"context"
	"sync"
	"time"

	"github.com/mcpauthz/mcpauthz/quotas"
)

// MemoryStore is a quotas.UsageStore in memory, for tests of what persists
// usage. It meets RunUsageStore, and Fail makes it fail as a store that
// cannot be reached does.
type MemoryStore struct {
	mu    sync.Mutex
	usage map[[2]string]quotas.Usage // key and period id → usage
	err   error
}

var _ quotas.UsageStore = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{usage: map[[2]string]quotas.Usage{}} }

// Save records usage, keeping the greatest count and the latest expiry of
// each counter.
func (s *MemoryStore) Save(ctx context.Context, usage []quotas.Usage) error {
	if err := quotas.ValidateUsage(usage); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failure(ctx); err != nil {
		return err
	}
	for _, u := range usage {
		id := [2]string{u.Key, u.PeriodID}
		if old, ok := s.usage[id]; ok {
			u = quotas.MergeUsage([]quotas.Usage{old, u})[0]
		}
		s.usage[id] = u
	}
	return nil
}

// Load returns every counter that has not expired at now, sorted by key
// and period.
func (s *MemoryStore) Load(ctx context.Context, now time.Time) ([]quotas.Usage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failure(ctx); err != nil {
		return nil, err
	}
	out := make([]quotas.Usage, 0, len(s.usage))
	for _, u := range s.usage {
		if u.Expires.After(now) {
			out = append(out, u)
		}
	}
	return quotas.MergeUsage(out), nil
}

// Fail makes every later Save and Load return err, until Fail(nil).
func (s *MemoryStore) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// failure is the error a call returns instead of working. Called with mu
// held.
func (s *MemoryStore) failure(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	return ctx.Err()
}
