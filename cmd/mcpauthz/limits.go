package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/quotas"
	"github.com/mcpauthz/mcpauthz/quotas/memquota"
	"github.com/mcpauthz/mcpauthz/quotas/pgusage"
	"github.com/mcpauthz/mcpauthz/quotas/redisquota"
)

// LimitsConfig is where the rate limits and quotas the policy asks for are
// counted: in Redis when redis is set (shared by every replica), else in
// process (one instance; `mcpauthz dev`).
type LimitsConfig struct {
	// Redis is a redis://, rediss:// or unix:// URL; with cluster, a
	// Redis Cluster's seed nodes: redis://host1:6379?addr=host2:6379&addr=host3:6379.
	Redis       string `yaml:"redis"`
	Cluster     bool   `yaml:"cluster"`
	RedisPrefix string `yaml:"redis_prefix"`
	// Timeout bounds each call to Redis: a paused Redis costs a decision
	// this much, then limits fall back to their on_backend_error mode.
	Timeout Duration `yaml:"timeout"`
	// RetryInterval is how long an unreachable Redis is left alone before
	// a request tries it again.
	RetryInterval Duration `yaml:"retry_interval"`
	// Replicas is how many sidecars share the limits, for the in-process
	// fallback's share of each; 0 counts them through Redis heartbeats.
	Replicas int `yaml:"replicas"`
	// MaxKeys bounds the limits and quotas counted in process (the
	// in-process limiter, and the fallback's).
	MaxKeys int `yaml:"max_keys"`
	// Postgres, with redis, is where quota usage is saved every
	// persist_interval and restored from when Redis loses it (a restart,
	// a flush, a failover), so a month of usage survives Redis. The schema
	// is created by `mcpauthz migrate`.
	Postgres        string   `yaml:"postgres"`
	PersistInterval Duration `yaml:"persist_interval"`
}

func limitsDefaults() LimitsConfig {
	return LimitsConfig{
		RedisPrefix:     redisquota.DefaultPrefix,
		Timeout:         Duration(quotas.DefaultSharedTimeout),
		RetryInterval:   Duration(quotas.DefaultRetryInterval),
		MaxKeys:         memquota.DefaultMaxKeys,
		PersistInterval: Duration(pgusage.DefaultInterval),
	}
}

func (c LimitsConfig) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Redis != "" {
		if r, err := c.redisClient(); err != nil {
			bad("%v", err)
		} else {
			r.Close()
		}
	}
	if c.RedisPrefix == "" {
		bad("limits.redis_prefix: must not be empty")
	}
	if t := time.Duration(c.Timeout); t <= 0 || t > time.Second {
		bad("limits.timeout: %s is outside (0, 1s]", t)
	}
	if r := time.Duration(c.RetryInterval); r < 10*time.Millisecond || r > time.Minute {
		bad("limits.retry_interval: %s is outside [10ms, 1m]", r)
	}
	if c.Replicas < 0 {
		bad("limits.replicas: must not be negative")
	}
	if c.MaxKeys < 1 {
		bad("limits.max_keys: must be at least 1")
	}
	if c.Postgres != "" {
		if c.Redis == "" {
			bad("limits.postgres: set limits.redis too; usage counted in process is not persisted")
		}
		// A URL, not a keyword DSN: the URL is what is printed (its
		// password removed); a DSN would be printed whole.
		if u, err := url.Parse(c.Postgres); err != nil || u.Scheme != "postgres" && u.Scheme != "postgresql" {
			bad("limits.postgres: not a postgres:// URL") // it may hold a password
		} else if _, err := pgx.ParseConfig(c.Postgres); err != nil {
			bad("limits.postgres: the postgres URL cannot be parsed")
		}
	}
	if p := time.Duration(c.PersistInterval); p < time.Second || p > time.Hour {
		bad("limits.persist_interval: %s is outside [1s, 1h]", p)
	}
	return errors.Join(errs...)
}

