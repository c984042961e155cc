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
// Quotas count requests in calendar periods (a day, a month) in a time
// zone, and reset on the boundary.
//
// A Limiter checks every limit and quota of one request and takes them all
// or none: a request refused by one limit consumes nothing from the others.
// Backends: quotas/memquota (in process) and quotas/redisquota (shared by
// replicas through Redis); quotas/quotatest is the contract both pass.
package quotas
