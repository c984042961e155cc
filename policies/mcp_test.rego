# MCP methods, tool allow/deny lists, API key tool restrictions and risk
# classes.
package mcpauthz.authz_test

import data.mcpauthz.authz

# --- methods ---

test_lifecycle_for_any_principal_of_the_tenant if {
	viewer := session("viewer")
	allowed(mcp(viewer, method("initialize")))
	allowed(mcp(viewer, method("ping")))
	allowed(mcp(viewer, {"method": "notifications/initialized", "is_notification": true}))
	allowed(mcp(viewer, {"method": "notifications/cancelled", "is_notification": true}))
	allowed(mcp(jwt, method("ping")))
}

test_client_responses_are_lifecycle if {
	allowed(mcp(session("viewer"), {"is_response": true}))
}

test_lifecycle_carries_no_quota if {
	d := decide(mcp(member, method("ping")))
	d.quotas == []
	limit_names(mcp(member, method("ping"))) == {"user_requests"}
}

test_stream_methods_on_mcp_endpoints if {
	allowed(http(member, "GET", "/mcp"))
	allowed(http(member, "DELETE", "/mcp"))
	allowed(http(member, "GET", "/orgs/acme/mcp"))
	denied(http(member, "GET", "/orgs/globex/mcp"), "tenant_mismatch", 403)
}

test_mcp_endpoint_without_a_message_is_invalid if {
	denied(http(member, "POST", "/mcp"), "invalid_mcp_request", 400)
	denied(http(member, "PUT", "/mcp/x"), "invalid_mcp_request", 400)
}

test_unknown_method_is_denied if {
	denied(mcp(member, method("sampling/createMessage")), "unknown_method", 403)
	denied(mcp(session("owner"), method("tools/delete")), "unknown_method", 403)
	denied(mcp(member, {"is_notification": false}), "unknown_method", 403)
}

test_json_rpc_outside_mcp_endpoints_is_http if {
	# The sidecar parses JSON-RPC-shaped bodies anywhere: the route decides.
	denied(mcp_at(member, call("echo"), "/api/rpc"), "no_matching_route", 403)
	denied(mcp_at(member, method("ping"), "/api/v1/admin/users"), "permission_denied", 403)
	denied(mcp_at(member, method("ping"), "/api/v1/orgs/acme/servers"), "permission_denied", 403)
	allowed(mcp_at(member, call("echo"), "/api/rpc")) with data.mcpauthz.config.mcp.paths as ["/api/rpc"]
}

test_mcp_endpoints_under_an_org if allowed(mcp_at(member, call("echo"), "/orgs/acme/mcp/v2"))

test_lifecycle_methods_are_data if {
	denied(mcp(member, method("ping")), "unknown_method", 403) with data.mcpauthz.config.mcp.lifecycle_methods as ["initialize"]
}

test_method_permissions_are_data if {
	denied(mcp(member, method("tools/list")), "permission_denied", 403)
		with data.mcpauthz.config.mcp.methods["tools/list"].permission as "org:admin"
}

# --- tools ---

test_tools_call_without_a_tool_is_denied if denied(mcp(member, method("tools/call")), "tool_denied", 403)

test_disabled_tool if {
	tools := {"echo": {"risk": "read_only", "disabled": true}}
	denied(mcp(session("owner"), call("echo")), "tool_denied", 403) with data.mcpauthz.config.tools as tools
}

test_tool_deny_by_role if {
	tools := {"shell": {"risk": "read_only", "deny": {"roles": ["member", "viewer"]}}}
	denied(mcp(member, call("shell")), "tool_denied", 403) with data.mcpauthz.config.tools as tools
	allowed(mcp(session("admin"), call("shell"))) with data.mcpauthz.config.tools as tools
}

test_tool_allow_by_role if {
	tools := {"shell": {"risk": "read_only", "allow": {"roles": ["owner", "admin"]}}}
	denied(mcp(member, call("shell")), "tool_denied", 403) with data.mcpauthz.config.tools as tools
	allowed(mcp(session("owner"), call("shell"))) with data.mcpauthz.config.tools as tools
}

