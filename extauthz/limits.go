package extauthz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/mcpauthz/mcpauthz/mcp"
	"github.com/mcpauthz/mcpauthz/quotas"
)

// WithLeaser sets what holds the concurrency leases a policy asks for
// (default: NoLimiter, which refuses any request that has some).
func WithLeaser(l quotas.Leaser) Option { return func(a *Authorizer) { a.leaser = l } }

// WithLimiter sets the limiter that takes the limits and quotas a policy
// asks for (default: NoLimiter, which refuses any request that has some).
func WithLimiter(l quotas.Limiter) Option { return func(a *Authorizer) { a.limiter = l } }

// NoLimiter is the limiter and the leaser until they are configured: a
// request the policy gives limits or leases to is refused, since nothing
// could enforce them.
type NoLimiter struct{}

var errNoLimiter = fmt.Errorf("%w: no limiter is configured", quotas.ErrBackendUnavailable)

// Take admits a request that takes nothing, and fails any other.
func (NoLimiter) Take(_ context.Context, req quotas.Request) (quotas.Result, error) {
	if req.Empty() {
		return quotas.Result{Allowed: true}, nil
	}
	return quotas.Result{}, errNoLimiter
}

// Acquire fails: no leases can be held.
func (NoLimiter) Acquire(context.Context, string, []quotas.Lease) (quotas.LeaseResult, error) {
	return quotas.LeaseResult{}, errNoLimiter
}

// Release has nothing to release.
func (NoLimiter) Release(context.Context, string, []string) error { return nil }

// take takes what an allowed decision asks for: its concurrency leases,
// then its limits and quotas. It returns d, with the limits' state when
// the policy asked for it and the lease for the proxy to report, and the
// leases held; or a 429 when a lease, limit or quota refuses, or a failure
// when a backend cannot tell. A request refused after its leases were
// acquired releases them.
func (a *Authorizer) take(ctx context.Context, in *PolicyInput, d Decision) (_ Decision, held []quotas.Lease, _ error) {
	if len(d.Leases) > 0 {
		lres, err := a.leaser.Acquire(ctx, in.DecisionID, d.Leases)
		if err != nil {
			// The backend may have taken the slots before the error (a
			// reply lost to a timeout): give them back, whatever it did.
			a.release(ctx, in.DecisionID, d.Leases)
			d, err := a.limiterFailure(ctx, "leases", err)
			return d, nil, err
		}
		if !lres.Allowed {
			return a.tooManyAtOnce(in, d.Leases, lres), nil, nil
		}
	}
	out, err := a.takeLimits(ctx, in, d)
	if len(d.Leases) == 0 {
		return out, nil, err
	}
	if !out.Allowed {
		a.release(ctx, in.DecisionID, d.Leases)
		return out, nil, err
	}
	out.DynamicMetadata = withLease(out.DynamicMetadata, in.DecisionID, d.Leases)
	return out, d.Leases, nil
}

func (a *Authorizer) takeLimits(ctx context.Context, in *PolicyInput, d Decision) (Decision, error) {
	if d.Take.Empty() {
		return d, nil
	}
	res, err := a.limiter.Take(ctx, d.Take)
	switch {
	case err != nil:
		return a.limiterFailure(ctx, "limits", err)
	case !res.Allowed:
		return a.tooMany(in, d.Take, res), nil
	case d.RateLimitHeaders:
		d.ResponseHeadersToAdd = append(slices.Clip(d.ResponseHeadersToAdd), renderLimitStates(limitStates(d.Take, res, a.now()))...)
	}
	return d, nil
}

func (a *Authorizer) limiterFailure(ctx context.Context, what string, err error) (Decision, error) {
	switch {
	case errors.Is(err, quotas.ErrInvalidLimit):
		return Deny(http.StatusInternalServerError, ReasonLimitInvalid), fmt.Errorf("%s: %w", what, err)
	case ctx.Err() != nil:
		return Deny(http.StatusServiceUnavailable, ReasonDeadline), fmt.Errorf("%s: %w: %w", what, ctx.Err(), err)
	default:
		return Deny(http.StatusServiceUnavailable, ReasonBackendFailure), fmt.Errorf("%s: %w", what, err)
	}
}

// releaseTimeout bounds giving back the leases of a refused request.
const releaseTimeout = 50 * time.Millisecond

// release gives back the leases of a request that will not run. It
// outlives the decision's deadline (a lease not released holds its slot
// until its TTL), bounded by releaseTimeout.
func (a *Authorizer) release(ctx context.Context, id string, leases []quotas.Lease) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if err := a.leaser.Release(ctx, id, leaseKeys(leases)); err != nil {
		a.log.LogAttrs(ctx, slog.LevelWarn, "releasing the leases of a refused request failed; they expire with their TTL",
			slog.String("decision_id", id), slog.Any("error", err))
	}
}

