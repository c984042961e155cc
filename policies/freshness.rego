# Fresh session: sensitive operations need an authentication no older than
# config.fresh_session.max_age seconds. Sensitive are the calls of tools
# whose risk class needs it (destructive ones) and the routes matching a
# pattern of config.fresh_session.paths.
#
#   - session: input.identity.session.age_seconds, computed by the sidecar;
#   - jwt: input.identity.auth_age_seconds, which the sidecar computes from
#     the token's numeric auth_time claim on its clock (negative for an
#     auth_time in the future). A token without auth_time is never fresh;
#     one whose auth_time is in the future beyond
#     config.fresh_session.clock_leeway neither.
# The policy reads no clock, so its decisions can be cached.
#   - api_key: never fresh, unless the key has a scope of
#     config.api_keys.fresh_session_bypass_scopes (service-to-service keys
#     that no person stands behind) that its creator's role grants.
#
# A stale session or token gets 401 with the challenge
# {"error": "insufficient_user_authentication", "max_age": …}; an API key
# gets 403 (see denial_extra).
package mcpauthz.authz

import data.mcpauthz.config

sensitive if {
	mcp_request
	tools_call
	not fresh_exempt_risk
}

fresh_exempt_risk if config.risk_classes[tool_risk].fresh_session == false

sensitive if {
	http_request
	some pattern in config.fresh_session.paths
	glob.match(pattern, ["/"], request_path)
}

fresh if {
	input.identity.method == "session"
	age := input.identity.session.age_seconds
	is_number(age)
	age <= config.fresh_session.max_age
}

fresh if {
	input.identity.method == "jwt"
	age := input.identity.auth_age_seconds
	is_number(age)
	age <= config.fresh_session.max_age
	age >= 0 - config.fresh_session.clock_leeway
}

# The bypass scope counts only where the key's creator's role holds it as
# a permission: a member cannot mint a key that skips the step-up.
fresh if {
	api_key
	some scope in config.api_keys.fresh_session_bypass_scopes
	scope in input.identity.scopes
	scope in config.roles[input.identity.org_role]
}
