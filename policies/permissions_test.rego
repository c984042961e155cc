# Roles, permissions and how credentials narrow them.
package mcpauthz.authz_test

import data.mcpauthz.authz

# --- roles ---

test_member_uses_mcp if {
	allowed(mcp(member, method("tools/list")))
	allowed(mcp(member, call("echo")))
	allowed(mcp(member, {"method": "resources/read", "uri": "file:///a"}))
	allowed(mcp(member, method("resources/templates/list")))
	allowed(mcp(member, {"method": "prompts/get", "prompt": "p"}))
	allowed(mcp(member, method("completion/complete")))
}

test_viewer_reads_but_does_not_call if {
	viewer := session("viewer")
	allowed(mcp(viewer, method("tools/list")))
	allowed(mcp(viewer, {"method": "prompts/get", "prompt": "p"}))
	allowed(mcp(viewer, method("resources/list")))
	denied(mcp(viewer, call("echo")), "permission_denied", 403)
}

test_logging_needs_admin if {
	denied(mcp(member, method("logging/setLevel")), "permission_denied", 403)
	allowed(mcp(session("admin"), method("logging/setLevel")))
}

test_server_management_by_role if {
	allowed(http(member, "GET", "/api/v1/orgs/acme/servers"))
	denied(http(member, "POST", "/api/v1/orgs/acme/servers"), "permission_denied", 403)
	denied(http(session("viewer"), "GET", "/api/v1/orgs/acme/servers/s-1"), "permission_denied", 403)
	allowed(http(session("admin"), "POST", "/api/v1/orgs/acme/servers"))
	allowed(http(session("owner"), "DELETE", "/api/v1/orgs/acme/servers/s-1"))
}

test_audit_needs_owner if {
	allowed(http(session("owner"), "GET", "/api/v1/orgs/acme/audit"))
	denied(http(session("admin"), "GET", "/api/v1/orgs/acme/audit"), "permission_denied", 403)
}

test_platform_admin_route if {
	denied(http(session("owner"), "GET", "/api/v1/admin/users"), "permission_denied", 403)
	both := object.union(session("viewer"), {"roles": ["viewer", "platform:admin"]})
	allowed(http(both, "GET", "/api/v1/admin/users"))
}

test_unknown_role_grants_nothing if {
	denied(mcp(session("superuser"), method("tools/list")), "permission_denied", 403)
	allowed(mcp(session("superuser"), method("initialize")))
}

test_roles_are_data if {
	denied(mcp(member, method("tools/list")), "permission_denied", 403) with data.mcpauthz.config.roles.member as []
}

test_jwt_role_from_roles_claim if {
	allowed(mcp(jwt, call("echo")))
	denied(mcp(object.union(jwt, {"roles": ["viewer"]}), call("echo")), "permission_denied", 403)
}

test_jwt_without_org_role_grants_nothing if {
	# The identity service's token for an API key: subject key:…, scopes,
	# no role.
	token := object.union(object.remove(jwt, ["roles", "user_id"]), {"subject": "key:k-1", "scopes": ["mcp:tools:call"]})
	denied(mcp(token, call("echo")), "permission_denied", 403)
	allowed(mcp(token, method("initialize")))
}

# --- API keys: scopes intersect the creator's role ---

test_api_key_scopes_intersect_the_role if {
	key := api_key(["mcp:tools:list"])
	allowed(mcp(key, method("tools/list")))
	denied(mcp(key, call("echo")), "insufficient_scope", 403)
	not decide(mcp(key, call("echo"))).challenge
}

test_api_key_scopes_never_widen if {
	# The key names servers:manage; its creator, a member, lacks it.
	key := api_key(["servers:manage", "mcp:tools:list"])
	denied(http(key, "POST", "/api/v1/orgs/acme/servers"), "permission_denied", 403)
	viewer_key := object.union(api_key(["mcp:tools:call"]), {"org_role": "viewer", "roles": ["viewer"]})
	denied(mcp(viewer_key, call("echo")), "permission_denied", 403)
}

test_api_key_without_scopes_gets_only_lifecycle if {
	key := api_key([])
	denied(mcp(key, method("tools/list")), "insufficient_scope", 403)
	denied(mcp(key, call("echo")), "insufficient_scope", 403)
	allowed(mcp(key, method("initialize")))
	allowed(mcp(key, method("ping")))
	allowed(mcp(key, {"method": "notifications/initialized", "is_notification": true}))
	allowed(http(key, "GET", "/mcp"))
}

test_api_key_wildcard_scopes if {
	allowed(mcp(api_key(["mcp:*"]), call("echo")))
	allowed(mcp(api_key(["mcp:tools:*"]), call("echo")))
	denied(mcp(api_key(["mcp:resources:*"]), call("echo")), "insufficient_scope", 403)
	denied(mcp(api_key(["mcp:tools:call:*"]), call("echo")), "insufficient_scope", 403)
}

test_scope_wildcards if {
	authz.scope_wildcards("mcp:tools:call") == {"mcp:*", "mcp:tools:*"}
	authz.scope_wildcards("audit:read") == {"audit:*"}
	authz.scope_wildcards("flat") == set()
}

test_api_key_role_is_its_creators if {
	owner_key := object.union(api_key(["audit:read"]), {"org_role": "owner", "roles": ["owner"]})
	allowed(http(owner_key, "GET", "/api/v1/orgs/acme/audit"))
	denied(http(api_key(["audit:read"]), "GET", "/api/v1/orgs/acme/audit"), "permission_denied", 403)
}

# --- JWT scopes ---

test_jwt_foreign_scopes_do_not_narrow if {
	allowed(mcp(object.union(jwt, {"scopes": ["openid", "profile", "email"]}), call("echo")))
}

test_jwt_our_scopes_narrow if {
	token := object.union(jwt, {"scopes": ["openid", "mcp:tools:list"]})
	allowed(mcp(token, method("tools/list")))
	d := decide(mcp(token, call("echo")))
	d == {
		"allowed": false,
		"http_status": 403,
		"reason": "insufficient_scope",
		"challenge": {"error": "insufficient_scope", "scope": "mcp:tools:call"},
	}
}

test_jwt_scopes_never_widen if {
	token := object.union(jwt, {"roles": ["viewer"], "scopes": ["mcp:tools:call"]})
	denied(mcp(token, call("echo")), "permission_denied", 403)
}

test_jwt_scope_grants if allowed(mcp(object.union(jwt, {"scopes": ["mcp:tools:call"]}), call("echo")))

test_session_scopes_are_ignored if allowed(mcp(object.union(member, {"scopes": ["mcp:tools:list"]}), call("echo")))

test_unknown_credential_method_gets_nothing if {
	odd := object.union(member, {"method": "mtls"})
	denied(mcp(odd, method("tools/list")), "insufficient_scope", 403)
}
