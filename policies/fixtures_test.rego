# Fixtures shared by the bundle's tests: identities as the sidecar builds
# them (extauthz/policy/input.go), request inputs, and the decision under a
# fixed clock.
package mcpauthz.authz_test

import data.mcpauthz.authz

now_s := 1750000000

now_ns := now_s * 1000000000

anonymous := {"authenticated": false, "method": "none", "roles": [], "permissions": [], "scopes": []}

# session(role) is a member of acme (pro tier) with a session a minute old.
session(role) := {
	"authenticated": true,
	"method": "session",
	"subject": "u-1",
	"user_id": "u-1",
	"tenant": "acme",
	"tier": "pro",
	"org_role": role,
	"roles": [role],
	"permissions": [],
	"scopes": [],
	"session": {"id": "s-1", "auth_time": now_s - 60, "age_seconds": 60},
}

member := session("member")

# jwt is a token of acme with the org role in "roles", as the identity
# service issues them, authenticated a minute ago.
jwt := {
	"authenticated": true,
	"method": "jwt",
	"subject": "u-2",
	"user_id": "u-2",
	"tenant": "acme",
	"tier": "pro",
	"roles": ["member"],
	"permissions": [],
	"scopes": [],
	"claims": {"sub": "u-2", "tid": "acme", "roles": ["member"], "auth_time": now_s - 60},
	"auth_age_seconds": 60,
}

# api_key(scopes) is a key of acme created by a member.
api_key(scopes) := {
	"authenticated": true,
	"method": "api_key",
	"subject": "key:k-1",
	"user_id": "u-1",
	"tenant": "acme",
	"tier": "pro",
	"org_role": "member",
	"roles": ["member"],
	"permissions": [],
	"scopes": scopes,
	"api_key": {"id": "k-1", "name": "ci", "tier": "pro", "allowed_tools": []},
}

# mcp(identity, message) is a JSON-RPC POST to /mcp.
mcp(identity, message) := {
	"attributes": {"request": {"http": {
		"method": "POST",
		"path": "/mcp",
		"headers": {"content-type": "application/json"},
	}}},
	"parsed_path": ["mcp"],
	"identity": identity,
	"mcp": object.union({"id": 1, "is_notification": false, "is_response": false}, message),
}

# mcp_at(identity, message, path) is mcp(identity, message) posted to path.
mcp_at(identity, message, path) := object.union(mcp(identity, message), {
	"attributes": {"request": {"http": {"path": path}}},
	"parsed_path": segments(path),
})

call(tool) := {"method": "tools/call", "tool": tool}

method(name) := {"method": name}

# http(identity, verb, path) is a request without a JSON-RPC body.
http(identity, verb, path) := {
	"attributes": {"request": {"http": {"method": verb, "path": path, "headers": {}}}},
	"parsed_path": segments(path),
	"identity": identity,
}

segments(path) := split(trim_prefix(path, "/"), "/")

with_headers(req, headers) := object.union(req, {"attributes": {"request": {"http": {"headers": headers}}}})

with_extensions(req, extensions) := object.union(req, {"attributes": {"contextExtensions": extensions}})

decide(req) := d if {
	d := authz.decision with input as req with time.now_ns as now_ns
}

allowed(req) if decide(req).allowed == true

# denied(req, reason, status): the decision is a denial with this reason and
# status.
denied(req, reason, status) if {
	d := decide(req)
	d.allowed == false
	d.reason == reason
	d.http_status == status
}

# has_limit(req, name, key, limit, window, cost): the allow carries the limit.
has_limit(req, name, key, limit, window, cost) if {
	{"name": name, "key": key, "limit": limit, "window": window, "cost": cost} in decide(req).limits
}

has_quota(req, name, key, limit, period) if {
	{"name": name, "key": key, "limit": limit, "period": period} in decide(req).quotas
}

limit_names(req) := {l.name | some l in decide(req).limits}
