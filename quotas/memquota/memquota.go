// Package memquota is the in-process quotas.Limiter, for `mcpauthz dev`,
// single-instance deployments and the fallback when Redis is unreachable:
// the same GCRA, fair-share and calendar arithmetic as the Redis limiter,
// with state in maps whose idle keys are evicted.
package memquota

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mcpauthz/mcpauthz/quotas"
)

// DefaultMaxKeys bounds how many keys a Limiter holds.
const DefaultMaxKeys = 1 << 20

// Limiter is an in-process quotas.Limiter, safe for concurrent use.
type Limiter struct {
	now     func() time.Time
	maxKeys int
	sweep   time.Duration // how often Run evicts idle keys

	mu      sync.Mutex
	tats    map[string]int64       // limit key → theoretical arrival time, unix ns
	counts  map[quotaKey]*quotaUse // quota key and period → use
	pools   map[string]*pool       // fair-share pool → its active tenants
	members int                    // tenants active in pools
	full    uint64                 // refusals because the limiter was full
}

type quotaKey struct{ key, period string }

type quotaUse struct {
	used int64
	ends int64 // unix ns of the next period's start: after it the entry is idle
}

var _ quotas.Limiter = (*Limiter)(nil)

// Option configures a Limiter.
type Option func(*Limiter)

// WithClock sets the clock (default time.Now).
func WithClock(now func() time.Time) Option { return func(l *Limiter) { l.now = now } }

// WithMaxKeys bounds the keys held (default DefaultMaxKeys), a tenant
// active in a fair-share pool counting as one. Idle keys (a limit
// replenished, a quota of a past period, a tenant gone idle) are evicted
// to make room; when every key is active, requests with new keys are
// refused with quotas.ErrFull rather than let through unlimited.
func WithMaxKeys(n int) Option { return func(l *Limiter) { l.maxKeys = n } }

// WithSweepInterval sets how often Run evicts idle keys (default a
// minute).
func WithSweepInterval(d time.Duration) Option { return func(l *Limiter) { l.sweep = d } }

