package httpapi_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/httpapi"
)

func TestAuditLog(t *testing.T) {
	f := newFixture(t)
	alice := f.signUp("alice@example.com")
	bob := f.signUp("bob@example.com")
	admin := f.signUp("admin@example.com")
	f.makeAdmin(admin, "admin")
	orgA := f.createOrg(alice, "Acme")
	f.createOrg(bob, "Beta")
	audit := "/v1/audit?org_id=" + orgA
	run(t, f, []step{
		{name: "ok/owner reads their org's events", req: request{method: "GET", path: audit, token: alice.token}, status: 200,
			check: func(t *testing.T, res *response) {
				var page struct {
					Events []struct {
						Action string
						OrgID  string `json:"org_id"`
					}
				}
				res.decode(t, &page)
				if len(page.Events) == 0 {
					t.Fatal("no events")
				}
				for _, e := range page.Events {
					if e.OrgID != orgA {
						t.Errorf("an event of another org: %+v", e)
					}
				}
			}},
		{name: "ok/paging", req: request{method: "GET", path: "/v1/audit?limit=1", token: admin.token}, status: 200,
			check: func(t *testing.T, res *response) {
				var page struct {
					Events    []struct{ Seq int64 }
					NextAfter int64 `json:"next_after"`
				}
				res.decode(t, &page)
				if len(page.Events) != 1 || page.NextAfter != page.Events[0].Seq {
					t.Errorf("page: %s", res.body)
				}
			}},
		{name: "fail/without an org", req: request{method: "GET", path: "/v1/audit", token: alice.token}, status: 403, code: "forbidden"},
		{name: "fail/another tenant's", req: request{method: "GET", path: audit, token: bob.token}, status: 403, code: "forbidden"},
		{name: "fail/bad since", req: request{method: "GET", path: audit + "&since=yesterday", token: alice.token}, status: 400, code: "invalid_request", check: wantField("since")},
		{name: "fail/bad limit", req: request{method: "GET", path: audit + "&limit=501", token: alice.token}, status: 400, code: "invalid_request", check: wantField("limit")},
		{name: "fail/bad cursor", req: request{method: "GET", path: audit + "&after=-1", token: alice.token}, status: 400, code: "invalid_request", check: wantField("after")},
		{name: "fail/bad format", req: request{method: "GET", path: audit + "&format=xml", token: alice.token}, status: 400, code: "invalid_request", check: wantField("format")},
		{name: "ok/admin reads everything", req: request{method: "GET", path: "/v1/audit?action=org.create", token: admin.token}, status: 200,
			check: func(t *testing.T, res *response) {
				if n := strings.Count(string(res.body), `"action":"org.create"`); n != 2 {
					t.Errorf("%d org.create events, want 2: %s", n, res.body)
				}
			}},
		{name: "ok/export as JSON lines", req: request{method: "GET", path: audit + "&format=jsonl", token: alice.token}, status: 200,
			check: func(t *testing.T, res *response) {
				lines := strings.Split(strings.TrimSpace(string(res.body)), "\n")
				if len(lines) == 0 || !strings.HasPrefix(lines[0], `{"seq":`) || res.header.Get("Content-Type") != "application/jsonl" {
					t.Errorf("jsonl: %s %s", res.header.Get("Content-Type"), res.body)
				}
			}},
		{name: "ok/export as CSV", req: request{method: "GET", path: "/v1/audit?format=csv", token: admin.token}, status: 200,
			check: func(t *testing.T, res *response) {
				rows, err := csv.NewReader(strings.NewReader(string(res.body))).ReadAll()
				if err != nil || len(rows) < 2 || rows[0][0] != "seq" {
					t.Errorf("csv (%v): %s", err, res.body)
				}
				if n := f.auditCount(); len(rows)-1 != n {
					t.Errorf("the export has %d events, the log %d", len(rows)-1, n)
				}
			}},
	})
	f.clock.Advance(16 * time.Minute)
	run(t, f, []step{
		{name: "fail/admin with a stale session", req: request{method: "GET", path: "/v1/audit", token: admin.token}, status: 401, code: "fresh_auth_required",
			check: wantFreshChallenge},
	})
}

