package redisquota

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultHeartbeat is how often a replica announces itself.
const DefaultHeartbeat = 10 * time.Second

// Replicas counts the sidecars sharing the limits, so each knows its share
// when it has to enforce limits alone: every replica writes a heartbeat to
// a sorted set (member: its id, score: the Redis server's time), and the
// count is the members heard from within three heartbeats. While Redis is
// unreachable the last count stands.
type Replicas struct {
	rdb      redis.Cmdable
	key      string
	id       string
	interval time.Duration
	log      *slog.Logger
	count    atomic.Int64
}

// NewReplicas returns the counter of replica id (unique per process) over
// rdb, under prefix. The count is 0 (not known) until the first heartbeat
// is answered: a replica started while Redis is down cannot tell its
// share, and the fallback refuses its Local limits rather than guess.
func NewReplicas(rdb redis.Cmdable, prefix, id string, interval time.Duration, log *slog.Logger) *Replicas {
	if interval <= 0 {
		interval = DefaultHeartbeat
	}
	return &Replicas{rdb: rdb, key: prefix + ":replicas", id: id, interval: interval, log: log}
}

// Count returns the replicas last counted (this one included), or 0 before
// the first count.
func (r *Replicas) Count() int { return int(r.count.Load()) }

// Run heartbeats until ctx is done, then withdraws this replica.
func (r *Replicas) Run(ctx context.Context) error {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		if err := r.Beat(ctx); err != nil && ctx.Err() == nil {
			r.log.Debug("replica heartbeat failed; the last count stands", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			// The process is stopping: leave the count at once rather than
			// after three heartbeats.
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			r.rdb.ZRem(wctx, r.key, r.id)
			cancel()
			return nil
		case <-t.C:
		}
	}
}

// Beat announces this replica and counts the live ones, in one round trip.
func (r *Replicas) Beat(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	n, err := beatScript.Run(ctx, r.rdb, []string{r.key}, r.id, (3 * r.interval).Microseconds()).Int64()
	if err != nil {
		return fmt.Errorf("counting replicas: %w", err)
	}
	r.count.Store(n)
	return nil
}

// beatScript: KEYS[1] the set, ARGV[1] the replica, ARGV[2] how long (µs)
// a replica counts after its last heartbeat. Returns the live replicas.
var beatScript = redis.NewScript(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call("ZADD", KEYS[1], string.format("%d", now), ARGV[1])
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", string.format("%d", now - tonumber(ARGV[2])))
redis.call("PEXPIRE", KEYS[1], math.ceil(tonumber(ARGV[2]) / 1000))
return redis.call("ZCARD", KEYS[1])
`)
