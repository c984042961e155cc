package extauthz

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/internal/testredis"
	"github.com/mcpauthz/mcpauthz/quotas"
	"github.com/mcpauthz/mcpauthz/quotas/memquota"
	"github.com/mcpauthz/mcpauthz/quotas/redisquota"
)

// BenchmarkCheckLimits is one Check of an MCP tools/call whose decision
// carries three rate limits and a quota, with the policy's cost left out
// (a fixed decision): "none" takes nothing and is the baseline; "memquota"
// and "redis" take the limits in process and in Redis (one round trip).
func BenchmarkCheckLimits(b *testing.B) {
	take := quotas.Request{
		Limits: []quotas.Limit{
			{Name: "user_requests", Key: "user:u-1", Limit: 1 << 40, Window: time.Second},
			{Name: "tenant_tool_calls", Key: "tenant:acme:tools", Limit: 1 << 40, Window: time.Second},
			{Name: "tool_capacity", Key: "tool:search", Limit: 1 << 40, Window: time.Second},
		},
		Quotas: []quotas.Quota{{Name: "monthly_requests", Key: "tenant:acme:requests", Limit: 1 << 50, Period: quotas.Month, Location: time.UTC}},
	}
	var sent atomic.Int64 // commands sent to Redis
	for _, bc := range []struct {
		name    string
		take    quotas.Request
		limiter func(b *testing.B) quotas.Limiter
	}{
		{"none", quotas.Request{}, func(*testing.B) quotas.Limiter { return NoLimiter{} }},
		{"memquota", take, func(*testing.B) quotas.Limiter { return memquota.New() }},
		{"redis", take, func(b *testing.B) quotas.Limiter {
			rdb, p := testredis.Shared(b)
			rdb.AddHook(commands{&sent})
			return redisquota.New(rdb, redisquota.WithPrefix(p))
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := Decision{Allowed: true, Take: bc.take}
			p := &fixedPolicy{d: d}
			a := NewAuthorizer(p, fixedIDs(), WithLimiter(bc.limiter(b)), WithTimeout(time.Minute))
			req := mcpRequest(toolsCall)
			ctx := context.Background()
			a.Check(ctx, req) // loads the script
			sent.Store(0)
			b.ReportAllocs()
			for b.Loop() {
				if d, err := a.Check(ctx, req); err != nil || !d.Allowed {
					b.Fatal(d, err)
				}
			}
			b.ReportMetric(float64(sent.Load())/float64(b.N), "redis-cmds/op")
		})
	}
}

// commands counts the commands a Redis client sends.
type commands struct{ n *atomic.Int64 }

func (c commands) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c commands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c commands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// fixedPolicy answers every request with d.
type fixedPolicy struct{ d Decision }

func (p *fixedPolicy) Evaluate(context.Context, *PolicyInput) (PolicyResult, error) {
	return PolicyResult{Decision: p.d}, nil
}