// New returns an empty limiter.
func New(opts ...Option) *Limiter {
	l := &Limiter{now: time.Now, maxKeys: DefaultMaxKeys, sweep: time.Minute, tats: map[string]int64{}, counts: map[quotaKey]*quotaUse{}, pools: map[string]*pool{}}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Take checks every limit and quota of req and, if all admit it, takes
// them.
func (l *Limiter) Take(ctx context.Context, req quotas.Request) (quotas.Result, error) {
	if err := req.Validate(); err != nil {
		return quotas.Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return quotas.Result{}, fmt.Errorf("%w: %w", quotas.ErrBackendUnavailable, err)
	}
	now := l.now()
	ns := quotas.Micro(now)
	res := quotas.Result{
		Allowed: true,
		Limits:  make([]quotas.LimitState, len(req.Limits)),
		Quotas:  make([]quotas.QuotaState, len(req.Quotas)),
	}
	// Tentative state: a key named twice in one request is taken twice.
	next := make(map[string]int64, len(req.Limits))
	used := make(map[quotaKey]int64, len(req.Quotas))
	qkeys := make([]quotaKey, len(req.Quotas))
	ends := make([]int64, len(req.Quotas))

	l.mu.Lock()
	defer l.mu.Unlock()
	shares := newShareDraft(l, ns)
	standing := make(map[int]shareStanding)
	for i, lim := range req.Limits {
		if lim.Share != nil {
			st, g, stored := shares.step(lim)
			res.Limits[i], standing[i] = st, shareStanding{g, stored}
			if !st.Allowed {
				res.Allowed = false
				res.RetryAfter = max(res.RetryAfter, st.RetryAfter)
			}
			continue
		}
		tat, ok := next[lim.Key]
		if !ok {
			tat = l.tats[lim.Key]
		}
		t, st := quotas.NewGCRA(lim).Step(tat, ns)
		res.Limits[i] = st
		next[lim.Key] = t
		if !st.Allowed {
			res.Allowed = false
			res.RetryAfter = max(res.RetryAfter, st.RetryAfter)
		}
	}
	for i, q := range req.Quotas {
		_, end, id := q.Period.Bounds(now, q.Location)
		k := quotaKey{q.Key, id}
		qkeys[i], ends[i] = k, end.UnixNano()
		u, ok := used[k]
		if !ok {
			if e := l.counts[k]; e != nil {
				u = e.used
			}
		}
		st := quotas.QuotaState{Resets: end, Used: u, Remaining: max(0, q.Limit-u)}
		if u < q.Limit {
			st.Allowed = true
			u++
			st.Used, st.Remaining = u, q.Limit-u
		} else {
			res.Allowed = false
			res.RetryAfter = max(res.RetryAfter, end.Sub(now))
		}
		used[k] = u
		res.Quotas[i] = st
	}
	if !res.Allowed {
		// Nothing is taken: report the limits as they stand.
		for i := range res.Limits {
			if res.Limits[i].Allowed {
				st := quotas.NewGCRA(req.Limits[i]).Standing(l.tats[req.Limits[i].Key], ns)
				if s, ok := standing[i]; ok {
					st = s.gcra.Standing(s.tat, ns)
				}
				st.Allowed = true
				res.Limits[i] = st
			}
		}
		for i := range res.Quotas {
			if res.Quotas[i].Allowed {
				res.Quotas[i].Used--
				res.Quotas[i].Remaining++
			}
		}
		return res, nil
	}
	if !l.room(next, used, shares.fresh(), ns) {
		l.full++
		return quotas.Result{}, fmt.Errorf("%w: %d keys", quotas.ErrFull, len(l.tats)+len(l.counts)+l.members)
	}
	shares.commit()
	for k, t := range next {
		l.tats[k] = t
	}
	for i, k := range qkeys {
		e := l.counts[k]
		if e == nil {
			e = &quotaUse{ends: ends[i]}
			l.counts[k] = e
		}
		e.used = used[k]
	}
	return res, nil
}

// room makes sure the new keys fit, evicting idle ones if needed. It is
// called with mu held.
func (l *Limiter) room(next map[string]int64, used map[quotaKey]int64, fresh int, now int64) bool {
	for k := range next {
		if _, ok := l.tats[k]; !ok {
			fresh++
		}
	}
	for k := range used {
		if _, ok := l.counts[k]; !ok {
			fresh++
		}
	}
	if len(l.tats)+len(l.counts)+l.members+fresh <= l.maxKeys {
		return true
	}
	l.evict(now)
	return len(l.tats)+len(l.counts)+l.members+fresh <= l.maxKeys
}

// evict drops idle keys: a limit whose arrival time has passed is as if
// never seen, a quota of a past period counts no more, and a tenant no
// longer active leaves its pool. Called with mu held.
func (l *Limiter) evict(now int64) int {
	n := l.evictPools(now)
	for k, tat := range l.tats {
		if tat <= now {
			delete(l.tats, k)
			n++
		}
	}
	for k, e := range l.counts {
		if e.ends <= now {
			delete(l.counts, k)
			n++
		}
	}
	return n
}

// Run evicts idle keys every sweep interval until ctx is done, so memory
// follows the keys in use.
func (l *Limiter) Run(ctx context.Context) error {
	return sweep(ctx, l.sweep, func() {
		l.mu.Lock()
		l.evict(quotas.Micro(l.now()))
		l.mu.Unlock()
	})
}

// sweep calls evict every interval until ctx is done.
func sweep(ctx context.Context, interval time.Duration, evict func()) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			evict()
		}
	}
}

// Stats reports the keys held and the refusals for want of room.
type Stats struct {
	Limits, Quotas int
	Shares         int // tenants active in fair-share pools
	Full           uint64
}

// Stats returns the limiter's size.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Limits: len(l.tats), Quotas: len(l.counts), Shares: l.members, Full: l.full}
}
