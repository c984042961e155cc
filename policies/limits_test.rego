# Rate limits and quotas returned with allows.
package mcpauthz.authz_test

import data.mcpauthz.authz

test_tool_call_limits_and_quotas if {
	req := mcp(member, call("echo"))
	d := decide(req)
	count(d.limits) == 3
	has_limit(req, "user_requests", "user:u-1", 600, "60s", 1)
	has_limit(req, "tenant_tool_calls", "tenant:acme:tools", 500, "10s", 1)
	limit_of(req, "tool_capacity") == {
		"name": "tool_capacity", "key": "tenant:acme", "limit": 1000, "window": "1s", "cost": 1,
		"share": {"pool": "tool:echo", "weight": 3, "max_share": 0.3},
	}
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
	limit_names(req) == {"key_requests", "tenant_tool_calls", "tool_capacity"}
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

# --- fair shares of a global capacity ---

limit_of(req, name) := l if {
	some l in decide(req).limits
	l.name == name
}

quota_of(req, name) := q if {
	some q in decide(req).quotas
	q.name == name
}

# The pool's capacity is the same for every tier: the tier counts through
# its weight.
test_share_weight_follows_the_tier if {
	free := object.remove(member, ["tier"])
	limit_of(mcp(free, call("echo")), "tool_capacity").share.weight == 1
	limit_of(mcp(free, call("echo")), "tool_capacity").limit == 1000
	enterprise := object.union(member, {"tier": "enterprise"})
	limit_of(mcp(enterprise, call("echo")), "tool_capacity").share == {"pool": "tool:echo", "weight": 10, "max_share": 0.3}
	limit_of(mcp(enterprise, call("echo")), "tool_capacity").limit == 1000
}

test_share_pool_per_tool_is_escaped if {
	l := limit_of(mcp(member, call("a:b/{c}")), "tool_capacity")
	l.share.pool == "tool:a%3Ab%2F%7Bc%7D"
	l.cost == 5
}

test_share_of_an_api_key_counts_its_tenant if {
	limit_of(mcp(api_key(["mcp:*"]), call("echo")), "tool_capacity").key == "tenant:acme"
}

test_share_definition_cap_and_fixed_pool if {
	defs := [{"name": "mcp_capacity", "per": "tenant", "limit": 50, "window": "1s", "share": {"pool": "mcp", "max_share": 1}}]
	limit_of(mcp(member, method("tools/list")), "mcp_capacity") == {
		"name": "mcp_capacity", "key": "tenant:acme", "limit": 50, "window": "1s", "cost": 1,
		"share": {"pool": "mcp", "weight": 3, "max_share": 1},
	} with data.mcpauthz.config.limits.all as defs
}

test_share_ignores_multipliers_and_roles if {
	defs := [{"name": "servers_capacity", "per": "tenant", "window": "1s", "limit": 40, "limit_by_role": {"member": 400}, "share": {"pool": "servers"}}]
	l := limit_of(http(member, "GET", "/api/v1/orgs/acme/servers"), "servers_capacity") with data.mcpauthz.config.limits.groups.servers as defs
	l.limit == 40
	l.share.pool == "servers"
}

tools_def(share) := [{"name": "tool_capacity", "per": "tenant", "limit": 10, "window": "1s", "share": share}]

test_unbuildable_shares_deny if {
	req := mcp(member, call("echo"))
	denied(req, "limit_misconfigured", 500) with data.mcpauthz.config.limits.groups.tools as tools_def({"max_share": 0.3})
	denied(req, "limit_misconfigured", 500) with data.mcpauthz.config.limits.groups.tools as tools_def({"pool": ""})
	denied(req, "limit_misconfigured", 500) with data.mcpauthz.config.limits.groups.tools as tools_def({"pool": 7})
	denied(req, "limit_misconfigured", 500) with data.mcpauthz.config.limits.groups.tools as tools_def({"pool": "p", "max_share": 1.5})
	denied(req, "limit_misconfigured", 500) with data.mcpauthz.config.limits.groups.tools as tools_def({"pool": "p", "max_share": 0})
	denied(req, "limit_misconfigured", 500) with data.mcpauthz.config.limits.groups.tools as tools_def({"pool": "p", "max_share": "all"})
	authz.misconfigured_limits == {"tool_capacity"} with input as req
		with data.mcpauthz.config.limits.groups.tools as tools_def({"pool": "p", "max_share": 2})
}

test_tier_without_weight_denies if {
	tiers := {"free": {"limit_multiplier": 1}, "pro": {"limit_multiplier": 5}, "enterprise": {"limit_multiplier": 20}}
	denied(mcp(member, call("echo")), "limit_misconfigured", 500) with data.mcpauthz.config.tiers as tiers
	zero := object.union(tiers, {"pro": {"limit_multiplier": 5, "weight": 0}})
	denied(mcp(member, call("echo")), "limit_misconfigured", 500) with data.mcpauthz.config.tiers as zero
	# Requests that take no share need no weight.
	allowed(mcp(member, method("tools/list"))) with data.mcpauthz.config.tiers as tiers
}

test_share_without_default_cap_denies if {
	denied(mcp(member, call("echo")), "limit_misconfigured", 500) with data.mcpauthz.config.limits.max_tenant_share as null
	limits := object.remove(data.mcpauthz.config.limits, ["max_tenant_share"])
	denied(mcp(member, call("echo")), "limit_misconfigured", 500) with data.mcpauthz.config.limits as limits
}

test_tool_pool_without_a_tool_denies if {
	defs := [{"name": "per_tool", "per": "tenant", "limit": 10, "window": "1s", "share": {"pool": "tool:{tool}"}}]
	denied(mcp(member, method("tools/list")), "limit_misconfigured", 500) with data.mcpauthz.config.limits.all as defs
}

# --- quotas in the organization's time zone ---

test_quota_follows_the_tenant_time_zone if {
	paris := object.union(member, {"time_zone": "Europe/Paris"})
	quota_of(mcp(paris, call("echo")), "monthly_requests") == {
		"name": "monthly_requests", "key": "tenant:acme:requests", "limit": 250000, "period": "month",
		"time_zone": "Europe/Paris",
	}
	quota_of(mcp(paris, call("echo")), "daily_tool_calls").time_zone == "Europe/Paris"
	not quota_of(mcp(member, call("echo")), "monthly_requests").time_zone
	blank := object.union(member, {"time_zone": ""})
	not quota_of(mcp(blank, call("echo")), "monthly_requests").time_zone
}

test_quota_of_another_tenant_or_per_user_has_no_zone if {
	super_admin := {
		"authenticated": true, "method": "session", "subject": "u-9", "user_id": "u-9",
		"tenant": "acme", "time_zone": "Europe/Paris",
		"roles": ["platform:super-admin"], "permissions": [], "scopes": [],
		"session": {"id": "s-9", "auth_time": now_s - 60, "age_seconds": 60},
	}
	defs := [
		{"name": "tenant_servers", "per": "tenant", "bucket": "servers", "period": "day", "limit_by_tier": {"free": 5, "pro": 5, "enterprise": 5}},
		{"name": "user_servers", "per": "user", "bucket": "servers", "period": "day", "limit_by_tier": {"free": 5, "pro": 5, "enterprise": 5}},
	]
	other := http(super_admin, "GET", "/api/v1/orgs/globex/servers")
	quota_of(other, "tenant_servers").key == "tenant:globex:servers" with data.mcpauthz.config.quotas.groups.servers as defs
	not quota_of(other, "tenant_servers").time_zone with data.mcpauthz.config.quotas.groups.servers as defs
	own := http(super_admin, "GET", "/api/v1/orgs/acme/servers")
	quota_of(own, "tenant_servers").time_zone == "Europe/Paris" with data.mcpauthz.config.quotas.groups.servers as defs
	not quota_of(own, "user_servers").time_zone with data.mcpauthz.config.quotas.groups.servers as defs
}

# Concurrency caps are opt-in: none ship, and a deployment adds them per
# group.
test_concurrency_caps_per_group if {
	defs := [{"name": "tenant_tool_calls_at_once", "per": "tenant", "bucket": "running", "ttl": "10m",
		"limit_by_tier": {"free": 2, "pro": 10, "enterprise": 50}}]
	decide(mcp(member, call("echo"))).concurrency == [{
		"name": "tenant_tool_calls_at_once", "key": "tenant:acme:running", "limit": 10, "ttl": "10m",
	}] with data.mcpauthz.config.concurrency.groups.tools as defs
	decide(mcp(member, method("resources/read"))).concurrency == [] with data.mcpauthz.config.concurrency.groups.tools as defs
}

test_concurrency_cap_without_the_tier_is_misconfigured if {
	defs := [{"name": "running", "per": "tenant", "ttl": "10m", "limit_by_tier": {"enterprise": 50}}]
	denied(mcp(member, call("echo")), "limit_misconfigured", 500) with data.mcpauthz.config.concurrency.groups.tools as defs
}
