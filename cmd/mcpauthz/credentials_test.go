package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
	"github.com/mcpauthz/mcpauthz/identity"
)

func TestCredentialsConfig(t *testing.T) {
	write, dir := tempWriter(t)
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
		{name: "fail/an upstream token header the client could forge", env: []string{"MCPAUTHZ_CREDENTIALS_UPSTREAM_TOKEN_KEY_FILE=" + filepath.Join(dir, "nope.json"),
			"MCPAUTHZ_CREDENTIALS_UPSTREAM_TOKEN_HEADER=x-identity"}, wantErr: "must be a header name starting with headers.prefix"},
		{name: "fail/an upstream token key that is not there", env: []string{"MCPAUTHZ_CREDENTIALS_UPSTREAM_TOKEN_KEY_FILE=" + filepath.Join(dir, "nope.json")},
			wantErr: "credentials.upstream_token.key_file"},
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
			if expectErr(t, err, tt.wantErr) {
				return
			}
			tt.check(t, cfg)
		})
	}
}

// TestUpstreamToken makes a key with keygen, configures the sidecar with
// it, and finds a verifiable token of the caller on an authenticated allow.
func TestUpstreamToken(t *testing.T) {
	dir := t.TempDir()
	keyFile, jwksFile := filepath.Join(dir, "key.json"), filepath.Join(dir, "jwks.json")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"keygen", "-o", keyFile, "-jwks", jwksFile}, nil, &out, &errOut); code != 0 {
		t.Fatalf("keygen: %d %s", code, errOut.String())
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	if code := run(context.Background(), []string{"keygen", "-o", keyFile, "-jwks", jwksFile}, nil, &out, &errOut); code == 0 {
		t.Fatal("keygen overwrote a key")
	}

	cfg := devConfig(t)
	cfg.Credentials.UpstreamToken.KeyFile = keyFile
	cfg.Credentials.UpstreamToken.Audience = "https://upstream.internal"
	s, stop := startSidecar(t, loopback(cfg), io.Discard)
	defer stop()
	// A key of the dev store's own, made through the store the sidecar reads.
	secret := devKey(t, s)
	req, _ := http.NewRequest("POST", "http://"+s.httpLis.Addr().String()+"/mcp",
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	tok := res.Header.Get("X-Mcpauthz-Identity")
	if res.StatusCode != 200 || tok == "" {
		t.Fatalf("allow: %d, token %q", res.StatusCode, tok)
	}
	jwks, _ := os.ReadFile(jwksFile)
	v, err := credentials.NewJWTVerifier(credentials.JWTConfig{Issuers: []credentials.JWTIssuer{{
		Issuer: "mcpauthz", JWKS: jwks, Algorithms: []string{"ES256"}, Audiences: []string{"https://upstream.internal"}}}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(context.Background(), &extauthz.Request{Headers: map[string]string{"authorization": "Bearer " + tok}})
	if err != nil || !strings.HasPrefix(id.Subject, "key:") || id.Claims["auth_method"] != "api_key" {
		t.Fatalf("the upstream token: %v %+v", err, id)
	}
}

// devKey creates a user, an organization and an API key in the store the
// sidecar reads, and returns the key.
func devKey(t *testing.T, s *sidecar) string {
	t.Helper()
	svc, u, org := devAccount(t, s)
	_, secret, err := svc.CreateAPIKey(context.Background(), u.ID, org.ID, identity.NewAPIKey{Name: "ci",
		Scopes: []string{"mcp:tools:call", "mcp:tools:list"}}, identity.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// devSession signs the account in, in its organization, and returns the
// session token.
func devSession(t *testing.T, s *sidecar) string {
	t.Helper()
	svc, u, org := devAccount(t, s)
	l, err := svc.Login(context.Background(), u.Email, "correct horse battery staple", identity.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.SetActiveOrg(context.Background(), l.Session, org.ID); err != nil {
		t.Fatal(err)
	}
	return l.Token
}

// devAccount creates a user and an organization in the store the sidecar
// reads; each call a new user.
func devAccount(t *testing.T, s *sidecar) (*identity.Service, *identity.User, *identity.Org) {
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
	u, err := svc.SignUp(ctx, identity.SignUp{Email: rand.Text()[:12] + "@example.com", Password: "correct horse battery staple",
		Consents: []identity.Consent{{Kind: "privacy_policy", Version: "2026-01", Granted: true}, {Kind: "terms", Version: "2026-01", Granted: true}}}, identity.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	org, err := svc.CreateOrg(ctx, u.ID, "Acme", "UTC", identity.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	return svc, u, org
}

// TestSessionCacheCookie: with credentials.session_cache the allow of a
// session carries the signed cache cookie for the client, beside the
// upstream's own cookies.
func TestSessionCacheCookie(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "sc.key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := devConfig(t)
	cfg.Credentials.SessionCache.KeyFile = keyFile
	s, stop := startSidecar(t, loopback(cfg), io.Discard)
	defer stop()
	tok := devSession(t, s)
	req, _ := http.NewRequest("POST", "http://"+s.httpLis.Addr().String()+"/mcp",
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cookie", credentials.DefaultSessionCookie+"="+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Set-Cookie"), credentials.DefaultSessionCacheCookie+"=") {
		t.Fatalf("allow: %d, Set-Cookie %q", res.StatusCode, res.Header.Get("Set-Cookie"))
	}
}
