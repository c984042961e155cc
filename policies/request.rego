# What the request is. Exactly one of public_request, mcp_request and
# http_request holds:
#   - public_request: a path pattern of config.public_routes[<HTTP method>]
#     (no credential needed);
#   - mcp_request: a request to an MCP endpoint (config.mcp.paths), judged
#     by its JSON-RPC message (input.mcp) or, without one, as the GET
#     stream or the DELETE that ends a session;
#   - http_request: anything else, authorized by config.routes.
# The endpoint, not the body, makes a request MCP: the sidecar parses a
# JSON-RPC-shaped body on any path, and a "ping" posted to an admin route
# must still need the route's permission.
#
# Paths are matched on the decoded segments (input.parsed_path) joined with
# "/", so a percent-encoded letter cannot dodge a pattern. Patterns are
# globs with "/" as the separator: "*" is one segment, "**" any number.
package mcpauthz.authz

import data.mcpauthz.config

request_path := concat("/", array.concat([""], input.parsed_path))

http_method := input.attributes.request.http.method

# bad_path: "." or ".." segments, an empty segment inside the path, or a
# segment holding an encoded "/" or "\" (%2F, %5C: the sidecar splits the
# path before decoding, so such a segment would match the globs below as
# several, "../.." included). The upstream may resolve them differently
# from the patterns here, so no rule can be trusted to have matched what
# the upstream will serve.
bad_path if {
	some seg in input.parsed_path
	seg in {".", ".."}
}

bad_path if {
	some seg in input.parsed_path
	contains(seg, "/")
}

bad_path if {
	some seg in input.parsed_path
	contains(seg, "\\")
}

bad_path if {
	some i, seg in input.parsed_path
	seg == ""
	i < count(input.parsed_path) - 1
}

# route_matches(route) holds when the request has one of the route's methods
# (any method when it lists none) and its path matches the route's glob.
route_matches(route) if {
	route_method(route)
	glob.match(route.path, ["/"], request_path)
}

route_method(route) if not route.methods

route_method(route) if http_method in route.methods

# Keyed by method, so a POST (most MCP traffic) matches no pattern at all.
public_request if {
	some pattern in config.public_routes[http_method]
	glob.match(pattern, ["/"], request_path)
}

mcp_request if {
	not public_request
	mcp_endpoint
}

mcp_endpoint if {
	some pattern in config.mcp.paths
	glob.match(pattern, ["/"], request_path)
}

http_request if {
	not public_request
	not mcp_request
}

# matched_routes are the routes of config.routes the request matches. Each
# one's permission is required: overlapping routes add up, never widen.
matched_routes contains route if {
	http_request
	some route in config.routes
	route_matches(route)
}
