// Package quotas owns rate limits and quotas: the limit definitions a
// policy decision asks for, the keys they count against, the Limiter
// contract every backend meets, and the arithmetic they share.
//
// Rate limits use the generic cell rate algorithm (GCRA): a limit of L per
// window W admits one unit every W/L, with up to Burst units at once from
// idle. Its state is one timestamp per key (the theoretical arrival time),
// so it has no window boundaries to burst across, and a key whose state is
// in the past is the same as a key never seen.
//
// A limit with a Share is a tenant's weighted fair share of a pool's
// capacity (a tool's requests a second shared by every tenant): the
// tenants active in the pool divide it by weight, by water-filling, none
// above its max share while others are active (fair.go).
//
// Quotas count requests in calendar periods (a day, a month) in a time
// zone, and reset on the boundary.
//
// A Limiter checks every limit and quota of one request and takes them all
// or none: a request refused by one limit consumes nothing from the others.
// Backends: quotas/memquota (in process) and quotas/redisquota (shared by
// replicas through Redis); quotas/quotatest is the contract both pass.
package quotas
