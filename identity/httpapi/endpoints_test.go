package httpapi_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/identity/httpapi"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

// TestRoutesMatchTheDocument holds the route table and the OpenAPI
// document together: every route is documented and every documented
// operation is served.
func TestRoutesMatchTheDocument(t *testing.T) {
	f := newFixture(t)
	var documented []string
	for path, item := range f.doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	served := httpapi.Routes()
	slices.Sort(documented)
	slices.Sort(served)
	for _, r := range served {
		if _, ok := slices.BinarySearch(documented, r); !ok {
			t.Errorf("%s is served but not documented", r)
		}
	}
	for _, d := range documented {
		if _, ok := slices.BinarySearch(served, d); !ok {
			t.Errorf("%s is documented but not served", d)
		}
	}
}

// step is one call in a scenario and what it must answer. A failing step
// must change nothing: the audit log does not grow, unless audits says
// the refusal itself is recorded (a wrong password is).
type step struct {
	name   string
	req    request
	status int
	code   string // the error code of a failure
	audits bool
	check  func(t *testing.T, res *response)
}

func run(t *testing.T, f *fixture, steps []step) {
	t.Helper()
	for _, s := range steps {
		before := f.auditCount()
		res := f.do(s.req)
		if res.status != s.status {
			t.Errorf("%s: status %d, want %d (%s)", s.name, res.status, s.status, res.body)
			continue
		}
		if got := res.errorCode(); got != s.code {
			t.Errorf("%s: error code %q, want %q (%s)", s.name, got, s.code, res.body)
		}
		if strings.HasPrefix(s.name, "fail/") && !s.audits {
			if after := f.auditCount(); after != before {
				t.Errorf("%s: a refused call changed the audit log (%d → %d events)", s.name, before, after)
			}
		}
		if s.check != nil {
			s.check(t, res)
		}
	}
}

func TestPublicEndpoints(t *testing.T) {
	f := newFixture(t)
	run(t, f, []step{
		{name: "ok/health", req: request{method: "GET", path: "/healthz"}, status: 200},
		{name: "ok/consent terms", req: request{method: "GET", path: "/v1/consents"}, status: 200,
			check: func(t *testing.T, res *response) {
				if !strings.Contains(string(res.body), `"terms":"2026-01"`) {
					t.Errorf("consent terms: %s", res.body)
				}
			}},
		{name: "ok/jwks", req: request{method: "GET", path: "/.well-known/jwks.json"}, status: 200,
			check: func(t *testing.T, res *response) {
				if !strings.Contains(string(res.body), `"kid"`) || strings.Contains(string(res.body), `"d"`) {
					t.Errorf("the JWKS must publish public keys only: %s", res.body)
				}
			}},
		{name: "fail/no such endpoint", req: request{method: "GET", path: "/v1/nope"}, status: 404, code: "not_found"},
		{name: "fail/method not allowed", req: request{method: "POST", path: "/healthz"}, status: 405, code: "method_not_allowed",
			check: func(t *testing.T, res *response) {
				if res.header.Get("Allow") == "" {
					t.Error("405 without Allow")
				}
			}},
	})
}

