# The decision: public routes, anonymous callers, the deny-by-default
# fallback, deny-wins and the shape of answers.
package mcpauthz.authz_test

import data.mcpauthz.authz

# --- public routes ---

test_health_is_public if {
	d := decide(http(anonymous, "GET", "/healthz"))
	d == {"allowed": true, "reason": "public"}
}

test_readyz_head_is_public if allowed(http(anonymous, "HEAD", "/readyz"))

test_resource_metadata_is_public if {
	allowed(http(anonymous, "GET", "/.well-known/oauth-protected-resource"))
	allowed(http(anonymous, "GET", "/.well-known/oauth-protected-resource/mcp"))
	allowed(http(anonymous, "GET", "/.well-known/oauth-protected-resource/orgs/acme/mcp"))
}

test_public_route_is_public_for_principals_too if allowed(http(member, "GET", "/healthz"))

test_public_route_with_other_method_needs_credentials if {
	denied(http(anonymous, "POST", "/healthz"), "unauthenticated", 401)
}

test_public_route_listed_in_data if {
	req := http(anonymous, "GET", "/status/page")
	denied(req, "unauthenticated", 401)
	allowed(req) with data.mcpauthz.config.public_routes as {"GET": ["/status/**"]}
}

test_public_route_is_public_for_its_methods_only if {
	routes := {"POST": ["/status"]}
	allowed(http(anonymous, "POST", "/status")) with data.mcpauthz.config.public_routes as routes
	denied(http(anonymous, "GET", "/status"), "unauthenticated", 401) with data.mcpauthz.config.public_routes as routes
}

test_public_metadata_prefix_does_not_leak if {
	denied(http(anonymous, "GET", "/.well-known/oauth-protected-resource-x"), "unauthenticated", 401)
}

# --- bad paths ---

test_dot_segments_are_bad_paths if {
	denied(http(member, "GET", "/api/v1/orgs/acme/../globex/servers"), "bad_path", 400)
	denied(http(anonymous, "GET", "/.well-known/oauth-protected-resource/../../admin"), "bad_path", 400)
	denied(http(member, "GET", "/mcp/./x"), "bad_path", 400)
}

test_empty_segments_inside_are_bad_paths if {
	denied(http(member, "GET", "/api//v1/admin"), "bad_path", 400)
}

test_trailing_slash_is_not_a_bad_path if allowed(http(member, "GET", "/mcp/"))

test_root_path_is_not_a_bad_path if denied(http(member, "GET", "/"), "no_matching_route", 403)

# --- anonymous ---

test_anonymous_mcp_is_401 if {
	d := decide(mcp(anonymous, call("echo")))
	d == {"allowed": false, "http_status": 401, "reason": "unauthenticated"}
}

test_anonymous_lifecycle_is_401 if {
	denied(mcp(anonymous, method("initialize")), "unauthenticated", 401)
	denied(mcp(anonymous, method("ping")), "unauthenticated", 401)
	denied(mcp(anonymous, method("notifications/initialized")), "unauthenticated", 401)
	denied(http(anonymous, "GET", "/mcp"), "unauthenticated", 401)
}

test_anonymous_is_401_before_tenancy if {
	denied(mcp_at(anonymous, method("tools/list"), "/orgs/globex/mcp"), "unauthenticated", 401)
	denied(http(anonymous, "GET", "/api/v1/orgs/globex/servers"), "unauthenticated", 401)
}

test_anonymous_unknown_route_is_401 if denied(http(anonymous, "GET", "/nowhere"), "unauthenticated", 401)

test_missing_identity_is_401 if {
	req := object.remove(mcp(anonymous, method("tools/list")), ["identity"])
	denied(req, "unauthenticated", 401)
}

test_authenticated_must_be_true if {
	denied(mcp(object.union(member, {"authenticated": "yes"}), method("tools/list")), "unauthenticated", 401)
}

# --- deny by default, deny wins ---

test_route_without_permission_falls_to_default if {
	d := decide(http(member, "GET", "/api/v1/open")) with data.mcpauthz.config.routes as [{"path": "/api/v1/open"}]
	d == {"allowed": false, "http_status": 403, "reason": "not_allowed"}
}

test_unknown_route_is_denied if denied(http(member, "GET", "/api/v2/other"), "no_matching_route", 403)

test_route_method_must_match if denied(http(member, "DELETE", "/api/v1/orgs/acme/audit"), "no_matching_route", 403)

test_route_without_methods_matches_any if {
	routes := [{"path": "/api/v1/ping", "permission": "mcp:tools:list"}]
	allowed(http(member, "PATCH", "/api/v1/ping")) with data.mcpauthz.config.routes as routes
}

test_overlapping_routes_need_every_permission if {
	routes := [
		{"path": "/api/v1/x/**", "permission": "servers:read"},
		{"path": "/api/v1/x/secret", "permission": "audit:read"},
	]
	allowed(http(member, "GET", "/api/v1/x/open")) with data.mcpauthz.config.routes as routes
	denied(http(member, "GET", "/api/v1/x/secret"), "permission_denied", 403) with data.mcpauthz.config.routes as routes
	allowed(http(session("owner"), "GET", "/api/v1/x/secret")) with data.mcpauthz.config.routes as routes
}

test_tool_rule_denies_what_the_role_allows if {
	allowed(mcp(member, call("echo")))
	tools := {"echo": {"risk": "read_only", "deny": {"roles": ["member"]}}}
	denied(mcp(member, call("echo")), "tool_denied", 403) with data.mcpauthz.config.tools as tools
}

test_first_reason_wins if {
	# A viewer's destructive call on another tenant with a stale session:
	# the tenant answers.
	viewer := object.union(session("viewer"), {"session": {"age_seconds": 3600}})
	req := mcp_at(viewer, call("rm"), "/orgs/globex/mcp")
	denied(req, "tenant_mismatch", 403)
	authz.deny == {"tenant_mismatch", "permission_denied", "fresh_session_required"} with input as req
		with time.now_ns as now_ns
}

test_every_reason_has_a_status if {
	every reason in authz.denial_order {
		authz.denial_status[reason] >= 400
	}
	count(authz.denial_order) == count(authz.denial_status)
}

test_allow_shape if {
	d := decide(mcp(member, call("echo")))
	object.keys(d) == {"allowed", "reason", "limits", "quotas", "concurrency"}
	d.allowed == true
	d.reason == "granted"
	is_array(d.limits)
	is_array(d.quotas)
	d.concurrency == []
}
