package quotas

import "time"

// Bounds on a limit's numbers, so that its arithmetic cannot overflow:
// a TAT stays within int64 nanoseconds, and in microseconds within the
// integers a Lua double holds exactly.
const (
	MaxWindow = 366 * 24 * time.Hour
	MaxCost   = 1 << 20
	// maxTolerance bounds Burst·Interval (ns, about 73 years).
	maxTolerance = 1 << 61
)

// GCRA is a limit's arithmetic, in nanoseconds counted in whole
// microseconds (as the Redis script counts, so every backend answers
// alike): Interval is the time one unit stands for (Window/Limit) and
// Tolerance how far ahead of now the theoretical arrival time may run
// (Burst·Interval).
type GCRA struct {
	Interval  int64
	Tolerance int64
	Cost      int64
	window    int64
}

// NewGCRA returns the arithmetic of l; a limit of 0 refuses everything.
func NewGCRA(l Limit) GCRA {
	burst, cost := l.Burst, l.Cost
	if burst == 0 {
		burst = l.Limit
	}
	if cost == 0 {
		cost = 1
	}
	g := GCRA{Cost: cost, window: int64(l.Window)}
	if l.Limit > 0 {
		g.Interval = interval(l)
		g.Tolerance = g.Interval * min(burst, maxTolerance/g.Interval)
	}
	return g
}

// interval is the time one unit of l stands for, Window/Limit rounded up
// to whole microseconds (at least one): rounding down would admit more
// than the limit.
func interval(l Limit) int64 {
	const us = int64(time.Microsecond)
	ns := (int64(l.Window) + l.Limit - 1) / l.Limit
	return max(us, (ns+us-1)/us*us)
}

// Step decides one request at now (unix ns; see Micro) against the
// theoretical arrival time tat (0 for a key never seen). It returns the new tat, to be stored only if
// the request is admitted by every limit, and the limit's state.
func (g GCRA) Step(tat, now int64) (int64, LimitState) {
	if g.Interval == 0 || g.Cost > g.Tolerance/g.Interval {
		// Nothing, or never this much at once: wait a window and see.
		return tat, LimitState{RetryAfter: time.Duration(g.window), Reset: time.Duration(max(0, tat-now))}
	}
	next := max(tat, now) + g.Cost*g.Interval
	ahead := next - now
	if ahead > g.Tolerance {
		st := g.Standing(tat, now)
		st.RetryAfter = time.Duration(ahead - g.Tolerance)
		return tat, st
	}
	return next, LimitState{
		Allowed:   true,
		Remaining: (g.Tolerance - ahead) / g.Interval,
		Reset:     time.Duration(ahead),
	}
}

// Standing is the limit's state at now with nothing taken: how many
// unit-cost requests it admits and how long until it is replenished.
func (g GCRA) Standing(tat, now int64) LimitState {
	ahead := max(0, tat-now)
	st := LimitState{Reset: time.Duration(ahead)}
	if g.Interval > 0 {
		st.Remaining = max(0, (g.Tolerance-ahead)/g.Interval)
	}
	return st
}

// Micro returns t in unix nanoseconds truncated to the microsecond, the
// resolution limits are counted in.
func Micro(t time.Time) int64 { return t.UnixMicro() * int64(time.Microsecond) }
