package quotas

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors a Limiter returns.
var (
	// ErrBackendUnavailable: the shared state could not be reached in time.
	ErrBackendUnavailable = errors.New("limiter backend unavailable")
	// ErrInvalidLimit: a limit or quota definition cannot be enforced.
	ErrInvalidLimit = errors.New("invalid limit")
	// ErrFull: the limiter holds as many active keys as it may.
	ErrFull = errors.New("limiter full")
)

// Limit is one rate limit: Limit units per Window for Key, Burst of them at
// once, this request costing Cost.
type Limit struct {
	Name   string // for headers and logs ("tenant_tool_calls")
	Key    string // what is counted ("tenant:acme:tools")
	Limit  int64  // units per Window; 0 admits nothing
	Window time.Duration
	// Burst is how many units may be taken at once from idle (default
	// Limit). Over any stretch of time t at most Burst + t·Limit/Window
	// units are admitted.
	Burst int64
	Cost  int64 // units this request takes (default 1)
	// OnBackendError is what a Limiter that cannot reach the shared state
	// does with this limit (default Local).
	OnBackendError Mode
	// Share, when set, makes Limit, Window and Burst a pool's capacity
	// and Key the tenant taking its weighted fair share of it (see Share).
	Share *Share
}

// Quota is a number of requests per calendar period for Key.
type Quota struct {
	Name   string
	Key    string
	Limit  int64
	Period Period
	// Location is the time zone whose calendar the period follows (the
	// organization's; default UTC).
	Location *time.Location
	// OnBackendError is what a Limiter that cannot reach the shared state
	// does with this quota: Deny or Allow (default Allow; strict quotas
	// Deny).
	OnBackendError Mode
}

// Mode is what happens to a limit or quota when its backend cannot be
// reached.
type Mode string

// Modes.
const (
	// Local counts the limit in process, at the instance's share of it.
	Local Mode = "local"
	// Deny refuses the request.
	Deny Mode = "deny"
	// Allow admits the request without counting it.
	Allow Mode = "allow"
)

// Request is everything one request must take.
type Request struct {
	Limits []Limit
	Quotas []Quota
}

// Result is a Limiter's answer. Limits and Quotas are in the order of the
// Request's.
type Result struct {
	Allowed bool
	// RetryAfter, on a refusal, is when a retry may be admitted: the
	// longest wait among the limits and quotas that refused.
	RetryAfter time.Duration
	// Fallback: the shared state could not be reached, and the limits
	// were decided by their OnBackendError modes. A state that was not
	// counted has Remaining -1.
	Fallback bool
	Limits   []LimitState
	Quotas   []QuotaState
}

// LimitState is one limit after the request: taken if the request was
// admitted, untouched otherwise.
type LimitState struct {
	Allowed bool // this limit alone would admit the request
	// Remaining is how many more unit-cost requests it admits now.
	Remaining int64
	// Reset is how long until it is fully replenished.
	Reset time.Duration
	// RetryAfter, when this limit refuses, is how long until it would
	// admit the request.
	RetryAfter time.Duration
}

// QuotaState is one quota after the request.
type QuotaState struct {
	Allowed   bool
	Used      int64 // in the current period, this request included if admitted
	Remaining int64
	Resets    time.Time // the start of the next period
}

// Limiter checks and takes the limits and quotas of one request,
// atomically: all of them or none. It returns ErrBackendUnavailable (or an
// error wrapping it) when it cannot tell, and the caller decides what that
// means for the request.
type Limiter interface {
	Take(ctx context.Context, req Request) (Result, error)
}

// Validate checks a limit's definition.
func (l Limit) Validate() error {
	switch {
	case l.Key == "":
		return fmt.Errorf("%w: limit %q has no key", ErrInvalidLimit, l.Name)
	case l.Limit < 0:
		return fmt.Errorf("%w: limit %q is negative", ErrInvalidLimit, l.Name)
	case l.Window <= 0:
		return fmt.Errorf("%w: limit %q has no window", ErrInvalidLimit, l.Name)
	case l.Burst < 0 || l.Cost < 0:
		return fmt.Errorf("%w: limit %q has a negative burst or cost", ErrInvalidLimit, l.Name)
	case l.Window > MaxWindow:
		return fmt.Errorf("%w: limit %q has a window over %v", ErrInvalidLimit, l.Name, MaxWindow)
	case l.Cost > MaxCost:
		return fmt.Errorf("%w: limit %q costs more than %d", ErrInvalidLimit, l.Name, MaxCost)
	case l.Limit > 0 && cmp.Or(l.Burst, l.Limit) > maxTolerance/interval(l):
		return fmt.Errorf("%w: limit %q has a burst too long for its rate", ErrInvalidLimit, l.Name)
	case l.OnBackendError != "" && l.OnBackendError != Local && l.OnBackendError != Deny && l.OnBackendError != Allow:
		return fmt.Errorf("%w: limit %q: on_backend_error %q is not local, deny or allow", ErrInvalidLimit, l.Name, l.OnBackendError)
	case l.Share != nil:
		return l.Share.validate(l.Name)
	}
	return nil
}

// Validate checks a quota's definition.
func (q Quota) Validate() error {
	switch {
	case q.Key == "":
		return fmt.Errorf("%w: quota %q has no key", ErrInvalidLimit, q.Name)
	case q.Limit < 0:
		return fmt.Errorf("%w: quota %q is negative", ErrInvalidLimit, q.Name)
	case q.Period != Day && q.Period != Month:
		return fmt.Errorf("%w: quota %q has period %q, not day or month", ErrInvalidLimit, q.Name, q.Period)
	case q.OnBackendError != "" && q.OnBackendError != Deny && q.OnBackendError != Allow:
		return fmt.Errorf("%w: quota %q: on_backend_error %q is not deny or allow", ErrInvalidLimit, q.Name, q.OnBackendError)
	}
	return nil
}

// Validate checks every definition of the request.
func (r Request) Validate() error {
	for _, l := range r.Limits {
		if err := l.Validate(); err != nil {
			return err
		}
	}
	for _, q := range r.Quotas {
		if err := q.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Empty reports whether the request takes nothing.
func (r Request) Empty() bool { return len(r.Limits) == 0 && len(r.Quotas) == 0 }
