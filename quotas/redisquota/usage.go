package redisquota

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/quotas"
)

//go:embed restore.lua
var restoreSource string

var restoreScript = redis.NewScript(restoreSource)

// usageBatch is how many keys one SCAN step asks for, and how many
// counters one pipeline reads or restores.
const usageBatch = 1000

var _ quotas.UsageSnapshotter = (*Limiter)(nil)

// The clients Usage and Restore need beyond scripts. *redis.Client,
// *redis.ClusterClient and *redis.Ring (and so any redis.UniversalClient)
// have them; a cluster or a ring is scanned one server at a time.
type (
	counterServer interface {
		Scan(ctx context.Context, cursor uint64, match string, count int64) *redis.ScanCmd
		Pipeline() redis.Pipeliner
	}
	counterCluster interface {
		ForEachMaster(ctx context.Context, fn func(context.Context, *redis.Client) error) error
	}
	counterRing interface {
		ForEachShard(ctx context.Context, fn func(context.Context, *redis.Client) error) error
	}
	counterPipeliner interface{ Pipeline() redis.Pipeliner }
)

var (
	_ counterServer    = (*redis.Client)(nil)
	_ counterCluster   = (*redis.ClusterClient)(nil)
	_ counterRing      = (*redis.Ring)(nil)
	_ counterPipeliner = (*redis.ClusterClient)(nil)
	_ counterPipeliner = (*redis.Ring)(nil)
)

// Usage returns every quota counter under the limiter's prefix: the keys
// are found with SCAN, usageBatch at a time, and read with GET and PTTL in
// one pipeline per batch. Keys that vanish meanwhile, that do not hold a
// count or that never expire are left out. It reads as long as ctx allows.
func (l *Limiter) Usage(ctx context.Context) ([]quotas.Usage, error) {
	var (
		mu   sync.Mutex
		out  []quotas.Usage
		seen = map[string]bool{} // SCAN may return a key twice
	)
	scan := func(ctx context.Context, s counterServer) error {
		return l.scan(ctx, s, func(redisKey string, u quotas.Usage) {
			mu.Lock()
			defer mu.Unlock()
			if !seen[redisKey] {
				seen[redisKey] = true
				out = append(out, u)
			}
		})
	}
	var err error
	switch c := l.rdb.(type) {
	case counterCluster:
		err = c.ForEachMaster(ctx, func(ctx context.Context, s *redis.Client) error { return scan(ctx, s) })
	case counterRing:
		err = c.ForEachShard(ctx, func(ctx context.Context, s *redis.Client) error { return scan(ctx, s) })
	case counterServer:
		err = scan(ctx, c)
	default:
		return nil, fmt.Errorf("redisquota: reading usage: %w: %T cannot scan", errors.ErrUnsupported, l.rdb)
	}
	if err != nil {
		return nil, usageError(err)
	}
	return out, nil
}

