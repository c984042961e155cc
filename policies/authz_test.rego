package mcpauthz.authz_test

import data.mcpauthz.authz

mcp(method, params) := {
	"attributes": {"request": {"http": {"method": "POST", "path": "/mcp"}}},
	"parsed_path": ["mcp"],
	"mcp": object.union({"method": method}, params),
}

test_tools_list_allowed if {
	authz.decision.allowed with input as mcp("tools/list", {})
}

test_initialize_allowed if {
	authz.decision.allowed with input as mcp("initialize", {})
}

test_notification_allowed if {
	authz.decision.allowed with input as mcp("notifications/initialized", {})
}

test_public_tool_allowed if {
	authz.decision.allowed with input as mcp("tools/call", {"tool": "echo"})
}

test_other_tool_denied if {
	d := authz.decision with input as mcp("tools/call", {"tool": "delete_everything"})
	not d.allowed
	d.http_status == 403
	d.reason == "tool_not_allowed"
}

test_unknown_method_denied if {
	d := authz.decision with input as mcp("sampling/createMessage", {})
	not d.allowed
	d.reason == "not_allowed"
}

test_health_allowed if {
	authz.decision.allowed with input as {
		"attributes": {"request": {"http": {"method": "GET", "path": "/healthz"}}},
		"parsed_path": ["healthz"],
	}
}

test_resource_metadata_allowed if {
	authz.decision.allowed with input as {
		"attributes": {"request": {"http": {"method": "GET", "path": "/.well-known/oauth-protected-resource/mcp"}}},
		"parsed_path": [".well-known", "oauth-protected-resource", "mcp"],
	}
}

test_post_to_public_path_denied if {
	not authz.decision.allowed with input as {
		"attributes": {"request": {"http": {"method": "POST", "path": "/healthz"}}},
		"parsed_path": ["healthz"],
	}
}

test_other_get_denied if {
	not authz.decision.allowed with input as {
		"attributes": {"request": {"http": {"method": "GET", "path": "/admin"}}},
		"parsed_path": ["admin"],
	}
}
