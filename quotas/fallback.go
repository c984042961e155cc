package quotas

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// Fallback defaults.
const (
	// DefaultSharedTimeout bounds one call to the shared limiter: a paused
	// Redis costs a decision this much, not the decision's whole budget.
	DefaultSharedTimeout = 20 * time.Millisecond
	// DefaultRetryInterval is how long the shared limiter is left alone
	// after it failed before one request tries it again.
	DefaultRetryInterval = time.Second
	// fallbackRetryAfter is the wait a Deny limit asks for while the
	// shared limiter is down.
	fallbackRetryAfter = time.Second
)

// Fallback is a Limiter over a shared one (Redis) that keeps deciding when
// the shared one cannot answer: each limit and quota then goes by its
// OnBackendError mode. Local limits are taken from an in-process limiter
// at this instance's share (the rate divided by the replicas), Allow ones
// admit without counting, Deny ones refuse. A request with any Deny among
// them is refused and takes nothing.
//
// After a failure the shared limiter is skipped for the retry interval,
// so an outage costs one timeout per interval rather than one per
// decision; then one request at a time tries it again, and the first
// success of such a probe ends the fallback. A request that was already in
// flight when the shared limiter failed does not end it by succeeding
// late: a Redis that answers some calls and drops others would otherwise
// switch the mode, and log it, with every request.
type Fallback struct {
	shared   Limiter
	local    Limiter
	replicas func() int
	timeout  time.Duration
	retry    time.Duration
	now      func() time.Time
	log      *slog.Logger
	changed  func(down bool)

	downUntil atomic.Int64 // unix ns; 0 while the shared limiter answers
	probing   atomic.Bool
	failures  atomic.Uint64
	fallbacks atomic.Uint64
}

var _ Limiter = (*Fallback)(nil)

// FallbackOption configures a Fallback.
type FallbackOption func(*Fallback)

// WithSharedTimeout bounds each call to the shared limiter (default
// DefaultSharedTimeout).
func WithSharedTimeout(d time.Duration) FallbackOption { return func(f *Fallback) { f.timeout = d } }

// WithRetryInterval sets how long a failed shared limiter is skipped
// (default DefaultRetryInterval).
func WithRetryInterval(d time.Duration) FallbackOption { return func(f *Fallback) { f.retry = d } }

// WithFallbackClock sets the clock of the retry interval (default time.Now).
func WithFallbackClock(now func() time.Time) FallbackOption {
	return func(f *Fallback) { f.now = now }
}

// WithFallbackLogger logs the shared limiter going down and coming back.
func WithFallbackLogger(l *slog.Logger) FallbackOption { return func(f *Fallback) { f.log = l } }

// WithStateChange calls changed when the shared limiter goes down (true)
// and when it answers again (false).
func WithStateChange(changed func(down bool)) FallbackOption {
	return func(f *Fallback) { f.changed = changed }
}

// NewFallback returns a Limiter taking from shared, falling back to local
// as each limit's mode says; replicas reports how many instances share the
// limits, or 0 when that is not known (no replica count has been read
// yet): Local limits then refuse, since this instance's share is unknown.
func NewFallback(shared, local Limiter, replicas func() int, opts ...FallbackOption) *Fallback {
	f := &Fallback{
		shared:   shared,
		local:    local,
		replicas: replicas,
		timeout:  DefaultSharedTimeout,
		retry:    DefaultRetryInterval,
		now:      time.Now,
		log:      slog.New(slog.DiscardHandler),
		changed:  func(bool) {},
	}
	for _, o := range opts {
		o(f)
	}
	return f
}

// Take takes req from the shared limiter or, when it cannot answer, by
// each limit's mode. It returns an error only for invalid definitions, a
// local limiter that fails, or a caller that gave up.
func (f *Fallback) Take(ctx context.Context, req Request) (Result, error) {
	if err := req.Validate(); err != nil {
		return Result{}, err
	}
	if use, probe := f.useShared(); use {
		sctx, cancel := context.WithTimeout(ctx, f.timeout)
		res, err := f.shared.Take(sctx, req)
		cancel()
		switch {
		case err == nil:
			if probe {
				f.up()
			}
			return res, nil
		case ctx.Err() != nil:
			// The caller gave up: that says nothing of the shared limiter.
			f.endProbe(probe)
			return Result{}, fmt.Errorf("%w: %w", ErrBackendUnavailable, ctx.Err())
		case !errors.Is(err, ErrBackendUnavailable):
			f.endProbe(probe)
			return Result{}, err
		}
		f.down(err)
		f.endProbe(probe)
	}
	f.fallbacks.Add(1)
	return f.fallback(ctx, req)
}