test_tool_empty_allow_list_matches_nobody if {
	tools := {"shell": {"risk": "read_only", "allow": {"roles": []}}}
	denied(mcp(session("owner"), call("shell")), "tool_denied", 403) with data.mcpauthz.config.tools as tools
}

test_tool_deny_by_tier if {
	tools := {"gpu": {"risk": "read_only", "deny": {"tiers": ["free"]}}}
	allowed(mcp(member, call("gpu"))) with data.mcpauthz.config.tools as tools
	denied(mcp(object.remove(member, ["tier"]), call("gpu")), "tool_denied", 403) with data.mcpauthz.config.tools as tools
	denied(mcp(object.union(member, {"tier": "gold"}), call("gpu")), "tool_denied", 403) with data.mcpauthz.config.tools as tools
}

test_tool_allow_by_tier if {
	tools := {"gpu": {"risk": "read_only", "allow": {"tiers": ["enterprise"]}}}
	denied(mcp(member, call("gpu")), "tool_denied", 403) with data.mcpauthz.config.tools as tools
	allowed(mcp(object.union(member, {"tier": "enterprise"}), call("gpu"))) with data.mcpauthz.config.tools as tools
}

test_tool_allow_by_key_scope if {
	tools := {"search": {"risk": "read_only", "allow": {"scopes": ["tools:search"]}}}
	denied(mcp(api_key(["mcp:*"]), call("search")), "tool_denied", 403) with data.mcpauthz.config.tools as tools
	allowed(mcp(api_key(["mcp:*", "tools:search"]), call("search"))) with data.mcpauthz.config.tools as tools
	# Scopes are a key's: a session is not held to them.
	allowed(mcp(member, call("search"))) with data.mcpauthz.config.tools as tools
}

test_tool_deny_by_key_scope if {
	tools := {"search": {"risk": "read_only", "deny": {"scopes": ["untrusted"]}}}
	denied(mcp(api_key(["mcp:*", "untrusted"]), call("search")), "tool_denied", 403) with data.mcpauthz.config.tools as tools
	allowed(mcp(api_key(["mcp:*"]), call("search"))) with data.mcpauthz.config.tools as tools
	allowed(mcp(object.union(member, {"scopes": ["untrusted"]}), call("search"))) with data.mcpauthz.config.tools as tools
}

test_tool_names_are_exact if {
	tools := {"echo": {"risk": "read_only", "disabled": true}}
	allowed(mcp(member, call("Echo"))) with data.mcpauthz.config.tools as tools
}

test_tenant_tool_rules_apply_to_their_tenant if {
	tenants := {"acme": {"tools": {"echo": {"deny": {"roles": ["member"]}}}}}
	denied(mcp(member, call("echo")), "tool_denied", 403) with data.mcpauthz.config.tenants as tenants
	globex := object.union(member, {"tenant": "globex"})
	allowed(mcp(globex, call("echo"))) with data.mcpauthz.config.tenants as tenants
}

test_global_and_tenant_rules_both_apply if {
	tools := {"shell": {"risk": "read_only", "allow": {"roles": ["admin", "member"]}}}
	tenants := {"acme": {"tools": {"shell": {"allow": {"roles": ["admin"]}}}}}
	denied(mcp(member, call("shell")), "tool_denied", 403) with data.mcpauthz.config.tools as tools
		with data.mcpauthz.config.tenants as tenants
	allowed(mcp(session("admin"), call("shell"))) with data.mcpauthz.config.tools as tools
		with data.mcpauthz.config.tenants as tenants
	denied(mcp(session("owner"), call("shell")), "tool_denied", 403) with data.mcpauthz.config.tools as tools
		with data.mcpauthz.config.tenants as tenants
}

# --- API key allowed_tools ---

test_api_key_allowed_tools if {
	key := object.union(api_key(["mcp:*"]), {"api_key": {"allowed_tools": ["echo", "search"]}})
	allowed(mcp(key, call("echo")))
	denied(mcp(key, call("weather")), "api_key_tool_denied", 403)
	allowed(mcp(key, method("tools/list")))
}

test_api_key_empty_allowed_tools_means_any if {
	tools := {"weather": {"risk": "open_world"}}
	allowed(mcp(api_key(["mcp:*"]), call("weather"))) with data.mcpauthz.config.tools as tools
}

