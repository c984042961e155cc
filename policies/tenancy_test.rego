# Tenant isolation: how a request addresses an organization, who may act
# there, and principals without a tenant.
package mcpauthz.authz_test

import data.mcpauthz.authz

super_admin := {
	"authenticated": true,
	"method": "session",
	"subject": "u-9",
	"user_id": "u-9",
	"roles": ["platform:super-admin"],
	"permissions": [],
	"scopes": [],
	"session": {"id": "s-9", "auth_time": now_s - 60, "age_seconds": 60},
}

platform_admin := object.union(super_admin, {"roles": ["platform:admin"]})

# --- addressing ---

test_own_tenant_by_path if {
	allowed(mcp_at(member, method("tools/list"), "/orgs/acme/mcp"))
	allowed(http(session("admin"), "POST", "/api/v1/orgs/acme/servers"))
}

test_own_tenant_by_header if allowed(with_headers(mcp(member, method("tools/list")), {"x-org-id": "acme"}))

test_own_tenant_by_context_extension if {
	allowed(with_extensions(mcp(member, method("tools/list")), {"tenant": "acme", "route": "mcp"}))
}

test_other_tenant_by_path if {
	denied(mcp_at(member, method("tools/list"), "/orgs/globex/mcp"), "tenant_mismatch", 403)
	denied(http(session("owner"), "GET", "/api/v1/orgs/globex/servers"), "tenant_mismatch", 403)
}

test_other_tenant_by_header if {
	denied(with_headers(mcp(member, method("tools/list")), {"x-org-id": "globex"}), "tenant_mismatch", 403)
}

test_other_tenant_by_context_extension if {
	denied(with_extensions(mcp(member, method("tools/list")), {"tenant": "globex"}), "tenant_mismatch", 403)
}

test_other_tenant_denial_does_not_depend_on_the_org if {
	exists := decide(mcp_at(member, call("echo"), "/orgs/globex/mcp"))
		with data.mcpauthz.config.tenants as {"globex": {"tools": {"echo": {"disabled": true}}}}
	missing := decide(mcp_at(member, call("echo"), "/orgs/no-such-org/mcp"))
	exists == missing
	exists == {"allowed": false, "http_status": 403, "reason": "tenant_mismatch"}
}

test_lifecycle_of_other_tenant_is_denied if {
	denied(mcp_at(member, method("initialize"), "/orgs/globex/mcp"), "tenant_mismatch", 403)
	denied(with_headers(http(member, "GET", "/mcp"), {"x-org-id": "globex"}), "tenant_mismatch", 403)
}

test_two_tenants_at_once_are_denied if {
	req := with_headers(mcp_at(member, method("tools/list"), "/orgs/acme/mcp"), {"x-org-id": "globex"})
	denied(req, "tenant_mismatch", 403)
	denied(with_headers(http(super_admin, "GET", "/api/v1/orgs/acme/servers"), {"x-org-id": "globex"}), "tenant_mismatch", 403)
}

test_empty_address_is_another_tenant if {
	denied(with_headers(mcp(member, method("tools/list")), {"x-org-id": ""}), "tenant_mismatch", 403)
}

test_addressing_is_configurable if {
	req := with_headers(mcp(member, method("tools/list")), {"x-tenant": "globex"})
	allowed(req)
	denied(req, "tenant_mismatch", 403) with data.mcpauthz.config.tenancy.headers as ["x-tenant"]
	allowed(mcp_at(member, method("tools/list"), "/orgs/globex/mcp")) with data.mcpauthz.config.tenancy.path_prefixes as []
}

test_jwt_of_other_tenant_is_denied if {
	denied(with_extensions(mcp(jwt, method("tools/list")), {"tenant": "globex"}), "tenant_mismatch", 403)
	denied(mcp_at(jwt, method("tools/list"), "/orgs/globex/mcp"), "tenant_mismatch", 403)
}

test_api_key_of_other_tenant_is_denied if {
	denied(mcp_at(api_key(["mcp:*"]), method("tools/list"), "/orgs/globex/mcp"), "tenant_mismatch", 403)
}

# --- principals without a tenant ---

test_no_tenant_cannot_call_mcp if {
	no_tenant := object.remove(member, ["tenant", "org_role"])
	denied(mcp(no_tenant, method("tools/list")), "tenant_required", 403)
	denied(mcp(no_tenant, method("initialize")), "tenant_required", 403)
	denied(http(no_tenant, "GET", "/mcp"), "tenant_required", 403)
}

test_org_role_without_tenant_grants_nothing if {
	no_tenant := object.remove(member, ["tenant"])
	denied(mcp(no_tenant, method("tools/list")), "tenant_required", 403)
	authz.org_roles == set() with input as mcp(no_tenant, method("tools/list"))
}

test_no_tenant_addressing_an_org_is_a_mismatch if {
	no_tenant := object.remove(jwt, ["tenant"])
	denied(mcp_at(no_tenant, method("tools/list"), "/orgs/acme/mcp"), "tenant_mismatch", 403)
}

test_tenant_scoped_route_needs_a_tenant if {
	routes := [{"path": "/api/v1/things", "permission": "servers:read"}]
	denied(http(super_admin, "GET", "/api/v1/things"), "tenant_required", 403) with data.mcpauthz.config.routes as routes
}