// scan reads the counters of one server, calling found for each.
func (l *Limiter) scan(ctx context.Context, s counterServer, found func(string, quotas.Usage)) error {
	match := escapeGlob(l.counterPrefix()) + "*"
	var cursor uint64
	for {
		keys, next, err := s.Scan(ctx, cursor, match, usageBatch).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := l.read(ctx, s, keys, found); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// read reads keys in one pipeline. Expiries are read as time to live and
// added to the server's TIME, read in the same pipeline, so the expiry is
// on the clock that set it.
func (l *Limiter) read(ctx context.Context, s counterServer, keys []string, found func(string, quotas.Usage)) error {
	pipe := s.Pipeline()
	now := pipe.Time(ctx)
	gets := make([]*redis.StringCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		gets[i] = pipe.Get(ctx, k)
		ttls[i] = pipe.PTTL(ctx, k)
	}
	pipe.Exec(ctx) // errors are read per command below
	if err := now.Err(); err != nil {
		return err
	}
	for i, k := range keys {
		used, err := gets[i].Int64()
		var parse *strconv.NumError
		switch {
		case errors.Is(err, redis.Nil), errors.As(err, &parse), redis.HasErrorPrefix(err, "WRONGTYPE"):
			continue // gone, or not a counter
		case err != nil:
			return err
		}
		ttl, err := ttls[i].Result()
		if err != nil {
			return err
		}
		u, ok := l.parseCounter(k)
		if !ok || ttl < 0 {
			continue
		}
		u.Used = used
		// The script sets expiries in whole seconds.
		u.Expires = now.Val().Add(ttl).Round(time.Second)
		found(k, u)
	}
	return nil
}

// Restore raises each counter to at least its usage, and sets its expiry
// when it raises it, atomically per key with a script; a counter already
// higher is left as it is. Records whose expiry has passed on the limiter's
// clock, or that count nothing, are skipped. The scripts are sent
// usageBatch to a pipeline; restoring twice is the same as once, so a
// failed Restore may simply be repeated.
func (l *Limiter) Restore(ctx context.Context, usage []quotas.Usage) error {
	if err := quotas.ValidateUsage(usage); err != nil {
		return err
	}
	p, ok := l.rdb.(counterPipeliner)
	if !ok {
		return fmt.Errorf("redisquota: restoring usage: %w: %T has no pipeline", errors.ErrUnsupported, l.rdb)
	}
	now := l.now()
	live := make([]quotas.Usage, 0, len(usage))
	for _, u := range usage {
		if u.Used > 0 && u.Expires.After(now) {
			live = append(live, u)
		}
	}
	for len(live) > 0 {
		n := min(len(live), usageBatch)
		if err := l.restore(ctx, p, live[:n], now); err != nil {
			return usageError(err)
		}
		live = live[n:]
	}
	return nil
}

// restore runs the script for each record of batch in one pipeline, by
// its digest, and sends the script itself if the server does not know it.
// Expiries go as times to live from now on the limiter's clock, as Take
// sets them.
func (l *Limiter) restore(ctx context.Context, p counterPipeliner, batch []quotas.Usage, now time.Time) error {
	run := func(eval func(ctx context.Context, c redis.Scripter, keys []string, args ...any) *redis.Cmd) (noScript bool, err error) {
		pipe := p.Pipeline()
		cmds := make([]*redis.Cmd, len(batch))
		for i, u := range batch {
			cmds[i] = eval(ctx, pipe, []string{l.counterKey(u)}, strconv.FormatInt(u.Used, 10), max(1, u.Expires.Sub(now).Milliseconds()))
		}
		pipe.Exec(ctx) // errors are read per command below
		for _, c := range cmds {
			switch err := c.Err(); {
			case redis.HasErrorPrefix(err, "NOSCRIPT"):
				noScript = true
			case err != nil:
				return false, err
			}
		}
		return noScript, nil
	}
	noScript, err := run(restoreScript.EvalSha)
	if err == nil && noScript {
		_, err = run(restoreScript.Eval)
	}
	return err
}

// counterPrefix starts the key of every quota counter.
func (l *Limiter) counterPrefix() string { return l.prefix + ":q:" }

// counterKey is the key of u's counter, as Take names it.
func (l *Limiter) counterKey(u quotas.Usage) string {
	return l.counterPrefix() + u.Key + ":" + u.PeriodID
}

// parseCounter reads the quota key and period id out of a counter's key:
// the period id is what follows the last colon.
func (l *Limiter) parseCounter(redisKey string) (quotas.Usage, bool) {
	rest, ok := strings.CutPrefix(redisKey, l.counterPrefix())
	i := strings.LastIndexByte(rest, ':')
	if !ok || i <= 0 || i == len(rest)-1 {
		return quotas.Usage{}, false
	}
	return quotas.Usage{Key: rest[:i], PeriodID: rest[i+1:]}, true
}

// escapeGlob quotes the characters SCAN's MATCH treats as a pattern.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// usageError marks err as the backend's, as Take does.
func usageError(err error) error {
	if errors.Is(err, quotas.ErrBackendUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", quotas.ErrBackendUnavailable, err)
}