func TestSignUpAndLogin(t *testing.T) {
	f := newFixture(t)
	f.signUp("taken@example.com")
	big := strings.Repeat("a", httpapi.DefaultMaxBody)
	noTerms := signUpBody("new@example.com", goodPassword)
	noTerms["consents"] = []map[string]any{{"kind": "privacy_policy", "version": "2026-01", "granted": true}}
	run(t, f, []step{
		{name: "fail/weak password", req: request{method: "POST", path: "/v1/users", body: signUpBody("new@example.com", "password1234")},
			status: 400, code: "invalid_request", check: wantField("password")},
		{name: "fail/short password", req: request{method: "POST", path: "/v1/users", body: signUpBody("new@example.com", "short")},
			status: 400, code: "invalid_request", check: wantField("password")},
		{name: "fail/bad email", req: request{method: "POST", path: "/v1/users", body: signUpBody("not-an-email", goodPassword)},
			status: 400, code: "invalid_request", check: wantField("email")},
		{name: "fail/missing consent", req: request{method: "POST", path: "/v1/users", body: noTerms},
			status: 400, code: "invalid_request"},
		{name: "fail/taken email", req: request{method: "POST", path: "/v1/users", body: signUpBody("Taken@Example.com", goodPassword)},
			status: 400, code: "invalid_request", check: wantField("email")},
		{name: "fail/unknown field", req: request{method: "POST", path: "/v1/users", body: `{"email":"a@example.com","admin":true}`},
			status: 400, code: "invalid_json"},
		{name: "fail/wrong type", req: request{method: "POST", path: "/v1/users", body: `{"email":42}`},
			status: 400, code: "invalid_json", check: wantField("email")},
		{name: "fail/two values", req: request{method: "POST", path: "/v1/users", body: `{} {}`},
			status: 400, code: "invalid_json"},
		{name: "fail/a key in another case", req: request{method: "POST", path: "/v1/users", body: `{"EMAIL":"a@example.com"}`},
			status: 400, code: "invalid_json", check: wantField("EMAIL")},
		{name: "fail/a key twice", req: request{method: "POST", path: "/v1/users", body: `{"email":"a@example.com","email":"b@example.com"}`},
			status: 400, code: "invalid_json", check: wantField("email")},
		{name: "fail/a nested key twice", req: request{method: "POST", path: "/v1/users",
			body: `{"consents":[{"kind":"terms","kind":"privacy_policy"}]}`}, status: 400, code: "invalid_json", check: wantField("consents[0].kind")},
		{name: "fail/null", req: request{method: "POST", path: "/v1/users", body: `null`}, status: 400, code: "invalid_json"},
		{name: "fail/an array", req: request{method: "POST", path: "/v1/users", body: `[]`}, status: 400, code: "invalid_json"},
		{name: "fail/not JSON", req: request{method: "POST", path: "/v1/users", body: `{"email":`}, status: 400, code: "invalid_json"},
		{name: "fail/nested too deep", req: request{method: "POST", path: "/v1/users", body: `{"consents":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`},
			status: 400, code: "invalid_json"},
		{name: "fail/empty body", req: request{method: "POST", path: "/v1/users", body: ``},
			status: 400, code: "invalid_json"},
		{name: "fail/not json", req: request{method: "POST", path: "/v1/users", body: `email=a`,
			header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}},
			status: 415, code: "unsupported_media_type"},
		{name: "fail/too large", req: request{method: "POST", path: "/v1/users", body: `{"display_name":"` + big + `"}`},
			status: 413, code: "too_large"},
		{name: "ok/sign up", req: request{method: "POST", path: "/v1/users", body: signUpBody(" New@Example.COM ", goodPassword)},
			status: 201, check: func(t *testing.T, res *response) {
				var u struct{ Email, Status string }
				res.decode(t, &u)
				if u.Email != "new@example.com" || u.Status != "active" {
					t.Errorf("user: %s", res.body)
				}
				if strings.Contains(string(res.body), "argon2") {
					t.Error("the response carries the password hash")
				}
			}},

		{name: "fail/a second password in another case", req: request{method: "POST", path: "/v1/sessions",
			body: `{"email":"new@example.com","password":"wrong password here","Password":"` + goodPassword + `"}`}, status: 400, code: "invalid_json"},
		{name: "fail/wrong password", req: request{method: "POST", path: "/v1/sessions", body: map[string]string{"email": "new@example.com", "password": "wrong password here"}},
			status: 401, code: "invalid_credentials", audits: true, check: wantChallenge},
		{name: "fail/unknown email", req: request{method: "POST", path: "/v1/sessions", body: map[string]string{"email": "nobody@example.com", "password": goodPassword}},
			status: 401, code: "invalid_credentials", audits: true},
		{name: "fail/login missing body", req: request{method: "POST", path: "/v1/sessions"},
			status: 415, code: "unsupported_media_type"},
		{name: "ok/login", req: request{method: "POST", path: "/v1/sessions", body: map[string]string{"email": "new@example.com", "password": goodPassword}},
			status: 201, check: func(t *testing.T, res *response) {
				var l struct{ Token string }
				res.decode(t, &l)
				if kind, err := token.Parse(l.Token); err != nil || kind != token.KindSession {
					t.Errorf("login token %q is not a session token: %v", l.Token, err)
				}
				c := res.header.Get("Set-Cookie")
				for _, want := range []string{httpapi.DefaultCookieName + "=" + l.Token, "Secure", "HttpOnly", "SameSite=Lax", "Path=/"} {
					if !strings.Contains(c, want) {
						t.Errorf("Set-Cookie %q lacks %q", c, want)
					}
				}
			}},
	})
}

