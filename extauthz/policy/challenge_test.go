package policy_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/mcp"
)

// stepUpPolicy asks for a login, then for the admin scope, then for a
// session younger than five minutes.
const stepUpPolicy = pkgAuthz + `default decision := {"allowed": false, "http_status": 401, "reason": "login"}

decision := {"allowed": false, "reason": "scope", "challenge": {"error": "insufficient_scope", "scope": "tools:admin"}} if {
	input.identity.authenticated
	not "tools:admin" in input.identity.scopes
}

decision := {"allowed": false, "reason": "stale", "challenge": {
	"error": "insufficient_user_authentication",
	"error_description": "Sign in again",
	"max_age": 300,
}} if {
	"tools:admin" in input.identity.scopes
	input.identity.session.age_seconds > 300
}

decision := true if {
	"tools:admin" in input.identity.scopes
	input.identity.session.age_seconds <= 300
}
`

// TestChallengeHeaders: a real policy's challenges reach the client as
// WWW-Authenticate with the resource metadata URL, the same on every
// request (cached decisions are shared and must not be changed).
func TestChallengeHeaders(t *testing.T) {
	pr, err := extauthz.NewProtectedResource(mcp.ResourceMetadata{
		Resource:             "https://mcp.example.com/mcp",
		AuthorizationServers: []string{"https://auth.example.com"},
		ScopesSupported:      []string{"tools:read", "tools:admin"},
	})
	if err != nil {
		t.Fatal(err)
	}
	const md = `resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"`
	user := func(scopes []string, age time.Duration) extauthz.Identity {
		return extauthz.Identity{Authenticated: true, Method: extauthz.MethodSession, Subject: "u1", Scopes: scopes,
			Session: &extauthz.SessionInfo{ID: "s1", AuthTime: testNow.Add(-age)}}
	}
	tests := []struct {
		name   string
		id     extauthz.Identity
		status int // 0: allowed
		want   string
	}{
		{"ok/fresh admin session is allowed", user([]string{"tools:admin"}, time.Minute), 0, ""},
		{"fail/anonymous is asked to log in", extauthz.Anonymous, http.StatusUnauthorized, "Bearer " + md},
		{"fail/missing scope is insufficient_scope", user([]string{"tools:read"}, time.Minute), http.StatusForbidden,
			`Bearer error="insufficient_scope", scope="tools:admin", ` + md},
		{"fail/stale session is asked to step up", user([]string{"tools:admin"}, time.Hour), http.StatusUnauthorized,
			`Bearer error="insufficient_user_authentication", error_description="Sign in again", max_age="300", ` + md},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := authorizer(t, stepUpPolicy, false, extauthz.WithProtectedResource(pr),
				extauthz.WithIdentityVerifier(fixedIdentity{tt.id}))
			for range 2 {
				d, err := a.Check(context.Background(), request("GET", "/mcp", nil, ""))
				if err != nil {
					t.Fatal(err)
				}
				if tt.status == 0 {
					if !d.Allowed {
						t.Fatalf("denied: %+v", d)
					}
					continue
				}
				var got []string
				for _, h := range d.Headers {
					if strings.EqualFold(h.Name, "www-authenticate") {
						got = append(got, h.Value)
					}
				}
				if d.Allowed || d.Status != tt.status || !slices.Equal(got, []string{tt.want}) {
					t.Fatalf("status %d, WWW-Authenticate %q; want %d %q", d.Status, got, tt.status, tt.want)
				}
			}
		})
	}
}
