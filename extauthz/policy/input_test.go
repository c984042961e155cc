package policy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/policy"
	"github.com/mcpauthz/mcpauthz/mcp"
)

const pkgAuthz = "package mcpauthz.authz\n\n"

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// recorder is a DecisionLogger that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []extauthz.DecisionEvent
}

func (r *recorder) LogDecision(ev extauthz.DecisionEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) last(tb testing.TB) extauthz.DecisionEvent {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) == 0 {
		tb.Fatal("no decision was logged")
	}
	return r.events[len(r.events)-1]
}

// fixedIdentity is an IdentityVerifier that returns one identity.
type fixedIdentity struct{ id extauthz.Identity }

func (f fixedIdentity) Verify(context.Context, *extauthz.Request) (extauthz.Identity, error) {
	return f.id, nil
}

// engineWith activates a bundle of the given files.
func engineWith(tb testing.TB, files map[string]string, opts ...bundles.EngineOption) *bundles.Engine {
	tb.Helper()
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	b, err := bundles.LoadFS(fsys)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := bundles.NewEngine(bundles.DefaultDecisionPath, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	if err := e.Activate(context.Background(), b, "test"); err != nil {
		tb.Fatal(err)
	}
	return e
}

// authorizer decides with rego and records decisions. full builds the whole
// input for every decision instead of what the policy reads.
func authorizer(tb testing.TB, rego string, full bool, opts ...extauthz.Option) (*extauthz.Authorizer, *recorder) {
	tb.Helper()
	rec := &recorder{}
	clock := func() time.Time { return testNow }
	ev := policy.NewEvaluator(engineWith(tb, map[string]string{"authz.rego": rego}),
		policy.WithClock(clock), policy.WithFullInput(full))
	opts = append([]extauthz.Option{
		extauthz.WithDecisionLogger(rec),
		extauthz.WithClock(clock),
		// Generous: -race on a small machine is slow, and these tests
		// are not about the deadline.
		extauthz.WithTimeout(5 * time.Second),
	}, opts...)
	return extauthz.NewAuthorizer(ev, func() string { return "decision-1" }, opts...), rec
}

// decodeJSON decodes JSON keeping numbers as written, as OPA does.
func decodeJSON(tb testing.TB, data []byte) any {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		tb.Fatalf("invalid JSON %s: %v", data, err)
	}
	return v
}

func docJSON(tb testing.TB, d extauthz.Document, mask *extauthz.Mask) (any, []string) {
	tb.Helper()
	if d == nil {
		tb.Fatal("no document")
	}
	data, erased := d.AppendJSON(nil, mask)
	return decodeJSON(tb, data), erased
}

// seen returns what the policy sees as expr for req, as JSON, with the
// input pruned to what the policy reads (full false) or whole.
func seen(tb testing.TB, expr string, req *extauthz.Request, full bool, opts ...extauthz.Option) any {
	tb.Helper()
	a, rec := authorizer(tb, pkgAuthz+`decision := {"allowed": true, "seen": `+expr+"}\n", full, opts...)
	d, err := a.Check(context.Background(), req)
	if err != nil || !d.Allowed {
		tb.Fatalf("Check: %+v, %v", d, err)
	}
	res, _ := docJSON(tb, rec.last(tb).Result, nil)
	return res.(map[string]any)["seen"]
}

func request(method, path string, headers map[string]string, body string) *extauthz.Request {
	h := map[string]string{":method": method, ":path": path, ":authority": "mcp.example.com", "user-agent": "test/1.0"}
	for k, v := range headers {
		h[k] = v
	}
	return &extauthz.Request{
		ID: "req-1", Method: method, Scheme: "https", Host: "mcp.example.com", Path: path,
		Protocol: "HTTP/1.1", Headers: h, Body: body, Size: int64(len(body)),
		Source:      extauthz.Peer{Address: "10.0.0.7", Port: 52344},
		Destination: extauthz.Peer{Address: "10.0.0.9", Port: 8080},
		ClientIP:    "10.0.0.7",
	}
}

