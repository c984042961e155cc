# The policy bundle compiled into mcpauthz. It is deliberately small: it
# shows the decision contract and gives `mcpauthz dev` something to decide
# with. Security teams replace it with their own bundle (--bundle).
package mcpauthz.authz

import data.mcpauthz.config

# Deny unless a rule below allows; a denial says why.
default decision := {
	"allowed": false,
	"http_status": 403,
	"reason": "not_allowed",
}

decision := {"allowed": true} if allow

decision := {
	"allowed": false,
	"http_status": 403,
	"reason": "tool_not_allowed",
} if {
	not allow
	input.mcp.method == "tools/call"
}

# Public routes: health checks and OAuth protected resource metadata.
allow if {
	input.attributes.request.http.method in {"GET", "HEAD"}
	path_is_public
}

request_path := concat("/", array.concat([""], input.parsed_path))

path_is_public if request_path in config.public_paths

path_is_public if startswith(request_path, "/.well-known/oauth-protected-resource/")

# MCP session lifecycle and discovery.
allow if input.mcp.method in config.open_methods

allow if startswith(input.mcp.method, "notifications/")

allow if {
	input.mcp.method == "tools/call"
	input.mcp.tool in config.public_tools
}