test_platform_route_needs_no_tenant if allowed(http(super_admin, "GET", "/api/v1/admin/users"))

# Platform permissions are nobody's tenant: naming an organization beside
# them changes nothing, for a platform admin of another organization too.
test_platform_route_naming_a_tenant if {
	allowed(with_headers(http(super_admin, "GET", "/api/v1/admin/users"), {"x-org-id": "globex"}))
	owner_admin := object.union(platform_admin, {"tenant": "acme", "org_role": "owner", "roles": ["owner", "platform:admin"]})
	allowed(with_headers(http(owner_admin, "POST", "/api/v1/admin/users/u-1/ban"), {"x-org-id": "globex"}))
	allowed(with_extensions(http(owner_admin, "GET", "/api/v1/admin/users"), {"tenant": "globex"}))

	# Still only platform roles: an owner of acme naming globex is refused.
	denied(with_headers(http(session("owner"), "GET", "/api/v1/admin/users"), {"x-org-id": "globex"}), "tenant_mismatch", 403)

	# And the other organization's permissions stay out of reach.
	denied(with_headers(http(owner_admin, "POST", "/api/v1/orgs/globex/servers"), {"x-org-id": "globex"}), "permission_denied", 403)
}

# --- platform roles across tenants ---

test_super_admin_reads_other_tenant_servers if {
	req := http(super_admin, "GET", "/api/v1/orgs/globex/servers")
	allowed(req)
	has_limit(req, "server_management", "user:u-9:servers", 5, "60s", 1)
}

test_super_admin_manages_other_tenant_servers if allowed(http(super_admin, "DELETE", "/api/v1/orgs/globex/servers/s-1"))

test_platform_admin_cross_tenant_only_with_its_grant if {
	allowed(http(platform_admin, "GET", "/api/v1/orgs/globex/servers"))
	denied(http(platform_admin, "POST", "/api/v1/orgs/globex/servers"), "permission_denied", 403)
}

test_cross_tenant_grant_is_from_data if {
	denied(http(super_admin, "GET", "/api/v1/orgs/globex/servers"), "tenant_mismatch", 403) with data.mcpauthz.config.tenancy.cross_tenant as {}
}

test_cross_tenant_own_roles_do_not_count if {
	# An owner of acme who is a platform admin has only the grant in globex.
	both := object.union(platform_admin, {"tenant": "acme", "org_role": "owner", "roles": ["owner", "platform:admin"]})
	allowed(http(both, "POST", "/api/v1/orgs/acme/servers"))
	denied(http(both, "POST", "/api/v1/orgs/globex/servers"), "permission_denied", 403)
}

test_super_admin_cannot_use_other_tenant_mcp if {
	denied(mcp_at(super_admin, method("tools/list"), "/orgs/globex/mcp"), "tenant_mismatch", 403)
	denied(mcp_at(super_admin, method("initialize"), "/orgs/globex/mcp"), "tenant_mismatch", 403)
}

test_cross_tenant_mcp_when_data_grants_it if {
	grant := {"platform:super-admin": ["mcp:tools:list"]}
	allowed(mcp_at(super_admin, method("initialize"), "/orgs/globex/mcp")) with data.mcpauthz.config.tenancy.cross_tenant as grant
	allowed(mcp_at(super_admin, method("tools/list"), "/orgs/globex/mcp")) with data.mcpauthz.config.tenancy.cross_tenant as grant
	denied(mcp_at(super_admin, call("echo"), "/orgs/globex/mcp"), "permission_denied", 403) with data.mcpauthz.config.tenancy.cross_tenant as grant
}

test_platform_roles_only_from_sessions if {
	token := object.union(jwt, {"roles": ["member", "platform:super-admin"]})
	denied(http(token, "GET", "/api/v1/orgs/globex/servers"), "tenant_mismatch", 403)
	denied(http(token, "GET", "/api/v1/admin/users"), "permission_denied", 403)
	key := object.union(api_key(["platform:manage"]), {"roles": ["member", "platform:super-admin"]})
	denied(http(key, "GET", "/api/v1/admin/users"), "permission_denied", 403)
}

test_unknown_platform_role_grants_nothing if {
	denied(http(object.union(super_admin, {"roles": ["platform:root"]}), "GET", "/api/v1/admin/users"), "permission_denied", 403)
}

# An encoded "/" keeps a segment whole in parsed_path; joined back, it
# would match the globs as several segments. Such paths are refused.
test_encoded_slash_is_a_bad_path if {
	d := data.mcpauthz.authz.decision with input as {
		"attributes": {"request": {"http": {"method": "GET", "path": "/.well-known/oauth-protected-resource/..%2F..%2Fapi%2Fv1%2Fadmin"}}},
		"parsed_path": [".well-known", "oauth-protected-resource", "../../api/v1/admin"],
	}
	d.allowed == false
	d.reason == "bad_path"
	d.http_status == 400
}

test_encoded_backslash_is_a_bad_path if {
	d := data.mcpauthz.authz.decision with input as {
		"attributes": {"request": {"http": {"method": "GET", "path": "/healthz%5C..%5Cx"}}},
		"parsed_path": ["healthz\\..\\x"],
	}
	d.reason == "bad_path"
}
