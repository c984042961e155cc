package httpapi

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter limits attempts per client address. IPv6 clients are limited
// per /64, the block one subscriber usually holds, so rotating through
// one's own addresses buys nothing. It remembers at most max addresses;
// when full it first forgets those whose bucket has refilled, and if none
// has, refuses newcomers until one does: a flood of addresses cannot grow
// memory or reset anyone's limit.
type limiter struct {
	rate  Rate
	max   int
	mu    sync.Mutex
	byKey map[netip.Prefix]*rate.Limiter
	swept time.Time // last sweep: at most one a second
}

func newLimiter(r Rate, max int) *limiter {
	return &limiter{rate: r, max: max, byKey: make(map[netip.Prefix]*rate.Limiter)}
}

// allow takes one attempt for addr at now, or says how long to wait.
func (l *limiter) allow(addr netip.Addr, now time.Time) (bool, time.Duration) {
	key := clientKey(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.byKey[key]
	if lim == nil {
		if len(l.byKey) >= l.max && !l.sweep(now) {
			return false, l.rate.Every
		}
		lim = rate.NewLimiter(rate.Every(l.rate.Every), l.rate.Burst)
		l.byKey[key] = lim
	}
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep forgets the addresses whose bucket is full again, and reports
// whether it freed any. It scans at most once a second, so newcomers
// arriving while the table is full cannot make every call a full scan.
func (l *limiter) sweep(now time.Time) bool {
	if now.Sub(l.swept) < time.Second {
		return false
	}
	l.swept = now
	freed := false
	for k, lim := range l.byKey {
		if lim.TokensAt(now) >= float64(l.rate.Burst) {
			delete(l.byKey, k)
			freed = true
		}
	}
	return freed
}

// clientKey is the address itself for IPv4 and its /64 for IPv6; calls
// without an address share one bucket.
func clientKey(a netip.Addr) netip.Prefix {
	switch {
	case !a.IsValid():
		return netip.Prefix{}
	case a.Is4():
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}
