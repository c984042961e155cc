package extauthz

import (
	"context"
	"testing"
	"time"

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
	for _, bc := range []struct {
		name    string
		take    quotas.Request
		limiter func(b *testing.B) quotas.Limiter
	}{
		{"none", quotas.Request{}, func(*testing.B) quotas.Limiter { return NoLimiter{} }},
		{"memquota", take, func(*testing.B) quotas.Limiter { return memquota.New() }},
		{"redis", take, func(b *testing.B) quotas.Limiter {
			rdb, p := testredis.Shared(b)
			return redisquota.New(rdb, redisquota.WithPrefix(p))
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := Decision{Allowed: true, Take: bc.take}
			p := &fixedPolicy{d: d}
			a := NewAuthorizer(p, fixedIDs(), WithLimiter(bc.limiter(b)), WithTimeout(time.Minute))
			req := mcpRequest(toolsCall)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if d, err := a.Check(ctx, req); err != nil || !d.Allowed {
					b.Fatal(d, err)
				}
			}
		})
	}
}

// fixedPolicy answers every request with d.
type fixedPolicy struct{ d Decision }

func (p *fixedPolicy) Evaluate(context.Context, *PolicyInput) (PolicyResult, error) {
	return PolicyResult{Decision: p.d}, nil
}
