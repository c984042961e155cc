# Rate limits and quotas returned with allows.
package mcpauthz.authz_test

import data.mcpauthz.authz

test_tool_call_limits_and_quotas if {
	req := mcp(member, call("echo"))
	d := decide(req)
	count(d.limits) == 2
	has_limit(req, "user_requests", "user:u-1", 600, "60s", 1)
	has_limit(req, "tenant_tool_calls", "tenant:acme:tools", 500, "10s", 1)
	count(d.quotas) == 2
	has_quota(req, "monthly_requests", "tenant:acme:requests", 250000, "month")
	has_quota(req, "daily_tool_calls", "tenant:acme:tool_calls", 25000, "day")
}

test_resource_limits if {
	req := mcp(member, {"method": "resources/read", "uri": "file:///a"})
	limit_names(req) == {"user_requests", "tenant_resources"}
	has_limit(req, "tenant_resources", "tenant:acme:resources", 1000, "30s", 1)
	has_limit(mcp(member, method("resources/list")), "tenant_resources", "tenant:acme:resources", 1000, "30s", 1)
	decide(req).quotas == [{"name": "monthly_requests", "key": "tenant:acme:requests", "limit": 250000, "period": "month"}]
}

test_discovery_has_no_group_limit if limit_names(mcp(member, method("tools/list"))) == {"user_requests"}

test_tier_multipliers if {
	free := object.remove(member, ["tier"])
	has_limit(mcp(free, call("echo")), "tenant_tool_calls", "tenant:acme:tools", 100, "10s", 1)
	has_quota(mcp(free, call("echo")), "monthly_requests", "tenant:acme:requests", 10000, "month")
	enterprise := object.union(member, {"tier": "enterprise"})
	has_limit(mcp(enterprise, call("echo")), "tenant_tool_calls", "tenant:acme:tools", 2000, "10s", 1)
	has_quota(mcp(enterprise, call("echo")), "monthly_requests", "tenant:acme:requests", 5000000, "month")
}

test_unknown_tier_is_the_default if {
	gold := object.union(member, {"tier": "gold"})
	has_limit(mcp(gold, call("echo")), "tenant_tool_calls", "tenant:acme:tools", 100, "10s", 1)
}

test_risk_cost_multipliers if {
	tools := {"web": {"risk": "open_world"}}
	has_limit(mcp(member, call("echo")), "user_requests", "user:u-1", 600, "60s", 1)
	has_limit(mcp(member, call("web")), "user_requests", "user:u-1", 600, "60s", 2) with data.mcpauthz.config.tools as tools
	has_limit(mcp(member, call("rm")), "user_requests", "user:u-1", 600, "60s", 5)
}

test_default_cost_is_data if {
	has_limit(mcp(member, method("tools/list")), "user_requests", "user:u-1", 600, "60s", 3)
		with data.mcpauthz.config.limits.default_cost as 3
}

test_api_key_limits_are_per_key if {
	req := mcp(api_key(["mcp:*"]), call("echo"))
	limit_names(req) == {"key_requests", "tenant_tool_calls"}
	has_limit(req, "key_requests", "key:k-1", 600, "60s", 1)
}

test_server_management_limits_by_role if {
	has_limit(http(member, "GET", "/api/v1/orgs/acme/servers"), "server_management", "user:u-1:servers", 100, "60s", 1)
	has_limit(http(session("admin"), "POST", "/api/v1/orgs/acme/servers"), "server_management", "user:u-1:servers", 300, "60s", 1)
	owner_key := object.union(api_key(["servers:*"]), {"org_role": "owner", "roles": ["owner"]})
	has_limit(http(owner_key, "POST", "/api/v1/orgs/acme/servers"), "server_management", "key:k-1:servers", 300, "60s", 1)
}

test_most_generous_role_limit_counts if {
	both := object.union(session("viewer"), {"roles": ["viewer", "platform:admin"]})
	defs := [{"name": "server_management", "per": "principal", "bucket": "servers", "window": "60s", "limit_by_role": {"viewer": 5, "platform:admin": 50}}]
	has_limit(http(both, "GET", "/api/v1/orgs/acme/servers"), "server_management", "user:u-1:servers", 250, "60s", 1)
		with data.mcpauthz.config.limits.groups.servers as defs
}

test_role_limit_falls_back_to_limit if {
	# A platform admin has no org role: the definition's limit applies.
	admin := {
		"authenticated": true, "method": "session", "subject": "u-9", "user_id": "u-9",
		"roles": ["platform:admin"], "permissions": [], "scopes": [],
		"session": {"id": "s-9", "auth_time": now_s - 60, "age_seconds": 60},
	}
	has_limit(http(admin, "GET", "/api/v1/orgs/globex/servers"), "server_management", "user:u-9:servers", 5, "60s", 1)
	has_limit(http(admin, "GET", "/api/v1/admin/users"), "platform_admin", "user:u-9:admin", 60, "60s", 1)
	limit_names(http(admin, "GET", "/api/v1/admin/users")) == {"user_requests", "platform_admin"}
}

