package policy_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/policy"
	"github.com/mcpauthz/mcpauthz/policies"
	"github.com/mcpauthz/mcpauthz/quotas"
)

func toolsCallRequest() *extauthz.Request {
	body := `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search","arguments":{"query":"quarterly report","limit":10}}}`
	return &extauthz.Request{
		ID: "a7b3c1d2-5e6f-4a8b-9c0d-1e2f3a4b5c6d", Method: "POST", Scheme: "https", Host: "mcp.example.com",
		Path: "/mcp", Protocol: "HTTP/1.1",
		Headers: map[string]string{
			":authority": "mcp.example.com", ":method": "POST", ":path": "/mcp", ":scheme": "https",
			"accept": "application/json, text/event-stream", "content-type": "application/json",
			"user-agent": "mcp-client/1.0", "x-request-id": "a7b3c1d2-5e6f-4a8b-9c0d-1e2f3a4b5c6d",
			"x-role": "member", "mcp-protocol-version": "2025-06-18", "mcp-session-id": "sess-123",
			"x-forwarded-proto": "https",
		},
		Body: body, Size: int64(len(body)),
		Source:      extauthz.Peer{Address: "10.0.0.7", Port: 52344},
		Destination: extauthz.Peer{Address: "10.0.0.9", Port: 8080},
	}
}

// rbacBundle is the small RBAC policy the load test uses too.
const rbacBundle = "../../bench/rbac"

func loadEngine(tb testing.TB, path string, opts ...bundles.EngineOption) *bundles.Engine {
	tb.Helper()
	b, err := bundles.LoadPath(path)
	if err != nil {
		tb.Fatal(err)
	}
	return activeEngine(tb, b, path, opts...)
}

// defaultEngine is an engine with the default bundle (policies) active.
func defaultEngine(tb testing.TB, opts ...bundles.EngineOption) *bundles.Engine {
	tb.Helper()
	b, err := bundles.LoadFS(policies.FS())
	if err != nil {
		tb.Fatal(err)
	}
	return activeEngine(tb, b, "embedded", opts...)
}

func activeEngine(tb testing.TB, b *bundle.Bundle, source string, opts ...bundles.EngineOption) *bundles.Engine {
	tb.Helper()
	e, err := bundles.NewEngine(bundles.DefaultDecisionPath, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	if err := e.Activate(context.Background(), b, source); err != nil {
		tb.Fatal(err)
	}
	return e
}

// BenchmarkCheckToolsCall is one in-process decision for an MCP tools/call
// POST with a small RBAC policy: parse, input, evaluation, mapping. The
// uncached run evaluates the policy every time; the cached one finds the
// decision for the same role and tool in the decision cache.
func BenchmarkCheckToolsCall(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
	}{{"uncached", 0}, {"cached", bundles.DefaultDecisionCacheSize}} {
		b.Run(bc.name, func(b *testing.B) {
			e := loadEngine(b, rbacBundle, bundles.WithDecisionCache(bc.size))
			benchToolsCall(b, policy.NewEvaluator(e))
		})
	}
}

// BenchmarkShadowOverhead is what a shadow adds to a decision on the
// request path (building the candidate's input and queueing it), with the
// candidate evaluated by a background goroutine; compare with "off".
func BenchmarkShadowOverhead(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			e := loadEngine(b, rbacBundle, bundles.WithDecisionCache(0))
			var opts []policy.Option
			if on {
				s := policy.NewShadow(loadEngine(b, rbacBundle), policy.ShadowOptions{Queue: 1 << 16})
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go s.Run(ctx)
				opts = append(opts, policy.WithShadow(s))
			}
			benchToolsCall(b, policy.NewEvaluator(e, opts...))
		})
	}
}

// benchToolsCall checks an allowed tools/call with ev in a loop.
func benchToolsCall(b *testing.B, ev extauthz.PolicyEvaluator) {
	ids, _ := extauthz.NewDecisionIDs(rand.Reader)
	// A generous budget: a busy machine may stall one iteration past the
	// default, which would deny it; the budget costs the same.
	a := extauthz.NewAuthorizer(ev, ids.Next, extauthz.WithTimeout(time.Minute))
	req := toolsCallRequest()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		d, err := a.Check(ctx, req)
		if err != nil || !d.Allowed {
			b.Fatal(d, err)
		}
	}
}

// BenchmarkCheckDefaultBundle is one in-process decision with the default
// bundle: an API-key caller of a pro organization calling a read-only tool,
// with its rate limits and quota in the decision.
func BenchmarkCheckDefaultBundle(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
	}{{"uncached", 0}, {"cached", bundles.DefaultDecisionCacheSize}} {
		b.Run(bc.name, func(b *testing.B) {
			e := defaultEngine(b, bundles.WithDecisionCache(bc.size))
			ids, _ := extauthz.NewDecisionIDs(rand.Reader)
			id := extauthz.Identity{Authenticated: true, Method: extauthz.MethodAPIKey, Subject: "key-1", UserID: "u-1",
				Tenant: "org-1", Tier: "pro", TimeZone: "Europe/Berlin", OrgRole: "member", Roles: []string{"member"}, Scopes: []string{"mcp:tools:call"},
				APIKey: &extauthz.APIKeyInfo{ID: "key-1", Name: "ci", Tier: "pro"}}
			a := extauthz.NewAuthorizer(policy.NewEvaluator(e), ids.Next, extauthz.WithTimeout(time.Minute),
				extauthz.WithIdentityVerifier(fixedIdentity{id: id}), extauthz.WithLimiter(admitAll{}))
			req := toolsCallRequest()
			req.Body = `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"echo","arguments":{"text":"quarterly report"}}}`
			req.Size = int64(len(req.Body))
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				d, err := a.Check(ctx, req)
				if err != nil || !d.Allowed || len(d.Take.Limits) == 0 {
					b.Fatal(d, err)
				}
			}
		})
	}
}

// admitAll admits every request: the limiter's own cost is measured by
// extauthz's BenchmarkCheckLimits.
type admitAll struct{}

func (admitAll) Take(_ context.Context, req quotas.Request) (quotas.Result, error) {
	return quotas.Result{Allowed: true, Limits: make([]quotas.LimitState, len(req.Limits)), Quotas: make([]quotas.QuotaState, len(req.Quotas))}, nil
}
