package extauthz

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/mcp"
)

// fakePolicy decides with a function and records the inputs it saw.
type fakePolicy struct {
	mu     sync.Mutex
	decide func(ctx context.Context, in *PolicyInput) (Decision, error)
	seen   []PolicyInput
}

func (f *fakePolicy) Evaluate(ctx context.Context, in *PolicyInput) (PolicyResult, error) {
	f.mu.Lock()
	f.seen = append(f.seen, *in)
	f.mu.Unlock()
	d, err := f.decide(ctx, in)
	return PolicyResult{Decision: d, Path: "data.test.decision", Revision: "r1"}, err
}

func allow(context.Context, *PolicyInput) (Decision, error) { return Decision{Allowed: true}, nil }

// fakeIdentity returns a fixed identity or error.
type fakeIdentity struct {
	id  Identity
	err error
}

func (f fakeIdentity) Verify(context.Context, *Request) (Identity, error) { return f.id, f.err }

// recorder is a DecisionLogger that keeps events.
type recorder struct {
	mu     sync.Mutex
	events []DecisionEvent
}

func (r *recorder) LogDecision(ev DecisionEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func fixedIDs() func() string { return func() string { return "dec-1" } }

func mcpRequest(body string, headers ...string) *Request {
	h := map[string]string{"content-type": "application/json"}
	for i := 0; i+1 < len(headers); i += 2 {
		h[headers[i]] = headers[i+1]
	}
	return &Request{Method: "POST", Path: "/mcp", Headers: h, Body: body}
}

const toolsCall = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"}}`

func header(hs []Header, name string) (string, bool) {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

func TestCheck(t *testing.T) {
	denyWith := func(status int, reason string) func(context.Context, *PolicyInput) (Decision, error) {
		return func(context.Context, *PolicyInput) (Decision, error) {
			return Decision{Status: status, Reason: reason}, nil
		}
	}
	tests := []struct {
		name     string
		req      *Request
		decide   func(context.Context, *PolicyInput) (Decision, error)
		identity IdentityVerifier
		opts     []Option
		allowed  bool
		status   int
		reason   string
		rpcCode  int  // JSON-RPC error code expected in the body; 0 for none
		wantErr  bool // an internal fault is reported
	}{
		{name: "ok/allow", req: mcpRequest(toolsCall), decide: allow, allowed: true},
		{name: "ok/allow plain GET", req: &Request{Method: "GET", Path: "/healthz"}, decide: allow, allowed: true},
		{name: "ok/policy denial keeps status and reason", req: mcpRequest(toolsCall), decide: denyWith(http.StatusForbidden, "tool_not_allowed"),
			status: 403, reason: "tool_not_allowed", rpcCode: -32003},
		{name: "ok/policy denial without status is 403", req: &Request{Method: "GET", Path: "/x"}, decide: denyWith(0, "no"), status: 403, reason: "no"},
		{name: "ok/policy 429 for MCP", req: mcpRequest(toolsCall), decide: denyWith(http.StatusTooManyRequests, "rate"), status: 429, reason: "rate", rpcCode: -32029},
		{name: "fail/undefined policy denies", req: mcpRequest(toolsCall),
			decide: func(context.Context, *PolicyInput) (Decision, error) {
				return Decision{Allowed: true}, ErrPolicyUndefined // an allow next to an error is never used
			},
			status: 403, reason: ReasonPolicyUndef, rpcCode: -32003, wantErr: true},
		{name: "fail/evaluation error is 503", req: mcpRequest(toolsCall),
			decide: func(context.Context, *PolicyInput) (Decision, error) {
				return Decision{Allowed: true}, errors.New("eval failed")
			},
			status: 503, reason: ReasonPolicyError, rpcCode: mcp.CodeInternalError, wantErr: true},
		{name: "fail/bad result shape is 503", req: &Request{Method: "GET", Path: "/x"},
			decide: func(context.Context, *PolicyInput) (Decision, error) { return Decision{}, ErrPolicyResult },
			status: 503, reason: ReasonPolicyError, wantErr: true},
		{name: "fail/allow after the deadline is denied", req: mcpRequest(toolsCall), opts: []Option{WithTimeout(20 * time.Millisecond)},
			decide: func(ctx context.Context, _ *PolicyInput) (Decision, error) {
				<-ctx.Done()
				return Decision{Allowed: true}, nil
			},
			status: 503, reason: ReasonDeadline, rpcCode: mcp.CodeInternalError, wantErr: true},
		{name: "fail/evaluation cut by the deadline", req: mcpRequest(toolsCall), opts: []Option{WithTimeout(20 * time.Millisecond)},
			decide: func(ctx context.Context, _ *PolicyInput) (Decision, error) {
				<-ctx.Done()
				return Decision{}, ctx.Err()
			},
			status: 503, reason: ReasonDeadline, rpcCode: mcp.CodeInternalError, wantErr: true},
		{name: "fail/invalid credential is 401, never anonymous", req: mcpRequest(toolsCall), decide: allow,
			identity: fakeIdentity{err: ErrInvalidCredential}, status: 401, reason: ReasonUnauthorized, rpcCode: -32001},
		{name: "fail/identity backend down is 503", req: mcpRequest(toolsCall), decide: allow,
			identity: fakeIdentity{err: errors.New("store down")}, status: 503, reason: ReasonBackendFailure, rpcCode: mcp.CodeInternalError, wantErr: true},
		{name: "fail/malformed JSON body", req: mcpRequest(`{"jsonrpc":"2.0",`), decide: allow, status: 400, reason: ReasonBadRequest},
		{name: "fail/duplicate keys", req: mcpRequest(`{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"x"}}`),
			decide: allow, status: 400, reason: ReasonBadRequest},
		{name: "fail/invalid MCP message", req: mcpRequest(`{"jsonrpc":"1.0","id":1,"method":"ping"}`), decide: allow,
			status: 400, reason: ReasonMCPInvalid, rpcCode: mcp.CodeInvalidRequest},
		{name: "fail/header mismatch", req: mcpRequest(toolsCall, "mcp-method", "tools/list"), decide: allow,
			status: 400, reason: ReasonMCPInvalid, rpcCode: mcp.CodeHeaderMismatch},
		{name: "fail/batch refused by default", req: mcpRequest(`[` + toolsCall + `]`), decide: allow,
			status: 400, reason: ReasonMCPInvalid, rpcCode: mcp.CodeInvalidRequest},
		{name: "fail/truncated MCP body", req: mcpRequest(toolsCall, "content-length", "100000"), decide: allow,
			status: 413, reason: ReasonBodyTruncated, rpcCode: mcp.CodeParseError},
		{name: "fail/truncated MCP body outside the MCP endpoint",
			req:    func() *Request { r := mcpRequest(toolsCall[:40]); r.Path = "/rpc"; r.BodyTruncated = true; return r }(),
			decide: allow, status: 413, reason: ReasonBodyTruncated, rpcCode: mcp.CodeParseError},
		{name: "ok/truncated JSON that is not JSON-RPC goes to the policy",
			req:    &Request{Method: "POST", Path: "/upload", Headers: map[string]string{"content-type": "application/json"}, Body: `{"a":`, BodyTruncated: true},
			decide: allow, allowed: true},
		{name: "fail/proxy marked body partial", req: func() *Request { r := mcpRequest(toolsCall); r.BodyTruncated = true; return r }(),
			decide: allow, status: 413, reason: ReasonBodyTruncated, rpcCode: mcp.CodeParseError},
		{name: "fail/envoy header marks body partial", req: mcpRequest(toolsCall, PartialBodyHeader, "true"),
			decide: allow, status: 413, reason: ReasonBodyTruncated, rpcCode: mcp.CodeParseError},
		{name: "fail/MCP endpoint with non-JSON body", req: &Request{Method: "POST", Path: "/mcp", Headers: map[string]string{"content-type": "text/plain"}, Body: "hi"},
			opts: []Option{WithMCP(mcp.Options{}, "/mcp")}, decide: allow, status: 400, reason: ReasonMCPInvalid, rpcCode: mcp.CodeParseError},
		{name: "fail/MCP endpoint subpath with non-RPC JSON", req: &Request{Method: "POST", Path: "/mcp/x?y=1", Headers: map[string]string{"content-type": "application/json"}, Body: `{"a":1}`},
			opts: []Option{WithMCP(mcp.Options{}, "/mcp/")}, decide: allow, status: 400, reason: ReasonMCPInvalid, rpcCode: mcp.CodeInvalidRequest},
		{name: "ok/JSON outside MCP endpoints is not MCP", req: &Request{Method: "POST", Path: "/api", Headers: map[string]string{"content-type": "application/json"}, Body: `{"a":1}`},
			opts: []Option{WithMCP(mcp.Options{}, "/mcp")}, decide: allow, allowed: true},
		{name: "fail/no method", req: &Request{Path: "/"}, decide: allow, status: 400, reason: ReasonBadRequest},
		{name: "fail/relative path", req: &Request{Method: "GET", Path: "admin"}, decide: allow, status: 400, reason: ReasonBadRequest},
		{name: "fail/bad percent-encoding", req: &Request{Method: "GET", Path: "/a%zzb"}, decide: allow, status: 400, reason: ReasonBadRequest},
		{name: "ok/OPTIONS *", req: &Request{Method: "OPTIONS", Path: "*"}, decide: allow, allowed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]Option{}, tt.opts...)
			if tt.identity != nil {
				opts = append(opts, WithIdentityVerifier(tt.identity))
			}
			a := NewAuthorizer(&fakePolicy{decide: tt.decide}, fixedIDs(), opts...)
			d, err := a.Check(context.Background(), tt.req)
			if d.Allowed != tt.allowed {
				t.Fatalf("allowed = %v, want %v (%+v)", d.Allowed, tt.allowed, d)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if d.DecisionID != "dec-1" {
				t.Fatalf("decision id %q", d.DecisionID)
			}
			if tt.allowed {
				return
			}
			if d.Status != tt.status || d.Reason != tt.reason {
				t.Fatalf("status %d reason %q, want %d %q", d.Status, d.Reason, tt.status, tt.reason)
			}
			if id, _ := header(d.Headers, "x-mcpauthz-decision-id"); id != "dec-1" {
				t.Fatalf("denial lacks the decision id header: %+v", d.Headers)
			}
			if tt.rpcCode == 0 {
				if d.Body != "" {
					t.Fatalf("unexpected body %s", d.Body)
				}
				return
			}
			var reply struct {
				JSONRPC string          `json:"jsonrpc"`
				ID      json.RawMessage `json:"id"`
				Error   struct {
					Code int `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(d.Body), &reply); err != nil {
				t.Fatalf("body is not a JSON-RPC error: %v: %s", err, d.Body)
			}
			if reply.JSONRPC != "2.0" || reply.Error.Code != tt.rpcCode {
				t.Fatalf("body %s, want code %d", d.Body, tt.rpcCode)
			}
			if ct, _ := header(d.Headers, "content-type"); ct != "application/json" {
				t.Fatalf("content-type %q", ct)
			}
		})
	}
}

func TestCheckEchoesRequestID(t *testing.T) {
	a := NewAuthorizer(&fakePolicy{decide: func(context.Context, *PolicyInput) (Decision, error) {
		return Decision{Status: 403}, nil
	}}, fixedIDs())
	d, _ := a.Check(context.Background(), mcpRequest(`{"jsonrpc":"2.0","id":"req-\"9","method":"tools/call","params":{"name":"x"}}`))
	if !strings.Contains(d.Body, `"id":"req-\"9"`) {
		t.Fatalf("the JSON-RPC error does not carry the request id: %s", d.Body)
	}
	d, _ = a.Check(context.Background(), mcpRequest(`{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{}}`))
	if !strings.Contains(d.Body, `"id":12`) {
		t.Fatalf("a parse error does not carry the request id: %s", d.Body)
	}
}

func TestIdentityHeaders(t *testing.T) {
	id := Identity{Authenticated: true, Method: MethodJWT, Subject: "user-1", Tenant: "org-1", Roles: []string{"member", "viewer"}}
	req := &Request{Method: "GET", Path: "/x", Headers: map[string]string{
		"x-mcpauthz-user":   "attacker",
		"x-mcpauthz-admin":  "true",
		"x-mcpauthz-tenant": "other-org",
		"x-other":           "kept",
	}}
	a := NewAuthorizer(&fakePolicy{decide: func(context.Context, *PolicyInput) (Decision, error) {
		return Decision{Allowed: true, Headers: []Header{{"x-policy", "1"}}}, nil
	}}, fixedIDs(), WithIdentityVerifier(fakeIdentity{id: id}), WithIdentityHeaders(upstreamIDs()))
	d, err := a.Check(context.Background(), req)
	if err != nil || !d.Allowed {
		t.Fatalf("%+v %v", d, err)
	}
	for name, want := range map[string]string{
		"x-mcpauthz-user": "user-1", "x-mcpauthz-tenant": "org-1", "x-mcpauthz-roles": "member,viewer",
		"x-mcpauthz-auth-method": "jwt", "x-mcpauthz-decision-id": "dec-1", "x-policy": "1",
	} {
		if got, _ := header(d.Headers, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	// A client-sent header the sidecar sets is overwritten, not removed
	// (proxies remove after they add); one it does not set is removed.
	if !slices.Contains(d.RequestHeadersToRemove, "x-mcpauthz-admin") {
		t.Errorf("client-sent x-mcpauthz-admin not removed: %v", d.RequestHeadersToRemove)
	}
	for _, name := range d.RequestHeadersToRemove {
		if _, set := header(d.Headers, name); set {
			t.Errorf("%s is both set and removed", name)
		}
		if name == "x-other" {
			t.Error("an unrelated header was removed")
		}
	}
	if d.DynamicMetadata["decision_id"] != "dec-1" {
		t.Errorf("dynamic metadata %v", d.DynamicMetadata)
	}
}

func upstreamIDs() IdentityHeaders {
	h := DefaultIdentityHeaders
	h.UpstreamDecisionID = true
	return h
}

func TestAnonymousForgedIdentityHeadersRemoved(t *testing.T) {
	req := &Request{Method: "GET", Path: "/x", Headers: map[string]string{"x-mcpauthz-user": "admin", "x-mcpauthz-tenant": "org-9"}}
	a := NewAuthorizer(&fakePolicy{decide: allow}, fixedIDs())
	d, _ := a.Check(context.Background(), req)
	slices.Sort(d.RequestHeadersToRemove)
	if got := strings.Join(d.RequestHeadersToRemove, ","); got != "x-mcpauthz-tenant,x-mcpauthz-user" {
		t.Fatalf("removed %q", got)
	}
	// An anonymous request carries no identity headers at all, and no
	// decision id upstream unless configured.
	if len(d.Headers) != 0 {
		t.Fatalf("anonymous allow sets headers %+v", d.Headers)
	}
	a = NewAuthorizer(&fakePolicy{decide: allow}, fixedIDs(), WithIdentityHeaders(upstreamIDs()))
	d, _ = a.Check(context.Background(), req)
	if v, _ := header(d.Headers, "x-mcpauthz-decision-id"); v != "dec-1" || len(d.Headers) != 1 {
		t.Fatalf("headers %+v", d.Headers)
	}
}

func TestBatches(t *testing.T) {
	batch := `[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}},` +
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete"}},` +
		`{"jsonrpc":"2.0","method":"notifications/progress"}]`
	denyDelete := func(_ context.Context, in *PolicyInput) (Decision, error) {
		if in.Message.Tool == "delete" {
			return Decision{Status: 403, Reason: "no_delete"}, nil
		}
		return Decision{Allowed: true, Headers: []Header{{"x-tool", in.Message.Tool + in.Message.Method}}}, nil
	}
	tests := []struct {
		name    string
		body    string
		allowed bool
		evals   int
	}{
		{"fail/one denial denies the batch", batch, false, 2},
		{"ok/every element allowed", strings.Replace(batch, "delete", "echo", 1), true, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &fakePolicy{decide: denyDelete}
			a := NewAuthorizer(p, fixedIDs(), WithMCP(mcp.Options{AllowBatches: true}))
			d, _ := a.Check(context.Background(), mcpRequest(tt.body))
			if d.Allowed != tt.allowed || len(p.seen) != tt.evals {
				t.Fatalf("allowed %v after %d evaluations, want %v after %d", d.Allowed, len(p.seen), tt.allowed, tt.evals)
			}
			for i, in := range p.seen {
				if in.MCP == nil || !in.MCP.Batch || in.Message != &in.MCP.Messages[i] {
					t.Fatalf("evaluation %d did not see message %d of the batch", i, i)
				}
			}
			if !tt.allowed {
				var replies []map[string]any
				if err := json.Unmarshal([]byte(d.Body), &replies); err != nil || len(replies) != 2 {
					t.Fatalf("a denied batch should get one error per request: %s", d.Body)
				}
			} else if v, _ := header(d.Headers, "x-tool"); v != "echotools/call" {
				t.Fatalf("allowed batch headers %+v", d.Headers)
			}
		})
	}
}

func TestPolicyMetadataIsNotModified(t *testing.T) {
	shared := map[string]any{"tier": "pro"}
	a := NewAuthorizer(&fakePolicy{decide: func(context.Context, *PolicyInput) (Decision, error) {
		return Decision{Allowed: true, DynamicMetadata: shared}, nil
	}}, fixedIDs())
	d, _ := a.Check(context.Background(), &Request{Method: "GET", Path: "/"})
	if d.DynamicMetadata["decision_id"] != "dec-1" || d.DynamicMetadata["tier"] != "pro" {
		t.Fatalf("metadata %v", d.DynamicMetadata)
	}
	if _, ok := shared["decision_id"]; ok {
		t.Fatal("the policy's metadata map was written to")
	}
}

// TestQueryRewriteWhereTheQueryIsFixed: an allow that rewrites the query
// stands where the transport can carry it out (Envoy), and is a denial,
// logged as one, where it cannot (forward-auth).
func TestQueryRewriteWhereTheQueryIsFixed(t *testing.T) {
	p := &fakePolicy{decide: func(context.Context, *PolicyInput) (Decision, error) {
		return Decision{Allowed: true, QueryParametersToRemove: []string{"admin"}}, nil
	}}
	for _, fixed := range []bool{false, true} {
		rec := &recorder{}
		a := NewAuthorizer(p, fixedIDs(), WithDecisionLogger(rec))
		d, err := a.Check(context.Background(), &Request{Method: "GET", Path: "/x?admin=1", FixedQuery: fixed})
		if d.Allowed == fixed || (err != nil) != fixed || rec.events[0].Allowed != d.Allowed {
			t.Fatalf("fixed query %v: %+v %v, logged %+v", fixed, d, err, rec.events[0])
		}
		if fixed && (d.Status != http.StatusInternalServerError || d.Reason != ReasonInternal) {
			t.Fatalf("denial %+v", d)
		}
	}
}

func TestPolicyInput(t *testing.T) {
	p := &fakePolicy{decide: allow}
	a := NewAuthorizer(p, fixedIDs())
	req := mcpRequest(toolsCall, "mcp-protocol-version", "2025-06-18", "mcp-session-id", "s-1")
	if _, err := a.Check(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	in := p.seen[0]
	if in.Request != req || in.DecisionID != "dec-1" || in.Body == nil || in.Identity == nil || in.Identity.Method != MethodNone {
		t.Fatalf("input %+v", in)
	}
	if in.Message == nil || in.Message.Tool != "echo" || in.MCP.SessionID != "s-1" || in.MCP.ProtocolVersion != "2025-06-18" {
		t.Fatalf("mcp %+v / %+v", in.MCP, in.Message)
	}
	if in.Record {
		t.Fatal("documents requested with no decision log")
	}
}

func TestDecisionLog(t *testing.T) {
	rec := &recorder{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := NewAuthorizer(&fakePolicy{decide: func(context.Context, *PolicyInput) (Decision, error) {
		return Decision{Status: 403, Reason: "nope"}, nil
	}}, fixedIDs(), WithDecisionLogger(rec), WithClock(func() time.Time { return now }))
	if _, err := a.Check(context.Background(), mcpRequest(toolsCall)); err != nil {
		t.Fatal(err)
	}
	if len(rec.events) != 1 {
		t.Fatalf("%d events", len(rec.events))
	}
	ev := rec.events[0]
	if ev.DecisionID != "dec-1" || ev.Allowed || ev.Status != 403 || ev.Reason != "nope" || ev.Path != "data.test.decision" || ev.Revision != "r1" || !ev.Time.Equal(now) {
		t.Fatalf("event %+v", ev)
	}
}

func TestDecisionIDs(t *testing.T) {
	g, err := NewDecisionIDs(strings.NewReader(strings.Repeat("k", 16)))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 1000 {
		id := g.Next()
		if len(id) != 36 || id[8] != '-' || id[14] != '8' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("id %q is not a version 8 UUID", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
	if _, err := NewDecisionIDs(strings.NewReader("short")); err == nil {
		t.Fatal("a short seed was accepted")
	}
}

func TestMask(t *testing.T) {
	m := NewMask("/a/b", "/c", "/d~1e/f~0g")
	if !m.Child("a").Child("b").Selected() || m.Child("a").Selected() || !m.Child("c").Selected() {
		t.Fatal("mask paths")
	}
	if !m.Child("d/e").Child("f~g").Selected() {
		t.Fatal("escaped pointer segments")
	}
	var nilMask *Mask
	if nilMask.Child("a") != nil || nilMask.Selected() {
		t.Fatal("nil mask selects something")
	}
}
