package redisquota

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/quotas"
)

//go:embed lease.lua
var leaseSource string

var leaseScript = redis.NewScript(leaseSource)

// releaseScript removes one lease id from every key it is given, in one
// round trip and at once, so a release is never half done.
var releaseScript = redis.NewScript(`for i = 1, #KEYS do redis.call("ZREM", KEYS[i], ARGV[1]) end
return 0`)

// Leases is a quotas.Leaser backed by Redis: each key is a sorted set of
// the lease ids holding it, scored by their expiry in the Redis server's
// clock, under <prefix>:cc:<key>. An Acquire is one script call across
// all its keys (atomic, all or nothing); a set expires with its last
// lease, so lost releases cost no memory past their TTL. In Redis Cluster
// the keys of one Acquire must share a hash slot.
type Leases struct {
	rdb    redis.Scripter
	prefix string
	now    func() time.Time // used only with a fixed clock
}

var _ quotas.Leaser = (*Leases)(nil)

// LeaseOption configures a Leases.
type LeaseOption func(*Leases)

// WithLeasePrefix sets the key prefix (default DefaultPrefix).
func WithLeasePrefix(p string) LeaseOption { return func(l *Leases) { l.prefix = p } }

// WithLeaseFixedClock makes expiry follow now instead of the server's
// clock: for tests that move time.
func WithLeaseFixedClock(now func() time.Time) LeaseOption {
	return func(l *Leases) { l.now = now }
}

// NewLeases returns a Leases using rdb, which should have short timeouts:
// a call waits for Redis at most as long as its context allows.
func NewLeases(rdb redis.Scripter, opts ...LeaseOption) *Leases {
	l := &Leases{rdb: rdb, prefix: DefaultPrefix}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Acquire takes a slot of every lease under id, or none of them, in one
// round trip.
func (l *Leases) Acquire(ctx context.Context, id string, leases []quotas.Lease) (quotas.LeaseResult, error) {
	if err := quotas.ValidateAcquire(id, leases); err != nil {
		return quotas.LeaseResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return quotas.LeaseResult{}, fmt.Errorf("%w: %w", quotas.ErrBackendUnavailable, err)
	}
	if len(leases) == 0 {
		return quotas.LeaseResult{Allowed: true, Leases: []quotas.LeaseState{}}, nil
	}
	keys := make([]string, len(leases))
	args := make([]any, 2, 2+2*len(leases))
	args[0], args[1] = id, ""
	if l.now != nil {
		args[1] = l.now().UnixMicro()
	}
	for i, ls := range leases {
		keys[i] = l.key(ls.Key)
		args = append(args, ls.Limit, ls.TTL.Microseconds())
	}
	raw, err := leaseScript.Run(ctx, l.rdb, keys, args...).Int64Slice()
	if err != nil {
		return quotas.LeaseResult{}, fmt.Errorf("%w: %w", quotas.ErrBackendUnavailable, err)
	}
	if len(raw) != 1+3*len(leases) {
		return quotas.LeaseResult{}, fmt.Errorf("%w: the lease script returned %d values", quotas.ErrBackendUnavailable, len(raw))
	}
	res := quotas.LeaseResult{Allowed: raw[0] == 1, Leases: make([]quotas.LeaseState, len(leases))}
	r := raw[1:]
	for i, ls := range leases {
		st := quotas.LeaseState{
			Allowed:    r[0] == 1,
			InUse:      r[1],
			Limit:      ls.Limit,
			RetryAfter: time.Duration(r[2]) * time.Microsecond,
		}
		if !st.Allowed {
			res.RetryAfter = max(res.RetryAfter, st.RetryAfter)
		}
		res.Leases[i] = st
		r = r[3:]
	}
	return res, nil
}

// Release gives back id's leases on keys, in one round trip.
func (l *Leases) Release(ctx context.Context, id string, keys []string) error {
	if err := quotas.ValidateRelease(id, keys); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", quotas.ErrBackendUnavailable, err)
	}
	if len(keys) == 0 {
		return nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = l.key(k)
	}
	if err := releaseScript.Run(ctx, l.rdb, full, id).Err(); err != nil {
		return fmt.Errorf("%w: %w", quotas.ErrBackendUnavailable, err)
	}
	return nil
}

// key is the sorted set of a lease key.
func (l *Leases) key(k string) string { return l.prefix + ":cc:" + k }
