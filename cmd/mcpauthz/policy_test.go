package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

// TestDefaultPolicy sends representative requests through the running
// sidecar with the default bundle and real credentials, and checks the
// status, the identity headers, the challenge and the body.
func TestDefaultPolicy(t *testing.T) {
	ctx := context.Background()
	// A JWT issuer of the test's own.
	jwtKey, err := token.GenerateKey(token.ES256, rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	set, _ := token.NewKeySet(jwtKey)
	jwks, _ := set.JWKS()
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := devConfig(t)
	cfg.Credentials.JWT.Issuers = []JWTIssuerConfig{{Issuer: "https://idp.example.com", JWKSFile: jwksFile,
		Algorithms: []string{"ES256"}, Audiences: []string{"https://mcp.example.com/mcp"}}}
	s, stop := startSidecar(t, loopback(cfg), io.Discard)
	defer stop()

	audit, err := s.cfg.Identity.auditor()
	if err != nil {
		t.Fatal(err)
	}
	newService := func(clock func() time.Time) *identity.Service {
		svc, err := identity.NewService(s.store, audit, s.cfg.Identity.serviceConfig(), rand.Reader, identity.WithClock(clock))
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	svc := newService(time.Now)
	// Sessions opened through this one authenticated 20 minutes ago.
	stale := newService(func() time.Time { return time.Now().Add(-20 * time.Minute) })
	consents := []identity.Consent{{Kind: "privacy_policy", Version: "2026-01", Granted: true}, {Kind: "terms", Version: "2026-01", Granted: true}}
	const pw = "correct horse battery staple"
	user := func(email string) *identity.User {
		u, err := svc.SignUp(ctx, identity.SignUp{Email: email, Password: pw, Consents: consents}, identity.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	owner, member, viewer, outsider := user("owner@example.com"), user("member@example.com"), user("viewer@example.com"), user("out@example.com")
	org, _ := svc.CreateOrg(ctx, owner.ID, "Acme", "UTC", identity.Meta{})
	other, _ := svc.CreateOrg(ctx, outsider.ID, "Other", "UTC", identity.Meta{})
	for _, m := range []struct {
		u    *identity.User
		role identity.Role
	}{{member, identity.RoleMember}, {viewer, identity.RoleViewer}} {
		_, tok, err := svc.Invite(ctx, owner.ID, org.ID, m.u.Email, m.role, identity.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.AcceptInvitation(ctx, m.u.ID, tok, identity.Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	session := func(svc *identity.Service, u *identity.User, orgID string) string {
		l, err := svc.Login(ctx, u.Email, pw, identity.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.SetActiveOrg(ctx, l.Session, orgID); err != nil {
			t.Fatal(err)
		}
		return credentials.DefaultSessionCookie + "=" + l.Token
	}
	_, listOnly, err := svc.CreateAPIKey(ctx, owner.ID, org.ID, identity.NewAPIKey{Name: "lister", Scopes: []string{"mcp:tools:list"}}, identity.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	signJWT := func(claims jwt.MapClaims) string {
		now := time.Now()
		base := jwt.MapClaims{"iss": "https://idp.example.com", "aud": "https://mcp.example.com/mcp", "sub": "svc-1",
			"tid": org.ID, "roles": []string{"member"}, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
		for k, v := range claims {
			base[k] = v
		}
		tok, err := jwtKey.Sign(base)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	call := func(path, tool string, header ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+s.httpLis.Addr().String()+path,
			strings.NewReader(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"`+tool+`"}}`))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for _, c := range []struct {
		name      string
		path      string
		tool      string
		header    []string
		status    int
		challenge string // in WWW-Authenticate
		check     func(t *testing.T, res *http.Response)
	}{
		{name: "ok/a member calls a read-only tool", path: "/mcp", tool: "echo", header: []string{"Cookie", session(svc, member, org.ID)}, status: 200,
			check: func(t *testing.T, res *http.Response) {
				if res.Header.Get("X-Mcpauthz-User") != member.ID || res.Header.Get("X-Mcpauthz-Tenant") != org.ID ||
					res.Header.Get("X-Mcpauthz-Roles") != "member" || res.Header.Get("X-Mcpauthz-Auth-Method") != "session" {
					t.Errorf("identity headers %v", res.Header)
				}
			}},
		{name: "fail/a viewer calls a tool", path: "/mcp", tool: "echo", header: []string{"Cookie", session(svc, viewer, org.ID)}, status: 403},
		{name: "fail/a viewer calls a destructive tool", path: "/mcp", tool: "drop_tables", header: []string{"Cookie", session(svc, viewer, org.ID)}, status: 403},
		{name: "ok/a fresh owner calls a destructive tool", path: "/mcp", tool: "drop_tables", header: []string{"Cookie", session(svc, owner, org.ID)}, status: 200},
		{name: "fail/a stale session calls a destructive tool", path: "/mcp", tool: "drop_tables", header: []string{"Cookie", session(stale, owner, org.ID)},
			status: 401, challenge: `error="insufficient_user_authentication"`,
			check: func(t *testing.T, res *http.Response) {
				if !strings.Contains(res.Header.Get("Www-Authenticate"), `max_age="900"`) {
					t.Errorf("challenge %q", res.Header.Get("Www-Authenticate"))
				}
			}},
		{name: "ok/a stale session calls a read-only tool", path: "/mcp", tool: "echo", header: []string{"Cookie", session(stale, owner, org.ID)}, status: 200},
		{name: "fail/a key narrower than its owner", path: "/mcp", tool: "echo", header: []string{"X-Api-Key", listOnly}, status: 403},
		{name: "fail/another tenant's organization", path: "/orgs/" + org.ID + "/mcp", tool: "echo", header: []string{"Cookie", session(svc, outsider, other.ID)}, status: 403},
		{name: "fail/an organization that does not exist looks the same", path: "/orgs/0190a2b4-0000-7000-8000-000000000000/mcp", tool: "echo",
			header: []string{"Cookie", session(svc, outsider, other.ID)}, status: 403},
		{name: "ok/a JWT calls a read-only tool", path: "/mcp", tool: "echo", header: []string{"Authorization", "Bearer " + signJWT(nil)}, status: 200,
			check: func(t *testing.T, res *http.Response) {
				if res.Header.Get("X-Mcpauthz-Auth-Method") != "jwt" || res.Header.Get("X-Mcpauthz-Tenant") != org.ID {
					t.Errorf("identity headers %v", res.Header)
				}
			}},
		{name: "fail/a JWT without auth_time calls a destructive tool", path: "/mcp", tool: "drop_tables",
			header: []string{"Authorization", "Bearer " + signJWT(nil)}, status: 401, challenge: `error="insufficient_user_authentication"`},
		{name: "ok/a JWT with a recent auth_time calls it", path: "/mcp", tool: "drop_tables",
			header: []string{"Authorization", "Bearer " + signJWT(jwt.MapClaims{"auth_time": time.Now().Add(-time.Minute).Unix()})}, status: 200},
		{name: "fail/anonymous", path: "/mcp", tool: "echo", status: 401, challenge: `resource_metadata="http://127.0.0.1:9192/.well-known/oauth-protected-resource/mcp"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := call(c.path, c.tool, c.header...)
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != c.status {
				t.Fatalf("status %d, want %d (%s %s)", res.StatusCode, c.status, res.Header.Get("X-Mcpauthz-Status"), body)
			}
			if c.challenge != "" && !strings.Contains(res.Header.Get("Www-Authenticate"), c.challenge) {
				t.Errorf("WWW-Authenticate %q, want %s", res.Header.Get("Www-Authenticate"), c.challenge)
			}
			if c.status != 200 {
				var reply struct {
					ID    int `json:"id"`
					Error struct{ Code int }
				}
				if err := json.Unmarshal(body, &reply); err != nil || reply.ID != 7 || reply.Error.Code == 0 {
					t.Errorf("a denial's JSON-RPC body: %s", body)
				}
			}
			if c.check != nil {
				c.check(t, res)
			}
		})
	}
}