test_api_key_tool_denial_comes_before_freshness if {
	key := object.union(api_key(["mcp:*"]), {"api_key": {"allowed_tools": ["echo"]}})
	denied(mcp(key, call("rm")), "api_key_tool_denied", 403)
}

# --- risk ---

test_undeclared_tool_is_destructive if {
	authz.tool_risk == "destructive" with input as mcp(member, call("rm"))
	has_limit(mcp(member, call("rm")), "tenant_tool_calls", "tenant:acme:tools", 500, "10s", 5)
}

test_declared_risk if {
	tools := {"web": {"risk": "open_world"}}
	authz.tool_risk == "open_world" with input as mcp(member, call("web")) with data.mcpauthz.config.tools as tools
	has_limit(mcp(member, call("web")), "tenant_tool_calls", "tenant:acme:tools", 500, "10s", 2) with data.mcpauthz.config.tools as tools
}

test_unknown_risk_class_is_undeclared if {
	tools := {"web": {"risk": "readonly"}}
	authz.tool_risk == "destructive" with input as mcp(member, call("web")) with data.mcpauthz.config.tools as tools
}

test_most_severe_declaration_wins if {
	tenants := {"acme": {"tools": {"echo": {"risk": "destructive"}}}}
	authz.tool_risk == "destructive" with input as mcp(member, call("echo")) with data.mcpauthz.config.tenants as tenants
	lowered := {"acme": {"tools": {"rm": {"risk": "read_only"}}}}
	tools := {"rm": {"risk": "destructive"}}
	authz.tool_risk == "destructive" with input as mcp(member, call("rm")) with data.mcpauthz.config.tenants as lowered
		with data.mcpauthz.config.tools as tools
}

test_tenant_declares_its_own_tools if {
	tenants := {"acme": {"tools": {"lookup": {"risk": "read_only"}}}}
	authz.tool_risk == "read_only" with input as mcp(member, call("lookup")) with data.mcpauthz.config.tenants as tenants
}

test_equal_ranks_pick_one if {
	classes := {"a": {"rank": 1, "cost": 3}, "b": {"rank": 1, "cost": 3}}
	tools := {"t": {"risk": "a"}}
	tenants := {"acme": {"tools": {"t": {"risk": "b"}}}}
	authz.tool_risk == "a" with input as mcp(member, call("t"))
		with data.mcpauthz.config.risk_classes as classes
		with data.mcpauthz.config.tools as tools
		with data.mcpauthz.config.tenants as tenants
}

# A "response" that names a method is judged by its method, not let
# through as a response.
test_response_with_a_method_is_not_lifecycle if {
	not data.mcpauthz.authz.mcp_lifecycle with input as {"mcp": {"method": "sampling/createMessage", "is_response": true}}
	data.mcpauthz.authz.mcp_lifecycle with input as {"mcp": {"is_response": true}}
}

# Only the notifications a client sends, by exact name: a made-up or
# path-like one is an unknown method.
test_unknown_notifications_are_unknown_methods if {
	viewer := session("viewer")
	denied(mcp(viewer, {"method": "notifications/../tools/call", "is_notification": true}), "unknown_method", 403)
	denied(mcp(viewer, {"method": "notifications/anything", "is_notification": true}), "unknown_method", 403)
	allowed(mcp(viewer, {"method": "notifications/progress", "is_notification": true}))
}

# A misspelt risk class counts as an undeclared tool's (destructive),
# even where another declaration says read_only.
test_misspelt_risk_class_is_destructive if {
	data.mcpauthz.authz.tool_risk == "destructive" with input as mcp(session("member"), call("echo"))
		with data.mcpauthz.config.tenants as {"acme": {"tools": {"echo": {"risk": "destructiv"}}}}
	data.mcpauthz.authz.tool_risk == "read_only" with input as mcp(session("member"), call("echo"))
	data.mcpauthz.authz.tool_risk == "destructive" with input as mcp(session("member"), call("echo"))
		with data.mcpauthz.config.tools as {"echo": {"risk": "readonly"}}
}