func checkSeen(t *testing.T, expr string, req *extauthz.Request, want string, opts ...extauthz.Option) {
	t.Helper()
	wantV := decodeJSON(t, []byte(want))
	for _, full := range []bool{false, true} {
		if got := seen(t, expr, req, full, opts...); !reflect.DeepEqual(got, wantV) {
			g, _ := json.Marshal(got)
			t.Errorf("%s (full input %v) = %s, want %s", expr, full, g, want)
		}
	}
}

func TestInputShapes(t *testing.T) {
	const jsonCT = "application/json"
	form := map[string]string{"content-type": "application/x-www-form-urlencoded"}
	tests := []struct {
		name, expr string
		req        *extauthz.Request
		want       string
	}{
		{"ok/parsed_path", "input.parsed_path", request("GET", "/a/b?x=1&x=2&y", nil, ""), `["a", "b"]`},
		{"ok/parsed_query repeated and empty values", "input.parsed_query", request("GET", "/a/b?x=1&x=2&y", nil, ""), `{"x": ["1", "2"], "y": [""]}`},
		{"ok/parsed_query decoding", "input.parsed_query", request("GET", "/s?q=a+b&r=%26&e=", nil, ""), `{"q": ["a b"], "r": ["&"], "e": [""]}`},
		{"ok/parsed_query without query", "input.parsed_query", request("GET", "/", nil, ""), `{}`},
		{"ok/parsed_path root", "input.parsed_path", request("GET", "/", nil, ""), `[""]`},
		{"ok/parsed_path trailing slash", "input.parsed_path", request("GET", "/a/", nil, ""), `["a", ""]`},
		// OPA-Envoy runs url.Parse, which reads "//a" as an authority and
		// gives ["b"]; the path a proxy forwards has no authority.
		{"ok/parsed_path doubled slashes", "input.parsed_path", request("GET", "//a//b", nil, ""), `["a", "", "b"]`},
		// Deliberately unlike OPA-Envoy (["a", "b", "c"]): the path is split
		// before it is decoded, so an encoded slash stays in its segment,
		// as the upstream's router sees it.
		{"ok/parsed_path encoded slash", "input.parsed_path", request("GET", "/a%2Fb/c", nil, ""), `["a/b", "c"]`},
		{"ok/parsed_path encoded space", "input.parsed_path", request("GET", "/a%20b", nil, ""), `["a b"]`},
		{"ok/parsed_path plus is literal", "input.parsed_path", request("GET", "/a+b", nil, ""), `["a+b"]`},
		// A fragment is not part of the path (OPA-Envoy: url.Parse drops it).
		{"ok/parsed_path without fragment", "input.parsed_path", request("GET", "/docs/intro#setup", nil, ""), `["docs", "intro"]`},
		{"ok/parsed_query not from the fragment", "input.parsed_query", request("GET", "/docs#setup?step=2", nil, ""), `{}`},
		{"ok/parsed_body JSON", "input.parsed_body", request("POST", "/api", map[string]string{"content-type": jsonCT},
			`{"name": "report", "price": 1.50, "tags": ["a", "b"], "nested": {"ok": true, "none": null}}`),
			`{"name": "report", "price": 1.50, "tags": ["a", "b"], "nested": {"ok": true, "none": null}}`},
		{"ok/parsed_body JSON member", "input.parsed_body.nested", request("POST", "/api", map[string]string{"content-type": jsonCT},
			`{"name": "report", "nested": {"ok": true}}`), `{"ok": true}`},
		{"ok/parsed_body JSON with charset", "input.parsed_body", request("POST", "/api", map[string]string{"content-type": "application/json; charset=utf-8"}, `[1, 2]`), `[1, 2]`},
		{"ok/parsed_body +json type", "input.parsed_body", request("POST", "/api", map[string]string{"content-type": "application/vnd.api+json"}, `{"a": 1}`), `{"a": 1}`},
		{"ok/parsed_body raw bytes", "input.parsed_body", func() *extauthz.Request {
			r := request("POST", "/api", map[string]string{"content-type": jsonCT}, `{"a": "b"}`)
			r.RawBody = true
			return r
		}(), `{"a": "b"}`},
		{"ok/parsed_body form", "input.parsed_body", request("POST", "/login", form, "k=v1&k=v2&other=x+y"), `{"k": ["v1", "v2"], "other": ["x y"]}`},
		{"ok/parsed_body form member", "input.parsed_body.k", request("POST", "/login", form, "k=v1&k=v2&other=x+y"), `["v1", "v2"]`},
		{"ok/truncated by content-length", `{"body": input.parsed_body, "truncated": input.truncated_body}`,
			request("POST", "/api", map[string]string{"content-type": jsonCT, "content-length": "4096"}, `{"a": 1, "b": [`),
			`{"body": null, "truncated": true}`},
		{"ok/truncated as reported by the proxy", `{"body": input.parsed_body, "truncated": input.truncated_body}`,
			func() *extauthz.Request {
				r := request("POST", "/api", map[string]string{"content-type": jsonCT}, `{"a": 1}`)
				r.BodyTruncated = true
				return r
			}(), `{"body": null, "truncated": true}`},
		{"ok/whole body is not truncated", `{"body": input.parsed_body, "truncated": input.truncated_body}`,
			request("POST", "/api", map[string]string{"content-type": jsonCT, "content-length": "8"}, `{"a": 1}`),
			`{"body": {"a": 1}, "truncated": false}`},
		{"ok/non-JSON content type", `{"body": input.parsed_body, "truncated": input.truncated_body}`,
			request("POST", "/api", map[string]string{"content-type": "text/plain"}, `{"a": 1}`), `{"body": null, "truncated": false}`},
		{"ok/no content type", `{"body": input.parsed_body, "truncated": input.truncated_body}`,
			request("POST", "/api", nil, `{"a": 1}`), `{"body": null, "truncated": false}`},
		{"ok/version", "input.version", request("GET", "/", nil, ""), `{"encoding": "protojson", "ext_authz": "v3"}`},
		{"ok/client_ip", "input.client_ip", request("GET", "/", nil, ""), `"10.0.0.7"`},
		{"ok/anonymous identity", "input.identity", request("GET", "/", nil, ""),
			`{"authenticated": false, "method": "none", "roles": [], "permissions": [], "scopes": []}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkSeen(t, tt.expr, tt.req, tt.want) })
	}
}

func mcpRequest(body string, headers map[string]string) *extauthz.Request {
	h := map[string]string{"content-type": "application/json", "accept": "application/json, text/event-stream"}
	for k, v := range headers {
		h[k] = v
	}
	return request("POST", "/mcp", h, body)
}

func TestMCPInput(t *testing.T) {
	session := map[string]string{"mcp-protocol-version": "2025-06-18", "mcp-session-id": "sess-123"}
	tests := []struct {
		name, expr string
		req        *extauthz.Request
		want       string
	}{
		{"ok/tools/call", "input.mcp", mcpRequest(`{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search","arguments":{"q":"x"}}}`, session),
			`{"method": "tools/call", "id": 42, "tool": "search", "protocol_version": "2025-06-18", "session_id": "sess-123", "is_notification": false, "is_response": false}`},
		{"ok/tools/call tool only", "input.mcp.tool", mcpRequest(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete"}}`, nil), `"delete"`},
		{"ok/resources/read", "input.mcp", mcpRequest(`{"jsonrpc":"2.0","id":"r-1","method":"resources/read","params":{"uri":"file:///etc/hosts"}}`, nil),
			`{"method": "resources/read", "id": "r-1", "uri": "file:///etc/hosts", "is_notification": false, "is_response": false}`},
		{"ok/prompts/get", "input.mcp", mcpRequest(`{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"summarize"}}`, session),
			`{"method": "prompts/get", "id": 3, "prompt": "summarize", "protocol_version": "2025-06-18", "session_id": "sess-123", "is_notification": false, "is_response": false}`},
		{"ok/notification", "input.mcp", mcpRequest(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, session),
			`{"method": "notifications/initialized", "protocol_version": "2025-06-18", "session_id": "sess-123", "is_notification": true, "is_response": false}`},
		{"ok/response from the client", "input.mcp", mcpRequest(`{"jsonrpc":"2.0","id":9,"result":{}}`, nil),
			`{"id": 9, "is_notification": false, "is_response": true}`},
		{"ok/not MCP: no input.mcp", `object.get(input, "mcp", "absent")`, request("GET", "/healthz", nil, ""), `"absent"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkSeen(t, tt.expr, tt.req, tt.want) })
	}
}

func TestMCPBatchInput(t *testing.T) {
	req := mcpRequest(`[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo"}}]`, nil)
	a, rec := authorizer(t, pkgAuthz+`decision := {"allowed": true, "headers": {"x-seen": concat(" ", [input.mcp.method, json.marshal(input.mcp.batch)])}}
`, false, extauthz.WithMCP(mcp.Options{AllowBatches: true}))
	d, err := a.Check(context.Background(), req)
	if err != nil || !d.Allowed {
		t.Fatalf("Check: %+v, %v", d, err)
	}
	// Each message is decided; the answer carries the first one's headers
	// and the log the last evaluation.
	if d.Headers[0] != (extauthz.Header{Name: "x-seen", Value: "tools/list true"}) {
		t.Errorf("headers %v", d.Headers)
	}
	res, _ := docJSON(t, rec.last(t).Result, nil)
	if got := res.(map[string]any)["headers"].(map[string]any)["x-seen"]; got != "tools/call true" {
		t.Errorf("last evaluation saw %v", got)
	}
}

// TestIdentityClaimNumbers: verified JWT claims arrive as float64 (JSON
// numbers decoded by encoding/json). Integer claims (exp, iat, org ids) must
// reach the policy as the integers they were in the token, as OPA-Envoy's
// json.Number input does, or sprintf and json.marshal print them wrong.
func TestIdentityClaimNumbers(t *testing.T) {
	id := extauthz.Identity{
		Authenticated: true, Method: extauthz.MethodJWT, Subject: "alice", Roles: []string{"member"},
		Claims: map[string]any{"exp": float64(1748779200), "org_id": float64(1234567), "ratio": 0.25, "aud": []any{"mcp"}},
	}
	opt := extauthz.WithIdentityVerifier(fixedIdentity{id})
	tests := []struct{ name, expr, want string }{
		{"ok/claims as JSON", "input.identity.claims", `{"exp": 1748779200, "org_id": 1234567, "ratio": 0.25, "aud": ["mcp"]}`},
		{"ok/sprintf of an integer claim", `sprintf("%v/%d", [input.identity.claims.exp, input.identity.claims.org_id])`, `"1748779200/1234567"`},
		{"ok/json.marshal of claims", `json.marshal(input.identity.claims)`, `"{\"aud\":[\"mcp\"],\"exp\":1748779200,\"org_id\":1234567,\"ratio\":0.25}"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkSeen(t, tt.expr, request("GET", "/", nil, ""), tt.want, opt) })
	}
}

// TestDecisionLogInput: the decision log gets the whole input, even the
// parts the policy did not read, minus what the mask selects.
func TestDecisionLogInput(t *testing.T) {
	id := extauthz.Identity{
		Authenticated: true, Method: extauthz.MethodSession, Subject: "alice", UserID: "u-1", Tenant: "acme",
		Roles: []string{"member"}, Session: &extauthz.SessionInfo{ID: "s-1", AuthTime: testNow.Add(-90 * time.Second)},
	}
	req := mcpRequest(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search"}}`, map[string]string{
		"authorization": "Bearer secret-token", "cookie": "mcpauthz_session=secret", "x-trace": "t-1",
	})
	a, rec := authorizer(t, pkgAuthz+`decision if input.mcp.method == "tools/call"
`, false, extauthz.WithIdentityVerifier(fixedIdentity{id}))
	d, err := a.Check(context.Background(), req)
	if err != nil || !d.Allowed {
		t.Fatalf("Check: %+v, %v", d, err)
	}
	ev := rec.last(t)
	if ev.DecisionID != "decision-1" || ev.Path != bundles.DefaultDecisionPath || ev.Revision == "" || !ev.Allowed {
		t.Errorf("event %+v", ev)
	}
	mask := extauthz.NewMask("/attributes/request/http/headers/authorization", "/attributes/request/http/headers/cookie", "/attributes/request/http/headers/x-absent")
	got, erased := docJSON(t, ev.Input, mask)
	wantErased := []string{"/attributes/request/http/headers/authorization", "/attributes/request/http/headers/cookie"}
	slices.Sort(erased)
	if !reflect.DeepEqual(erased, wantErased) {
		t.Errorf("erased %q, want %q", erased, wantErased)
	}

	// The unmasked document is exactly the input a policy reading all of it sees.
	want := seen(t, "input", req, true, extauthz.WithIdentityVerifier(fixedIdentity{id}))
	headers := want.(map[string]any)["attributes"].(map[string]any)["request"].(map[string]any)["http"].(map[string]any)["headers"].(map[string]any)
	if headers["authorization"] != "Bearer secret-token" || headers["x-trace"] != "t-1" {
		t.Fatalf("the full input lacks headers: %v", headers)
	}
	full, erasedNone := docJSON(t, ev.Input, nil)
	if !reflect.DeepEqual(full, want) || len(erasedNone) != 0 {
		g, _ := json.Marshal(full)
		w, _ := json.Marshal(want)
		t.Errorf("unmasked log input:\n%s\nwant\n%s", g, w)
	}
	delete(headers, "authorization")
	delete(headers, "cookie")
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Errorf("masked log input:\n%s\nwant\n%s", g, w)
	}
	// Spot checks of parts the policy never read.
	m := got.(map[string]any)
	session := m["identity"].(map[string]any)["session"].(map[string]any)
	if session["age_seconds"] != json.Number("90") || m["parsed_body"].(map[string]any)["method"] != "tools/call" ||
		m["mcp"].(map[string]any)["tool"] != "search" || m["client_ip"] != "10.0.0.7" {
		t.Errorf("log input lacks what the policy did not read: %v", m)
	}
	res, _ := docJSON(t, ev.Result, nil)
	if res != true {
		t.Errorf("log result %v, want true", res)
	}
}

// TestAuthAgeSeconds: the sidecar computes how long ago the principal
// authenticated on its own clock, so that policies need not read the clock.
func TestAuthAgeSeconds(t *testing.T) {
	now := testNow.Unix()
	jwt := func(authTime any) extauthz.Identity {
		claims := map[string]any{"sub": "u-1"}
		if authTime != nil {
			claims["auth_time"] = authTime
		}
		return extauthz.Identity{Authenticated: true, Method: extauthz.MethodJWT, Subject: "u-1", Claims: claims}
	}
	tests := []struct {
		name string
		id   extauthz.Identity
		want string
	}{
		{"session", extauthz.Identity{Authenticated: true, Method: extauthz.MethodSession, Subject: "u-1",
			Session: &extauthz.SessionInfo{ID: "s-1", AuthTime: testNow.Add(-90 * time.Second)}}, `90`},
		{"jwt", jwt(float64(now - 900)), `900`},
		{"jwt as a JSON number", jwt(json.Number(strconv.FormatInt(now-900, 10))), `900`},
		{"jwt with a fractional auth_time", jwt(float64(now) - 900.5), `900`},
		{"jwt from the future", jwt(float64(now + 61)), `-61`},
		{"jwt without auth_time", jwt(nil), `"none"`},
		{"jwt with a string auth_time", jwt(strconv.FormatInt(now-900, 10)), `"none"`},
		{"jwt with an absurd auth_time", jwt(1e300), `"none"`},
		{"api key", extauthz.Identity{Authenticated: true, Method: extauthz.MethodAPIKey, Subject: "key:k-1",
			APIKey: &extauthz.APIKeyInfo{ID: "k-1"}}, `"none"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkSeen(t, `object.get(input.identity, "auth_age_seconds", "none")`, request("GET", "/", nil, ""), tt.want,
				extauthz.WithIdentityVerifier(fixedIdentity{tt.id}))
		})
	}
}
