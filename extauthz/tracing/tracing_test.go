package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/mcp"
	"github.com/mcpauthz/mcpauthz/quotas"
	"github.com/mcpauthz/mcpauthz/quotas/memquota"
)

const (
	traceID    = "4bf92f3577b34da6a3ce929d0e0e4736"
	parentID   = "00f067aa0ba902b7"
	goodToken  = "eyJhbGciOiJFUzI1NiJ9.good-token-value.sig"
	badToken   = "eyJhbGciOiJFUzI1NiJ9.forged-token-value.sig"
	downToken  = "eyJhbGciOiJFUzI1NiJ9.backend-down-token.sig"
	apiKey     = "mcpk_secretapikeyvalue"
	cookie     = "mcpauthz_session=secret-session-cookie"
	sessionID  = "mcp-session-secret-id"
	toolsCall  = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s","arguments":{"q":"body-secret"}}}`
	traceState = "vendor=opaque"
)

// secrets are values that must appear in no span.
var secrets = []string{goodToken, badToken, downToken, apiKey, cookie, "secret-session-cookie", sessionID, "body-secret"}

// verifier identifies Bearer goodToken as a JWT user, refuses other
// tokens (quoting them, as a careless verifier might) and fails on
// downToken.
type verifier struct{}

func (verifier) Verify(_ context.Context, req *extauthz.Request) (extauthz.Identity, error) {
	auth, ok := req.Headers["authorization"]
	switch {
	case !ok:
		return extauthz.Anonymous, nil
	case auth == "Bearer "+goodToken:
		return extauthz.Identity{Authenticated: true, Method: extauthz.MethodJWT, Subject: "u-1", Tenant: "acme"}, nil
	case auth == "Bearer "+downToken:
		return extauthz.Identity{}, errors.New("jwks: https://idp.example.com/jwks: connection refused")
	}
	return extauthz.Identity{}, fmt.Errorf("%w: jwt: token %q does not verify", extauthz.ErrInvalidCredential, auth)
}

// policy allows every tool but "forbidden" (403) and "broken" (an
// evaluation error), taking a limit, a quota and a lease; "limited" takes
// a limit that admits nothing.
type policy struct{}

func (policy) Evaluate(_ context.Context, in *extauthz.PolicyInput) (extauthz.PolicyResult, error) {
	r := extauthz.PolicyResult{Path: "mcpauthz/authz/decision", Revision: "rev-42"}
	tool := ""
	if in.Message != nil {
		tool = in.Message.Tool
	}
	limit := int64(1 << 40)
	switch tool {
	case "forbidden":
		r.Decision = extauthz.Deny(http.StatusForbidden, "tool_not_allowed")
		return r, nil
	case "broken":
		return r, errors.New("eval_conflict_error")
	case "limited":
		limit = 0
	}
	r.Decision = extauthz.Decision{
		Allowed: true,
		Take: quotas.Request{
			Limits: []quotas.Limit{{Name: "user_requests", Key: "user:u-1", Limit: limit, Window: time.Second}},
			Quotas: []quotas.Quota{{Name: "monthly", Key: "tenant:acme", Limit: 1 << 40, Period: quotas.Month, Location: time.UTC}},
		},
		Leases: []quotas.Lease{{Name: "streams", Key: "tenant:acme:streams", Limit: 100, TTL: time.Minute}},
	}
	return r, nil
}

// downLimiter cannot reach its backend.
type downLimiter struct{}

func (downLimiter) Take(context.Context, quotas.Request) (quotas.Result, error) {
	return quotas.Result{}, fmt.Errorf("%w: redis: i/o timeout", quotas.ErrBackendUnavailable)
}

// tool is the tool a request from request calls.
func tool(req *extauthz.Request) string {
	_, rest, _ := strings.Cut(req.Body, `"name":"`)
	name, _, _ := strings.Cut(rest, `"`)
	return name
}

func request(tool string, headers ...string) *extauthz.Request {
	h := map[string]string{"content-type": "application/json", "x-api-key": apiKey, "cookie": cookie, "mcp-session-id": sessionID}
	for i := 0; i+1 < len(headers); i += 2 {
		h[headers[i]] = headers[i+1]
	}
	return &extauthz.Request{Method: "POST", Path: "/mcp", Headers: h, Body: fmt.Sprintf(toolsCall, tool), Transport: "envoy-grpc"}
}