func wantFreshChallenge(t *testing.T, res *response) {
	t.Helper()
	c := res.header.Get("WWW-Authenticate")
	if !strings.Contains(c, `error="insufficient_user_authentication"`) || !strings.Contains(c, "max_age=900") {
		t.Errorf("challenge %q", c)
	}
}

func TestAdmin(t *testing.T) {
	f := newFixture(t)
	alice := f.signUp("alice@example.com")
	bob := f.signUp("bob@example.com")
	admin := f.signUp("admin@example.com")
	root := f.signUp("root@example.com")
	f.makeAdmin(admin, "admin")
	f.makeAdmin(root, "admin", "super-admin")
	orgA := f.createOrg(alice, "Acme")
	var key struct{ Secret string }
	f.do(request{method: "POST", path: "/v1/orgs/" + orgA + "/api-keys", token: alice.token, body: map[string]any{"name": "ci"}}).decode(t, &key)
	users := "/v1/admin/users/"
	until := f.clock.Now().Add(48 * time.Hour).Format(time.RFC3339)
	run(t, f, []step{
		{name: "fail/list as a user", req: request{method: "GET", path: "/v1/admin/users", token: alice.token}, status: 403, code: "forbidden"},
		{name: "ok/list", req: request{method: "GET", path: "/v1/admin/users?q=example.com&limit=2", token: admin.token}, status: 200,
			check: func(t *testing.T, res *response) {
				var page struct {
					Users     []struct{ ID string }
					NextAfter string `json:"next_after"`
				}
				res.decode(t, &page)
				if len(page.Users) != 2 || page.NextAfter != page.Users[1].ID {
					t.Errorf("page: %s", res.body)
				}
			}},
		{name: "fail/list with a bad limit", req: request{method: "GET", path: "/v1/admin/users?limit=0", token: admin.token}, status: 400, code: "invalid_request"},
		{name: "fail/revoke credentials as a user", req: request{method: "POST", path: users + bob.id + "/revoke-credentials", token: alice.token}, status: 403, code: "forbidden"},
		{name: "fail/an owner sets their own tier", req: request{method: "PUT", path: "/v1/admin/orgs/" + orgA + "/tier", token: alice.token, body: map[string]string{"tier": "enterprise"}},
			status: 403, code: "forbidden"},
		{name: "fail/not a tier", req: request{method: "PUT", path: "/v1/admin/orgs/" + orgA + "/tier", token: admin.token, body: map[string]string{"tier": "gold"}},
			status: 400, code: "invalid_request", check: wantField("tier")},
		{name: "fail/tier of no org", req: request{method: "PUT", path: "/v1/admin/orgs/nope/tier", token: admin.token, body: map[string]string{"tier": "pro"}},
			status: 404, code: "not_found"},
		{name: "ok/tier", req: request{method: "PUT", path: "/v1/admin/orgs/" + orgA + "/tier", token: admin.token, body: map[string]string{"tier": "pro"}}, status: 204},
		{name: "ok/the tier shows", req: request{method: "GET", path: "/v1/orgs/" + orgA, token: alice.token}, status: 200,
			check: func(t *testing.T, res *response) {
				if !strings.Contains(string(res.body), `"tier":"pro"`) {
					t.Errorf("org: %s", res.body)
				}
			}},
		{name: "fail/a plain admin revokes a super-admin's credentials", req: request{method: "POST", path: users + root.id + "/revoke-credentials", token: admin.token},
			status: 403, code: "forbidden"},
		{name: "fail/a plain admin unbans a super-admin", req: request{method: "DELETE", path: users + root.id + "/ban", token: admin.token}, status: 403, code: "forbidden"},
		{name: "fail/ban as a user", req: request{method: "PUT", path: users + bob.id + "/ban", token: alice.token, body: map[string]any{"reason": "spam"}}, status: 403, code: "forbidden"},
		{name: "fail/ban oneself", req: request{method: "PUT", path: users + admin.id + "/ban", token: admin.token, body: map[string]any{"reason": "x"}},
			status: 400, code: "invalid_request", check: wantField("user_id")},
		{name: "fail/ban a super-admin", req: request{method: "PUT", path: users + root.id + "/ban", token: admin.token, body: map[string]any{"reason": "x"}}, status: 403, code: "forbidden"},
		{name: "fail/ban nobody", req: request{method: "PUT", path: users + "nobody/ban", token: admin.token, body: map[string]any{"reason": "x"}}, status: 404, code: "not_found"},
		{name: "fail/ban with a bad time", req: request{method: "PUT", path: users + alice.id + "/ban", token: admin.token, body: `{"reason":"x","until":"soon"}`}, status: 400, code: "invalid_json"},
		{name: "ok/ban", req: request{method: "PUT", path: users + alice.id + "/ban", token: admin.token, body: map[string]any{"reason": "abuse", "until": until}}, status: 204},
		{name: "fail/the banned user's session", req: request{method: "GET", path: "/v1/me", token: alice.token}, status: 401, code: "unauthenticated"},
		{name: "fail/the banned user's key", req: request{method: "POST", path: "/v1/token", token: key.Secret}, status: 401, code: "unauthenticated"},
		{name: "fail/the banned user logs in", req: request{method: "POST", path: "/v1/sessions", body: map[string]string{"email": alice.email, "password": goodPassword}},
			status: 403, code: "account_suspended", audits: true},
		{name: "ok/the ban shows", req: request{method: "GET", path: "/v1/admin/users?q=alice", token: admin.token}, status: 200,
			check: func(t *testing.T, res *response) {
				if !strings.Contains(string(res.body), `"ban_reason":"abuse"`) {
					t.Errorf("users: %s", res.body)
				}
			}},
		{name: "fail/unban as a user", req: request{method: "DELETE", path: users + alice.id + "/ban", token: bob.token}, status: 403, code: "forbidden"},
		{name: "ok/unban", req: request{method: "DELETE", path: users + alice.id + "/ban", token: admin.token}, status: 204},
		{name: "ok/the unbanned user logs in", req: request{method: "POST", path: "/v1/sessions", body: map[string]string{"email": alice.email, "password": goodPassword}}, status: 201},

		{name: "fail/roles set by a plain admin", req: request{method: "PUT", path: users + bob.id + "/platform-roles", token: admin.token, body: map[string]any{"roles": []string{"admin"}}}, status: 403, code: "forbidden"},
		{name: "fail/roles missing", req: request{method: "PUT", path: users + bob.id + "/platform-roles", token: root.token, body: map[string]any{}}, status: 400, code: "invalid_request", check: wantField("roles")},
		{name: "fail/roles unknown", req: request{method: "PUT", path: users + bob.id + "/platform-roles", token: root.token, body: map[string]any{"roles": []string{"god"}}}, status: 400, code: "invalid_request"},
		{name: "ok/roles", req: request{method: "PUT", path: users + bob.id + "/platform-roles", token: root.token, body: map[string]any{"roles": []string{"admin"}}}, status: 204},
		{name: "ok/bob is an admin now", req: request{method: "GET", path: "/v1/admin/users", token: bob.token}, status: 200},

		{name: "ok/revoke credentials", req: request{method: "POST", path: users + bob.id + "/revoke-credentials", token: admin.token}, status: 204},
		{name: "fail/the revoked session", req: request{method: "GET", path: "/v1/me", token: bob.token}, status: 401, code: "unauthenticated"},
	})
	f.clock.Advance(16 * time.Minute)
	run(t, f, []step{
		{name: "fail/stale session", req: request{method: "PUT", path: users + alice.id + "/ban", token: admin.token, body: map[string]any{"reason": "x"}},
			status: 401, code: "fresh_auth_required", check: wantFreshChallenge},
		{name: "ok/reauth", req: request{method: "POST", path: "/v1/sessions/reauth", token: admin.token, body: map[string]string{"password": goodPassword}}, status: 200},
		{name: "ok/fresh again", req: request{method: "GET", path: "/v1/admin/users", token: admin.token}, status: 200},
	})
}