func wantField(field string) func(*testing.T, *response) {
	return func(t *testing.T, res *response) {
		t.Helper()
		var e struct{ Error struct{ Field string } }
		res.decode(t, &e)
		if e.Error.Field != field {
			t.Errorf("error field %q, want %q (%s)", e.Error.Field, field, res.body)
		}
	}
}

func wantChallenge(t *testing.T, res *response) {
	t.Helper()
	if !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("401 without a Bearer challenge: %q", res.header.Get("WWW-Authenticate"))
	}
}

func TestSessions(t *testing.T) {
	f := newFixture(t)
	alice := f.signUp("alice@example.com")
	second := f.login("alice@example.com")
	bob := f.signUp("bob@example.com")
	orgA := f.createOrg(alice, "Acme")
	var mine struct{ Sessions []struct{ ID string } }
	f.do(request{method: "GET", path: "/v1/sessions", token: alice.token}).decode(t, &mine)
	if len(mine.Sessions) != 2 {
		t.Fatalf("alice has %d sessions, want 2", len(mine.Sessions))
	}
	run(t, f, []step{
		{name: "fail/no credential", req: request{method: "GET", path: "/v1/me"}, status: 401, code: "unauthenticated", check: wantChallenge},
		{name: "fail/garbage token", req: request{method: "GET", path: "/v1/me", token: "mcps_garbage"}, status: 401, code: "unauthenticated"},
		{name: "fail/not bearer", req: request{method: "GET", path: "/v1/me", header: http.Header{"Authorization": {"Basic " + alice.token}}},
			status: 401, code: "unauthenticated"},
		{name: "fail/token in the query string", req: request{method: "GET", path: "/v1/me?access_token=" + alice.token}, status: 401, code: "unauthenticated"},
		{name: "fail/api key as a session", req: request{method: "GET", path: "/v1/me", token: "mcpk_" + strings.Repeat("A", 40)}, status: 401, code: "unauthenticated"},
		{name: "ok/me", req: request{method: "GET", path: "/v1/me", token: alice.token}, status: 200,
			check: func(t *testing.T, res *response) {
				if !strings.Contains(string(res.body), alice.email) {
					t.Errorf("me: %s", res.body)
				}
			}},
		{name: "ok/list sessions", req: request{method: "GET", path: "/v1/sessions", token: bob.token}, status: 200},
		{name: "fail/revoke another user's session", req: request{method: "DELETE", path: "/v1/sessions/" + mine.Sessions[0].ID, token: bob.token},
			status: 404, code: "not_found"},
		{name: "fail/reauth wrong password", req: request{method: "POST", path: "/v1/sessions/reauth", token: alice.token, body: map[string]string{"password": "not the password"}},
			status: 401, code: "invalid_credentials", audits: true},
		{name: "ok/reauth", req: request{method: "POST", path: "/v1/sessions/reauth", token: alice.token, body: map[string]string{"password": goodPassword}}, status: 200},
		{name: "fail/active org not a member", req: request{method: "PUT", path: "/v1/sessions/current/org", token: bob.token, body: map[string]string{"org_id": orgA}},
			status: 403, code: "forbidden"},
		{name: "ok/active org", req: request{method: "PUT", path: "/v1/sessions/current/org", token: alice.token, body: map[string]string{"org_id": orgA}}, status: 200,
			check: func(t *testing.T, res *response) {
				var s struct {
					ActiveOrgID string `json:"active_org_id"`
				}
				res.decode(t, &s)
				if s.ActiveOrgID != orgA {
					t.Errorf("active org %q, want %q", s.ActiveOrgID, orgA)
				}
			}},
		{name: "ok/revoke the other session", req: request{method: "DELETE", path: "/v1/sessions/" + mine.Sessions[1].ID, token: alice.token}, status: 204},
		{name: "fail/revoked session", req: request{method: "GET", path: "/v1/me", token: second}, status: 401, code: "unauthenticated"},
		{name: "ok/logout", req: request{method: "DELETE", path: "/v1/sessions/current", token: alice.token}, status: 204,
			check: func(t *testing.T, res *response) {
				if c := res.header.Get("Set-Cookie"); !strings.Contains(c, "Max-Age=0") {
					t.Errorf("logout does not clear the cookie: %q", c)
				}
			}},
		{name: "fail/after logout", req: request{method: "GET", path: "/v1/me", token: alice.token}, status: 401, code: "unauthenticated"},
		{name: "ok/revoke all", req: request{method: "DELETE", path: "/v1/sessions", token: bob.token}, status: 200,
			check: func(t *testing.T, res *response) {
				if !strings.Contains(string(res.body), `"revoked":1`) {
					t.Errorf("revoke all: %s", res.body)
				}
			}},
		{name: "fail/after revoke all", req: request{method: "GET", path: "/v1/sessions", token: bob.token}, status: 401, code: "unauthenticated"},
	})
}

