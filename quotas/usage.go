package quotas

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrInvalidUsage: a usage record names no counter, or counts below zero.
var ErrInvalidUsage = errors.New("invalid quota usage")

// Usage is the counter of one quota in one period: what a Limiter holds
// for it, and what a UsageStore keeps of it so that losing the Limiter's
// state does not reset the period.
type Usage struct {
	Key      string // the quota's key ("tenant:acme:requests")
	PeriodID string // the period, as Period.Bounds names it ("2026-11")
	Used     int64
	// Expires is when the counter may be forgotten: some time after its
	// period ends, once nobody asks for it any more.
	Expires time.Time
}

// Validate checks a usage record: a key, a period id without a colon (a
// backend may join the two with one), a count of zero or more and an
// expiry.
func (u Usage) Validate() error {
	switch {
	case u.Key == "":
		return fmt.Errorf("%w: no key", ErrInvalidUsage)
	case u.PeriodID == "" || strings.Contains(u.PeriodID, ":"):
		return fmt.Errorf("%w: %q has period id %q", ErrInvalidUsage, u.Key, u.PeriodID)
	case u.Used < 0:
		return fmt.Errorf("%w: %q counts %d", ErrInvalidUsage, u.Key, u.Used)
	case u.Expires.IsZero():
		return fmt.Errorf("%w: %q has no expiry", ErrInvalidUsage, u.Key)
	}
	return nil
}

// ValidateUsage checks every record of usage.
func ValidateUsage(usage []Usage) error {
	for _, u := range usage {
		if err := u.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// UsageSnapshotter is a Limiter whose quota counters can be read out and
// put back: what a syncer needs to persist them.
type UsageSnapshotter interface {
	// Usage returns every quota counter the limiter holds, each once.
	Usage(ctx context.Context) ([]Usage, error)
	// Restore raises each counter to at least the given count and never
	// lowers one (other instances may have counted since the count was
	// read). Records already expired are skipped.
	Restore(ctx context.Context, usage []Usage) error
}

// UsageStore keeps quota usage where a loss of the limiter's state does
// not reach.
type UsageStore interface {
	// Save records usage, keeping for each counter the greater of the
	// stored and the given count, and the later expiry.
	Save(ctx context.Context, usage []Usage) error
	// Load returns every counter that has not expired at now.
	Load(ctx context.Context, now time.Time) ([]Usage, error)
}

// MergeUsage returns usage with one record per key and period, holding the
// greatest count and the latest expiry of its records, sorted by key and
// period. usage is left as it was.
func MergeUsage(usage []Usage) []Usage {
	out := slices.Clone(usage)
	slices.SortFunc(out, func(a, b Usage) int {
		return cmp.Or(strings.Compare(a.Key, b.Key), strings.Compare(a.PeriodID, b.PeriodID))
	})
	merged := out[:0]
	for _, u := range out {
		if n := len(merged); n > 0 && merged[n-1].Key == u.Key && merged[n-1].PeriodID == u.PeriodID {
			last := &merged[n-1]
			last.Used = max(last.Used, u.Used)
			if u.Expires.After(last.Expires) {
				last.Expires = u.Expires
			}
			continue
		}
		merged = append(merged, u)
	}
	return merged
}
