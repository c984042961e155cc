package quotatest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/quotas"
)

// Benchmark takes three limits and a quota per request, as a tools/call
// under the default policy does, cycling over 1,000 tenants. The limits are
// high enough that every request is admitted.
func Benchmark(b *testing.B, l quotas.Limiter) {
	reqs := make([]quotas.Request, 1000)
	for i := range reqs {
		reqs[i] = quotas.Request{
			Limits: []quotas.Limit{
				{Name: "user_requests", Key: fmt.Sprintf("user:u-%d", i), Limit: 600, Window: time.Minute},
				{Name: "tenant_tool_calls", Key: fmt.Sprintf("tenant:org-%d:tools", i), Limit: 1e6, Window: 10 * time.Second},
				{Name: "key_requests", Key: fmt.Sprintf("key:k-%d", i), Limit: 1e6, Window: time.Minute},
			},
			Quotas: []quotas.Quota{{Name: "monthly_requests", Key: fmt.Sprintf("tenant:org-%d:requests", i), Limit: 1e12, Period: quotas.Month}},
		}
	}
	run(b, l, reqs)
}

// BenchmarkFairShare is Benchmark with a fourth limit: each tenant's
// weighted fair share (weights 1, 3 and 10 in turn) of one tool's global
// capacity, shared by all 1,000 tenants.
func BenchmarkFairShare(b *testing.B, l quotas.Limiter) {
	reqs := make([]quotas.Request, 1000)
	weights := []float64{1, 3, 10}
	for i := range reqs {
		reqs[i] = quotas.Request{
			Limits: []quotas.Limit{
				{Name: "user_requests", Key: fmt.Sprintf("user:u-%d", i), Limit: 600, Window: time.Minute},
				{Name: "tenant_tool_calls", Key: fmt.Sprintf("tenant:org-%d:tools", i), Limit: 1e6, Window: 10 * time.Second},
				{Name: "key_requests", Key: fmt.Sprintf("key:k-%d", i), Limit: 1e6, Window: time.Minute},
				{Name: "tool_capacity", Key: fmt.Sprintf("tenant:org-%d", i), Limit: 1e9, Window: time.Second,
					Share: &quotas.Share{Pool: "tool:search", Weight: weights[i%len(weights)]}},
			},
			Quotas: []quotas.Quota{{Name: "monthly_requests", Key: fmt.Sprintf("tenant:org-%d:requests", i), Limit: 1e12, Period: quotas.Month}},
		}
	}
	run(b, l, reqs)
}

func run(b *testing.B, l quotas.Limiter, reqs []quotas.Request) {
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := l.Take(ctx, reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
