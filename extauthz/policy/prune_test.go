package policy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"reflect"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/policy"
	"github.com/mcpauthz/mcpauthz/policies"
)

// prunePolicies are realistic policies that read parts of the input in the
// ways the pruning analysis must get right.
var prunePolicies = map[string]string{
	"rbac": pkgAuthz + `default decision := {"allowed": false, "http_status": 403}

decision := {"allowed": true} if {
	role := input.attributes.request.http.headers["x-role"]
	input.mcp.tool in data.rbac[role]
}

decision := {"allowed": true} if {
	input.attributes.request.http.method == "GET"
	input.parsed_path[0] == "healthz"
}
`,
	"tenant isolation": pkgAuthz + `default decision := false

decision if {
	input.identity.authenticated
	input.identity.tenant == input.attributes.contextExtensions.tenant
	"member" in input.identity.roles
}
`,
	"peers and transport": pkgAuthz + `default decision := {"allowed": false, "reason": "peer"}

decision := {"allowed": true, "headers": {"x-peer": input.attributes.source.principal}} if {
	startswith(input.attributes.source.principal, "spiffe://cluster.local/")
	input.attributes.destination.labels.app == "mcp"
	input.attributes.destination.address.socketAddress.portValue == 8080
	input.attributes.tlsSession.sni == "mcp.example.com"
}
`,
	"jwt metadata": pkgAuthz + `import input.attributes.metadataContext.filterMetadata as md

default decision := {"allowed": false, "http_status": 401}

decision := {"allowed": true, "dynamic_metadata": {"sub": sub}} if {
	sub := md["envoy.filters.http.jwt_authn"].payload.sub
	md["envoy.filters.http.jwt_authn"].payload.exp > 1000
}
`,
	"headers by variable": pkgAuthz + `default decision := true

decision := {"allowed": false, "body": sprintf("debug header %s", [name])} if {
	some name, _ in input.attributes.request.http.headers
	startswith(name, "x-debug")
}
`,
	"body arguments": pkgAuthz + `default decision := {"allowed": true}

decision := {"allowed": false, "http_status": 400, "reason": "limit"} if {
	input.parsed_body.params.arguments.limit > 100
}

decision := {"allowed": false, "reason": "truncated"} if input.truncated_body
`,
	"opa-envoy classic": pkgAuthz + `import input.attributes.request.http as http_request

default allow := false

allow if {
	http_request.method == "POST"
	startswith(http_request.path, "/mcp")
	[_, token] := split(http_request.headers.authorization, " ")
	token == "good"
}

allow if http_request.headers["x-api-key"] == "k-1"

decision := {"allowed": allow, "headers": {"x-size": http_request.size, "x-proto": http_request.protocol}} if http_request.size
decision := allow if not http_request.size
`,
	"walk for injection": pkgAuthz + `default decision := true

decision := false if {
	walk(input, [_, value])
	is_string(value)
	contains(lower(value), "drop table")
}
`,
	"object.get": pkgAuthz + `decision := {"allowed": object.get(input.parsed_body, ["params", "name"], "") != "delete", "reason": object.get(input, ["mcp", "method"], "none")}
`,
	"echo": pkgAuthz + `decision := {"allowed": true, "headers": {
	"x-path": concat("/", input.parsed_path),
	"x-query": json.marshal(input.parsed_query),
	"x-time": input.attributes.request.time,
	"x-client": input.client_ip,
	"x-version": input.version.ext_authz,
	"x-ids": json.marshal([input.attributes.request.http.id, input.mcp.id]),
}} if input.mcp

decision := {"allowed": true, "headers": {"x-ce": json.marshal(input.attributes.contextExtensions)}} if not input.mcp
`,
}

const pruneData = `{"rbac": {"member": ["echo", "search"], "admin": ["echo", "search", "delete"]}}`

// byUser identifies callers by the x-test-user header.
type byUser map[string]extauthz.Identity

func (b byUser) Verify(_ context.Context, req *extauthz.Request) (extauthz.Identity, error) {
	if id, ok := b[req.Headers["x-test-user"]]; ok {
		return id, nil
	}
	return extauthz.Anonymous, nil
}

var pruneUsers = byUser{
	"alice": {Authenticated: true, Method: extauthz.MethodJWT, Subject: "alice", Tenant: "acme", Roles: []string{"member"},
		Claims: map[string]any{"sub": "alice", "scope": "mcp:read"}},
	"bob": {Authenticated: true, Method: extauthz.MethodSession, Subject: "bob", Tenant: "globex", Roles: []string{"admin"},
		Session: &extauthz.SessionInfo{ID: "s-2", AuthTime: testNow.Add(-time.Hour)}},
}

