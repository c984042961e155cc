# Consistency of data.json: what the rules assume of the data they read.
package mcpauthz.authz_test

import data.mcpauthz.config

# Permissions are scopes an API key can carry (identity/apikeys.go) and a
# challenge can name (RFC 6749 scope-token).
test_permissions_are_scope_tokens if {
	every p in config.permissions {
		regex.match(`^[a-z][a-z0-9_.-]*(:[a-z0-9_.*-]+)*$`, p)
	}
}

test_roles_grant_known_permissions if {
	every _, permissions in config.roles {
		every p in permissions {
			p in config.permissions
		}
	}
}

test_org_roles_exist if {
	every role in ["owner", "admin", "member", "viewer", "platform:admin", "platform:super-admin"] {
		config.roles[role]
	}
}

test_cross_tenant_grants_are_the_roles_own if {
	every role, permissions in config.tenancy.cross_tenant {
		startswith(role, "platform:")
		every p in permissions {
			p in config.roles[role]
		}
	}
}

test_routes_are_complete if {
	every route in config.routes {
		route.permission in config.permissions
		startswith(route.path, "/")
		every m in route.methods {
			m == upper(m)
		}
	}
	every method, patterns in config.public_routes {
		method == upper(method)
		every p in patterns {
			startswith(p, "/")
		}
	}
}

test_mcp_methods_name_known_permissions if {
	every _, spec in config.mcp.methods {
		spec.permission in config.permissions
	}
}

test_tenancy_headers_are_lower_case if {
	every name in config.tenancy.headers {
		name == lower(name)
	}
}

test_risk_classes_are_complete if {
	ranks := [c.rank | some c in config.risk_classes]
	count(ranks) == count({r | some r in ranks})
	every _, class in config.risk_classes {
		is_number(class.cost)
		is_boolean(class.fresh_session)
	}
	config.risk_classes[config.undeclared_tool_risk].fresh_session == true
	every _, tool in config.tools {
		config.risk_classes[tool.risk]
	}
}

test_tiers_are_complete if {
	config.tiers[config.default_tier]
	every _, t in config.tiers {
		is_number(t.limit_multiplier)
		is_number(t.weight)
		t.weight > 0
	}
}

test_fair_shares_are_complete if {
	is_number(config.limits.max_tenant_share)
	config.limits.max_tenant_share > 0
	config.limits.max_tenant_share <= 1
	every def in limit_definitions {
		share_complete(def)
	}
}

share_complete(def) if not def.share

share_complete(def) if {
	is_string(def.share.pool)
	def.share.pool != ""
	every name, _ in def.share {
		name in {"pool", "max_share"}
	}
	every v in object.filter(def.share, ["max_share"]) {
		is_number(v)
		v > 0
		v <= 1
	}
}

limit_definitions contains def if some def in config.limits.all

limit_definitions contains def if {
	some defs in config.limits.groups
	some def in defs
}

quota_definitions contains def if some def in config.quotas.billable

quota_definitions contains def if {
	some defs in config.quotas.groups
	some def in defs
}

test_limit_definitions_are_complete if {
	every def in limit_definitions {
		is_string(def.name)
		def.per in {"tenant", "user", "key", "principal"}
		regex.match(`^[0-9]+(ms|s|m|h)$`, def.window)
		is_number(def.limit)
	}
	names := [def.name | some def in limit_definitions]
	count(names) == count({n | some n in names})
}

test_quota_definitions_are_complete if {
	every def in quota_definitions {
		is_string(def.name)
		def.per in {"tenant", "user", "key", "principal"}
		def.period in {"day", "month"}
		every tier, _ in config.tiers {
			is_number(def.limit_by_tier[tier])
		}
	}
}

test_groups_are_used if {
	groups := {g | some spec in config.mcp.methods; g := spec.group} | {g | some route in config.routes; g := route.group}
	every g, _ in config.limits.groups {
		g in groups
	}
	every g, _ in config.quotas.groups {
		g in groups
	}
}
