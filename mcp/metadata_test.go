package mcp

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

func TestResourceMetadataURL(t *testing.T) {
	const wk = WellKnownResourceMetadata
	tests := []struct {
		name     string
		resource string
		url      string // empty means ErrInvalidResourceMetadata is expected
		paths    []string
	}{
		{"ok/root resource", "https://mcp.example.com", "https://mcp.example.com" + wk, []string{wk}},
		{"ok/root resource with slash", "https://mcp.example.com/", "https://mcp.example.com" + wk, []string{wk}},
		{"ok/resource with a path", "https://mcp.example.com/mcp", "https://mcp.example.com" + wk + "/mcp", []string{wk + "/mcp", wk}},
		{"ok/trailing slash is kept", "https://mcp.example.com/mcp/", "https://mcp.example.com" + wk + "/mcp/", []string{wk + "/mcp/", wk}},
		{"ok/deeper path", "https://api.example.com/tenants/acme/mcp", "https://api.example.com" + wk + "/tenants/acme/mcp",
			[]string{wk + "/tenants/acme/mcp", wk}},
		{"ok/port", "https://mcp.example.com:8443/mcp", "https://mcp.example.com:8443" + wk + "/mcp", []string{wk + "/mcp", wk}},
		{"ok/escaped path kept as written", "https://h.example/a%2Fb", "https://h.example" + wk + "/a%2Fb", []string{wk + "/a%2Fb", wk}},
		{"ok/http on localhost", "http://localhost:8080/mcp", "http://localhost:8080" + wk + "/mcp", []string{wk + "/mcp", wk}},
		{"ok/http on loopback IPv4", "http://127.0.0.1:8080/mcp", "http://127.0.0.1:8080" + wk + "/mcp", []string{wk + "/mcp", wk}},
		{"ok/http on loopback IPv6", "http://[::1]:8080", "http://[::1]:8080" + wk, []string{wk}},
		{"fail/http elsewhere", "http://mcp.example.com/mcp", "", nil},
		{"fail/relative", "/mcp", "", nil},
		{"fail/no host", "https:///mcp", "", nil},
		{"fail/other scheme", "wss://mcp.example.com/mcp", "", nil},
		{"fail/opaque", "https:mcp.example.com", "", nil},
		{"fail/fragment", "https://mcp.example.com/mcp#x", "", nil},
		{"fail/query", "https://mcp.example.com/mcp?tenant=a", "", nil},
		{"fail/empty query", "https://mcp.example.com/mcp?", "", nil},
		{"fail/user info", "https://user@mcp.example.com/mcp", "", nil},
		{"fail/quote", `https://mcp.example.com/m"cp`, "", nil},
		{"fail/space", "https://mcp.example.com/m cp", "", nil},
		{"fail/CRLF", "https://mcp.example.com/mcp\r\nX-Evil: 1", "", nil},
		{"fail/non-ASCII", "https://mcp.example.com/café", "", nil},
		{"fail/empty", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := ResourceMetadataURL(tt.resource)
			paths, perr := ResourceMetadataPaths(tt.resource)
			if tt.url == "" {
				if !errors.Is(err, ErrInvalidResourceMetadata) || !errors.Is(perr, ErrInvalidResourceMetadata) {
					t.Fatalf("ResourceMetadataURL = %q, %v; paths %q, %v; want ErrInvalidResourceMetadata", u, err, paths, perr)
				}
				return
			}
			if err != nil || u != tt.url {
				t.Fatalf("ResourceMetadataURL = %q, %v; want %q", u, err, tt.url)
			}
			if perr != nil || !slices.Equal(paths, tt.paths) {
				t.Fatalf("ResourceMetadataPaths = %q, %v; want %q", paths, perr, tt.paths)
			}
		})
	}
}

