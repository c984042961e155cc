package forwardauth

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/mcp"
)

// denyPolicy denies everything with 403.
type denyPolicy struct{}

func (denyPolicy) Evaluate(context.Context, *extauthz.PolicyInput) (extauthz.PolicyResult, error) {
	return extauthz.PolicyResult{Decision: extauthz.Deny(http.StatusForbidden, "no")}, nil
}

// TestMetadata: the listener serves the protected resource metadata to a
// request sent to it directly, and decides everything else, including a
// forward-auth check that asks about the metadata paths.
func TestMetadata(t *testing.T) {
	pr, err := extauthz.NewProtectedResource(mcp.ResourceMetadata{
		Resource:             "https://mcp.example.com/mcp",
		AuthorizationServers: []string{"https://auth.example.com"},
		ScopesSupported:      []string{"tools:call"},
	})
	if err != nil {
		t.Fatal(err)
	}
	const wk = "/.well-known/oauth-protected-resource"
	tests := []struct {
		name   string
		call   call
		cfg    Config
		noOpt  bool
		served bool // the metadata answers; otherwise the checker's 403 does
	}{
		{name: "ok/GET path-inserted form", call: call{target: wk + "/mcp"}, served: true},
		{name: "ok/GET bare well-known path", call: call{target: wk}, served: true},
		{name: "ok/GET with a query", call: call{target: wk + "/mcp?x=1"}, served: true},
		{name: "ok/HEAD", call: call{method: http.MethodHead, target: wk + "/mcp"}, served: true},
		{name: "ok/absolute-form target", call: call{target: "http://mcp.example" + wk + "/mcp"}, served: true},
		{name: "ok/from a trusted proxy with X-Forwarded-For", served: true, cfg: Config{TrustedProxies: testTrusted},
			call: call{target: wk, remote: "10.1.1.1:4000", headers: [][2]string{{"X-Forwarded-For", "198.51.100.7"}, {"X-Forwarded-Proto", "https"}}}},
		{name: "fail/POST is decided", call: call{method: http.MethodPost, target: wk}},
		{name: "fail/another path is decided", call: call{target: "/mcp"}},
		{name: "fail/path below the metadata is decided", call: call{target: wk + "/mcp/x"}},
		{name: "fail/without a protected resource", call: call{target: wk}, noOpt: true},
		{name: "fail/Traefik check describing another request", call: call{target: wk, headers: [][2]string{{"X-Forwarded-Uri", "/mcp"}}}},
		{name: "fail/nginx check describing another request", call: call{target: wk, headers: [][2]string{{"X-Original-URI", "/admin"}}}},
		{name: "fail/nginx check with a method only", call: call{target: wk, headers: [][2]string{{"X-Original-Method", "DELETE"}}}},
		{name: "fail/Envoy check with a path prefix", cfg: Config{PathPrefix: "/authz"}, call: call{target: "/authz" + wk + "/mcp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := &fakeChecker{decision: extauthz.Decision{Status: http.StatusForbidden}}
			if !tt.noOpt {
				tt.cfg.ProtectedResource = pr
			}
			h, _ := newTestHandler(fc, tt.cfg)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tt.call.request())
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)
			_, calls := fc.last()

			if !tt.served {
				if res.StatusCode != http.StatusForbidden || calls != 1 {
					t.Fatalf("status %d, checker called %d times; want the checker's 403", res.StatusCode, calls)
				}
				return
			}
			if res.StatusCode != http.StatusOK || calls != 0 {
				t.Fatalf("status %d, checker called %d times; want the metadata", res.StatusCode, calls)
			}
			for name, want := range map[string]string{
				"Content-Type":                "application/json",
				"Cache-Control":               extauthz.MetadataCacheControl,
				"Access-Control-Allow-Origin": "*",
				"Content-Length":              strconv.Itoa(len(pr.Metadata())),
			} {
				if got := res.Header.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if tt.call.method == http.MethodHead {
				if len(body) != 0 {
					t.Fatalf("HEAD body %q", body)
				}
				return
			}
			var md mcp.ResourceMetadata
			if err := json.Unmarshal(body, &md); err != nil || string(body) != pr.Metadata() || md.Resource != "https://mcp.example.com/mcp" {
				t.Fatalf("body %s: %v", body, err)
			}
		})
	}
}

// TestMetadataCheckRefused: a forward-auth check about the metadata paths
// reaches the Authorizer, whose 200 direct response must not become an
// allow: it is sent as a 403 with the decided status.
func TestMetadataCheckRefused(t *testing.T) {
	pr, err := extauthz.NewProtectedResource(mcp.ResourceMetadata{Resource: "https://mcp.example.com/mcp"})
	if err != nil {
		t.Fatal(err)
	}
	a := extauthz.NewAuthorizer(denyPolicy{}, func() string { return "d-1" }, extauthz.WithProtectedResource(pr))
	h := NewHandler(a, Config{TrustedProxies: testTrusted, ProtectedResource: pr}, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, call{target: "/auth", remote: "10.1.1.1:4000", headers: [][2]string{
		{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Uri", "/.well-known/oauth-protected-resource/mcp"},
	}}.request())
	res := rec.Result()
	if res.StatusCode != http.StatusForbidden || res.Header.Get(statusHeader) != "200" {
		t.Fatalf("status %d, %s %q; want 403 with the decided 200", res.StatusCode, statusHeader, res.Header.Get(statusHeader))
	}
}