func TestOrganizations(t *testing.T) {
	f := newFixture(t)
	alice := f.signUp("alice@example.com")
	bob := f.signUp("bob@example.com")
	carol := f.signUp("carol@example.com")
	dave := f.signUp("dave@example.com")
	orgA := f.createOrg(alice, "Acme")
	orgB := f.createOrg(carol, "Beta")
	var inv struct {
		Invitation struct{ ID string }
		Token      string
	}
	res := f.do(request{method: "POST", path: "/v1/orgs/" + orgA + "/invitations", token: alice.token, body: map[string]string{"email": bob.email, "role": "member"}})
	res.decode(t, &inv)
	if res.status != 201 {
		t.Fatalf("invite: %d %s", res.status, res.body)
	}
	var second struct {
		Invitation struct{ ID string }
		Token      string
	}
	f.do(request{method: "POST", path: "/v1/orgs/" + orgA + "/invitations", token: alice.token, body: map[string]string{"email": dave.email, "role": "viewer"}}).decode(t, &second)
	org := "/v1/orgs/" + orgA
	run(t, f, []step{
		{name: "fail/create without a name", req: request{method: "POST", path: "/v1/orgs", token: alice.token, body: map[string]string{"name": " "}},
			status: 400, code: "invalid_request", check: wantField("name")},
		{name: "fail/create with a bad time zone", req: request{method: "POST", path: "/v1/orgs", token: alice.token, body: map[string]string{"name": "X", "time_zone": "Mars/Olympus"}},
			status: 400, code: "invalid_request", check: wantField("time_zone")},
		{name: "fail/create unauthenticated", req: request{method: "POST", path: "/v1/orgs", body: map[string]string{"name": "X"}},
			status: 401, code: "unauthenticated"},
		{name: "ok/list", req: request{method: "GET", path: "/v1/orgs", token: alice.token}, status: 200,
			check: func(t *testing.T, res *response) {
				if !strings.Contains(string(res.body), orgA) || strings.Contains(string(res.body), orgB) {
					t.Errorf("alice's orgs: %s", res.body)
				}
			}},
		{name: "ok/get", req: request{method: "GET", path: org, token: alice.token}, status: 200},
		{name: "fail/get another tenant's", req: request{method: "GET", path: org, token: carol.token}, status: 403, code: "forbidden"},
		{name: "fail/get one that does not exist looks the same", req: request{method: "GET", path: "/v1/orgs/0190a2b4-0000-7000-8000-000000000000", token: carol.token},
			status: 403, code: "forbidden"},

		{name: "fail/accept someone else's invitation", req: request{method: "POST", path: "/v1/invitations/accept", token: carol.token, body: map[string]string{"token": inv.Token}},
			status: 403, code: "forbidden"},
		{name: "fail/accept garbage", req: request{method: "POST", path: "/v1/invitations/accept", token: bob.token, body: map[string]string{"token": "nope"}},
			status: 400, code: "invalid_request", check: wantField("token")},
		{name: "ok/accept", req: request{method: "POST", path: "/v1/invitations/accept", token: bob.token, body: map[string]string{"token": inv.Token}}, status: 200},
		{name: "fail/accept twice", req: request{method: "POST", path: "/v1/invitations/accept", token: bob.token, body: map[string]string{"token": inv.Token}},
			status: 400, code: "invalid_request"},
		{name: "fail/invite a bad email", req: request{method: "POST", path: org + "/invitations", token: alice.token, body: map[string]string{"email": "x", "role": "member"}},
			status: 400, code: "invalid_request", check: wantField("email")},
		{name: "fail/invite with a bad role", req: request{method: "POST", path: org + "/invitations", token: alice.token, body: map[string]string{"email": "e@example.com", "role": "god"}},
			status: 400, code: "invalid_request", check: wantField("role")},
		{name: "fail/invite as a member", req: request{method: "POST", path: org + "/invitations", token: bob.token, body: map[string]string{"email": "e@example.com", "role": "viewer"}},
			status: 403, code: "forbidden"},
		{name: "fail/invite into another tenant", req: request{method: "POST", path: "/v1/orgs/" + orgB + "/invitations", token: alice.token, body: map[string]string{"email": "e@example.com", "role": "viewer"}},
			status: 403, code: "forbidden"},
		{name: "ok/list invitations", req: request{method: "GET", path: org + "/invitations", token: alice.token}, status: 200,
			check: func(t *testing.T, res *response) {
				if !strings.Contains(string(res.body), `"status":"accepted"`) || !strings.Contains(string(res.body), `"status":"open"`) {
					t.Errorf("invitations: %s", res.body)
				}
				if strings.Contains(string(res.body), inv.Token) {
					t.Error("a listing shows an invitation token")
				}
			}},
		{name: "fail/list another tenant's invitations", req: request{method: "GET", path: org + "/invitations", token: carol.token}, status: 403, code: "forbidden"},
		{name: "fail/revoke an unknown invitation", req: request{method: "DELETE", path: org + "/invitations/nope", token: alice.token}, status: 404, code: "not_found"},
		{name: "fail/revoke another tenant's invitation", req: request{method: "DELETE", path: org + "/invitations/" + second.Invitation.ID, token: carol.token}, status: 403, code: "forbidden"},
		{name: "ok/revoke an invitation", req: request{method: "DELETE", path: org + "/invitations/" + second.Invitation.ID, token: alice.token}, status: 204},
		{name: "fail/accept a revoked invitation", req: request{method: "POST", path: "/v1/invitations/accept", token: dave.token, body: map[string]string{"token": second.Token}},
			status: 400, code: "invalid_request"},

		{name: "ok/members", req: request{method: "GET", path: org + "/members", token: bob.token}, status: 200,
			check: func(t *testing.T, res *response) {
				if !strings.Contains(string(res.body), bob.id) || !strings.Contains(string(res.body), alice.id) {
					t.Errorf("members: %s", res.body)
				}
			}},
		{name: "fail/members of another tenant", req: request{method: "GET", path: org + "/members", token: carol.token}, status: 403, code: "forbidden"},
		{name: "fail/rename as a member", req: request{method: "PATCH", path: org, token: bob.token, body: map[string]string{"name": "Mine"}}, status: 403, code: "forbidden"},
		{name: "fail/rename another tenant", req: request{method: "PATCH", path: org, token: carol.token, body: map[string]string{"name": "Mine"}}, status: 403, code: "forbidden"},
		{name: "fail/rename to a control character", req: request{method: "PATCH", path: org, token: alice.token, body: map[string]string{"name": "a\u0000b"}}, status: 400, code: "invalid_request"},
		{name: "ok/rename", req: request{method: "PATCH", path: org, token: alice.token, body: map[string]string{"name": "Acme Inc"}}, status: 200,
			check: func(t *testing.T, res *response) {
				if !strings.Contains(string(res.body), `"name":"Acme Inc"`) {
					t.Errorf("renamed: %s", res.body)
				}
			}},
		{name: "fail/member promotes themself", req: request{method: "PUT", path: org + "/members/" + bob.id, token: bob.token, body: map[string]string{"role": "owner"}}, status: 403, code: "forbidden"},
		{name: "fail/bad role", req: request{method: "PUT", path: org + "/members/" + bob.id, token: alice.token, body: map[string]string{"role": "root"}}, status: 400, code: "invalid_request"},
		{name: "fail/last owner demoted", req: request{method: "PUT", path: org + "/members/" + alice.id, token: alice.token, body: map[string]string{"role": "admin"}}, status: 409, code: "last_owner"},
		{name: "fail/role of a non-member", req: request{method: "PUT", path: org + "/members/" + carol.id, token: alice.token, body: map[string]string{"role": "admin"}}, status: 404, code: "not_found"},
		{name: "ok/promote", req: request{method: "PUT", path: org + "/members/" + bob.id, token: alice.token, body: map[string]string{"role": "admin"}}, status: 204},
		{name: "fail/an admin invites an admin", req: request{method: "POST", path: org + "/invitations", token: bob.token, body: map[string]string{"email": "e@example.com", "role": "admin"}},
			status: 403, code: "forbidden"},
		{name: "ok/an admin invites a member", req: request{method: "POST", path: org + "/invitations", token: bob.token, body: map[string]string{"email": "e@example.com", "role": "member"}},
			status: 201},
		{name: "fail/last owner leaves", req: request{method: "DELETE", path: org + "/members/" + alice.id, token: alice.token}, status: 409, code: "last_owner"},
		{name: "fail/remove from another tenant", req: request{method: "DELETE", path: org + "/members/" + bob.id, token: carol.token}, status: 403, code: "forbidden"},
		{name: "fail/admin removes the owner", req: request{method: "DELETE", path: org + "/members/" + alice.id, token: bob.token}, status: 403, code: "forbidden"},
		{name: "ok/leave", req: request{method: "DELETE", path: org + "/members/" + bob.id, token: bob.token}, status: 204},
		{name: "fail/gone member reads", req: request{method: "GET", path: org, token: bob.token}, status: 403, code: "forbidden"},

		{name: "fail/delete as a non-member", req: request{method: "DELETE", path: org, token: carol.token}, status: 403, code: "forbidden"},
		{name: "ok/delete", req: request{method: "DELETE", path: org, token: alice.token}, status: 204},
		{name: "fail/deleted", req: request{method: "GET", path: org, token: alice.token}, status: 403, code: "forbidden"},
	})
}