// traced returns a Checker over an Authorizer whose collaborators are all
// traced, and the spans it records.
func traced(t *testing.T, limiter quotas.Limiter, opts ...extauthz.Option) (*Checker, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	n := 0
	ids := func() string { n++; return fmt.Sprintf("decision-%d", n) }
	opts = append([]extauthz.Option{
		extauthz.WithIdentityVerifier(NewIdentityVerifier(verifier{}, tp)),
		extauthz.WithLimiter(NewLimiter(limiter, tp)),
		extauthz.WithLeaser(NewLeaser(memquota.NewLeases(), tp)),
		extauthz.WithTimeout(time.Minute),
	}, opts...)
	a := extauthz.NewAuthorizer(NewPolicyEvaluator(policy{}, tp), ids, opts...)
	return NewChecker(a, tp), rec
}

func TestTracingCheck(t *testing.T) {
	traceparent := "00-" + traceID + "-" + parentID + "-01"
	for _, tc := range []struct {
		name        string
		req         *extauthz.Request
		limiter     quotas.Limiter
		allowed     bool
		status      int
		reason      string
		fault       bool     // the check span's status is an error
		children    []string // in the order they end
		credential  string   // mcpauthz.credential.result
		method      string   // mcpauthz.credential.method, on the check span
		childFault  string   // the child span with an error status
		refusedSpan string   // the span saying allowed=false with a retry_after
	}{
		{name: "ok/allow continues the trace", req: request("echo", "authorization", "Bearer "+goodToken, "traceparent", traceparent, "tracestate", traceState),
			allowed: true, children: []string{CredentialsSpan, PolicySpan, LeasesSpan, LimitsSpan}, credential: ResultVerified, method: extauthz.MethodJWT},
		{name: "ok/anonymous allow", req: request("echo", "traceparent", traceparent),
			allowed: true, children: []string{CredentialsSpan, PolicySpan, LeasesSpan, LimitsSpan}, credential: ResultAnonymous, method: extauthz.MethodNone},
		{name: "ok/policy denial", req: request("forbidden", "authorization", "Bearer "+goodToken, "traceparent", traceparent),
			status: 403, reason: "tool_not_allowed", children: []string{CredentialsSpan, PolicySpan}, credential: ResultVerified, method: extauthz.MethodJWT},
		{name: "ok/invalid credential is a denial, not a fault", req: request("echo", "authorization", "Bearer "+badToken, "traceparent", traceparent),
			status: 401, reason: extauthz.ReasonUnauthorized, children: []string{CredentialsSpan}, credential: ResultInvalid},
		{name: "ok/rate limited", req: request("limited", "authorization", "Bearer "+goodToken, "traceparent", traceparent),
			status: 429, reason: extauthz.ReasonRateLimited, children: []string{CredentialsSpan, PolicySpan, LeasesSpan, LimitsSpan, ReleaseSpan},
			credential: ResultVerified, method: extauthz.MethodJWT, refusedSpan: LimitsSpan},
		{name: "fail/credential backend", req: request("echo", "authorization", "Bearer "+downToken, "traceparent", traceparent),
			status: 503, reason: extauthz.ReasonBackendFailure, fault: true, children: []string{CredentialsSpan}, credential: ResultError, childFault: CredentialsSpan},
		{name: "fail/policy error", req: request("broken", "authorization", "Bearer "+goodToken, "traceparent", traceparent),
			status: 503, reason: extauthz.ReasonPolicyError, fault: true, children: []string{CredentialsSpan, PolicySpan},
			credential: ResultVerified, method: extauthz.MethodJWT, childFault: PolicySpan},
		{name: "fail/limiter backend", req: request("echo", "authorization", "Bearer "+goodToken, "traceparent", traceparent), limiter: downLimiter{},
			status: 503, reason: extauthz.ReasonBackendFailure, fault: true, children: []string{CredentialsSpan, PolicySpan, LeasesSpan, LimitsSpan, ReleaseSpan},
			credential: ResultVerified, method: extauthz.MethodJWT, childFault: LimitsSpan},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limiter := tc.limiter
			if limiter == nil {
				limiter = memquota.New()
			}
			c, rec := traced(t, limiter)
			d, err := c.Check(context.Background(), tc.req)
			if d.Allowed != tc.allowed || d.Status != tc.status || (err != nil) != tc.fault {
				t.Fatalf("Check = allowed %v status %d err %v; want allowed %v status %d fault %v", d.Allowed, d.Status, err, tc.allowed, tc.status, tc.fault)
			}
			spans := rec.Ended()
			noSecrets(t, spans)
			check := spans[len(spans)-1]
			if check.Name() != CheckSpan || check.SpanKind() != trace.SpanKindServer {
				t.Fatalf("last span %q (%v); want %q, a server span", check.Name(), check.SpanKind(), CheckSpan)
			}
			sc := check.SpanContext()
			if got := sc.TraceID().String(); got != traceID {
				t.Errorf("trace id %s; want the traceparent's %s", got, traceID)
			}
			if p := check.Parent(); p.SpanID().String() != parentID || !p.IsRemote() {
				t.Errorf("parent %s (remote %v); want the traceparent's %s", p.SpanID(), p.IsRemote(), parentID)
			}
			if strings.Contains(tc.req.Headers["tracestate"], "vendor") && sc.TraceState().String() != traceState {
				t.Errorf("tracestate %q; want %q", sc.TraceState().String(), traceState)
			}
			var names []string
			for _, s := range spans[:len(spans)-1] {
				names = append(names, s.Name())
				if s.Parent().SpanID() != sc.SpanID() || s.SpanContext().TraceID() != sc.TraceID() {
					t.Errorf("span %q is not a child of the check span", s.Name())
				}
				wantCode := codes.Unset
				if s.Name() == tc.childFault {
					wantCode = codes.Error
				}
				if s.Status().Code != wantCode {
					t.Errorf("span %q status %v; want %v", s.Name(), s.Status(), wantCode)
				}
			}
			if strings.Join(names, ",") != strings.Join(tc.children, ",") {
				t.Errorf("child spans %v; want %v", names, tc.children)
			}

			attrs := attrMap(check)
			want := map[attribute.Key]any{
				keyDecisionID: d.DecisionID, keyAllowed: tc.allowed, keyTransport: "envoy-grpc", keyHTTPMethod: "POST",
				keyMCPMethod: "tools/call", keyMCPTool: tool(tc.req),
			}
			if tc.credential == ResultInvalid || tc.credential == ResultError {
				delete(want, keyMCPMethod) // the policy never saw it
				delete(want, keyMCPTool)
			}
			if tc.method != "" {
				want[keyCredentialMethod] = tc.method
			}
			if !tc.allowed {
				want[keyStatus] = int64(tc.status)
				want[keyReason] = tc.reason
			}
			for k, v := range want {
				if attrs[k] != v {
					t.Errorf("check span %s = %v; want %v", k, attrs[k], v)
				}
			}
			if wantCode := map[bool]codes.Code{false: codes.Unset, true: codes.Error}[tc.fault]; check.Status().Code != wantCode {
				t.Errorf("check span status %v; want %v", check.Status(), wantCode)
			}
			if got := attrMap(spanNamed(t, spans, CredentialsSpan))[keyCredentialResult]; got != tc.credential {
				t.Errorf("credential result %v; want %v", got, tc.credential)
			}
			if tc.refusedSpan != "" {
				a := attrMap(spanNamed(t, spans, tc.refusedSpan))
				if a[keyAllowed] != false || a[keyRetryAfter] == nil {
					t.Errorf("span %s = %v; want allowed=false and a retry_after", tc.refusedSpan, a)
				}
			}
			if ps := spanNamedOr(spans, PolicySpan); ps != nil {
				a := attrMap(ps)
				if a[keyPolicyRevision] != "rev-42" || a[keyPolicyPath] != "mcpauthz/authz/decision" {
					t.Errorf("policy span %v; want the revision and the path", a)
				}
			}
		})
	}
}

