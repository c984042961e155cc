package password

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidLockout is wrapped by the errors of Lockout.Validate.
var ErrInvalidLockout = errors.New("invalid lockout settings")

// Lockout is the rule that locks an account after consecutive failed
// logins: once there have been Threshold of them the account is locked for
// Base after the last one, and each further failure doubles that, up to Max.
//
// Failures counts password verifications that failed since the last
// success; attempts refused because the account was locked do not count, or
// anyone could keep an account locked at Max by knocking on it. Max bounds
// how long an attacker who does not know the password can lock the owner
// out; per-address and per-client rate limits are separate.
type Lockout struct {
	Threshold int
	Base, Max time.Duration
}

// DefaultLockout locks after 5 failures for 1 minute, then 2, 4, 8, 16, 32
// minutes, then 1 hour for the 11th failure and every one after it.
var DefaultLockout = Lockout{Threshold: 5, Base: time.Minute, Max: time.Hour}

// Validate reports whether l is usable: Threshold ≥ 1 and 0 < Base ≤ Max.
func (l Lockout) Validate() error {
	switch {
	case l.Threshold < 1:
		return fmt.Errorf("%w: threshold %d is below 1", ErrInvalidLockout, l.Threshold)
	case l.Base <= 0:
		return fmt.Errorf("%w: base %v is not positive", ErrInvalidLockout, l.Base)
	case l.Max < l.Base:
		return fmt.Errorf("%w: max %v is below base %v", ErrInvalidLockout, l.Max, l.Base)
	}
	return nil
}

// Until returns the instant the account is locked until, given the number
// of consecutive failures and the time of the last one, or the zero time
// when those failures do not lock it. The account is locked while
// now.Before(Until(…)); the zero time is before every real instant.
//
// With Threshold < 1 or Base ≤ 0 nothing is ever locked; a Max below Base
// counts as Base.
func (l Lockout) Until(failures int, lastFailure time.Time) time.Time {
	if l.Threshold < 1 || l.Base <= 0 || failures < l.Threshold {
		return time.Time{}
	}
	ceiling := max(l.Max, l.Base)
	d := l.Base
	for n := failures - l.Threshold; n > 0 && d < ceiling; n-- {
		if d > ceiling/2 {
			d = ceiling
			break
		}
		d *= 2
	}
	return lastFailure.Add(d)
}
