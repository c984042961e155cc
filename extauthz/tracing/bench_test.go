package tracing

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz"
	extpolicy "github.com/mcpauthz/mcpauthz/extauthz/policy"
	"github.com/mcpauthz/mcpauthz/quotas"
	"github.com/mcpauthz/mcpauthz/quotas/memquota"
)

// BenchmarkCheck is one Check of an MCP tools/call with a JWT, through an
// Authorizer whose collaborators are "plain" (the baseline) or wrapped and
// traced: with the no-op provider ("noop"), with the SDK sampling nothing
// ("sdk-unsampled") or everything into a batch processor whose exporter
// discards ("sdk-sampled"). Under "fixed" the policy is a fixed decision
// that takes a limit and a quota (the wrappers' worst case: the policy
// costs nothing); under "rbac" it is bench/rbac on OPA, which takes
// nothing.
func BenchmarkCheck(b *testing.B) {
	rbac := rbacPolicy(b)
	for _, pc := range []struct {
		name   string
		policy extauthz.PolicyEvaluator
		tool   string
	}{
		{"fixed", fixedPolicy{}, "echo"},
		{"rbac", rbac, "search"},
	} {
		for _, tc := range []struct {
			name string
			tp   func(b *testing.B) trace.TracerProvider // nil: not wrapped
		}{
			{"plain", nil},
			{"noop", func(*testing.B) trace.TracerProvider { return noop.NewTracerProvider() }},
			{"sdk-unsampled", func(b *testing.B) trace.TracerProvider {
				return sdkProvider(b, sdktrace.WithSampler(sdktrace.NeverSample()))
			}},
			{"sdk-sampled", func(b *testing.B) trace.TracerProvider { return sdkProvider(b) }},
		} {
			b.Run(pc.name+"/"+tc.name, func(b *testing.B) {
				var (
					p                                 = pc.policy
					v       extauthz.IdentityVerifier = verifier{}
					limiter                           = memquota.New()
					leaser                            = memquota.NewLeases()
				)
				opts := []extauthz.Option{extauthz.WithTimeout(time.Minute)}
				var tp trace.TracerProvider
				if tc.tp != nil {
					tp = tc.tp(b)
					p, v = NewPolicyEvaluator(p, tp), NewIdentityVerifier(v, tp)
					opts = append(opts, extauthz.WithLimiter(NewLimiter(limiter, tp)), extauthz.WithLeaser(NewLeaser(leaser, tp)))
				} else {
					opts = append(opts, extauthz.WithLimiter(limiter), extauthz.WithLeaser(leaser))
				}
				opts = append(opts, extauthz.WithIdentityVerifier(v))
				ids, _ := extauthz.NewDecisionIDs(zeros{})
				var c Decider = extauthz.NewAuthorizer(p, ids.Next, opts...)
				if tc.tp != nil {
					c = NewChecker(c, tp)
				}
				req := request(pc.tool, "authorization", "Bearer "+goodToken, "x-role", "member",
					"traceparent", "00-"+traceID+"-"+parentID+"-01")
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if d, err := c.Check(ctx, req); err != nil || !d.Allowed {
						b.Fatal(d, err)
					}
				}
			})
		}
	}
}

// fixedPolicy allows, taking a limit and a quota that always admit.
type fixedPolicy struct{}

func (fixedPolicy) Evaluate(context.Context, *extauthz.PolicyInput) (extauthz.PolicyResult, error) {
	return extauthz.PolicyResult{Revision: "rev-42", Decision: extauthz.Decision{
		Allowed: true,
		Take: quotas.Request{
			Limits: []quotas.Limit{{Name: "user_requests", Key: "user:u-1", Limit: 1 << 40, Window: time.Second}},
			Quotas: []quotas.Quota{{Name: "monthly", Key: "tenant:acme", Limit: 1 << 50, Period: quotas.Month, Location: time.UTC}},
		},
	}}, nil
}

func sdkProvider(b *testing.B, opts ...sdktrace.TracerProviderOption) trace.TracerProvider {
	tp := sdktrace.NewTracerProvider(append(opts, sdktrace.WithBatcher(tracetest.NewNoopExporter()))...)
	b.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp
}

func rbacPolicy(b *testing.B) extauthz.PolicyEvaluator {
	engine, err := bundles.NewEngine(bundles.DefaultDecisionPath)
	if err != nil {
		b.Fatal(err)
	}
	bundle, err := bundles.LoadPath("../../bench/rbac")
	if err != nil {
		b.Fatal(err)
	}
	if err := engine.Activate(context.Background(), bundle, "rbac"); err != nil {
		b.Fatal(err)
	}
	return extpolicy.NewEvaluator(engine)
}

// zeros is a reader of zero bytes, seeding decision ids.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
