# Who asks, and what they may do where.
#
# Roles. Organization roles (owner, admin, member, viewer: the keys of
# config.roles without the "platform:" prefix) come from
# input.identity.org_role and input.identity.roles, and count only when the
# principal has a tenant. Platform roles ("platform:admin",
# "platform:super-admin") count only for sessions: the identity service
# alone grants them, never a token.
#
# Permissions. A role grants the permissions config.roles lists for it. The
# credential can only narrow them:
#   - session: the roles' permissions;
#   - api_key: the roles' permissions that the key's scopes name (the key's
#     org_role is its creator's role). A key without scopes gets no
#     permission: it can still initialize, ping and send notifications.
#   - jwt: the roles' permissions; when the token carries a scope in one of
#     our namespaces (the part before the first ":" of a permission, such
#     as "mcp"), only those its scopes name. An IdP token with
#     "openid profile" keeps its roles' permissions; a token issued for
#     "mcp:tools:list" is held to it. A token without an organization role
#     (the identity service's token for an API key) grants no permission.
# A scope names a permission exactly or as a wildcard over a prefix:
# "mcp:*" and "mcp:tools:*" both name "mcp:tools:call".
#
# Tenancy. A request is addressed to an organization by a path segment
# after one of config.tenancy.path_prefixes (["orgs"] makes "/orgs/acme/…"
# address "acme"), a header of config.tenancy.headers or an Envoy context
# extension of config.tenancy.context_extensions. It must be the
# principal's own tenant (input.identity.tenant); addressing two at once is
# refused. A session with a platform role may act in another organization
# with the permissions config.tenancy.cross_tenant grants that role, and
# only those. A request addressed to no organization is in the principal's
# own; MCP requests and tenant-scoped routes need one.
package mcpauthz.authz

import data.mcpauthz.config

authenticated if input.identity.authenticated == true

api_key if input.identity.method == "api_key"

org_roles contains role if {
	input.identity.tenant
	role := input.identity.org_role
	org_role(role)
}

org_roles contains role if {
	input.identity.tenant
	some role in input.identity.roles
	org_role(role)
}

org_role(role) if {
	config.roles[role]
	not startswith(role, "platform:")
}

platform_roles contains role if {
	input.identity.method == "session"
	some role in input.identity.roles
	startswith(role, "platform:")
	config.roles[role]
}

principal_roles := org_roles | platform_roles

# --- tenancy ---

addressed_tenants contains org if {
	some prefix in config.tenancy.path_prefixes
	n := count(prefix)
	count(input.parsed_path) > n
	array.slice(input.parsed_path, 0, n) == prefix
	org := input.parsed_path[n]
}

addressed_tenants contains org if {
	some name in config.tenancy.headers
	org := input.attributes.request.http.headers[name]
}

addressed_tenants contains org if {
	some key in config.tenancy.context_extensions
	org := input.attributes.contextExtensions[key]
}

# foreign_tenants are the addressed organizations the principal is not in.
foreign_tenants contains org if {
	some org in addressed_tenants
	not own_tenant(org)
}

own_tenant(org) if input.identity.tenant == org

cross_tenant if count(foreign_tenants) > 0

# target_tenant is the organization the request acts in.
target_tenant := input.identity.tenant if count(addressed_tenants) == 0

target_tenant := org if {
	count(addressed_tenants) == 1
	some org in addressed_tenants
}

tenant_scoped if mcp_request

tenant_scoped if {
	some route in matched_routes
	not route.tenant_scoped == false
}

tenant_ok if target_tenant

tenant_ok if not tenant_scoped

tenant_required if {
	authenticated
	tenant_scoped
	count(addressed_tenants) == 0
	not input.identity.tenant
}

tenant_mismatch if {
	authenticated
	cross_tenant
	count(addressed_tenants) > 1
}

tenant_mismatch if {
	authenticated
	cross_tenant
	not cross_tenant_role
}

# Acting in another organization's MCP servers needs a cross-tenant grant
# of some MCP permission, even for lifecycle methods.
tenant_mismatch if {
	authenticated
	cross_tenant
	mcp_request
	not cross_tenant_mcp
}

cross_tenant_role if {
	some role in platform_roles
	count(config.tenancy.cross_tenant[role]) > 0
}

cross_tenant_mcp if {
	some role in platform_roles
	some p in config.tenancy.cross_tenant[role]
	startswith(p, "mcp:")
}

# --- permissions ---

# required_permissions are what the request needs: the MCP method's
# permission, or every matched route's.
required_permissions contains p if {
	mcp_request
	p := config.mcp.methods[input.mcp.method].permission
}

required_permissions contains route.permission if {
	some route in matched_routes
}

# role_granted: the required permissions the principal's roles grant where
# the request acts.
role_granted contains p if {
	some p in required_permissions
	role_grants(p)
}

role_grants(p) if {
	not cross_tenant
	some role in principal_roles
	p in config.roles[role]
}

role_grants(p) if {
	cross_tenant
	some role in platform_roles
	p in config.tenancy.cross_tenant[role]
}

# Platform permissions ("platform:…", such as platform:manage on the admin
# routes) belong to no organization: a platform role grants them whichever
# organization the request also names (an admin console sending its
# x-org-id, a route's tenant context extension).
role_grants(p) if {
	cross_tenant
	startswith(p, "platform:")
	some role in platform_roles
	p in config.roles[role]
}

# granted_permissions: those the credential does not narrow away.
granted_permissions contains p if {
	some p in role_granted
	credential_allows(p)
}

credential_allows(_) if input.identity.method == "session"

credential_allows(p) if {
	api_key
	scope_names(p)
}

credential_allows(_) if {
	input.identity.method == "jwt"
	not jwt_scoped
}

credential_allows(p) if {
	input.identity.method == "jwt"
	jwt_scoped
	scope_names(p)
}

# missing_scopes are the permissions the roles grant but the credential's
# scopes do not.
missing_scopes := role_granted - granted_permissions

scope_names(p) if p in input.identity.scopes

scope_names(p) if {
	some w in scope_wildcards(p)
	w in input.identity.scopes
}

# scope_wildcards("mcp:tools:call") is {"mcp:*", "mcp:tools:*"}.
scope_wildcards(p) := {w |
	parts := split(p, ":")
	count(parts) > 1
	some i in numbers.range(1, count(parts) - 1)
	w := concat(":", array.concat(array.slice(parts, 0, i), ["*"]))
}

jwt_scoped if {
	some s in input.identity.scopes
	split(s, ":")[0] in permission_namespaces
}

permission_namespaces contains split(p, ":")[0] if some p in config.permissions
