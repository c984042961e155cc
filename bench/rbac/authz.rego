# A small RBAC policy for benchmarks: a role (from a header, until
# credentials are verified) maps to the MCP tools it may call.
package mcpauthz.authz

default decision := {"allowed": false, "http_status": 403, "reason": "forbidden"}

decision := {"allowed": true} if {
	input.mcp.method == "tools/call"
	role := input.attributes.request.http.headers["x-role"]
	input.mcp.tool in data.rbac.roles[role].tools
}