func pruneRequests() []*extauthz.Request {
	call := func(tool string, limit int) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{"limit":%d,"q":"x"}}}`, limit, tool, limit)
	}
	var out []*extauthz.Request
	add := func(r *extauthz.Request, mod func(r *extauthz.Request)) {
		if mod != nil {
			mod(r)
		}
		out = append(out, r)
	}
	add(request("GET", "/healthz", nil, ""), nil)
	add(request("GET", "/.well-known/oauth-protected-resource/mcp?x=1", nil, ""), nil)
	add(request("GET", "/admin/users?drop=1", map[string]string{"x-role": "admin"}, ""), nil)
	for _, user := range []string{"", "alice", "bob"} {
		for _, role := range []string{"", "member", "admin"} {
			for _, tool := range []string{"echo", "search", "delete"} {
				add(mcpRequest(call(tool, 10), map[string]string{"x-role": role, "x-test-user": user, "authorization": "Bearer good"}), func(r *extauthz.Request) {
					r.ContextExtensions = map[string]string{"tenant": "acme", "route": "mcp"}
				})
			}
		}
	}
	add(mcpRequest(call("search", 500), map[string]string{"x-role": "member"}), nil)
	add(mcpRequest(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, map[string]string{"x-debug-trace": "1", "x-test-user": "alice"}), nil)
	add(mcpRequest(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, map[string]string{"mcp-session-id": "s"}), nil)
	add(mcpRequest(`{"jsonrpc":"2.0","id":"q","method":"tools/call","params":{"name":"search","arguments":{"q":"1; DROP TABLE users"}}}`, nil), nil)
	add(request("POST", "/api", map[string]string{"content-type": "application/json", "content-length": "999"}, `{"params": {"arguments": {"limit": 1000`), nil)
	add(request("POST", "/api", map[string]string{"content-type": "application/json"}, `{"params": {"name": "delete", "arguments": {"limit": 1000}}}`), nil)
	add(request("POST", "/form", map[string]string{"content-type": "application/x-www-form-urlencoded", "x-api-key": "k-1"}, "params=1&drop+table=x"), nil)
	add(request("POST", "/mcp/x", map[string]string{"authorization": "Bearer good", "content-type": "text/plain"}, "hello"), nil)
	peers := func(r *extauthz.Request) {
		r.Source.Principal = "spiffe://cluster.local/ns/default/sa/client"
		r.Destination.Labels = map[string]string{"app": "mcp", "version": "v2"}
		r.TLSSessionSNI = "mcp.example.com"
		r.Time = time.Date(2025, 6, 1, 12, 0, 0, 123456000, time.UTC)
		r.MetadataContext = map[string]any{"envoy.filters.http.jwt_authn": map[string]any{
			"payload": map[string]any{"sub": "alice", "exp": float64(2000), "groups": []any{"a", "b"}},
		}, "other": map[string]any{"x": true}}
	}
	add(mcpRequest(call("echo", 1), nil), peers)
	add(request("GET", "/", nil, ""), func(r *extauthz.Request) {
		peers(r)
		r.Destination.Port = 9090
	})
	add(request("GET", "/", nil, ""), func(r *extauthz.Request) {
		peers(r)
		r.MetadataContext["envoy.filters.http.jwt_authn"] = map[string]any{"payload": map[string]any{"sub": "bob", "exp": float64(10)}}
	})
	return out
}

// TestPrunedInputIsSound decides every request with every policy twice:
// with the input pruned to what the policy reads, and with the whole input.
// The decisions and the policy results must be the same.
func TestPrunedInputIsSound(t *testing.T) {
	defaultBundle := map[string]string{}
	err := fs.WalkDir(policies.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(policies.FS(), p)
		defaultBundle[p] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	bundleFiles := map[string]map[string]string{"default bundle": defaultBundle}
	for name, rego := range prunePolicies {
		bundleFiles[name] = map[string]string{"authz.rego": rego, "data.json": pruneData}
	}
	reqs := pruneRequests()
	for name, files := range bundleFiles {
		t.Run("ok/"+name, func(t *testing.T) {
			engine := engineWith(t, files)
			clock := func() time.Time { return testNow }
			check := func(full bool) func(*extauthz.Request) (extauthz.Decision, error, any) {
				rec := &recorder{}
				a := extauthz.NewAuthorizer(policy.NewEvaluator(engine, policy.WithClock(clock), policy.WithFullInput(full)),
					func() string { return "d-1" }, extauthz.WithClock(clock), extauthz.WithDecisionLogger(rec),
					extauthz.WithIdentityVerifier(pruneUsers), extauthz.WithTimeout(5*time.Second))
				return func(r *extauthz.Request) (extauthz.Decision, error, any) {
					d, err := a.Check(context.Background(), r)
					var res any
					if ev := rec.last(t); ev.Result != nil {
						res, _ = docJSON(t, ev.Result, nil)
					}
					return d, err, res
				}
			}
			pruned, full := check(false), check(true)
			allowed := 0
			for i, r := range reqs {
				pd, perr, pres := pruned(r)
				fd, ferr, fres := full(r)
				if !reflect.DeepEqual(pd, fd) || (perr == nil) != (ferr == nil) || !reflect.DeepEqual(pres, fres) {
					pj, _ := json.Marshal(pres)
					fj, _ := json.Marshal(fres)
					t.Errorf("request %d %s %s:\npruned %+v %v %s\nfull   %+v %v %s", i, r.Method, r.Path, pd, perr, pj, fd, ferr, fj)
				}
				if fd.Allowed {
					allowed++
				}
			}
			// The requests exercise the policy both ways.
			if allowed == 0 || allowed == len(reqs) {
				t.Errorf("%d of %d requests allowed; the cases do not exercise the policy", allowed, len(reqs))
			}
			if use := engine.Active().InputUse(); use.Whole() && name != "walk for injection" && name != "object.get" {
				t.Errorf("the analysis reads the whole input of %s", name)
			}
		})
	}
}
