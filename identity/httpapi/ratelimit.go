package httpapi

import (
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// aggregate is how much more a network block may make than one client:
// an IPv4 /24 or an IPv6 /48 gets aggregate× the burst and the rate of one
// address (IPv6: one /64, the block a subscriber usually holds).
const aggregate = 8

// limiter limits attempts per client and per the network block around it,
// so neither rotating through one's own IPv6 /64s nor through a /24 buys
// more than the block's budget. It remembers at most max buckets and
// forgets the least recently used: a flood of addresses cannot grow memory
// or shut newcomers out, and a forgotten bucket starts full, which only
// gives back what refilling would have.
type limiter struct {
	one, block *Rate
	mu         sync.Mutex
	buckets    *simplelru.LRU[netip.Prefix, *rate.Limiter]
}

func newLimiter(r Rate, max int) *limiter {
	buckets, err := simplelru.NewLRU[netip.Prefix, *rate.Limiter](max, nil)
	if err != nil {
		panic(err) // max is validated positive by withDefaults
	}
	block := Rate{Every: r.Every / aggregate, Burst: r.Burst * aggregate}
	return &limiter{one: &r, block: &block, buckets: buckets}
}

// allow takes one attempt for addr at now from its client's bucket and its
// block's, or takes none and says how long to wait.
func (l *limiter) allow(addr netip.Addr, now time.Time) (bool, time.Duration) {
	client, block := clientKeys(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	r1 := l.bucket(client, l.one).ReserveN(now, 1)
	wait := r1.DelayFrom(now)
	if block != client {
		r2 := l.bucket(block, l.block).ReserveN(now, 1)
		if d := r2.DelayFrom(now); d > wait {
			wait = d
		}
		if wait > 0 {
			r2.CancelAt(now)
		}
	}
	if wait > 0 {
		r1.CancelAt(now)
		return false, wait
	}
	return true, 0
}

func (l *limiter) bucket(key netip.Prefix, r *Rate) *rate.Limiter {
	if lim, ok := l.buckets.Get(key); ok {
		return lim
	}
	lim := rate.NewLimiter(rate.Every(r.Every), r.Burst)
	l.buckets.Add(key, lim)
	return lim
}

// clientKeys are the client's prefix (the address for IPv4, its /64 for
// IPv6) and its block's (/24, /48). Calls without an address share one
// bucket, returned as both.
func clientKeys(a netip.Addr) (client, block netip.Prefix) {
	switch {
	case !a.IsValid():
		return netip.Prefix{}, netip.Prefix{}
	case a.Is4():
		b, _ := a.Prefix(24)
		return netip.PrefixFrom(a, 32), b
	}
	c, _ := a.Prefix(64)
	b, _ := a.Prefix(48)
	return c, b
}
