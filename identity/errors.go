package identity

import (
	"errors"
	"fmt"
	"time"
)

// Errors the service returns. Callers map them to statuses at the edge;
// their messages are safe to show a client.
var (
	// ErrInvalidCredentials: unknown email, or wrong password. The two are
	// indistinguishable to the caller, in message and in time.
	ErrInvalidCredentials = errors.New("invalid email or password")
	// ErrBanned: the account is banned.
	ErrBanned = errors.New("account suspended")
	// ErrUnauthenticated: no valid session or key.
	ErrUnauthenticated = errors.New("not authenticated")
	// ErrForbidden: authenticated, but not allowed.
	ErrForbidden = errors.New("forbidden")
	// ErrFreshAuthRequired: the action needs a recent password.
	ErrFreshAuthRequired = errors.New("re-authentication required")
	// ErrLimit: a per-user or per-organization limit is reached.
	ErrLimit = errors.New("limit reached")
	// ErrLastOwner: an organization must keep an owner.
	ErrLastOwner = errors.New("an organization must keep at least one owner")
)

// InputError is a request the service refuses as malformed, naming the
// field at fault.
type InputError struct {
	Field  string
	Reason string
	Err    error // the underlying error, if any
}

func (e *InputError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Reason) }
func (e *InputError) Unwrap() error { return e.Err }

func invalid(field, reason string, err error) error {
	return &InputError{Field: field, Reason: reason, Err: err}
}

// LockedError is a login refused because of repeated failures.
type LockedError struct{ Until time.Time }

func (e *LockedError) Error() string {
	return "too many failed logins; try again later"
}
