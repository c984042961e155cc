package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCredentialsConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	jwks := write("jwks.json", `{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256",`+
		`"x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`)
	for _, tt := range []struct {
		name    string
		yaml    string
		env     []string
		check   func(*testing.T, Config)
		wantErr string
	}{
		{name: "ok/defaults verify nothing", check: func(t *testing.T, c Config) {
			if c.Credentials.APIKeys || c.Credentials.Sessions || len(c.Credentials.JWT.Issuers) != 0 || c.MCP.Resource.URL != "" {
				t.Fatalf("%+v", c.Credentials)
			}
		}},
		{name: "ok/an issuer and a resource", yaml: `
credentials:
  api_keys: true
  jwt:
    max_token_lifetime: 90m
    issuers:
    - issuer: https://login.example.com/tenant/v2.0
      jwks_file: ` + jwks + `
      algorithms: [ES256]
      audiences: [https://mcp.example.com/mcp]
      leeway: 30s
      claims: {tenant: tid, roles: roles, scopes: scp}
mcp:
  resource:
    url: https://mcp.example.com/mcp
    authorization_servers: [https://login.example.com/tenant/v2.0]
`, env: []string{"MCPAUTHZ_CREDENTIALS_LIVE_MAX_AGE=2m"}, check: func(t *testing.T, c Config) {
			i := c.Credentials.JWT.Issuers[0]
			if !c.Credentials.APIKeys || i.Claims.Scopes != "scp" || time.Duration(i.Leeway) != 30*time.Second ||
				time.Duration(c.Credentials.JWT.MaxTokenLifetime) != 90*time.Minute || time.Duration(c.Credentials.LiveMaxAge) != 2*time.Minute {
				t.Fatalf("%+v", c.Credentials)
			}
			if pr, err := c.MCP.Resource.protectedResource(); err != nil || pr.MetadataURL() != "https://mcp.example.com/.well-known/oauth-protected-resource/mcp" {
				t.Fatalf("%v %v", pr, err)
			}
		}},
		{name: "fail/an HMAC algorithm", yaml: `
credentials:
  jwt:
    issuers:
    - {issuer: https://a.example.com, jwks_file: ` + jwks + `, algorithms: [HS256], audiences: [x]}
`, wantErr: "credentials.jwt"},
		{name: "fail/an issuer without audience", yaml: `
credentials:
  jwt:
    issuers:
    - {issuer: https://a.example.com, jwks_file: ` + jwks + `}
`, wantErr: "credentials.jwt"},
		{name: "fail/an unknown issuer key", yaml: "credentials:\n  jwt:\n    issuers:\n    - {issuer: a, jwks: x}\n", wantErr: "field jwks not found"},
		{name: "fail/a resource over plain http", yaml: "mcp:\n  resource: {url: http://mcp.example.com/mcp}\n", wantErr: "mcp.resource"},
		{name: "fail/degraded longer than live", env: []string{"MCPAUTHZ_CREDENTIALS_DEGRADED_MAX_AGE=10m"}, wantErr: "degraded_max_age"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var args []string
			if tt.yaml != "" {
				args = []string{"--config", write(strings.ReplaceAll(tt.name, "/", "_")+".yaml", tt.yaml)}
			}
			f, fs, err := parseFlags("serve", args, &bytes.Buffer{}, false)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := loadConfig(Defaults(), f, fs, tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg)
		})
	}
}