func TestTracingNewRootWithoutTraceparent(t *testing.T) {
	c, rec := traced(t, memquota.New())
	if _, err := c.Check(context.Background(), request("echo")); err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	check := spanNamed(t, spans, CheckSpan)
	if check.Parent().IsValid() {
		t.Errorf("check span has parent %v; want a root span", check.Parent())
	}
	if !check.SpanContext().TraceID().IsValid() || check.SpanContext().TraceID().String() == traceID {
		t.Errorf("trace id %s; want a new one", check.SpanContext().TraceID())
	}
	for _, s := range spans {
		if s.SpanContext().TraceID() != check.SpanContext().TraceID() {
			t.Errorf("span %q in trace %s; want the check's", s.Name(), s.SpanContext().TraceID())
		}
	}
}

func TestTracingMalformedTraceparent(t *testing.T) {
	c, rec := traced(t, memquota.New())
	for _, tp := range []string{"garbage", "00-" + strings.Repeat("0", 32) + "-" + parentID + "-01", "ff-" + traceID + "-" + parentID + "-01"} {
		if _, err := c.Check(context.Background(), request("echo", "traceparent", tp)); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range rec.Ended() {
		if s.Name() == CheckSpan && s.Parent().IsValid() {
			t.Errorf("a malformed traceparent became parent %v", s.Parent())
		}
	}
}

func TestTracingUnsampledParentRecordsNothing(t *testing.T) {
	c, rec := traced(t, memquota.New())
	d, err := c.Check(context.Background(), request("echo", "traceparent", "00-"+traceID+"-"+parentID+"-00"))
	if err != nil || !d.Allowed {
		t.Fatal(d, err)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans recorded under an unsampled parent; want none", n)
	}
}

func TestTracingBatch(t *testing.T) {
	c, rec := traced(t, memquota.New(), extauthz.WithMCP(mcp.Options{AllowBatches: true}, "/mcp"))
	req := request("")
	req.Body = `[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}},{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"greet"}}]`
	if d, err := c.Check(context.Background(), req); err != nil || !d.Allowed {
		t.Fatal(d, err)
	}
	spans := rec.Ended()
	a := attrMap(spanNamed(t, spans, CheckSpan))
	if a[keyMCPMethod] != "tools/call" || a[keyMCPTool] != "echo" || a[keyMCPMessages] != int64(2) {
		t.Errorf("check span %v; want the first message's method and tool, and 2 messages", a)
	}
	var prompts int
	for _, s := range spans {
		if s.Name() == PolicySpan && attrMap(s)[keyMCPPrompt] == "greet" {
			prompts++
		}
	}
	if prompts != 1 {
		t.Errorf("%d policy spans name the prompt; want 1", prompts)
	}
}

// panicker panics while deciding.
type panicker struct{}

func (panicker) Check(context.Context, *extauthz.Request) (extauthz.Decision, error) { panic("boom") }

func TestTracingPanicEndsTheSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	c := NewChecker(panicker{}, tp)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic was swallowed")
			}
		}()
		c.Check(context.Background(), request("echo"))
	}()
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Status().Code != codes.Error {
		t.Fatalf("spans %v; want one check span with an error status", spans)
	}
}

