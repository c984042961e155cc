package extauthz

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/mcpauthz/mcpauthz/mcp"
)

const (
	testResource    = "https://mcp.example.com/mcp"
	testMetadataURL = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
)

func testProtectedResource(t *testing.T) *ProtectedResource {
	t.Helper()
	p, err := NewProtectedResource(mcp.ResourceMetadata{
		Resource:              testResource,
		AuthorizationServers:  []string{"https://auth.example.com"},
		ScopesSupported:       []string{"tools:read", "tools:call"},
		ResourceName:          "Example MCP",
		ResourceDocumentation: "https://docs.example.com/mcp",
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewProtectedResource(t *testing.T) {
	tests := []struct {
		name  string
		md    mcp.ResourceMetadata
		url   string // empty means mcp.ErrInvalidResourceMetadata is expected
		paths []string
		json  string
	}{
		{"ok/resource with a path, bearer methods defaulted", mcp.ResourceMetadata{
			Resource: testResource, AuthorizationServers: []string{"https://auth.example.com"}, ScopesSupported: []string{"tools:call"},
			ResourceName: "Example MCP", ResourceDocumentation: "https://docs.example.com/mcp",
		}, testMetadataURL, []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"},
			`{"resource":"https://mcp.example.com/mcp","authorization_servers":["https://auth.example.com"],` +
				`"scopes_supported":["tools:call"],"bearer_methods_supported":["header"],"resource_name":"Example MCP",` +
				`"resource_documentation":"https://docs.example.com/mcp"}`},
		{"ok/root resource", mcp.ResourceMetadata{Resource: "https://mcp.example.com/"},
			"https://mcp.example.com/.well-known/oauth-protected-resource", []string{"/.well-known/oauth-protected-resource"},
			`{"resource":"https://mcp.example.com/","bearer_methods_supported":["header"]}`},
		{"ok/trailing slash", mcp.ResourceMetadata{Resource: "https://mcp.example.com/mcp/"},
			"https://mcp.example.com/.well-known/oauth-protected-resource/mcp/",
			[]string{"/.well-known/oauth-protected-resource/mcp/", "/.well-known/oauth-protected-resource"},
			`{"resource":"https://mcp.example.com/mcp/","bearer_methods_supported":["header"]}`},
		{"fail/no resource", mcp.ResourceMetadata{AuthorizationServers: []string{"https://auth.example.com"}}, "", nil, ""},
		{"fail/http resource", mcp.ResourceMetadata{Resource: "http://mcp.example.com/mcp"}, "", nil, ""},
		{"fail/bad authorization server", mcp.ResourceMetadata{Resource: testResource, AuthorizationServers: []string{"auth"}}, "", nil, ""},
		{"fail/bad scope", mcp.ResourceMetadata{Resource: testResource, ScopesSupported: []string{`a"b`}}, "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewProtectedResource(tt.md)
			if tt.url == "" {
				if !errors.Is(err, mcp.ErrInvalidResourceMetadata) || p != nil {
					t.Fatalf("NewProtectedResource = %v, %v; want mcp.ErrInvalidResourceMetadata", p, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.MetadataURL() != tt.url || !slices.Equal(p.Paths(), tt.paths) || p.Metadata() != tt.json {
				t.Fatalf("url %q paths %q json %s\nwant %q %q %s", p.MetadataURL(), p.Paths(), p.Metadata(), tt.url, tt.paths, tt.json)
			}
		})
	}
}

// TestProtectedResourceMetadata: the Authorizer answers a GET or HEAD of
// the metadata paths itself, before the credential check and the policy,
// with a 200 direct response.
func TestProtectedResourceMetadata(t *testing.T) {
	pr := testProtectedResource(t)
	tests := []struct {
		name   string
		req    *Request
		noOpt  bool
		served bool // the metadata answers; otherwise the policy (a 403) does
		body   bool
	}{
		{name: "ok/GET path-inserted form", req: &Request{Method: "GET", Path: "/.well-known/oauth-protected-resource/mcp"}, served: true, body: true},
		{name: "ok/GET bare well-known path", req: &Request{Method: "GET", Path: "/.well-known/oauth-protected-resource"}, served: true, body: true},
		{name: "ok/GET with a query", req: &Request{Method: "GET", Path: "/.well-known/oauth-protected-resource/mcp?x=1"}, served: true, body: true},
		{name: "ok/HEAD has no body", req: &Request{Method: "HEAD", Path: "/.well-known/oauth-protected-resource/mcp"}, served: true},
		{name: "ok/with an invalid credential", served: true, body: true,
			req: &Request{Method: "GET", Path: "/.well-known/oauth-protected-resource", Headers: map[string]string{"authorization": "Bearer bad"}}},
		{name: "fail/POST is decided", req: mcpRequest(toolsCall), served: false},
		{name: "fail/POST to the metadata path is decided", req: &Request{Method: "POST", Path: "/.well-known/oauth-protected-resource"}},
		{name: "fail/another resource's path", req: &Request{Method: "GET", Path: "/.well-known/oauth-protected-resource/other"}},
		{name: "fail/path below the metadata", req: &Request{Method: "GET", Path: "/.well-known/oauth-protected-resource/mcp/x"}},
		{name: "fail/escaped path is not the same path", req: &Request{Method: "GET", Path: "/.well-known/oauth-protected-resource%2Fmcp"}},
		{name: "fail/without the option", req: &Request{Method: "GET", Path: "/.well-known/oauth-protected-resource/mcp"}, noOpt: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := &fakePolicy{decide: func(context.Context, *PolicyInput) (Decision, error) {
				return Decision{Status: http.StatusForbidden, Reason: "policy"}, nil
			}}
			opts := []Option{WithIdentityVerifier(fakeIdentity{err: ErrInvalidCredential})}
			if !tt.noOpt {
				opts = append(opts, WithProtectedResource(pr))
			}
			// The credential check runs only for requests that are decided.
			if !tt.served {
				opts[0] = WithIdentityVerifier(AnonymousVerifier{})
			}
			d, err := NewAuthorizer(pol, fixedIDs(), opts...).Check(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.served {
				if d.Status != http.StatusForbidden || d.Reason != "policy" || len(pol.seen) == 0 {
					t.Fatalf("want the policy's 403, got %+v", d)
				}
				return
			}
			if d.Allowed || d.Status != http.StatusOK || d.Reason != ReasonResourceMetadata || len(pol.seen) != 0 {
				t.Fatalf("want the metadata as a 200 direct response, got %+v (policy asked %d times)", d, len(pol.seen))
			}
			for name, want := range map[string]string{"content-type": "application/json", "cache-control": MetadataCacheControl,
				"access-control-allow-origin": "*", "x-mcpauthz-decision-id": "dec-1"} {
				if got, _ := header(d.Headers, name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if _, ok := header(d.Headers, "www-authenticate"); ok {
				t.Errorf("metadata response carries a challenge: %+v", d.Headers)
			}
			if !tt.body {
				if d.Body != "" {
					t.Fatalf("HEAD body %q", d.Body)
				}
				return
			}
			var md mcp.ResourceMetadata
			if err := json.Unmarshal([]byte(d.Body), &md); err != nil || md.Resource != testResource ||
				!slices.Equal(md.AuthorizationServers, []string{"https://auth.example.com"}) || !slices.Equal(md.BearerMethodsSupported, []string{"header"}) {
				t.Fatalf("body %s: %+v, %v", d.Body, md, err)
			}
		})
	}
}

func TestChallenges(t *testing.T) {
	pr := testProtectedResource(t)
	const md = `resource_metadata="` + testMetadataURL + `"`
	const invalid = `error="invalid_token", error_description="The credential is invalid, expired or revoked"`
	deny := func(d Decision) func(context.Context, *PolicyInput) (Decision, error) {
		return func(context.Context, *PolicyInput) (Decision, error) { return d, nil }
	}
	stepUp := &mcp.Challenge{Error: mcp.ChallengeInsufficientUserAuthentication, ErrorDescription: "Sign in again", MaxAge: new(300)}
	tests := []struct {
		name     string
		req      *Request
		identity IdentityVerifier
		decide   func(context.Context, *PolicyInput) (Decision, error)
		noOpt    bool
		status   int
		want     []string // the WWW-Authenticate values
		wantErr  error
	}{
		{name: "ok/invalid token is 401 invalid_token", identity: fakeIdentity{err: ErrInvalidCredential}, decide: allow,
			status: 401, want: []string{"Bearer " + invalid + ", " + md}},
		{name: "ok/no token, the policy's 401 gets the metadata", decide: deny(Decision{Status: 401, Reason: "login"}),
			status: 401, want: []string{"Bearer " + md}},
		{name: "ok/without the option an invalid token is still challenged", identity: fakeIdentity{err: ErrInvalidCredential}, decide: allow, noOpt: true,
			status: 401, want: []string{"Bearer " + invalid}},
		{name: "ok/without the option a 401 says Bearer", decide: deny(Decision{Status: 401}), noOpt: true,
			status: 401, want: []string{"Bearer"}},
		{name: "ok/insufficient scope on 403",
			decide: deny(Decision{Status: 403, Challenge: &mcp.Challenge{Error: mcp.ChallengeInsufficientScope, Scope: "tools:call admin"}}),
			status: 403, want: []string{`Bearer error="insufficient_scope", scope="tools:call admin", ` + md}},
		{name: "ok/step-up on 401 with max_age", decide: deny(Decision{Status: 401, Challenge: stepUp}),
			status: 401, want: []string{`Bearer error="insufficient_user_authentication", error_description="Sign in again", max_age="300", ` + md}},
		{name: "ok/a 403 without a challenge has none", decide: deny(Decision{Status: 403}), status: 403},
		{name: "ok/a 429 without a challenge has none", decide: deny(Decision{Status: 429}), status: 429},
		{name: "ok/the policy's own header on a 401 is kept alone",
			decide: deny(Decision{Status: 401, Headers: []Header{{"WWW-Authenticate", `Bearer realm="x"`}}}),
			status: 401, want: []string{`Bearer realm="x"`}},
		{name: "ok/a challenge on an allow is ignored", decide: deny(Decision{Allowed: true, Challenge: stepUp})},
		{name: "fail/malformed challenge is a policy result error",
			decide: deny(Decision{Status: 403, Challenge: &mcp.Challenge{Scope: "a\r\nx-evil: 1"}}),
			status: 503, wantErr: ErrPolicyResult},
		{name: "fail/negative max_age is a policy result error",
			decide: deny(Decision{Status: 401, Challenge: &mcp.Challenge{MaxAge: new(-5)}}),
			status: 503, wantErr: ErrPolicyResult},
		{name: "fail/challenge next to the policy's own header",
			decide: deny(Decision{Status: 401, Challenge: stepUp, Headers: []Header{{"www-authenticate", "Bearer"}}}),
			status: 503, wantErr: ErrPolicyResult},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []Option{}
			if !tt.noOpt {
				opts = append(opts, WithProtectedResource(pr))
			}
			if tt.identity != nil {
				opts = append(opts, WithIdentityVerifier(tt.identity))
			}
			a := NewAuthorizer(&fakePolicy{decide: tt.decide}, fixedIDs(), opts...)
			d, err := a.Check(context.Background(), mcpRequest(toolsCall))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || d.Status != tt.status || d.Reason != ReasonPolicyError {
					t.Fatalf("Check = %+v, %v; want a %d denial with %v", d, err, tt.status, tt.wantErr)
				}
			} else if err != nil || d.Status != tt.status {
				t.Fatalf("Check = %+v, %v; want status %d", d, err, tt.status)
			}
			var got []string
			for _, h := range d.Headers {
				if strings.EqualFold(h.Name, "www-authenticate") {
					got = append(got, h.Value)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("WWW-Authenticate = %q\nwant %q", got, tt.want)
			}
			if d.Allowed {
				return
			}
			// MCP denials keep their JSON-RPC error body.
			var reply struct {
				ID    int `json:"id"`
				Error struct {
					Code int `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(d.Body), &reply); err != nil || reply.ID != 7 || reply.Error.Code != jsonRPCCode(tt.status) {
				t.Fatalf("body %s: %v", d.Body, err)
			}
		})
	}
	if *stepUp.MaxAge != 300 || stepUp.ResourceMetadata != "" {
		t.Fatalf("the policy's shared challenge was modified: %+v", stepUp)
	}
}