// buildLimiter makes the limiter the authorizer takes limits from, and
// the leaser holding concurrency slots: in Redis when limits.redis is set,
// else in process. Leases have no fallback: while Redis is unreachable a
// request the policy caps is refused (503), since slots held elsewhere
// cannot be counted.
func (s *sidecar) buildLimiter(ctx context.Context) (quotas.Limiter, quotas.Leaser, error) {
	c := s.cfg.Limits
	local := memquota.New(memquota.WithMaxKeys(c.MaxKeys))
	s.background = append(s.background, local.Run)
	s.localLimiter = local
	if c.Redis == "" {
		leases := memquota.NewLeases(memquota.WithMaxLeases(c.MaxKeys))
		s.background = append(s.background, leases.Run)
		s.localLeases = leases
		return local, leases, nil
	}
	rdb, err := c.redisClient()
	if err != nil {
		return nil, nil, err
	}
	s.closers = append(s.closers, rdb)
	rdb.AddHook(s.metrics.redisHook("limits"))
	// On a cluster a Take may call several slots in turn, each bounded by
	// the timeout: the Take as a whole gets four.
	timeout := time.Duration(c.Timeout)
	takeTimeout := timeout
	if c.Cluster {
		takeTimeout *= 4
	}

	replicas := func() int { return c.Replicas }
	if c.Replicas == 0 {
		r := redisquota.NewReplicas(rdb, c.RedisPrefix, replicaID(), redisquota.DefaultHeartbeat, s.log)
		s.background = append(s.background, r.Run)
		replicas = r.Count
	}
	shared := redisquota.New(rdb, redisquota.WithPrefix(c.RedisPrefix))
	if c.Postgres != "" {
		store, err := pgusage.Open(ctx, c.Postgres, pgusage.Options{})
		if err != nil {
			return nil, nil, fmt.Errorf("limits.postgres: %w", err)
		}
		s.closers = append(s.closers, closerFunc(store.Close))
		sync := pgusage.NewSyncer(shared, store, pgusage.WithInterval(time.Duration(c.PersistInterval)),
			pgusage.WithLogger(s.log.With("component", "quota-usage")))
		s.background = append(s.background, sync.Run)
	}
	s.limiter = quotas.NewFallback(shared, local, replicas,
		quotas.WithSharedTimeout(takeTimeout), quotas.WithRetryInterval(time.Duration(c.RetryInterval)),
		quotas.WithFallbackLogger(s.log),
		quotas.WithStateChange(func(down bool) {
			if s.grpc != nil {
				s.grpc.SetComponentServing(limitsHealth, !down)
			}
		}))
	return s.limiter, redisquota.NewLeases(rdb, redisquota.WithLeasePrefix(c.RedisPrefix)), nil
}

// limitsHealth is the gRPC health service name of the shared limits:
// NOT_SERVING while Redis is unreachable and limits fall back.
const limitsHealth = "mcpauthz.limits"

// limitsRedis is a Redis client or a Redis Cluster's.
type limitsRedis interface {
	redis.Cmdable
	AddHook(redis.Hook)
	Close() error
}

// redisClient connects to limits.redis with every call bounded by
// limits.timeout and no retries: a retry would outlast the timeout, and
// the fallback decides instead.
func (c LimitsConfig) redisClient() (limitsRedis, error) {
	t := time.Duration(c.Timeout)
	if c.Cluster {
		opt, err := redis.ParseClusterURL(c.Redis)
		if err != nil {
			return nil, errors.New("limits.redis: not a valid Redis Cluster URL") // it may hold a password
		}
		opt.ContextTimeoutEnabled, opt.MaxRetries = true, -1
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = t, t, t
		return redis.NewClusterClient(opt), nil
	}
	opt, err := redis.ParseURL(c.Redis)
	if err != nil {
		return nil, errors.New("limits.redis: not a valid Redis URL") // it may hold a password
	}
	opt.ContextTimeoutEnabled, opt.MaxRetries = true, -1
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = t, t, t
	return redis.NewClient(opt), nil
}

// replicaID names this process among the replicas: the host name and a
// random suffix, since restarts and containers reuse host names.
func replicaID() string {
	host, _ := os.Hostname()
	b := make([]byte, 6)
	rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// closerFunc is a Close without an error as an io.Closer.
type closerFunc func()

func (f closerFunc) Close() error { f(); return nil }
