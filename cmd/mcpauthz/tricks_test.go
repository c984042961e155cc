package main

import (
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/mcpauthz/mcpauthz/identity"
)

// TestPathTricksGainNothing: a request spelt differently from the route
// or endpoint it means — in another case, with doubled slashes, with
// encoded dot segments — is decided no more leniently than the plain
// spelling, by the default policy through forward-auth.
func TestPathTricksGainNothing(t *testing.T) {
	s, stop := startSidecar(t, loopback(devConfig(t)), io.Discard)
	defer stop()
	ctx := context.Background()
	svc, owner, org := ownerOrg(t, s)
	// A key that may list tools but not call them.
	_, lister, err := svc.CreateAPIKey(ctx, owner.ID, org.ID, identity.NewAPIKey{Name: "lister", Scopes: []string{"mcp:tools:list"}}, identity.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	// A key that may call tools in its own organization.
	_, caller, err := svc.CreateAPIKey(ctx, owner.ID, org.ID, identity.NewAPIKey{Name: "caller", Scopes: []string{"mcp:tools:call"}}, identity.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if code := func() int {
		req, _ := http.NewRequest("POST", "http://"+s.httpLis.Addr().String()+"/orgs/"+org.ID+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Api-Key", caller)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}(); code != http.StatusOK {
		t.Fatalf("the caller in its own organization: %d", code)
	}
	do := func(method, path, body string, header ...string) int {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+s.httpLis.Addr().String(), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = path // sent as written, not cleaned
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`
	admin := "/api/v1/admin/users"
	for _, c := range []struct {
		name         string
		method       string
		plain, trick string
		body         string
		header       []string
	}{
		{"fail/an MCP endpoint in upper case, anonymous", "POST", "/mcp", "/MCP", call, nil},
		{"fail/an MCP endpoint in upper case, a key that may not call", "POST", "/mcp", "/MCP", call, []string{"X-Api-Key", lister}},
		{"fail/a doubled leading slash before an admin route", "GET", admin, "/" + admin, "", []string{"X-Api-Key", lister}},
		{"fail/doubled slashes inside an admin route", "GET", admin, "/api//v1//admin//users", "", []string{"X-Api-Key", lister}},
		{"fail/encoded dot segments into an admin route", "GET", admin, "/api/v1/orgs/%2e%2e/admin/users", "", []string{"X-Api-Key", lister}},
		{"fail/encoded dot segments in upper case", "GET", admin, "/api/v1/orgs/%2E%2E/admin/users", "", []string{"X-Api-Key", lister}},
		// The caller may call in its own organization: a path that names it
		// first and another after must not pass as its own.
		{"fail/dot segments into another organization", "POST", "/orgs/other/mcp", "/orgs/" + org.ID + "/../other/mcp", call, []string{"X-Api-Key", caller}},
		{"fail/encoded dot segments into another organization", "POST", "/orgs/other/mcp", "/orgs/" + org.ID + "/%2e%2e/other/mcp", call, []string{"X-Api-Key", caller}},
		{"fail/an encoded slash in an organization's path", "POST", "/orgs/other/mcp", "/orgs/" + org.ID + "%2F..%2Fother/mcp", call, []string{"X-Api-Key", caller}},
		{"fail/an organization in another case", "POST", "/orgs/other/mcp", "/orgs/" + strings.ToUpper(org.ID) + "/mcp", call, []string{"X-Api-Key", caller}},
	} {
		t.Run(c.name, func(t *testing.T) {
			plain := do(c.method, c.plain, c.body, c.header...)
			if plain < 400 {
				t.Fatalf("the plain spelling %s is allowed (%d); the case tests nothing", c.plain, plain)
			}
			if trick := do(c.method, c.trick, c.body, c.header...); trick < 400 {
				t.Errorf("%s %s: %d, while %s is %d", c.method, c.trick, trick, c.plain, plain)
			}
		})
	}
}

// TestForwardedHeadersOnGRPCAreIgnored: on Envoy's gRPC API the client is
// Envoy's source address; an X-Forwarded-For the client wrote names no one.
// A key allowed only from 192.0.2.1 is refused from 10.0.0.7 whatever the
// header says, and accepted from 192.0.2.1.
func TestForwardedHeadersOnGRPCAreIgnored(t *testing.T) {
	s, stop := startSidecar(t, loopback(devConfig(t)), io.Discard)
	defer stop()
	ctx := context.Background()
	svc, owner, org := ownerOrg(t, s)
	_, key, err := svc.CreateAPIKey(ctx, owner.ID, org.ID, identity.NewAPIKey{Name: "fenced",
		Scopes: []string{"mcp:tools:call"}, IPAllowlist: []string{"192.0.2.1"}}, identity.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	client := dial(t, s.grpc.Addr().String())
	from := func(source string, headers map[string]string) codes.Code {
		t.Helper()
		req := checkRequest("echo", headers)
		req.Attributes.Source = &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: source, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 52344}}}}}
		resp, err := client.Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return codes.Code(resp.GetStatus().GetCode())
	}
	forged := map[string]string{"x-api-key": key, "x-forwarded-for": "192.0.2.1", "x-real-ip": "192.0.2.1", "forwarded": "for=192.0.2.1"}
	if got := from("10.0.0.7", forged); got == codes.OK {
		t.Error("a forged X-Forwarded-For let the key in from outside its allowlist")
	}
	if got := from("192.0.2.1", map[string]string{"x-api-key": key}); got != codes.OK {
		t.Errorf("from its allowed address the key was refused: %v", got)
	}
}

// ownerOrg signs an owner up in the sidecar's identity store and gives
// them an organization, through an identity service of the test's own.
func ownerOrg(t *testing.T, s *sidecar) (*identity.Service, *identity.User, *identity.Org) {
	t.Helper()
	ctx := context.Background()
	audit, err := s.cfg.Identity.auditor()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := identity.NewService(s.store, audit, s.cfg.Identity.serviceConfig(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	owner, err := svc.SignUp(ctx, identity.SignUp{Email: "owner@example.com", Password: "correct horse battery staple",
		Consents: []identity.Consent{{Kind: "privacy_policy", Version: "2026-01", Granted: true}, {Kind: "terms", Version: "2026-01", Granted: true}}}, identity.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	org, err := svc.CreateOrg(ctx, owner.ID, "Acme", "UTC", identity.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	return svc, owner, org
}
