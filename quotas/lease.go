package quotas

import (
	"context"
	"fmt"
	"time"
)

// Lease caps how many requests may run at once against Key: a request
// holds one of Limit slots from the moment it is admitted until it is
// released (the proxy reports it finished) or TTL passes, whichever comes
// first. The TTL is the bound on a lost release: a proxy that crashes or a
// report that never arrives costs a slot for TTL at most.
type Lease struct {
	Name  string // for headers and logs ("tenant_streams")
	Key   string // what is counted ("tenant:acme:streams")
	Limit int64  // requests at once; 0 admits nothing
	TTL   time.Duration
}

// LeaseResult is a Leaser's answer. Leases are in the order of the
// Acquire's.
type LeaseResult struct {
	Allowed bool
	// RetryAfter, on a refusal, is the longest wait among the leases that
	// refused: for each, the time until the earliest lease held on its
	// key expires (a release may come sooner).
	RetryAfter time.Duration
	Leases     []LeaseState
}

// LeaseState is one lease after the Acquire.
type LeaseState struct {
	Allowed bool // this lease alone would admit the request
	// InUse is how many leases are held on the key: this one included if
	// the request was admitted, not otherwise.
	InUse int64
	Limit int64
	// RetryAfter, when this lease refuses, is the time until the earliest
	// lease held on its key expires (the TTL for a limit of 0).
	RetryAfter time.Duration
}

// Leaser holds leases on concurrent-request slots.
//
// Acquire takes a slot of every lease under one id, all of them or none:
// a request refused by one lease holds nothing of the others. Acquiring
// again under an id that already holds a key renews that lease to a fresh
// TTL and still counts once. Leases past their TTL count for nothing.
//
// Release gives back the id's slots on keys. Releasing twice, releasing an
// id never seen or one already expired is not an error.
//
// Both return ErrInvalidLimit (or an error wrapping it) for a definition
// that cannot be enforced and ErrBackendUnavailable when the backend
// cannot tell.
type Leaser interface {
	Acquire(ctx context.Context, id string, leases []Lease) (LeaseResult, error)
	Release(ctx context.Context, id string, keys []string) error
}

// Validate checks a lease's definition.
func (l Lease) Validate() error {
	switch {
	case l.Key == "":
		return fmt.Errorf("%w: lease %q has no key", ErrInvalidLimit, l.Name)
	case l.Limit < 0:
		return fmt.Errorf("%w: lease %q is negative", ErrInvalidLimit, l.Name)
	case l.TTL < time.Microsecond: // leases are counted in microseconds
		return fmt.Errorf("%w: lease %q has no TTL", ErrInvalidLimit, l.Name)
	}
	return nil
}

// ValidateAcquire checks an Acquire's arguments: an id, valid leases, and
// no key named twice (one id holds at most one slot of a key).
func ValidateAcquire(id string, leases []Lease) error {
	if id == "" {
		return fmt.Errorf("%w: a lease needs an id", ErrInvalidLimit)
	}
	seen := make(map[string]struct{}, len(leases))
	for _, l := range leases {
		if err := l.Validate(); err != nil {
			return err
		}
		if _, ok := seen[l.Key]; ok {
			return fmt.Errorf("%w: lease %q names key %q a second time", ErrInvalidLimit, l.Name, l.Key)
		}
		seen[l.Key] = struct{}{}
	}
	return nil
}

// ValidateRelease checks a Release's arguments: an id and non-empty keys.
func ValidateRelease(id string, keys []string) error {
	if id == "" {
		return fmt.Errorf("%w: a release needs a lease id", ErrInvalidLimit)
	}
	for _, k := range keys {
		if k == "" {
			return fmt.Errorf("%w: lease %q released on an empty key", ErrInvalidLimit, id)
		}
	}
	return nil
}