func TestResourceMetadata(t *testing.T) {
	full := ResourceMetadata{
		Resource:               "https://mcp.example.com/mcp",
		AuthorizationServers:   []string{"https://auth.example.com", "https://idp.example.org/realms/acme"},
		JWKSURI:                "https://mcp.example.com/jwks.json",
		ScopesSupported:        []string{"tools:read", "tools:call"},
		BearerMethodsSupported: []string{"header"},
		ResourceName:           "Acme <tools> & more",
		ResourceDocumentation:  "https://docs.example.com/mcp?lang=en#auth",
	}
	with := func(change func(*ResourceMetadata)) ResourceMetadata {
		m := full
		change(&m)
		return m
	}
	tests := []struct {
		name string
		md   ResourceMetadata
		want string // the JSON; empty means ErrInvalidResourceMetadata is expected
	}{
		{"ok/every field", full, `{"resource":"https://mcp.example.com/mcp",` +
			`"authorization_servers":["https://auth.example.com","https://idp.example.org/realms/acme"],` +
			`"jwks_uri":"https://mcp.example.com/jwks.json","scopes_supported":["tools:read","tools:call"],` +
			`"bearer_methods_supported":["header"],"resource_name":"Acme \u003ctools\u003e \u0026 more",` +
			`"resource_documentation":"https://docs.example.com/mcp?lang=en#auth"}`},
		{"ok/resource only", ResourceMetadata{Resource: "https://mcp.example.com"}, `{"resource":"https://mcp.example.com"}`},
		{"ok/dev authorization server on localhost", ResourceMetadata{Resource: "http://localhost:9000/mcp", AuthorizationServers: []string{"http://127.0.0.1:9100"}},
			`{"resource":"http://localhost:9000/mcp","authorization_servers":["http://127.0.0.1:9100"]}`},
		{"fail/no resource", with(func(m *ResourceMetadata) { m.Resource = "" }), ""},
		{"fail/resource with a query", with(func(m *ResourceMetadata) { m.Resource += "?a=b" }), ""},
		{"fail/http authorization server", with(func(m *ResourceMetadata) { m.AuthorizationServers = []string{"http://auth.example.com"} }), ""},
		{"fail/authorization server with a query", with(func(m *ResourceMetadata) { m.AuthorizationServers = []string{"https://auth.example.com?x=1"} }), ""},
		{"fail/authorization server with a fragment", with(func(m *ResourceMetadata) { m.AuthorizationServers = []string{"https://auth.example.com#x"} }), ""},
		{"fail/relative authorization server", with(func(m *ResourceMetadata) { m.AuthorizationServers = []string{"auth.example.com"} }), ""},
		{"fail/jwks_uri over http", with(func(m *ResourceMetadata) { m.JWKSURI = "http://mcp.example.com/jwks.json" }), ""},
		{"fail/documentation not a URL", with(func(m *ResourceMetadata) { m.ResourceDocumentation = "see the wiki" }), ""},
		{"fail/scope with a space", with(func(m *ResourceMetadata) { m.ScopesSupported = []string{"tools read"} }), ""},
		{"fail/empty scope", with(func(m *ResourceMetadata) { m.ScopesSupported = []string{""} }), ""},
		{"fail/unknown bearer method", with(func(m *ResourceMetadata) { m.BearerMethodsSupported = []string{"cookie"} }), ""},
		{"fail/repeated bearer method", with(func(m *ResourceMetadata) { m.BearerMethodsSupported = []string{"header", "header"} }), ""},
		{"fail/control character in the name", with(func(m *ResourceMetadata) { m.ResourceName = "a\nb" }), ""},
		{"fail/invalid UTF-8 in the name", with(func(m *ResourceMetadata) { m.ResourceName = "a\xffb" }), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.md.Validate()
			if tt.want == "" {
				if !errors.Is(err, ErrInvalidResourceMetadata) {
					t.Fatalf("Validate() = %v, want ErrInvalidResourceMetadata", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			b, err := json.Marshal(&tt.md)
			if err != nil || string(b) != tt.want {
				t.Fatalf("JSON %s, %v\nwant %s", b, err, tt.want)
			}
			var back ResourceMetadata
			if err := json.Unmarshal(b, &back); err != nil || back.Resource != tt.md.Resource || !slices.Equal(back.ScopesSupported, tt.md.ScopesSupported) {
				t.Fatalf("round trip: %+v, %v", back, err)
			}
		})
	}
}