func TestGDPR(t *testing.T) {
	f := newFixture(t)
	alice := f.signUp("alice@example.com")
	bob := f.signUp("bob@example.com")
	orgA := f.createOrg(alice, "Acme")
	orgB := f.createOrg(bob, "Beta")
	run(t, f, []step{
		{name: "ok/export", req: request{method: "GET", path: "/v1/me/export", token: alice.token}, status: 200,
			check: func(t *testing.T, res *response) {
				body := string(res.body)
				if !strings.Contains(body, alice.email) || !strings.Contains(body, orgA) || strings.Contains(body, bob.email) {
					t.Errorf("export: %s", body)
				}
				if strings.Contains(body, "argon2") || strings.Contains(body, alice.token) {
					t.Error("the export holds a secret")
				}
				if !strings.HasPrefix(res.header.Get("Content-Disposition"), "attachment") {
					t.Error("the export is not a download")
				}
			}},
		{name: "fail/erase the last owner", req: request{method: "DELETE", path: "/v1/me", token: alice.token}, status: 409, code: "last_owner"},
		{name: "ok/delete the org", req: request{method: "DELETE", path: "/v1/orgs/" + orgA, token: alice.token}, status: 204},
	})
	f.clock.Advance(16 * time.Minute)
	run(t, f, []step{
		{name: "fail/erase with a stale session", req: request{method: "DELETE", path: "/v1/me", token: alice.token}, status: 401, code: "fresh_auth_required"},
		{name: "fail/delete an org with a stale session", req: request{method: "DELETE", path: "/v1/orgs/" + orgB, token: bob.token}, status: 401, code: "fresh_auth_required"},
		{name: "ok/reauth", req: request{method: "POST", path: "/v1/sessions/reauth", token: alice.token, body: map[string]string{"password": goodPassword}}, status: 200},
		{name: "ok/erase", req: request{method: "DELETE", path: "/v1/me", token: alice.token}, status: 204},
		{name: "fail/the erased account's session", req: request{method: "GET", path: "/v1/me", token: alice.token}, status: 401, code: "unauthenticated"},
		{name: "fail/the erased account logs in", req: request{method: "POST", path: "/v1/sessions", body: map[string]string{"email": alice.email, "password": goodPassword}},
			status: 401, code: "invalid_credentials", audits: true},
	})
}

