package envoy

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/envoygrpc"
	"github.com/mcpauthz/mcpauthz/extauthz/forwardauth"
	"github.com/mcpauthz/mcpauthz/extauthz/policy"
	"github.com/mcpauthz/mcpauthz/mcp"
	"github.com/mcpauthz/mcpauthz/policies"
	"github.com/mcpauthz/mcpauthz/quotas/memquota"
)

// resourceURL is the MCP endpoint clients reach through Envoy's listener,
// as mcpauthz's mcp.resource.url names it.
const resourceURL = "http://localhost:10000/mcp"

// Credentials the fake verifier knows.
const (
	acmeMember   = "Bearer member-of-acme"
	globexMember = "Bearer member-of-globex"
	acmeKey      = "mcpk_acme"
)

// verifier stands in for mcpauthz's credential chain: a bearer token or an
// x-api-key names an identity, no credential is anonymous.
type verifier struct{}

func (verifier) Verify(_ context.Context, req *extauthz.Request) (extauthz.Identity, error) {
	if key, ok := req.Headers["x-api-key"]; ok {
		if key != acmeKey {
			return extauthz.Identity{}, fmt.Errorf("%w: unknown key", extauthz.ErrInvalidCredential)
		}
		return extauthz.Identity{Authenticated: true, Method: extauthz.MethodAPIKey, Subject: "key:k-1", UserID: "u-acme",
			Tenant: "acme", OrgRole: "member", Scopes: []string{"mcp:tools:call", "mcp:tools:list"},
			APIKey: &extauthz.APIKeyInfo{ID: "k-1", Name: "ci", Tier: "pro"}}, nil
	}
	switch req.Headers["authorization"] {
	case "":
		return extauthz.Anonymous, nil
	case acmeMember:
		return member("acme"), nil
	case globexMember:
		return member("globex"), nil
	}
	return extauthz.Identity{}, fmt.Errorf("%w: unknown token", extauthz.ErrInvalidCredential)
}

// member is an organization's member signed in just now.
func member(org string) extauthz.Identity {
	return extauthz.Identity{Authenticated: true, Method: extauthz.MethodSession, Subject: "u-" + org, UserID: "u-" + org,
		Tenant: org, Tier: "pro", OrgRole: "member", Roles: []string{"member"},
		Session: &extauthz.SessionInfo{ID: "s-" + org, AuthTime: time.Now()}}
}

// reasons records each decision's reason.
type reasons struct {
	mu   sync.Mutex
	seen []string
}

func (r *reasons) LogDecision(ev extauthz.DecisionEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, ev.Reason)
}

func (r *reasons) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// sidecar is mcpauthz as the tests drive it: the real authorizer, policy
// engine and in-process limiter, behind the transport a configuration
// uses.
type sidecar struct {
	gw       *gateway
	authz    *extauthz.Authorizer
	resource *extauthz.ProtectedResource
	reasons  *reasons
	leases   *memquota.Leases
}

