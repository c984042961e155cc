package envoygrpc

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/mcp"
)

// loginPolicy denies everything with 401.
type loginPolicy struct{}

func (loginPolicy) Evaluate(context.Context, *extauthz.PolicyInput) (extauthz.PolicyResult, error) {
	return extauthz.PolicyResult{Decision: extauthz.Deny(401, "login")}, nil
}

// TestProtectedResource: through the real service, the metadata request is
// a denied response with status 200 and the document, which Envoy sends as
// a direct response; a 401 carries the challenge naming it.
func TestProtectedResource(t *testing.T) {
	pr, err := extauthz.NewProtectedResource(mcp.ResourceMetadata{
		Resource:             "https://mcp.example.com/mcp",
		AuthorizationServers: []string{"https://auth.example.com"},
	})
	if err != nil {
		t.Fatal(err)
	}
	a := extauthz.NewAuthorizer(loginPolicy{}, func() string { return "d-1" }, extauthz.WithProtectedResource(pr))
	headerOf := func(den *authv3.DeniedHttpResponse, name string) string {
		for _, h := range den.GetHeaders() {
			if strings.EqualFold(h.GetHeader().GetKey(), name) {
				return h.GetHeader().GetValue()
			}
		}
		return ""
	}
	tests := []struct {
		name   string
		method string
		path   string
		status typev3.StatusCode
		check  func(t *testing.T, den *authv3.DeniedHttpResponse)
	}{
		{"ok/metadata is a 200 direct response", "GET", "/.well-known/oauth-protected-resource/mcp", typev3.StatusCode_OK,
			func(t *testing.T, den *authv3.DeniedHttpResponse) {
				var md mcp.ResourceMetadata
				if err := json.Unmarshal([]byte(den.GetBody()), &md); err != nil || md.Resource != "https://mcp.example.com/mcp" {
					t.Fatalf("body %q: %v", den.GetBody(), err)
				}
				if headerOf(den, "content-type") != "application/json" || headerOf(den, "cache-control") == "" {
					t.Fatalf("headers %v", den.GetHeaders())
				}
			}},
		{"ok/bare well-known path too", "GET", "/.well-known/oauth-protected-resource", typev3.StatusCode_OK,
			func(t *testing.T, den *authv3.DeniedHttpResponse) {
				if !strings.Contains(den.GetBody(), `"authorization_servers":["https://auth.example.com"]`) {
					t.Fatalf("body %q", den.GetBody())
				}
			}},
		{"fail/MCP request gets the challenge", "POST", "/mcp", typev3.StatusCode_Unauthorized,
			func(t *testing.T, den *authv3.DeniedHttpResponse) {
				want := `Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"`
				if got := headerOf(den, "www-authenticate"); got != want {
					t.Fatalf("www-authenticate %q, want %q", got, want)
				}
				if !strings.Contains(den.GetBody(), `"code":-32001`) {
					t.Fatalf("body %q is not the JSON-RPC error", den.GetBody())
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cr := envoyCheckRequest()
			h := cr.GetAttributes().GetRequest().GetHttp()
			h.Method, h.Path = tt.method, tt.path
			h.Headers[":method"], h.Headers[":path"] = tt.method, tt.path
			if tt.method == "GET" {
				h.Body, h.Size = "", 0
				delete(h.Headers, "content-type")
			}
			resp, err := NewService(a, discard).Check(context.Background(), cr)
			if err != nil {
				t.Fatal(err)
			}
			// Never OK: Envoy must answer itself, not forward the request.
			if resp.GetStatus().GetCode() != int32(codes.PermissionDenied) || resp.GetOkResponse() != nil {
				t.Fatalf("response %v", resp)
			}
			den := resp.GetDeniedResponse()
			if den.GetStatus().GetCode() != tt.status {
				t.Fatalf("status %v, want %v", den.GetStatus().GetCode(), tt.status)
			}
			tt.check(t, den)
		})
	}
}
