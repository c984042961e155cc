# MCP methods and tools.
#
# Methods. config.mcp.methods maps each method to the permission it needs
# and the group its limits come from. Lifecycle messages need no
# permission, only an authenticated principal of the tenant: the methods of
# config.mcp.lifecycle_methods (initialize, ping), the notifications named
# in config.mcp.client_notifications, JSON-RPC responses the client sends
# back, and the HTTP methods of config.mcp.stream_http_methods on an MCP
# endpoint (the GET stream, the DELETE ending a session). Any other method
# is refused (unknown_method): a new MCP method is denied until data names
# its permission.
#
# Tools. A tools/call is checked against the tool's rules in config.tools
# and config.tenants[<tenant>].tools, both by exact name; both apply, and
# any denial wins:
#   {"disabled": true}                        nobody may call it
#   {"deny":  {"roles": [], "tiers": [], "scopes": []}}
#                                             a principal with one of the
#                                             roles, in one of the tiers, or
#                                             an API key with one of the
#                                             scopes may not call it
#   {"allow": {"roles": [], "tiers": [], "scopes": []}}
#                                             each list present must match:
#                                             a role, the tier, and (API
#                                             keys only) a scope; an empty
#                                             list matches nobody
#   {"risk": "read_only"|"open_world"|"destructive"}
# An API key's allowed_tools (when not empty) restricts it to those tools.
#
# Risk. A tool's risk class is the most severe (highest rank in
# config.risk_classes) of its declarations; a tool declared nowhere, or
# with an unknown class, is config.undeclared_tool_risk ("destructive", as
# MCP's tool annotations default to destructiveHint: true). The class sets
# the tool's cost in rate limits and whether it needs a fresh session
# (unless the class says "fresh_session": false, it does).
package mcpauthz.authz

import data.mcpauthz.config

tools_call if input.mcp.method == "tools/call"

# mcp_message: the request carries a JSON-RPC message. Tested through a
# member the sidecar always sets rather than input.mcp as a whole, so that
# decisions do not depend on the message's id and can be cached.
mcp_message if is_boolean(input.mcp.is_response)

mcp_lifecycle if input.mcp.method in config.mcp.lifecycle_methods

# The notifications a client sends (MCP 2025-11-25), by exact name.
mcp_lifecycle if input.mcp.method in config.mcp.client_notifications

# A response to the server's request; one that names a method is not one.
mcp_lifecycle if {
	input.mcp.is_response == true
	not input.mcp.method
}

mcp_lifecycle if {
	not mcp_message
	http_method in config.mcp.stream_http_methods
}

# A request to an MCP endpoint that is neither a JSON-RPC message nor a
# stream method.
invalid_mcp_request if {
	mcp_request
	not mcp_message
	not http_method in config.mcp.stream_http_methods
}

unknown_method if {
	mcp_request
	mcp_message
	not mcp_lifecycle
	not known_method
}

known_method if config.mcp.methods[input.mcp.method]

# --- tools ---

tool_rules contains rule if {
	tools_call
	rule := config.tools[input.mcp.tool]
}

tool_rules contains rule if {
	tools_call
	rule := config.tenants[target_tenant].tools[input.mcp.tool]
}

tool_denied if {
	mcp_request
	tools_call
	not input.mcp.tool
}

tool_denied if {
	mcp_request
	some rule in tool_rules
	tool_rule_denies(rule)
}

tool_rule_denies(rule) if rule.disabled == true

tool_rule_denies(rule) if {
	some role in rule.deny.roles
	role in principal_roles
}

tool_rule_denies(rule) if tier in rule.deny.tiers

tool_rule_denies(rule) if {
	api_key
	some scope in rule.deny.scopes
	scope in input.identity.scopes
}

tool_rule_denies(rule) if {
	rule.allow.roles
	count({role | some role in rule.allow.roles; role in principal_roles}) == 0
}

tool_rule_denies(rule) if {
	rule.allow.tiers
	not tier in rule.allow.tiers
}

tool_rule_denies(rule) if {
	api_key
	rule.allow.scopes
	count({scope | some scope in rule.allow.scopes; scope in input.identity.scopes}) == 0
}

api_key_tool_denied if {
	mcp_request
	tools_call
	count(input.identity.api_key.allowed_tools) > 0
	not input.mcp.tool in input.identity.api_key.allowed_tools
}

# --- risk ---

declared_risks contains risk if {
	tools_call
	risk := config.tools[input.mcp.tool].risk
	config.risk_classes[risk]
}

declared_risks contains risk if {
	tools_call
	risk := config.tenants[target_tenant].tools[input.mcp.tool].risk
	config.risk_classes[risk]
}

# A risk that names no class (a typo) counts as an undeclared tool's, so a
# misspelt override cannot leave a tool at a weaker class.
declared_risks contains config.undeclared_tool_risk if {
	tools_call
	risk := config.tools[input.mcp.tool].risk
	not config.risk_classes[risk]
}

declared_risks contains config.undeclared_tool_risk if {
	tools_call
	risk := config.tenants[target_tenant].tools[input.mcp.tool].risk
	not config.risk_classes[risk]
}

tool_risk := config.undeclared_tool_risk if {
	tools_call
	count(declared_risks) == 0
}

tool_risk := sort([risk |
	some risk in declared_risks
	config.risk_classes[risk].rank == max_declared_rank
])[0] if {
	count(declared_risks) > 0
}

max_declared_rank := max({config.risk_classes[risk].rank | some risk in declared_risks})
