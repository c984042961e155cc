# Rate limits and quotas: an allowed (non-public) request carries the
# limits that apply to it, and the sidecar takes them atomically.
#
#   limits: [{name, key, limit, window, cost, share?}]
#   quotas: [{name, key, limit, period, time_zone?}]
#   concurrency: [{name, key, limit, ttl}]
#
# Which apply (all from data):
#   - config.limits.all: every request of an authenticated principal;
#   - config.limits.groups[<group>]: requests of that group, the group of
#     the MCP method (config.mcp.methods[m].group) or of a matched route;
#   - config.quotas.billable: every MCP request that needs a permission
#     (not lifecycle messages);
#   - config.quotas.groups[<group>]: as for limits;
#   - config.concurrency.groups[<group>]: caps on requests of that group
#     running at once (long tool calls, streams), each slot held until the
#     proxy reports the request finished or ttl passes.
#
# A limit definition is {name, per, bucket?, window, limit?, limit_by_role?}:
#   limit      the base limit, or the fallback of limit_by_role;
#   limit_by_role  base limit by role; the principal's most generous role
#              counts;
#   the base is multiplied by config.tiers[<tier>].limit_multiplier, where
#   the tier is input.identity.tier (the organization's plan), or
#   config.default_tier when absent or unknown.
# A quota definition is {name, per, bucket?, period, limit_by_tier}, a
# concurrency definition {name, per, bucket?, limit_by_tier, ttl}.
#
# A limit definition with share: {pool, max_share?} is a weighted fair
# share of a pool's global capacity: limit per window is the pool's
# capacity, the same for every principal (neither the tier's multiplier
# nor limit_by_role applies), and the key names who takes from it (per
# "tenant": the tenant). The entry carries
#   share: {pool, weight, max_share}
# pool   the definition's pool, "{tool}" in it replaced by the called tool's
#        name, escaped as ids are ("tool:{tool}" → "tool:search");
# weight config.tiers[<tier>].weight (free 1, pro 3, enterprise 10);
# max_share  the definition's max_share, else config.limits.max_tenant_share:
#        the most of the capacity one taker may hold while others are
#        active in the pool.
#
# A quota counting the identity's own tenant (per "tenant", the target
# tenant the identity's) carries the identity's time_zone when it has one,
# so that days and months follow the organization's calendar; any other
# quota counts in UTC.
#
# cost: a tools/call costs config.risk_classes[<risk>].cost (see mcp.rego
# for the risk); anything else config.limits.default_cost.
#
# Keys: "<per>:<id>" followed by ":<bucket>" when the definition has one,
# the id URL-query-escaped (so a ":" in it cannot forge another key):
#   per "tenant"     tenant:<tenant id>           e.g. tenant:acme:tools
#   per "user"       user:<user_id, or subject>   e.g. user:u-42
#   per "key"        key:<API key id>             e.g. key:k-7
#   per "principal"  key:<id> for API keys, user:<id> for everyone else
# A "user" definition does not apply to API keys and a "key" one applies
# only to them; a "tenant" one applies where the request acts in a tenant.
#
# A definition that applies but cannot be built (an unknown "per", a
# principal without the id its key needs, a tier without a multiplier, a
# weight or a quota, a share without a pool or with a max_share outside
# (0, 1], a "{tool}" pool for a request calling no tool) denies the request
# as limit_misconfigured: a limit the policy meant to set is never silently
# dropped.
package mcpauthz.authz

import data.mcpauthz.config

tier := input.identity.tier if known_tier

tier := config.default_tier if not known_tier

# Negated lookups go through a helper rule: OPA evaluates a reference nested
# in a key (config.tiers[input.identity.tier]) before `not`, so an absent
# input value would make the negation undefined instead of true.
known_tier if config.tiers[input.identity.tier]

multiplier := config.tiers[tier].limit_multiplier

request_groups contains group if {
	mcp_request
	group := config.mcp.methods[input.mcp.method].group
}

request_groups contains route.group if {
	some route in matched_routes
}

limit_definitions contains def if some def in config.limits.all

limit_definitions contains def if {
	some group in request_groups
	some def in config.limits.groups[group]
}

limits := [limit_entry(def) |
	some def in limit_definitions
	applies(def)
]

limit_entry(def) := {
	"name": def.name,
	"key": rate_key(def),
	"limit": floor(base_limit(def) * multiplier),
	"window": def.window,
	"cost": request_cost,
} if not def.share

limit_entry(def) := {
	"name": def.name,
	"key": rate_key(def),
	"limit": object.get(def, "limit", 0),
	"window": def.window,
	"cost": request_cost,
	"share": share_entry(def.share),
} if def.share