func TestTracingNoopProviderCallsThrough(t *testing.T) {
	for _, tp := range []trace.TracerProvider{nil, noop.NewTracerProvider()} {
		a := extauthz.NewAuthorizer(NewPolicyEvaluator(policy{}, tp), func() string { return "d" },
			extauthz.WithIdentityVerifier(NewIdentityVerifier(verifier{}, tp)),
			extauthz.WithLimiter(NewLimiter(memquota.New(), tp)),
			extauthz.WithLeaser(NewLeaser(memquota.NewLeases(), tp)))
		req := request("echo", "authorization", "Bearer "+goodToken, "traceparent", "00-"+traceID+"-"+parentID+"-01")
		d, err := NewChecker(a, tp).Check(context.Background(), req)
		if err != nil || !d.Allowed || d.DecisionID != "d" {
			t.Fatalf("%T: %v %v", tp, d, err)
		}
	}
}

// noSecrets fails when a credential, a header value other than the trace
// context's or a body value shows in any span.
func noSecrets(t *testing.T, spans []sdktrace.ReadOnlySpan) {
	t.Helper()
	for _, s := range spans {
		texts := []string{s.Name(), s.Status().Description}
		for _, kv := range s.Attributes() {
			texts = append(texts, string(kv.Key), kv.Value.Emit())
		}
		for _, e := range s.Events() {
			texts = append(texts, e.Name)
			for _, kv := range e.Attributes {
				texts = append(texts, kv.Value.Emit())
			}
		}
		for _, text := range texts {
			for _, secret := range secrets {
				if strings.Contains(text, secret) {
					t.Errorf("span %q carries %q", s.Name(), text)
				}
			}
		}
	}
}

func attrMap(s sdktrace.ReadOnlySpan) map[attribute.Key]any {
	m := map[attribute.Key]any{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value.AsInterface()
	}
	return m
}

func spanNamed(t *testing.T, spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	s := spanNamedOr(spans, name)
	if s == nil {
		t.Fatalf("no %q span among %d", name, len(spans))
	}
	return s
}

func spanNamedOr(spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	for _, s := range spans {
		if s.Name() == name {
			return s
		}
	}
	return nil
}
