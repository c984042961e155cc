// Package redisquota is the quotas.Limiter replicas share through Redis:
// every limit and quota of a request is checked and taken in one Lua
// script call (one round trip, atomic, all or nothing), against the Redis
// server's clock, so replicas whose clocks disagree still agree on a limit.
package redisquota

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/quotas"
)

//go:embed take.lua
var takeSource string

var takeScript = redis.NewScript(takeSource)

// DefaultPrefix starts every key the limiter writes.
const DefaultPrefix = "mcpauthz"

// QuotaRetention is how long a quota's count outlives its period, so the
// usage of a closed period can still be read and persisted.
const QuotaRetention = 7 * 24 * time.Hour

// Limiter is a quotas.Limiter backed by Redis.
type Limiter struct {
	rdb    redis.Scripter
	prefix string
	now    func() time.Time // the calendar's clock
	fixed  bool             // rate limits use now too, not the server's TIME
}

var _ quotas.Limiter = (*Limiter)(nil)

// Option configures a Limiter.
type Option func(*Limiter)

// WithPrefix sets the key prefix (default DefaultPrefix).
func WithPrefix(p string) Option { return func(l *Limiter) { l.prefix = p } }

// WithClock sets the clock calendar periods are read from (default
// time.Now). Rate limits still follow the Redis server's clock.
func WithClock(now func() time.Time) Option { return func(l *Limiter) { l.now = now } }

// WithFixedClock makes rate limits follow now as well instead of the
// server's clock: for tests that move time.
func WithFixedClock(now func() time.Time) Option {
	return func(l *Limiter) { l.now, l.fixed = now, true }
}

// New returns a limiter using rdb, which should have short timeouts: a
// Take waits for Redis at most as long as its context allows.
func New(rdb redis.Scripter, opts ...Option) *Limiter {
	l := &Limiter{rdb: rdb, prefix: DefaultPrefix, now: time.Now}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Take checks every limit and quota of req and, if all admit it, takes
// them, in one round trip. On a Redis Cluster whose slots split the
// request's keys, it takes slot by slot and gives back what earlier slots
// took when a later one refuses (see takeSlots).
func (l *Limiter) Take(ctx context.Context, req quotas.Request) (quotas.Result, error) {
	if err := req.Validate(); err != nil {
		return quotas.Result{}, err
	}
	if req.Empty() {
		return quotas.Result{Allowed: true, Limits: []quotas.LimitState{}, Quotas: []quotas.QuotaState{}}, nil
	}
	now := l.now()
	if parts := l.split(req, now); len(parts) > 1 {
		return l.takeSlots(ctx, req, parts, now)
	}
	res, _, err := l.take(ctx, req, now)
	return res, err
}

// take runs the take script for req: the result, and for a refund the
// time each limit took, then per limit whether it made its tenant active,
// then per limit the TAT it wrote.
func (l *Limiter) take(ctx context.Context, req quotas.Request, now time.Time) (quotas.Result, []int64, error) {
	keys := make([]string, 0, len(req.Limits)+len(req.Quotas))
	args := make([]any, 0, 3+4*len(req.Limits)+2*len(req.Quotas))
	args = append(args, len(req.Limits), len(req.Quotas), l.scriptNow(now))
	windows := make([]time.Duration, len(req.Limits))
	for i, lim := range req.Limits {
		g := quotas.NewGCRA(lim)
		windows[i] = lim.Window
		// Microseconds: the script's numbers are doubles, exact to 2^53.
		args = append(args, g.Interval/1000, g.Tolerance/1000, g.Cost)
		keys = append(keys, l.limitKeys(lim)...)
		if lim.Share == nil {
			args = append(args, "")
			continue
		}
		args = append(args, lim.Key, lim.Share.Class().String(), int64(lim.Window/time.Microsecond))
	}
	resets := make([]time.Time, len(req.Quotas))
	for i, q := range req.Quotas {
		_, next, id := q.Period.Bounds(now, q.Location)
		resets[i] = next
		keys = append(keys, l.quotaKey(q, id))
		args = append(args, q.Limit, next.Add(QuotaRetention).Sub(now).Milliseconds())
	}
	raw, err := takeScript.Run(ctx, l.rdb, keys, args...).Int64Slice()
	if err != nil {
		return quotas.Result{}, nil, fmt.Errorf("%w: %w", quotas.ErrBackendUnavailable, err)
	}
	n := 1 + 4*len(req.Limits) + 2*len(req.Quotas)
	if len(raw) != n+3*len(req.Limits) {
		return quotas.Result{}, nil, fmt.Errorf("%w: the take script returned %d values", quotas.ErrBackendUnavailable, len(raw))
	}
	return decode(raw[:n], req, windows, resets, now), raw[n:], nil
}

// scriptNow is the script's clock argument: "" for the server's TIME.
func (l *Limiter) scriptNow(now time.Time) any {
	if l.fixed {
		return now.UnixMicro()
	}
	return ""
}

// limitKeys are the keys of a limit: its TAT, or for a fair share its
// pool's three keys, whose hash tag (the pool's name) keeps them in one
// Redis Cluster slot.
func (l *Limiter) limitKeys(lim quotas.Limit) []string {
	if lim.Share == nil {
		return []string{l.prefix + ":rl:" + lim.Key}
	}
	pool := l.prefix + ":fair:{" + poolTag(lim.Share.Pool) + "}"
	return []string{pool + ":active", pool + ":tenants", pool + ":classes"}
}

// poolTag is the hash tag of a pool: its name, or when the name holds a
// brace (which would end or empty the tag, splitting the pool's keys
// across slots) a digest of it.
func poolTag(pool string) string {
	if !strings.ContainsAny(pool, "{}") {
		return pool
	}
	sum := sha256.Sum256([]byte(pool))
	return "#" + hex.EncodeToString(sum[:12])
}

func (l *Limiter) quotaKey(q quotas.Quota, periodID string) string {
	return l.prefix + ":q:" + q.Key + ":" + periodID
}

// decode turns the script's answer into a Result.
func decode(raw []int64, req quotas.Request, windows []time.Duration, resets []time.Time, now time.Time) quotas.Result {
	res := quotas.Result{
		Allowed: raw[0] == 1,
		Limits:  make([]quotas.LimitState, len(req.Limits)),
		Quotas:  make([]quotas.QuotaState, len(req.Quotas)),
	}
	r := raw[1:]
	for i := range req.Limits {
		st := quotas.LimitState{
			Allowed:    r[0] == 1,
			Remaining:  r[1],
			Reset:      time.Duration(r[2]) * time.Microsecond,
			RetryAfter: time.Duration(r[3]) * time.Microsecond,
		}
		if r[3] < 0 {
			st.RetryAfter = windows[i]
		}
		if !st.Allowed {
			res.RetryAfter = max(res.RetryAfter, st.RetryAfter)
		}
		res.Limits[i] = st
		r = r[4:]
	}
	for i, q := range req.Quotas {
		st := quotas.QuotaState{Allowed: r[0] == 1, Used: r[1], Resets: resets[i]}
		if !st.Allowed {
			res.RetryAfter = max(res.RetryAfter, resets[i].Sub(now))
		}
		st.Remaining = max(0, q.Limit-st.Used)
		res.Quotas[i] = st
		r = r[2:]
	}
	return res
}