test_definition_without_limit_blocks if {
	defs := [{"name": "broken", "per": "user", "window": "1s"}]
	has_limit(mcp(member, method("tools/list")), "broken", "user:u-1", 0, "1s", 1) with data.mcpauthz.config.limits.all as defs
}

test_tenant_limits_follow_the_target_tenant if {
	super_admin_session := {
		"authenticated": true, "method": "session", "subject": "u-9", "user_id": "u-9",
		"roles": ["platform:super-admin"], "permissions": [], "scopes": [],
		"session": {"id": "s-9", "auth_time": now_s - 60, "age_seconds": 60},
	}
	defs := [{"name": "tenant_servers", "per": "tenant", "bucket": "servers", "limit": 10, "window": "1s"}]
	has_limit(http(super_admin_session, "GET", "/api/v1/orgs/globex/servers"), "tenant_servers", "tenant:globex:servers", 10, "1s", 1)
		with data.mcpauthz.config.limits.groups.servers as defs
}

test_tenant_limits_need_a_tenant if {
	defs := [{"name": "tenant_all", "per": "tenant", "limit": 10, "window": "1s"}]
	admin := object.union(object.remove(member, ["tenant", "org_role", "tier"]), {"roles": ["platform:admin"]})
	limit_names(http(admin, "GET", "/api/v1/admin/users")) == {"platform_admin"} with data.mcpauthz.config.limits.all as defs
	has_limit(mcp(member, method("ping")), "tenant_all", "tenant:acme", 50, "1s", 1) with data.mcpauthz.config.limits.all as defs
}

test_keys_escape_ids if {
	odd := object.union(member, {"tenant": "a:b", "user_id": "u/1 x"})
	has_limit(mcp(odd, call("echo")), "tenant_tool_calls", "tenant:a%3Ab:tools", 500, "10s", 1)
	has_limit(mcp(odd, call("echo")), "user_requests", "user:u%2F1+x", 600, "60s", 1)
}

test_user_key_falls_back_to_subject if {
	token := object.remove(jwt, ["user_id"])
	has_limit(mcp(token, method("tools/list")), "user_requests", "user:u-2", 600, "60s", 1)
}

test_quota_tiers if {
	authz.tier == "free" with input as mcp(object.remove(member, ["tier"]), method("ping"))
	authz.tier == "pro" with input as mcp(member, method("ping"))
}

# --- definitions that cannot be built fail closed ---

test_unknown_per_denies if {
	defs := [{"name": "typo", "per": "tenent", "limit": 10, "window": "1s"}]
	denied(mcp(member, method("tools/list")), "limit_misconfigured", 500) with data.mcpauthz.config.limits.all as defs
	authz.misconfigured_limits == {"typo"} with input as mcp(member, method("tools/list")) with data.mcpauthz.config.limits.all as defs
	no_per := [{"name": "no_per", "limit": 10, "window": "1s"}]
	denied(mcp(member, method("tools/list")), "limit_misconfigured", 500) with data.mcpauthz.config.limits.all as no_per
}

test_missing_id_denies if {
	key := api_key(["mcp:tools:list"])
	anonymous_key := object.union(object.remove(key, ["api_key"]), {"api_key": object.remove(key.api_key, ["id"])})
	denied(mcp(anonymous_key, method("tools/list")), "limit_misconfigured", 500)
	nobody := object.remove(jwt, ["user_id", "subject"])
	denied(mcp(nobody, method("tools/list")), "limit_misconfigured", 500)
}

test_tier_without_multiplier_denies if {
	tiers := {"free": {}, "pro": {}, "enterprise": {}}
	denied(mcp(member, method("tools/list")), "limit_misconfigured", 500) with data.mcpauthz.config.tiers as tiers
}

test_tier_without_quota_denies if {
	quotas := [{"name": "monthly_requests", "per": "tenant", "bucket": "requests", "period": "month", "limit_by_tier": {"free": 100}}]
	denied(mcp(member, call("echo")), "limit_misconfigured", 500) with data.mcpauthz.config.quotas.billable as quotas
	allowed(mcp(object.remove(member, ["tier"]), call("echo"))) with data.mcpauthz.config.quotas.billable as quotas
}

# Definitions that do not apply are not errors: a user limit for an API
# key, a key limit for a session, a tenant limit without a tenant.
test_inapplicable_definitions_are_not_errors if {
	defs := [
		{"name": "per_user", "per": "user", "limit": 10, "window": "1s"},
		{"name": "per_key", "per": "key", "limit": 10, "window": "1s"},
		{"name": "per_tenant", "per": "tenant", "limit": 10, "window": "1s"},
	]
	limit_names(mcp(member, method("tools/list"))) == {"per_user", "per_tenant"} with data.mcpauthz.config.limits.all as defs
	limit_names(mcp(api_key(["mcp:tools:list"]), method("tools/list"))) == {"per_key", "per_tenant"} with data.mcpauthz.config.limits.all as defs
	admin := object.union(object.remove(member, ["tenant", "org_role", "tier"]), {"roles": ["platform:admin"]})
	limit_names(http(admin, "GET", "/api/v1/admin/users")) == {"per_user", "platform_admin"} with data.mcpauthz.config.limits.all as defs
}
