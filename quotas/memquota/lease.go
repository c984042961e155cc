package memquota

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mcpauthz/mcpauthz/quotas"
)

// DefaultMaxLeases bounds how many leases a Leases holds.
const DefaultMaxLeases = 1 << 20

// Leases is an in-process quotas.Leaser, safe for concurrent use. Expiry
// is counted in whole microseconds, as the Redis leaser counts it.
type Leases struct {
	now   func() time.Time
	max   int
	sweep time.Duration // how often Run evicts expired leases

	mu   sync.Mutex
	keys map[string]map[string]int64 // key → lease id → expiry, unix ns
	held int                         // leases in keys
	full uint64                      // refusals because Leases was full
}

var _ quotas.Leaser = (*Leases)(nil)

// LeaseOption configures a Leases.
type LeaseOption func(*Leases)

// WithLeaseClock sets the clock (default time.Now).
func WithLeaseClock(now func() time.Time) LeaseOption { return func(l *Leases) { l.now = now } }

// WithMaxLeases bounds the leases held across all keys (default
// DefaultMaxLeases). Expired leases are evicted to make room; when every
// lease is live, Acquires needing a new one fail with quotas.ErrFull
// rather than admit requests uncounted.
func WithMaxLeases(n int) LeaseOption { return func(l *Leases) { l.max = n } }

// WithLeaseSweepInterval sets how often Run evicts expired leases
// (default a minute).
func WithLeaseSweepInterval(d time.Duration) LeaseOption {
	return func(l *Leases) { l.sweep = d }
}

// NewLeases returns an empty Leases.
func NewLeases(opts ...LeaseOption) *Leases {
	l := &Leases{now: time.Now, max: DefaultMaxLeases, sweep: time.Minute, keys: map[string]map[string]int64{}}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Acquire takes a slot of every lease under id, or none of them.
func (l *Leases) Acquire(ctx context.Context, id string, leases []quotas.Lease) (quotas.LeaseResult, error) {
	if err := quotas.ValidateAcquire(id, leases); err != nil {
		return quotas.LeaseResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return quotas.LeaseResult{}, fmt.Errorf("%w: %w", quotas.ErrBackendUnavailable, err)
	}
	now := quotas.Micro(l.now())
	res := quotas.LeaseResult{Allowed: true, Leases: make([]quotas.LeaseState, len(leases))}
	holds := make([]bool, len(leases))
	fresh := 0

	l.mu.Lock()
	defer l.mu.Unlock()
	for i, ls := range leases {
		live := l.live(ls.Key, now)
		_, holds[i] = live[id]
		st := quotas.LeaseState{InUse: int64(len(live)), Limit: ls.Limit}
		switch {
		case holds[i] || st.InUse < ls.Limit:
			st.Allowed = true
		case ls.Limit == 0:
			st.RetryAfter = leaseTTL(ls)
		default:
			st.RetryAfter = time.Duration(earliestExpiry(live) - now)
		}
		if !st.Allowed {
			res.Allowed = false
			res.RetryAfter = max(res.RetryAfter, st.RetryAfter)
		}
		if !holds[i] {
			fresh++
		}
		res.Leases[i] = st
	}
	if !res.Allowed {
		return res, nil
	}
	if l.held+fresh > l.max {
		l.evict(now)
		if l.held+fresh > l.max {
			l.full++
			return quotas.LeaseResult{}, fmt.Errorf("%w: %d leases", quotas.ErrFull, l.held)
		}
	}
	for i, ls := range leases {
		m := l.keys[ls.Key]
		if m == nil {
			m = map[string]int64{}
			l.keys[ls.Key] = m
		}
		m[id] = now + int64(leaseTTL(ls))
		if !holds[i] {
			l.held++
			res.Leases[i].InUse++
		}
	}
	return res, nil
}

// Release gives back id's leases on keys.
func (l *Leases) Release(ctx context.Context, id string, keys []string) error {
	if err := quotas.ValidateRelease(id, keys); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", quotas.ErrBackendUnavailable, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		m := l.keys[k]
		if _, ok := m[id]; !ok {
			continue
		}
		delete(m, id)
		l.held--
		if len(m) == 0 {
			delete(l.keys, k)
		}
	}
	return nil
}

// live returns key's leases at now, evicting the expired ones. It is
// called with mu held.
func (l *Leases) live(key string, now int64) map[string]int64 {
	m := l.keys[key]
	for id, exp := range m {
		if exp <= now {
			delete(m, id)
			l.held--
		}
	}
	if m != nil && len(m) == 0 {
		delete(l.keys, key)
		return nil
	}
	return m
}

// evict drops every expired lease. It is called with mu held.
func (l *Leases) evict(now int64) {
	for k := range l.keys {
		l.live(k, now)
	}
}

// Run evicts expired leases every sweep interval until ctx is done, so
// memory follows the leases in use.
func (l *Leases) Run(ctx context.Context) error {
	return sweep(ctx, l.sweep, func() {
		l.mu.Lock()
		l.evict(quotas.Micro(l.now()))
		l.mu.Unlock()
	})
}

// LeaseStats reports the keys and leases held and the refusals for want
// of room.
type LeaseStats struct {
	Keys, Leases int
	Full         uint64
}

// Stats returns the size of l.
func (l *Leases) Stats() LeaseStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return LeaseStats{Keys: len(l.keys), Leases: l.held, Full: l.full}
}

// leaseTTL is the lease's TTL in whole microseconds.
func leaseTTL(ls quotas.Lease) time.Duration { return ls.TTL.Truncate(time.Microsecond) }

// earliestExpiry returns the earliest expiry among live.
func earliestExpiry(live map[string]int64) int64 {
	first := int64(0)
	for _, exp := range live {
		if first == 0 || exp < first {
			first = exp
		}
	}
	return first
}
