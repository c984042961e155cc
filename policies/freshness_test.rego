# Fresh sessions for destructive tools and sensitive routes.
package mcpauthz.authz_test

aged(identity, age) := object.union(identity, {"session": {"age_seconds": age}})

# authenticated_at(token, t) is token with auth_time t, and the age the
# sidecar computes from it at now_s; a claim that is no number has none.
authenticated_at(token, t) := object.union(token, {"claims": {"auth_time": t}, "auth_age_seconds": now_s - t}) if is_number(t)

authenticated_at(token, t) := object.union(object.remove(token, ["auth_age_seconds"]), {"claims": {"auth_time": t}}) if not is_number(t)

step_up := {
	"allowed": false,
	"http_status": 401,
	"reason": "fresh_session_required",
	"challenge": {
		"error": "insufficient_user_authentication",
		"error_description": "A more recent authentication is required",
		"max_age": 900,
	},
}

# --- sessions ---

test_destructive_tool_with_fresh_session if allowed(mcp(aged(member, 900), call("rm")))

test_destructive_tool_with_stale_session if decide(mcp(aged(member, 901), call("rm"))) == step_up

test_session_without_age_is_stale if {
	stale := object.union(object.remove(member, ["session"]), {"session": {"id": "s-1"}})
	denied(mcp(stale, call("rm")), "fresh_session_required", 401)
}

test_read_only_tool_needs_no_fresh_session if allowed(mcp(aged(member, 86400), call("echo")))

test_open_world_tool_needs_no_fresh_session if {
	tools := {"web": {"risk": "open_world"}}
	allowed(mcp(aged(member, 86400), call("web"))) with data.mcpauthz.config.tools as tools
}

test_max_age_is_data if {
	denied(mcp(aged(member, 120), call("rm")), "fresh_session_required", 401) with data.mcpauthz.config.fresh_session.max_age as 60
	d := decide(mcp(aged(member, 120), call("rm"))) with data.mcpauthz.config.fresh_session.max_age as 60
	d.challenge.max_age == 60
}

test_class_without_fresh_flag_needs_fresh_session if {
	classes := {"read_only": {"rank": 0, "cost": 1}}
	denied(mcp(aged(member, 86400), call("echo")), "fresh_session_required", 401) with data.mcpauthz.config.risk_classes as classes
}

test_undeclared_class_needs_fresh_session_and_costs_the_most if {
	req := mcp(aged(member, 86400), call("rm"))
	denied(req, "fresh_session_required", 401) with data.mcpauthz.config.undeclared_tool_risk as "unknown"
	fresh := mcp(member, call("rm"))
	has_limit(fresh, "tenant_tool_calls", "tenant:acme:tools", 500, "10s", 5) with data.mcpauthz.config.undeclared_tool_risk as "unknown"
}

# --- JWTs ---

test_jwt_with_recent_auth_time if allowed(mcp(authenticated_at(jwt, now_s - 900), call("rm")))

test_jwt_with_old_auth_time if decide(mcp(authenticated_at(jwt, now_s - 901), call("rm"))) == step_up

test_jwt_without_auth_time_is_stale if {
	no_time := object.union(object.remove(jwt, ["claims", "auth_age_seconds"]), {"claims": {"sub": "u-2"}})
	denied(mcp(no_time, call("rm")), "fresh_session_required", 401)
	allowed(mcp(no_time, call("echo")))
}

test_jwt_auth_time_must_be_a_number if {
	denied(mcp(authenticated_at(jwt, sprintf("%d", [now_s])), call("rm")), "fresh_session_required", 401)
}

test_jwt_auth_time_in_the_future if {
	allowed(mcp(authenticated_at(jwt, now_s + 60), call("rm")))
	denied(mcp(authenticated_at(jwt, now_s + 61), call("rm")), "fresh_session_required", 401)
}

# The age, not the claim, decides: the sidecar computes it on its clock.
test_jwt_judged_by_its_age if {
	token := object.union(authenticated_at(jwt, now_s - 60), {"auth_age_seconds": 3660})
	denied(mcp(token, call("rm")), "fresh_session_required", 401)
}

# --- API keys ---

test_api_key_destructive_tool_is_403 if {
	d := decide(mcp(api_key(["mcp:*"]), call("rm")))
	d == {"allowed": false, "http_status": 403, "reason": "fresh_session_required"}
}

admin_key(scopes) := object.union(api_key(scopes), {"org_role": "admin", "roles": ["admin"]})

test_service_to_service_key_bypasses_freshness if {
	allowed(mcp(admin_key(["mcp:*", "service_to_service"]), call("rm")))
	denied(mcp(admin_key(["mcp:*", "service_to_service"]), call("rm")), "fresh_session_required", 403)
		with data.mcpauthz.config.api_keys.fresh_session_bypass_scopes as []
}

test_bypass_scope_does_not_help_sessions if {
	denied(mcp(object.union(aged(member, 3600), {"scopes": ["service_to_service"]}), call("rm")), "fresh_session_required", 401)
}

# --- sensitive routes ---

test_admin_route_needs_fresh_session if {
	admin := object.union(session("viewer"), {"roles": ["viewer", "platform:admin"]})
	allowed(http(admin, "PUT", "/api/v1/admin/users/u-3/ban"))
	decide(http(aged(admin, 3600), "PUT", "/api/v1/admin/users/u-3/ban")) == step_up
	denied(http(aged(admin, 3600), "GET", "/api/v1/admin"), "fresh_session_required", 401)
}

test_settings_route_needs_fresh_session if {
	allowed(http(session("admin"), "PATCH", "/api/v1/orgs/acme/settings"))
	denied(http(aged(session("admin"), 3600), "PATCH", "/api/v1/orgs/acme/settings/sso"), "fresh_session_required", 401)
}

test_other_routes_need_no_fresh_session if allowed(http(aged(session("admin"), 86400), "POST", "/api/v1/orgs/acme/servers"))

test_fresh_paths_are_data if {
	denied(http(aged(session("admin"), 3600), "POST", "/api/v1/orgs/acme/servers"), "fresh_session_required", 401)
		with data.mcpauthz.config.fresh_session.paths as ["/api/v1/orgs/*/servers"]
}

# A member cannot mint a key that skips the step-up: the bypass scope
# counts only where the creator's role grants it.
test_member_key_with_bypass_scope_still_needs_freshness if {
	key := object.union(api_key(["mcp:*", "service_to_service"]), {"org_role": "member", "roles": ["member"]})
	denied(mcp(key, call("rm")), "fresh_session_required", 403)
}
