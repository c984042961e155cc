package redisquota

import (
	"context"
	_ "embed"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/quotas"
)

//go:embed refund.lua
var refundSource string

var refundScript = redis.NewScript(refundSource)

// part is the limits and quotas of a request (indices into it) whose keys
// are in one Redis Cluster slot.
type part struct {
	slot   int
	limits []int
	quotas []int
}

// split groups req by the slot of its keys when the client is a Redis
// Cluster's; elsewhere (and when every key shares a slot) it is one part.
// Policies that give a request's keys one hash tag ("{tenant:acme}:…")
// keep their requests to one round trip on a cluster too.
func (l *Limiter) split(req quotas.Request, now time.Time) []part {
	if _, ok := l.rdb.(*redis.ClusterClient); !ok {
		return nil
	}
	var parts []part
	at := func(slot int) *part {
		for i := range parts {
			if parts[i].slot == slot {
				return &parts[i]
			}
		}
		parts = append(parts, part{slot: slot})
		return &parts[len(parts)-1]
	}
	for i, lim := range req.Limits {
		p := at(Slot(l.limitKeys(lim)[0]))
		p.limits = append(p.limits, i)
	}
	for i, q := range req.Quotas {
		_, _, id := q.Period.Bounds(now, q.Location)
		p := at(Slot(l.quotaKey(q, id)))
		p.quotas = append(p.quotas, i)
	}
	slices.SortFunc(parts, func(a, b part) int { return a.slot - b.slot })
	return parts
}

func (p part) request(req quotas.Request) quotas.Request {
	var sub quotas.Request
	for _, i := range p.limits {
		sub.Limits = append(sub.Limits, req.Limits[i])
	}
	for _, i := range p.quotas {
		sub.Quotas = append(sub.Quotas, req.Quotas[i])
	}
	return sub
}

// takeSlots takes req one slot at a time, in slot order. When a slot
// refuses, the others are still taken (to report their state), and then
// what every slot took is given back, so the request takes nothing — as a
// single script would, except that another request may meanwhile see
// those units taken and be refused (never admitted) for it. When a slot
// cannot be reached, what was taken is given back and the error returned.
// One round trip per slot, and one more per slot refunded.
func (l *Limiter) takeSlots(ctx context.Context, req quotas.Request, parts []part, now time.Time) (quotas.Result, error) {
	res := quotas.Result{
		Allowed: true,
		Limits:  make([]quotas.LimitState, len(req.Limits)),
		Quotas:  make([]quotas.QuotaState, len(req.Quotas)),
	}
	type taken struct {
		part part
		sub  quotas.Request
		took []int64
	}
	var done []taken
	undo := func() {
		// Bounded, and past the caller's deadline: a refund left undone
		// keeps units taken (refuses more, never admits more).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		for _, d := range done {
			l.refund(rctx, d.sub, d.took, now)
		}
	}
	for _, p := range parts {
		sub := p.request(req)
		r, t, err := l.take(ctx, sub, now)
		if err != nil {
			undo()
			return quotas.Result{}, err
		}
		for j, i := range p.limits {
			res.Limits[i] = r.Limits[j]
		}
		for j, i := range p.quotas {
			res.Quotas[i] = r.Quotas[j]
		}
		if !r.Allowed {
			res.Allowed = false
			res.RetryAfter = max(res.RetryAfter, r.RetryAfter)
			continue
		}
		done = append(done, taken{p, sub, t})
	}
	if res.Allowed {
		return res, nil
	}
	undo()
	// Report the slots that admitted the request as they stand again.
	for _, d := range done {
		for j, i := range d.part.limits {
			st := &res.Limits[i]
			st.Remaining += d.sub.Limits[j].Cost + costDefault(d.sub.Limits[j].Cost)
			st.Reset = max(0, st.Reset-time.Duration(d.took[j])*time.Microsecond)
		}
		for _, i := range d.part.quotas {
			res.Quotas[i].Used--
			res.Quotas[i].Remaining++
		}
	}
	return res, nil
}

// costDefault is 1 when a limit's cost is unset (0), which counts as 1.
func costDefault(cost int64) int64 {
	if cost == 0 {
		return 1
	}
	return 0
}

// refund gives back what req took, as take reported it: at most took[i]
// off limit i's TAT (see refund.lua; took[2n+i] is the TAT the take
// wrote), its tenant out of the pool if the take brought it in
// (took[n+i]), and one off each quota.
func (l *Limiter) refund(ctx context.Context, req quotas.Request, took []int64, now time.Time) error {
	keys := make([]string, 0, len(req.Limits)+len(req.Quotas))
	args := make([]any, 0, 3+4*len(req.Limits))
	args = append(args, len(req.Limits), len(req.Quotas), l.scriptNow(now))
	for i, lim := range req.Limits {
		keys = append(keys, l.limitKeys(lim)...)
		tenant := ""
		if lim.Share != nil {
			tenant = lim.Key
		}
		n := len(req.Limits)
		args = append(args, took[i], tenant, took[n+i], took[2*n+i])
	}
	for _, q := range req.Quotas {
		_, _, id := q.Period.Bounds(now, q.Location)
		keys = append(keys, l.quotaKey(q, id))
	}
	return refundScript.Run(ctx, l.rdb, keys, args...).Err()
}