func newSidecar(t *testing.T, file string, bundle fs.FS) *sidecar {
	t.Helper()
	engine, err := bundles.NewEngine(bundles.DefaultDecisionPath, bundles.WithBundleTests(false, 0))
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundles.LoadFS(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Activate(context.Background(), b, "test"); err != nil {
		t.Fatal(err)
	}
	pr, err := extauthz.NewProtectedResource(mcp.ResourceMetadata{
		Resource: resourceURL, AuthorizationServers: []string{"http://localhost:9193"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := extauthz.NewDecisionIDs(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rs := &reasons{}
	leases := memquota.NewLeases()
	a := extauthz.NewAuthorizer(policy.NewEvaluator(engine), ids.Next,
		extauthz.WithIdentityVerifier(verifier{}),
		extauthz.WithLimiter(memquota.New()),
		extauthz.WithLeaser(leases),
		extauthz.WithProtectedResource(pr),
		extauthz.WithDecisionLogger(rs),
		extauthz.WithTimeout(5*time.Second), // these tests judge decisions, not their speed
	)
	return &sidecar{gw: newGateway(t, file), authz: a, resource: pr, reasons: rs, leases: leases}
}

// forwardAuth is mcpauthz's forward-auth listener as the configuration
// expects it: its path_prefix, Envoy trusted.
func (s *sidecar) forwardAuth() *forwardauth.Handler {
	return forwardauth.NewHandler(s.authz, forwardauth.Config{
		PathPrefix:        s.gw.authz.GetHttpService().GetPathPrefix(),
		TrustedProxies:    []netip.Prefix{netip.MustParsePrefix(envoyAddr + "/32")},
		ProtectedResource: s.resource,
	}, slog.New(slog.DiscardHandler))
}

// outcome is what becomes of a request, whichever the transport.
type outcome struct {
	routing
	local    int // Envoy's own answer, without asking the authorizer
	allowed  bool
	status   int               // of a denial
	upstream map[string]string // headers set on the request sent upstream
	removed  []string          // headers removed from it
	client   map[string]string // headers on the response to the client
	body     string            // of a denial
	reason   string            // the decision's reason
}

// send takes a request through Envoy, as the configuration sets it up, and
// the sidecar.
func (s *sidecar) send(t *testing.T, r request) outcome {
	t.Helper()
	out := outcome{routing: s.gw.route(r)}
	if !out.checked {
		t.Fatalf("%s %s skips ext_authz (route %s)", r.method, r.path, out.route)
	}
	before := len(s.reasons.all())
	if s.gw.authz.GetGrpcService() != nil {
		s.sendGRPC(t, r, &out)
	} else {
		s.sendHTTP(t, r, &out)
	}
	if got := s.reasons.all(); out.local == 0 && len(got) == before+1 {
		out.reason = got[before]
	} else if out.local != 0 && len(got) != before {
		t.Fatal("the authorizer was asked about a request Envoy answered itself")
	}
	return out
}

func (s *sidecar) sendGRPC(t *testing.T, r request, out *outcome) {
	t.Helper()
	cr, local := s.gw.checkRequest(r, out.routing)
	if local != 0 {
		out.local = local
		return
	}
	resp, err := envoygrpc.NewService(s.authz, slog.New(slog.DiscardHandler)).Check(context.Background(), cr)
	if err != nil {
		t.Fatalf("Check returned a gRPC error: %v", err)
	}
	headers := func(hs []*corev3.HeaderValueOption) map[string]string {
		m := map[string]string{}
		for _, h := range hs {
			m[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		return m
	}
	if ok := resp.GetOkResponse(); ok != nil {
		out.allowed = true
		out.upstream = headers(ok.GetHeaders())
		out.removed = ok.GetHeadersToRemove()
		out.client = headers(ok.GetResponseHeadersToAdd())
		for _, h := range ok.GetHeaders() {
			if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Errorf("%s is appended to the client's, not set", h.GetHeader().GetKey())
			}
		}
		return
	}
	den := resp.GetDeniedResponse()
	out.status = int(den.GetStatus().GetCode())
	out.client = headers(den.GetHeaders())
	out.body = den.GetBody()
}

func (s *sidecar) sendHTTP(t *testing.T, r request, out *outcome) {
	t.Helper()
	req, local := s.gw.httpCheck(r)
	if local != 0 {
		out.local = local
		return
	}
	rec := httptest.NewRecorder()
	s.forwardAuth().ServeHTTP(rec, req)
	ans := s.gw.httpAnswer(rec)
	flat := func(h http.Header) map[string]string {
		m := map[string]string{}
		for k := range h {
			m[strings.ToLower(k)] = h.Get(k)
		}
		return m
	}
	out.allowed, out.removed, out.body = ans.allowed, ans.removed, ans.body
	out.upstream, out.client = flat(ans.upstream), flat(ans.client)
	if !ans.allowed {
		out.status = ans.status
	}
}

// mcpCall is a tools/call of tool as an MCP client posts it.
func mcpCall(host, path, tool string, headers map[string]string) request {
	h := map[string]string{"content-type": "application/json", "accept": "application/json, text/event-stream"}
	for k, v := range headers {
		h[k] = v
	}
	return request{method: http.MethodPost, host: host, path: path, headers: h,
		body: fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":%q,"arguments":{"text":"hi"}}}`, tool)}
}

// TestDecisions: requests through each configuration get the decisions
// the README and policies/README.md promise, from the real default policy.
func TestDecisions(t *testing.T) {
	const host = "localhost:10000"
	tests := []struct {
		name  string
		files []string // nil: both
		req   request
		check func(t *testing.T, o outcome)
	}{
		{
			name: "ok/a member calls a read-only tool",
			req:  mcpCall(host, "/mcp", "echo", map[string]string{"authorization": acmeMember, "x-mcpauthz-user": "u-admin", "x-mcpauthz-admin": "1"}),
			check: func(t *testing.T, o outcome) {
				allowed(t, o)
				want := map[string]string{"x-mcpauthz-user": "u-acme", "x-mcpauthz-tenant": "acme", "x-mcpauthz-auth-method": "session", "x-mcpauthz-roles": "member"}
				for k, v := range want {
					if o.upstream[k] != v {
						t.Errorf("upstream %s = %q, want %q (all: %v)", k, o.upstream[k], v, o.upstream)
					}
				}
				if !slices.Contains(o.removed, "x-mcpauthz-admin") || slices.Contains(o.removed, "x-mcpauthz-user") {
					t.Errorf("removed %v: the client's x-mcpauthz-admin must go, x-mcpauthz-user is overwritten", o.removed)
				}
				if o.cluster != "mcp_server" || o.path != "/mcp" {
					t.Errorf("sent to %s %s", o.cluster, o.path)
				}
			},
		},
		{
			name: "ok/an API key in x-api-key",
			req:  mcpCall(host, "/mcp", "echo", map[string]string{"x-api-key": acmeKey}),
			check: func(t *testing.T, o outcome) {
				allowed(t, o)
				if o.upstream["x-mcpauthz-auth-method"] != "api_key" || o.upstream["x-mcpauthz-user"] != "key:k-1" {
					t.Errorf("upstream %v", o.upstream)
				}
			},
		},
		{
			name: "fail/no credential is a 401 naming the resource metadata",
			req:  mcpCall(host, "/mcp", "echo", nil),
			check: func(t *testing.T, o outcome) {
				denied(t, o, http.StatusUnauthorized)
				want := `resource_metadata="http://localhost:10000/.well-known/oauth-protected-resource/mcp"`
				if !strings.Contains(o.client["www-authenticate"], want) {
					t.Errorf("www-authenticate %q, want %s", o.client["www-authenticate"], want)
				}
				var reply struct {
					ID    any `json:"id"`
					Error struct {
						Code int `json:"code"`
					} `json:"error"`
				}
				if err := json.Unmarshal([]byte(o.body), &reply); err != nil || reply.ID != float64(1) || reply.Error.Code == 0 {
					t.Errorf("body %q is not a JSON-RPC error for id 1", o.body)
				}
				if !strings.HasPrefix(o.client["content-type"], "application/json") {
					t.Errorf("content-type %q", o.client["content-type"])
				}
			},
		},
		{
			name: "fail/a credential that does not verify",
			req:  mcpCall(host, "/mcp", "echo", map[string]string{"authorization": "Bearer forged"}),
			check: func(t *testing.T, o outcome) {
				denied(t, o, http.StatusUnauthorized)
				if !strings.Contains(o.client["www-authenticate"], `error="invalid_token"`) {
					t.Errorf("www-authenticate %q", o.client["www-authenticate"])
				}
			},
		},
		{
			name: "ok/the caller's organization in the path",
			req:  mcpCall(host, "/orgs/acme/mcp", "echo", map[string]string{"authorization": acmeMember}),
			check: func(t *testing.T, o outcome) {
				allowed(t, o)
				if o.route != "org_mcp" || o.path != "/mcp" {
					t.Errorf("route %s sends %s upstream", o.route, o.path)
				}
			},
		},
		{
			name: "fail/another organization in the path",
			req:  mcpCall(host, "/orgs/globex/mcp", "echo", map[string]string{"authorization": acmeMember}),
			check: func(t *testing.T, o outcome) {
				denied(t, o, http.StatusForbidden)
				reason(t, o, "tenant_mismatch")
			},
		},
		{
			name:  "ok/the caller's organization's host",
			files: []string{grpcConfig},
			req:   mcpCall("acme.localhost:10000", "/mcp", "echo", map[string]string{"authorization": acmeMember}),
			check: func(t *testing.T, o outcome) {
				allowed(t, o)
				if o.extensions["tenant"] != "acme" {
					t.Errorf("context extensions %v", o.extensions)
				}
			},
		},
		{
			name:  "fail/another organization's host",
			files: []string{grpcConfig},
			req:   mcpCall("acme.localhost:10000", "/mcp", "echo", map[string]string{"authorization": globexMember}),
			check: func(t *testing.T, o outcome) {
				denied(t, o, http.StatusForbidden)
				reason(t, o, "tenant_mismatch")
			},
		},
		{
			name: "ok/the same call on a host of no organization",
			req:  mcpCall(host, "/mcp", "echo", map[string]string{"authorization": globexMember}),
			check: func(t *testing.T, o outcome) {
				allowed(t, o)
				if len(o.extensions) != 0 {
					t.Errorf("context extensions %v", o.extensions)
				}
			},
		},
		{
			name: "ok/health needs no credential",
			req:  request{method: http.MethodGet, host: host, path: "/healthz"},
			check: func(t *testing.T, o outcome) {
				allowed(t, o)
				reason(t, o, "public")
			},
		},
		{
			name: "fail/a body over max_request_bytes is refused by Envoy",
			req: request{method: http.MethodPost, host: host, path: "/mcp",
				headers: map[string]string{"content-type": "application/json", "authorization": acmeMember},
				body:    `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + strings.Repeat("x", 1<<20) + `"}}}`},
			check: func(t *testing.T, o outcome) {
				if o.local != http.StatusRequestEntityTooLarge {
					t.Errorf("Envoy answers %d, want 413", o.local)
				}
			},
		},
		{
			name: "fail/a POST to the metadata path is decided",
			req: request{method: http.MethodPost, host: host, path: "/.well-known/oauth-protected-resource/mcp",
				headers: map[string]string{"content-type": "application/json"}, body: `{}`},
			check: func(t *testing.T, o outcome) {
				if o.route != "other" {
					t.Errorf("route %s", o.route)
				}
				if o.allowed {
					t.Error("allowed")
				}
			},
		},
	}
	for _, file := range []string{grpcConfig, httpConfig} {
		s := newSidecar(t, file, policies.FS())
		for _, tt := range tests {
			if tt.files != nil && !slices.Contains(tt.files, file) {
				continue
			}
			t.Run(tt.name+"/"+file, func(t *testing.T) {
				tt.check(t, s.send(t, tt.req))
			})
		}
	}
}

func allowed(t *testing.T, o outcome) {
	t.Helper()
	if o.local != 0 || !o.allowed {
		t.Fatalf("not allowed: local %d, status %d, reason %q, body %s", o.local, o.status, o.reason, o.body)
	}
}

func denied(t *testing.T, o outcome, status int) {
	t.Helper()
	if o.local != 0 || o.allowed || o.status != status {
		t.Fatalf("local %d, allowed %v, status %d (reason %q), want a %d denial", o.local, o.allowed, o.status, o.reason, status)
	}
}

func reason(t *testing.T, o outcome, want string) {
	t.Helper()
	if o.reason != want {
		t.Errorf("reason %q, want %q", o.reason, want)
	}
}

// TestProtectedResourceMetadata: the URL every 401 names is served by
// mcpauthz's forward-auth listener, without a check, on every host.
func TestProtectedResourceMetadata(t *testing.T) {
	for _, file := range []string{grpcConfig, httpConfig} {
		s := newSidecar(t, file, policies.FS())
		u, err := url.Parse(s.resource.MetadataURL())
		if err != nil {
			t.Fatal(err)
		}
		for _, host := range []string{"localhost:10000", "acme.localhost:10000"} {
			t.Run("ok/"+file+"/"+host, func(t *testing.T) {
				// A client's headers that would make the listener take the
				// fetch for a forward-auth check about another request.
				describing := map[string]string{"x-original-uri": "/admin", "x-original-method": "POST", "x-forwarded-uri": "/admin", "x-forwarded-method": "POST"}
				r := request{method: http.MethodGet, host: host, path: u.Path, headers: describing}
				rt := s.gw.route(r)
				if rt.checked {
					t.Fatalf("route %s sends the metadata fetch to ext_authz", rt.route)
				}
				if port := s.gw.port(rt.cluster); port != 9192 {
					t.Fatalf("route %s goes to %s, port %d, not mcpauthz's forward-auth listener", rt.route, rt.cluster, port)
				}
				forwarded := func(drop []string) *httptest.ResponseRecorder {
					req := httptest.NewRequest(http.MethodGet, rt.path, nil)
					req.RemoteAddr = envoyAddr + ":40000"
					req.Host = s.gw.host(r)
					for k, v := range s.gw.downstream(r) {
						if !strings.HasPrefix(k, ":") && !slices.Contains(drop, k) {
							req.Header.Set(k, v)
						}
					}
					rec := httptest.NewRecorder()
					s.forwardAuth().ServeHTTP(rec, req)
					return rec
				}
				rec := forwarded(rt.removed)
				var md mcp.ResourceMetadata
				if err := json.Unmarshal(rec.Body.Bytes(), &md); rec.Code != http.StatusOK || err != nil || md.Resource != resourceURL {
					t.Fatalf("%d %s", rec.Code, rec.Body)
				}
				if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("content-type %q", ct)
				}
				// Without the route's removals the fetch would be decided.
				if rec := forwarded(nil); rec.Code == http.StatusOK {
					t.Errorf("the removed headers are not needed: %d %s", rec.Code, rec.Body)
				}
			})
		}
	}
}

// echoPolicy allows everything and returns what the policy saw of the
// route's context extensions, the metadata context and the body.
const echoPolicy = `package mcpauthz.authz

decision := {"allowed": true, "headers": {
	"x-context-extensions": json.marshal(object.get(input.attributes, "contextExtensions", {})),
	"x-metadata": json.marshal(object.get(input.attributes, ["metadataContext", "filterMetadata"], {})),
	"x-body-method": object.get(input, ["parsed_body", "method"], ""),
}}
`

// TestCheckReachesPolicy: the context extensions of the route, the
// dynamic metadata of the configured namespaces (only those) and the body
// reach the policy's input.
func TestCheckReachesPolicy(t *testing.T) {
	s := newSidecar(t, grpcConfig, fstest.MapFS{"authz.rego": &fstest.MapFile{Data: []byte(echoPolicy)}})
	r := mcpCall("acme.localhost:10000", "/mcp", "echo", nil)
	r.metadata = map[string]map[string]any{
		"envoy.filters.http.jwt_authn":          {"sub": "u-9"},
		"envoy.filters.http.mcp":                {"method": "tools/call"},
		"envoy.filters.http.header_to_metadata": {"not": "forwarded"},
	}
	o := s.send(t, r)
	allowed(t, o)
	var ext map[string]string
	if err := json.Unmarshal([]byte(o.upstream["x-context-extensions"]), &ext); err != nil || len(ext) != 1 || ext["tenant"] != "acme" {
		t.Errorf("context extensions %s", o.upstream["x-context-extensions"])
	}
	var md map[string]map[string]any
	if err := json.Unmarshal([]byte(o.upstream["x-metadata"]), &md); err != nil {
		t.Fatal(err)
	}
	if len(md) != 2 || md["envoy.filters.http.jwt_authn"]["sub"] != "u-9" || md["envoy.filters.http.mcp"]["method"] != "tools/call" {
		t.Errorf("metadata context %s", o.upstream["x-metadata"])
	}
	if o.upstream["x-body-method"] != "tools/call" {
		t.Errorf("parsed body method %q", o.upstream["x-body-method"])
	}
}
