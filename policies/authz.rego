# The default policy bundle of mcpauthz: roles and permissions, tenant
# isolation, MCP method and tool rules, fresh-session step-up, and the rate
# limits and quotas the sidecar enforces. Every number and list lives in
# data.json (data.mcpauthz.config); this package holds only the logic.
#
# Files:
#   authz.rego      the decision: deny by default, deny wins, one reason
#   request.rego    what the request is: public route, MCP, HTTP route
#   principal.rego  who asks: roles, permissions, scopes, tenant
#   mcp.rego        MCP methods and tools: permissions, allow/deny, risk
#   freshness.rego  recent authentication for sensitive operations
#   limits.rego     rate limits and quotas returned on allow
#
# Rules look data up by key (role, tenant, tool, MCP method) and never
# iterate over tenants or tools, so OPA's cost does not grow with the number
# of organizations or per-tenant rules.
package mcpauthz.authz

import data.mcpauthz.config

# Deny by default. A request is allowed only when some rule grants it and no
# rule denies it; a denial carries the first reason in denial_order.
default decision := {
	"allowed": false,
	"http_status": 403,
	"reason": "not_allowed",
}

decision := denial(reason) if reason := first_denial

decision := allowance if {
	not first_denial
	granted
}

# denial_order ranks the reasons: the first one that holds is reported.
# Authentication before tenancy before permissions, so an anonymous caller
# learns only that it must authenticate (401), and a caller from another
# organization gets the same 403 whether or not the organization exists.
denial_order := [
	"bad_path",
	"unauthenticated",
	"tenant_required",
	"tenant_mismatch",
	"invalid_mcp_request",
	"unknown_method",
	"no_matching_route",
	"permission_denied",
	"insufficient_scope",
	"tool_denied",
	"api_key_tool_denied",
	"fresh_session_required",
	"limit_misconfigured",
]

# denial_status is the HTTP status of each reason (a denial's extras may
# override it).
denial_status := {
	"bad_path": 400,
	"unauthenticated": 401,
	"tenant_required": 403,
	"tenant_mismatch": 403,
	"invalid_mcp_request": 400,
	"unknown_method": 403,
	"no_matching_route": 403,
	"permission_denied": 403,
	"insufficient_scope": 403,
	"tool_denied": 403,
	"api_key_tool_denied": 403,
	"fresh_session_required": 401,
	"limit_misconfigured": 500,
}

first_denial := [r | some r in denial_order; r in deny][0] if count(deny) > 0

denial(reason) := object.union(
	{"allowed": false, "http_status": denial_status[reason], "reason": reason},
	object.get(denial_extra, reason, {}),
)

# denial_extra adds challenges (rendered by the sidecar as WWW-Authenticate)
# and status overrides to some denials.
denial_extra["fresh_session_required"] := {"challenge": {
	"error": "insufficient_user_authentication",
	"error_description": "A more recent authentication is required",
	"max_age": config.fresh_session.max_age,
}} if {
	input.identity.method != "api_key"
}

# An API key cannot re-authenticate: a challenge would send the client into
# a login it cannot complete.
denial_extra["fresh_session_required"] := {"http_status": 403} if {
	input.identity.method == "api_key"
}

# An OAuth client can ask for a token with the missing scopes (RFC 6750).
denial_extra["insufficient_scope"] := {"challenge": {
	"error": "insufficient_scope",
	"scope": concat(" ", sort(missing_scopes)),
}} if {
	input.identity.method == "jwt"
}

# deny holds every reason that applies. Public routes are denied only for a
# malformed path.
deny contains "bad_path" if bad_path

deny contains reason if {
	not public_request
	some reason in protected_denials
}

protected_denials contains "unauthenticated" if not authenticated

protected_denials contains "tenant_required" if tenant_required

protected_denials contains "tenant_mismatch" if tenant_mismatch

protected_denials contains "invalid_mcp_request" if invalid_mcp_request

protected_denials contains "unknown_method" if unknown_method

protected_denials contains "no_matching_route" if {
	http_request
	count(matched_routes) == 0
}

protected_denials contains "permission_denied" if count(required_permissions - role_granted) > 0

protected_denials contains "insufficient_scope" if count(missing_scopes) > 0

protected_denials contains "tool_denied" if tool_denied

protected_denials contains "api_key_tool_denied" if api_key_tool_denied

protected_denials contains "fresh_session_required" if {
	sensitive
	not fresh
}

# A limit or quota the data asks for that cannot be built fails closed.
protected_denials contains "limit_misconfigured" if {
	authenticated
	count(misconfigured_limits) > 0
}

# granted is the positive side: without it there is no allow even when no
# denial applies (then the default decision answers).
granted if public_request

granted if {
	mcp_request
	authenticated
	tenant_ok
	count(required_permissions) == 0
	mcp_lifecycle
}

granted if {
	not public_request
	authenticated
	tenant_ok
	count(required_permissions) > 0
	count(required_permissions - granted_permissions) == 0
}

allowance := {"allowed": true, "reason": "public"} if public_request

allowance := {
	"allowed": true,
	"reason": "granted",
	"limits": limits,
	"quotas": quotas,
	"concurrency": concurrency,
} if {
	not public_request
}