// LeaseMetadataKey names the dynamic metadata carrying an allowed
// request's lease: {"id": the decision id, "keys": [...]}. Envoy reports
// it back in the access log when the request finishes.
const LeaseMetadataKey = "mcpauthz_lease"

func withLease(md map[string]any, id string, leases []quotas.Lease) map[string]any {
	keys := make([]any, len(leases))
	for i, l := range leases {
		keys[i] = l.Key
	}
	// The policy's map may be shared; never write into it.
	m := maps.Clone(md)
	if m == nil {
		m = map[string]any{}
	}
	m[LeaseMetadataKey] = map[string]any{"id": id, "keys": keys}
	return m
}

func leaseKeys(leases []quotas.Lease) []string {
	keys := make([]string, len(leases))
	for i, l := range leases {
		keys[i] = l.Key
	}
	return keys
}

// maxBatchTake bounds the limits and quotas one batch takes at once (one
// script call on Redis, which serves no one else meanwhile).
const maxBatchTake = 64

// mergeTake adds to a batch's take another message's: a limit the batch
// already takes (the same but for the cost) costs more, as taking it twice
// would; quotas count once per message.
func mergeTake(to, from quotas.Request) quotas.Request {
	limits := slices.Clone(to.Limits) // the policy's slices may be shared (decision cache)
	for _, l := range from.Limits {
		i := slices.IndexFunc(limits, func(h quotas.Limit) bool { return sameLimit(h, l) })
		if i < 0 {
			limits = append(limits, l)
			continue
		}
		limits[i].Cost = max(limits[i].Cost, 1) + max(l.Cost, 1)
	}
	return quotas.Request{Limits: limits, Quotas: append(slices.Clip(to.Quotas), from.Quotas...)}
}

// sameLimit reports whether a and b are one limit, whatever they cost.
func sameLimit(a, b quotas.Limit) bool {
	a.Cost, b.Cost = 0, 0
	if a.Share != nil && b.Share != nil && *a.Share == *b.Share {
		a.Share, b.Share = nil, nil
	}
	return a == b
}

// appendLeases adds to a batch's leases those of another message, once
// per key: a request holds one slot of a key however many messages ask.
func appendLeases(to, from []quotas.Lease) []quotas.Lease {
	for _, l := range from {
		if !slices.ContainsFunc(to, func(h quotas.Lease) bool { return h.Key == l.Key }) {
			to = append(slices.Clip(to), l)
		}
	}
	return to
}

// tooManyAtOnce is the 429 of a request a concurrency lease refused.
func (a *Authorizer) tooManyAtOnce(in *PolicyInput, leases []quotas.Lease, res quotas.LeaseResult) Decision {
	name := ""
	for i, st := range res.Leases {
		if !st.Allowed && i < len(leases) {
			name = leases[i].Name
			break
		}
	}
	return a.refuse(in, res.RetryAfter, name, nil)
}

// tooMany is the 429 of a request a limit or quota refused: Retry-After,
// the limits' state, and for MCP a JSON-RPC error saying when to retry.
func (a *Authorizer) tooMany(in *PolicyInput, req quotas.Request, res quotas.Result) Decision {
	states := limitStates(req, res, a.now())
	return a.refuse(in, res.RetryAfter, refusing(states), renderLimitStates(states))
}

// refuse is a 429 asking to retry after wait, naming the limit that
// refused, with headers.
func (a *Authorizer) refuse(in *PolicyInput, wait time.Duration, name string, headers []Header) Decision {
	d := Deny(http.StatusTooManyRequests, ReasonRateLimited)
	retry := seconds(wait)
	d.Headers = append(headers, Header{"retry-after", strconv.FormatInt(retry, 10)})
	if in.MCP != nil {
		data := strconv.AppendInt([]byte(`{"retry_after":`), retry, 10)
		if name != "" {
			data = append(data, `,"limit":`...)
			data = mcp.AppendString(data, name)
		}
		data = append(data, '}')
		msg := "rate limit exceeded: retry after " + strconv.FormatInt(retry, 10) + " s"
		d.Body = string(mcp.ErrorReplyData(in.MCP, jsonRPCCode(d.Status), msg, data))
		d.Headers = append(d.Headers, Header{"content-type", "application/json"})
	}
	return d
}

// seconds rounds a wait up to whole seconds, at least one: a client told
// to retry at once would retry before the limit admits it.
func seconds(d time.Duration) int64 {
	return max(1, int64((d+time.Second-1)/time.Second))
}