# share_entry(share): the pool, the tier's weight and the cap, or undefined
# when one of them is missing or out of range.
share_entry(share) := {"pool": pool, "weight": weight, "max_share": tenant_cap} if {
	pool := share_pool(share.pool)
	weight := config.tiers[tier].weight
	is_number(weight)
	weight > 0
	tenant_cap := max_tenant_share(share)
	is_number(tenant_cap)
	tenant_cap > 0
	tenant_cap <= 1
}

share_pool(pool) := replace(pool, "{tool}", urlquery.encode(input.mcp.tool)) if {
	is_string(pool)
	contains(pool, "{tool}")
}

share_pool(pool) := pool if {
	is_string(pool)
	pool != ""
	not contains(pool, "{tool}")
}

max_tenant_share(share) := share.max_share if is_number(share.max_share)

max_tenant_share(share) := config.limits.max_tenant_share if not share.max_share

quota_definitions contains def if {
	mcp_request
	count(required_permissions) > 0
	some def in config.quotas.billable
}

quota_definitions contains def if {
	some group in request_groups
	some def in config.quotas.groups[group]
}

quotas := [quota_entry(def) |
	some def in quota_definitions
	applies(def)
]

quota_entry(def) := object.union(
	{
		"name": def.name,
		"key": rate_key(def),
		"limit": def.limit_by_tier[tier],
		"period": def.period,
	},
	quota_zone(def),
)

# quota_zone(def): the identity's time zone, for a quota of its own tenant.
quota_zone(def) := {"time_zone": input.identity.time_zone} if {
	def.per == "tenant"
	target_tenant == input.identity.tenant
	is_string(input.identity.time_zone)
	input.identity.time_zone != ""
} else := {}

# applies(def): whether def counts this request (see "Keys" above). A "per"
# that is none of the four always applies, and then fails to build.
applies(def) if {
	def.per == "tenant"
	target_tenant
}

applies(def) if {
	def.per == "user"
	not api_key
}

applies(def) if {
	def.per == "key"
	api_key
}

applies(def) if def.per == "principal"

applies(def) if not known_per(def)

known_per(def) if def.per in {"tenant", "user", "key", "principal"}

# misconfigured_limits names the definitions that apply but cannot be
# built.
misconfigured_limits contains def.name if {
	some def in limit_definitions
	applies(def)
	not limit_entry(def)
}

misconfigured_limits contains def.name if {
	some def in quota_definitions
	applies(def)
	not quota_entry(def)
}

misconfigured_limits contains def.name if {
	some def in concurrency_definitions
	applies(def)
	not concurrency_entry(def)
}

concurrency_definitions contains def if {
	some group in request_groups
	some def in config.concurrency.groups[group]
}

concurrency := [concurrency_entry(def) |
	some def in concurrency_definitions
	applies(def)
]

concurrency_entry(def) := {
	"name": def.name,
	"key": rate_key(def),
	"limit": def.limit_by_tier[tier],
	"ttl": def.ttl,
}

# base_limit(def): the most generous limit_by_role of the principal's
# roles, else def.limit, else 0 (a definition without a limit blocks rather
# than lets everything through).
base_limit(def) := object.get(def, "limit", 0) if not def.limit_by_role

base_limit(def) := max(by_role | {object.get(def, "limit", 0) | count(by_role) == 0}) if {
	def.limit_by_role
	by_role := {n | some role in principal_roles; n := def.limit_by_role[role]}
}

request_cost := tool_cost if tools_call

# A risk class without a cost costs as much as the dearest class.
request_cost := max({class.cost | some class in config.risk_classes}) if {
	tools_call
	not tool_cost
}

tool_cost := config.risk_classes[tool_risk].cost

request_cost := config.limits.default_cost if not tools_call

# rate_key(def): the subject of def.per, then def.bucket when present.
rate_key(def) := concat(":", [rate_subjects[def.per], def.bucket]) if def.bucket

rate_key(def) := rate_subjects[def.per] if not def.bucket

# rate_subjects maps each "per" to the subject this request counts against.
rate_subjects["tenant"] := concat(":", ["tenant", urlquery.encode(target_tenant)])

rate_subjects["user"] := user_subject if not api_key

rate_subjects["key"] := key_subject if api_key

rate_subjects["principal"] := key_subject if api_key

rate_subjects["principal"] := user_subject if not api_key

user_subject := concat(":", ["user", urlquery.encode(user_id)])

key_subject := concat(":", ["key", urlquery.encode(input.identity.api_key.id)])

user_id := input.identity.user_id if input.identity.user_id

user_id := input.identity.subject if not input.identity.user_id