func TestAPIKeysAndTokens(t *testing.T) {
	f := newFixture(t)
	alice := f.signUp("alice@example.com")
	carol := f.signUp("carol@example.com")
	orgA := f.createOrg(alice, "Acme")
	orgB := f.createOrg(carol, "Beta")
	keys := "/v1/orgs/" + orgA + "/api-keys"
	var created struct {
		APIKey struct{ ID string } `json:"api_key"`
		Secret string
	}
	res := f.do(request{method: "POST", path: keys, token: alice.token, body: map[string]any{
		"name": "ci", "scopes": []string{"mcp:tools:call"},
	}})
	if res.status != 201 {
		t.Fatalf("create key: %d %s", res.status, res.body)
	}
	res.decode(t, &created)
	var fenced struct{ Secret string }
	f.do(request{method: "POST", path: keys, token: alice.token, body: map[string]any{"name": "fenced", "ip_allowlist": []string{"127.0.0.0/8"}}}).decode(t, &fenced)
	var rotated struct {
		APIKey struct{ ID string } `json:"api_key"`
		Secret string
	}
	verify := func(sub, tenant string) func(*testing.T, *response) {
		return func(t *testing.T, res *response) {
			var tok struct {
				AccessToken string `json:"access_token"`
				ExpiresIn   int    `json:"expires_in"`
			}
			res.decode(t, &tok)
			claims, err := token.Verify(tok.AccessToken, f.tokens.KeySet(), token.WithIssuer("https://id.example.com"),
				token.WithAudience("https://mcp.example.com/mcp"), token.WithClock(f.clock.Now))
			if err != nil {
				t.Fatalf("the issued token does not verify: %v", err)
			}
			if claims["sub"] != sub || claims["tid"] != tenant || tok.ExpiresIn <= 0 {
				t.Errorf("claims %v, expires_in %d; want sub %s tid %s", claims, tok.ExpiresIn, sub, tenant)
			}
		}
	}
	run(t, f, []step{
		{name: "fail/create without a name", req: request{method: "POST", path: keys, token: alice.token, body: map[string]any{"name": ""}}, status: 400, code: "invalid_request"},
		{name: "fail/create with a bad address", req: request{method: "POST", path: keys, token: alice.token, body: map[string]any{"name": "x", "ip_allowlist": []string{"nope"}}},
			status: 400, code: "invalid_request", check: wantField("ip_allowlist")},
		{name: "fail/create with a bad scope", req: request{method: "POST", path: keys, token: alice.token, body: map[string]any{"name": "x", "scopes": []string{"A B"}}},
			status: 400, code: "invalid_request", check: wantField("scopes")},
		{name: "fail/create above the org's tier", req: request{method: "POST", path: keys, token: alice.token, body: map[string]any{"name": "x", "tier": "enterprise"}},
			status: 400, code: "invalid_request"},
		{name: "fail/create with a bad expiry", req: request{method: "POST", path: keys, token: alice.token, body: `{"name":"x","expires_at":"tomorrow"}`},
			status: 400, code: "invalid_json", check: func(t *testing.T, res *response) {
				if !strings.Contains(string(res.body), `"message":"expires_at: must be an RFC 3339 time"`) {
					t.Errorf("message: %s", res.body)
				}
			}},
		{name: "fail/create in another tenant", req: request{method: "POST", path: "/v1/orgs/" + orgB + "/api-keys", token: alice.token, body: map[string]any{"name": "x"}},
			status: 403, code: "forbidden"},
		{name: "ok/list", req: request{method: "GET", path: keys, token: alice.token}, status: 200,
			check: func(t *testing.T, res *response) {
				if strings.Contains(string(res.body), created.Secret) || !strings.Contains(string(res.body), created.APIKey.ID) {
					t.Errorf("listing: %s", res.body)
				}
			}},
		{name: "fail/list another tenant's", req: request{method: "GET", path: keys, token: carol.token}, status: 403, code: "forbidden"},

		{name: "ok/token for a session", req: request{method: "POST", path: "/v1/token", token: alice.token, body: map[string]string{"org_id": orgA}}, status: 200,
			check: verify(alice.id, orgA)},
		{name: "ok/token for a key in x-api-key", req: request{method: "POST", path: "/v1/token", header: http.Header{"X-Api-Key": {created.Secret}}}, status: 200,
			check: verify("key:"+created.APIKey.ID, orgA)},
		{name: "ok/token for a key as bearer", req: request{method: "POST", path: "/v1/token", token: created.Secret}, status: 200,
			check: verify("key:"+created.APIKey.ID, orgA)},
		{name: "fail/token with two credentials", req: request{method: "POST", path: "/v1/token", token: alice.token, header: http.Header{"X-Api-Key": {created.Secret}}},
			status: 400, code: "invalid_request"},
		{name: "fail/token for a key of another org", req: request{method: "POST", path: "/v1/token", token: created.Secret, body: map[string]string{"org_id": orgB}},
			status: 403, code: "forbidden"},
		{name: "fail/token for a session in another tenant", req: request{method: "POST", path: "/v1/token", token: alice.token, body: map[string]string{"org_id": orgB}},
			status: 403, code: "forbidden"},
		{name: "fail/token for a forged key", req: request{method: "POST", path: "/v1/token", header: http.Header{"X-Api-Key": {created.Secret[:len(created.Secret)-1] + "x"}}},
			status: 401, code: "unauthenticated"},
		{name: "fail/token without a credential", req: request{method: "POST", path: "/v1/token"}, status: 401, code: "unauthenticated", check: wantChallenge},
		{name: "fail/token from outside the key's allowlist", req: request{method: "POST", path: "/v1/token", token: fenced.Secret,
			header: http.Header{"X-Forwarded-For": {"203.0.113.9"}}}, status: 401, code: "unauthenticated"},
		{name: "fail/token for a key with an allowlist", req: request{method: "POST", path: "/v1/token", token: fenced.Secret}, status: 403, code: "restricted_key"},

		{name: "fail/rotate with a grace out of range", req: request{method: "POST", path: keys + "/" + created.APIKey.ID + "/rotate", token: alice.token, body: `{"grace_seconds":1e30}`},
			status: 400, code: "invalid_json", check: wantField("grace_seconds")},
		{name: "fail/rotate with a negative grace", req: request{method: "POST", path: keys + "/" + created.APIKey.ID + "/rotate", token: alice.token, body: map[string]any{"grace_seconds": -1}},
			status: 400, code: "invalid_request"},
		{name: "fail/rotate another tenant's key", req: request{method: "POST", path: keys + "/" + created.APIKey.ID + "/rotate", token: carol.token},
			status: 403, code: "forbidden"},
		{name: "fail/rotate an unknown key", req: request{method: "POST", path: keys + "/nope/rotate", token: alice.token}, status: 404, code: "not_found"},
		{name: "ok/rotate", req: request{method: "POST", path: keys + "/" + created.APIKey.ID + "/rotate", token: alice.token, body: map[string]any{"grace_seconds": 60}},
			status: 201, check: func(t *testing.T, res *response) { res.decode(t, &rotated) }},
		{name: "ok/the old key works in its grace", req: request{method: "POST", path: "/v1/token", token: created.Secret}, status: 200},
	})
	f.clock.Advance(61 * time.Second)
	run(t, f, []step{
		{name: "fail/the old key after its grace", req: request{method: "POST", path: "/v1/token", token: created.Secret}, status: 401, code: "unauthenticated"},
		{name: "ok/the new key", req: request{method: "POST", path: "/v1/token", token: rotated.Secret}, status: 200},
		{name: "fail/revoke another tenant's key", req: request{method: "DELETE", path: keys + "/" + rotated.APIKey.ID, token: carol.token}, status: 403, code: "forbidden"},
		{name: "fail/revoke an unknown key", req: request{method: "DELETE", path: keys + "/nope", token: alice.token}, status: 404, code: "not_found"},
		{name: "ok/revoke", req: request{method: "DELETE", path: keys + "/" + rotated.APIKey.ID, token: alice.token}, status: 204},
		{name: "fail/the revoked key", req: request{method: "POST", path: "/v1/token", token: rotated.Secret}, status: 401, code: "unauthenticated"},
	})
}