// useShared reports whether this request should try the shared limiter,
// and whether it is the probe of one that failed: always while it answers,
// and one request at a time once its retry interval has passed.
func (f *Fallback) useShared() (use, probe bool) {
	until := f.downUntil.Load()
	if until == 0 {
		return true, false
	}
	if f.now().UnixNano() < until {
		return false, false
	}
	probe = f.probing.CompareAndSwap(false, true)
	return probe, probe
}

// up ends the fallback: a probe succeeded.
func (f *Fallback) up() {
	if f.downUntil.Swap(0) != 0 {
		f.log.Info("shared limiter reachable again: limits are shared across replicas")
		f.changed(false)
	}
	f.probing.Store(false)
}

func (f *Fallback) endProbe(probe bool) {
	if probe {
		f.probing.Store(false)
	}
}

func (f *Fallback) down(err error) {
	f.failures.Add(1)
	if f.downUntil.Swap(f.now().Add(f.retry).UnixNano()) == 0 {
		f.log.Warn("shared limiter unreachable: limits fall back to their on_backend_error mode", slog.Any("error", err))
		f.changed(true)
	}
}

// fallback decides req without the shared limiter.
func (f *Fallback) fallback(ctx context.Context, req Request) (Result, error) {
	res := Result{
		Allowed:  true,
		Fallback: true,
		Limits:   make([]LimitState, len(req.Limits)),
		Quotas:   make([]QuotaState, len(req.Quotas)),
	}
	var local Request
	var at []int // index in req.Limits of each local limit
	n := f.replicas()
	for i, l := range req.Limits {
		mode := l.OnBackendError
		if (mode == Local || mode == "") && n < 1 {
			mode = Deny
		}
		switch mode {
		case Deny:
			res.Allowed = false
			res.RetryAfter = max(res.RetryAfter, fallbackRetryAfter)
			res.Limits[i] = LimitState{RetryAfter: fallbackRetryAfter}
		case Allow:
			res.Limits[i] = LimitState{Allowed: true, Remaining: -1}
		default:
			local.Limits = append(local.Limits, InstanceShare(l, n))
			at = append(at, i)
		}
	}
	for i, q := range req.Quotas {
		if q.OnBackendError == Deny {
			res.Allowed = false
			res.RetryAfter = max(res.RetryAfter, fallbackRetryAfter)
			res.Quotas[i] = QuotaState{Remaining: -1, Used: -1}
			continue
		}
		res.Quotas[i] = QuotaState{Allowed: true, Remaining: -1, Used: -1}
	}
	if !res.Allowed || len(local.Limits) == 0 {
		// A refusal takes nothing, the local limits included.
		for _, i := range at {
			res.Limits[i] = LimitState{Allowed: true, Remaining: -1}
		}
		return res, nil
	}
	lres, err := f.local.Take(ctx, local)
	if err != nil {
		return Result{}, err
	}
	for j, i := range at {
		res.Limits[i] = lres.Limits[j]
	}
	res.Allowed, res.RetryAfter = lres.Allowed, lres.RetryAfter
	return res, nil
}

// InstanceShare is l as one of n instances enforces it alone: the same
// number of units over n windows (the rate divided by n, exactly; the
// window at most MaxWindow, which only slows the rate further), and a
// burst of the n-th part — at least the request's cost when the whole
// burst admits it, so a costly request is not refused for the whole
// outage.
func InstanceShare(l Limit, n int) Limit {
	if n <= 1 {
		return l
	}
	burst := l.Burst
	if burst == 0 {
		burst = l.Limit
	}
	if l.Window > MaxWindow/time.Duration(n) {
		l.Window = MaxWindow
	} else {
		l.Window *= time.Duration(n)
	}
	cost := max(l.Cost, 1)
	l.Burst = max(burst/int64(n), 1)
	if cost <= burst {
		l.Burst = max(l.Burst, cost)
	}
	if l.Limit == 0 {
		l.Burst = 0
	}
	return l
}

// FallbackStats are a Fallback's counters.
type FallbackStats struct {
	// Down: the shared limiter failed and has not answered since.
	Down bool
	// Failures counts calls to the shared limiter that failed; Fallbacks
	// counts requests decided without it.
	Failures, Fallbacks uint64
}

// Stats returns the fallback's state.
func (f *Fallback) Stats() FallbackStats {
	return FallbackStats{Down: f.downUntil.Load() != 0, Failures: f.failures.Load(), Fallbacks: f.fallbacks.Load()}
}