// TestCSRF: a browser call from another site carrying the session cookie
// changes nothing; the API's own origin and non-browser clients (no
// Sec-Fetch-Site, no Origin) go through.
func TestCSRF(t *testing.T) {
	f := newFixture(t)
	alice := f.signUp("alice@example.com")
	cookie := http.Header{"Cookie": {httpapi.DefaultCookieName + "=" + alice.token}}
	with := func(kv ...string) http.Header {
		h := cookie.Clone()
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	body := map[string]string{"name": "X"}
	run(t, f, []step{
		{name: "fail/cross-site", req: request{method: "POST", path: "/v1/orgs", header: with("Sec-Fetch-Site", "cross-site"), body: body}, status: 403, code: "cross_origin"},
		{name: "fail/untrusted origin", req: request{method: "POST", path: "/v1/orgs", header: with("Origin", "https://evil.example"), body: body}, status: 403, code: "cross_origin"},
		{name: "fail/cross-site logout", req: request{method: "DELETE", path: "/v1/sessions/current", header: with("Sec-Fetch-Site", "cross-site")}, status: 403, code: "cross_origin"},
		{name: "fail/cross-site login", req: request{method: "POST", path: "/v1/sessions", header: http.Header{"Sec-Fetch-Site": {"cross-site"}},
			body: map[string]string{"email": alice.email, "password": goodPassword}}, status: 403, code: "cross_origin"},
		{name: "ok/cross-site read", req: request{method: "GET", path: "/v1/me", header: with("Sec-Fetch-Site", "cross-site")}, status: 200},
		{name: "ok/same origin", req: request{method: "POST", path: "/v1/orgs", header: with("Sec-Fetch-Site", "same-origin"), body: body}, status: 201},
		{name: "fail/an API key beside the cookie", req: request{method: "POST", path: "/v1/token", header: with("X-Api-Key", "mcpk_x")}, status: 400, code: "invalid_request"},
		{name: "ok/not a browser", req: request{method: "POST", path: "/v1/orgs", header: cookie, body: body}, status: 201},
	})
}

func TestCookieSessions(t *testing.T) {
	f := newFixture(t)
	alice := f.signUp("alice@example.com")
	other := f.login(alice.email)
	name := httpapi.DefaultCookieName
	run(t, f, []step{
		{name: "ok/the cookie authenticates", req: request{method: "GET", path: "/v1/me", header: http.Header{"Cookie": {name + "=" + alice.token}}}, status: 200},
		{name: "fail/two cookies of the name", req: request{method: "GET", path: "/v1/me",
			header: http.Header{"Cookie": {name + "=" + alice.token + "; " + name + "=" + other}}}, status: 401, code: "unauthenticated"},
		{name: "fail/a bad bearer is not saved by a good cookie", req: request{method: "GET", path: "/v1/me", token: "mcps_nope",
			header: http.Header{"Cookie": {name + "=" + alice.token}}}, status: 401, code: "unauthenticated"},
		{name: "fail/the unprefixed name", req: request{method: "GET", path: "/v1/me", header: http.Header{"Cookie": {"mcpauthz_session=" + alice.token}}}, status: 401, code: "unauthenticated"},
	})
}

// TestAuditPaging: pages follow next_after to the end, with or without a
// limit, and together hold every event once.
func TestAuditPaging(t *testing.T) {
	f := newFixture(t)
	admin := f.signUp("admin@example.com")
	f.makeAdmin(admin, "admin")
	org := f.createOrg(admin, "Acme")
	for i := range identity.MaxAuditPage + 20 {
		if err := f.svc.RenameOrg(context.Background(), admin.id, org, fmt.Sprintf("Acme %d", i), identity.Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	total := f.auditCount()
	for _, limit := range []string{"", "&limit=100"} {
		seen, after := 0, int64(0)
		for pages := 0; ; pages++ {
			var page struct {
				Events    []struct{ Seq int64 }
				NextAfter int64 `json:"next_after"`
			}
			f.do(request{method: "GET", path: fmt.Sprintf("/v1/audit?after=%d%s", after, limit), token: admin.token}).decode(t, &page)
			for _, e := range page.Events {
				if e.Seq <= after {
					t.Fatalf("limit %q: event %d after cursor %d", limit, e.Seq, after)
				}
				after = e.Seq
			}
			seen += len(page.Events)
			if page.NextAfter == 0 || pages > 20 {
				break
			}
			after = page.NextAfter
		}
		if seen != total {
			t.Errorf("limit %q: pages held %d events, the log %d", limit, seen, total)
		}
	}
}

// TestSessionFixation: a session cookie planted before login is neither
// reused nor upgraded: login issues a new token, and the planted one keeps
// naming whoever it named (or nothing).
func TestSessionFixation(t *testing.T) {
	f := newFixture(t)
	alice := f.signUp("alice@example.com")
	mallory := f.signUp("mallory@example.com")
	name := httpapi.DefaultCookieName
	for _, planted := range []string{mallory.token, "mcps_" + strings.Repeat("A", 43)} {
		res := f.do(request{method: "POST", path: "/v1/sessions", body: map[string]string{"email": alice.email, "password": goodPassword},
			header: http.Header{"Cookie": {name + "=" + planted}}})
		if res.status != http.StatusCreated {
			t.Fatalf("login with a planted cookie: %d %s", res.status, res.body)
		}
		var l struct{ Token string }
		res.decode(t, &l)
		if l.Token == "" || l.Token == planted {
			t.Fatalf("login returned the planted token")
		}
		for _, c := range res.header.Values("Set-Cookie") {
			if strings.Contains(c, planted) {
				t.Errorf("Set-Cookie carries the planted token: %s", c)
			}
		}
		me := f.do(request{method: "GET", path: "/v1/me", header: http.Header{"Cookie": {name + "=" + planted}}})
		var body struct{ User struct{ ID string } }
		if me.status == http.StatusOK {
			me.decode(t, &body)
		}
		who := body.User
		if who.ID == alice.id {
			t.Errorf("the planted cookie now names alice")
		}
		if planted == mallory.token && who.ID != mallory.id {
			t.Errorf("mallory's own token names %q, want mallory", who.ID)
		}
	}
}
