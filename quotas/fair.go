package quotas

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// Fair-share defaults and bounds.
const (
	// DefaultShareWeight is the weight of a Share that names none.
	DefaultShareWeight = 1.0
	// DefaultMaxShare is the cap of a Share that names none.
	DefaultMaxShare = 0.3
	// MaxShareWeight bounds a weight, so that the water-filling sums stay
	// finite however many tenants a pool holds.
	MaxShareWeight = 1e6
	// maxShareInterval bounds a tenant's interval, in microseconds (about
	// 12.7 days): a share too small to matter admits nothing for that long
	// rather than overflow.
	maxShareInterval = 1 << 40
)

// Share makes a Limit a tenant's weighted fair share of a pool's capacity.
// The Limit's Limit, Window and Burst are then the pool's capacity, and its
// Key names the tenant taking from it ("tenant:acme").
//
// A tenant is active in the pool from its first admitted request until one
// Window after its theoretical arrival time, that is at least a Window
// after its last admitted request (a tenant held back by its share is
// therefore always active). Among the active tenants the capacity is
// divided by weighted max-min (water-filling, FairShare): each tenant gets
// capacity·weight/Σweights, no tenant more than MaxShare of it while other
// tenants are active, and what a capped tenant cannot take is divided
// among the others by their weights. A tenant alone in the pool gets the
// whole capacity. A light tenant keeps its share while it is active: what
// it leaves unused is not lent to others. A request refused by any of its
// limits takes nothing from the share and makes no tenant active.
//
// The tenant's share is a GCRA of its own (NewShareGCRA) whose rate follows
// the share as tenants come and go; its burst is its share of the pool's
// burst, and at least one request. Over any stretch of time t in which the
// active tenants stay the same, the pool admits about Burst +
// t·Limit/Window units at most (a little more where a tenant's share of
// the burst is less than one request); a tenant that joins brings its own
// burst.
type Share struct {
	Pool     string  // the pool's name ("tool:search")
	Weight   float64 // the tenant's weight (default DefaultShareWeight)
	MaxShare float64 // the tenant's cap, a fraction of the capacity (default DefaultMaxShare; 1 means uncapped)
}

// ShareClass is a tenant's weight and cap with the defaults applied. Tenants
// of one class are counted together.
type ShareClass struct {
	Weight, MaxShare float64
}

// Class returns the share's class.
func (s Share) Class() ShareClass {
	c := ShareClass{Weight: s.Weight, MaxShare: s.MaxShare}
	if c.Weight == 0 {
		c.Weight = DefaultShareWeight
	}
	if c.MaxShare == 0 {
		c.MaxShare = DefaultMaxShare
	}
	return c
}

// String names the class, as the Redis limiter stores it ("10|0.3"): the
// shortest decimals that read back as the same numbers.
func (c ShareClass) String() string {
	return strconv.FormatFloat(c.Weight, 'g', -1, 64) + "|" + strconv.FormatFloat(c.MaxShare, 'g', -1, 64)
}

// validate checks a share's definition for the limit named name.
func (s Share) validate(name string) error {
	switch {
	case s.Pool == "":
		return fmt.Errorf("%w: limit %q shares no pool", ErrInvalidLimit, name)
	case !(s.Weight >= 0 && s.Weight <= MaxShareWeight):
		return fmt.Errorf("%w: limit %q: share weight %v is not in (0, %g]", ErrInvalidLimit, name, s.Weight, float64(MaxShareWeight))
	case !(s.MaxShare >= 0 && s.MaxShare <= 1):
		return fmt.Errorf("%w: limit %q: max share %v is not in (0, 1]", ErrInvalidLimit, name, s.MaxShare)
	}
	return nil
}

// ClassCount is how many active tenants of a pool are of one class.
type ClassCount struct {
	Class   ShareClass
	Tenants int64
}

// FairShare returns the share of a pool's capacity, in [0, 1], of a tenant
// of class self when active counts the pool's active tenants by class, the
// tenant itself included. Classes with no tenants are ignored.
//
// Weighted max-min by water-filling: the capacity rises as a level λ, each
// tenant taking min(MaxShare, λ·Weight), until it is all taken or every
// tenant is at its cap. Classes are capped in the order of
// MaxShare/Weight, the level at which they reach their cap. The order of
// the floating-point operations is part of the contract: the Redis script
// performs the same ones, so that both limiters answer alike.
func FairShare(self ShareClass, active []ClassCount) float64 {
	classes := make([]ClassCount, 0, len(active))
	var n int64
	for _, c := range active {
		if c.Tenants > 0 {
			classes = append(classes, c)
			n += c.Tenants
		}
	}
	if n <= 1 {
		return 1
	}
	slices.SortFunc(classes, func(a, b ClassCount) int {
		return cmp.Or(
			cmp.Compare(a.Class.MaxShare/a.Class.Weight, b.Class.MaxShare/b.Class.Weight),
			cmp.Compare(a.Class.Weight, b.Class.Weight),
			cmp.Compare(a.Class.MaxShare, b.Class.MaxShare),
		)
	})
	// The explicit conversions round each product, so that no compiler
	// fuses a multiply and an add the script performs as two operations.
	rest, weights, left := 1.0, 0.0, n
	for _, c := range classes {
		weights += float64(float64(c.Tenants) * c.Class.Weight)
	}
	for _, c := range classes {
		if !(weights > 0) || float64(rest/weights*c.Class.Weight) < c.Class.MaxShare {
			break
		}
		rest -= float64(float64(c.Tenants) * c.Class.MaxShare)
		weights -= float64(float64(c.Tenants) * c.Class.Weight)
		left -= c.Tenants
	}
	if left == 0 || !(weights > 0) {
		return self.MaxShare // every tenant at its cap
	}
	s := float64(rest / weights * self.Weight)
	if !(s > 0) {
		return 0
	}
	return min(self.MaxShare, s)
}

// NewShareGCRA returns the arithmetic of a tenant holding share s of l's
// capacity: the interval of l divided by s (in whole microseconds, at most
// about 12.7 days), and the tolerance of l, or one request of l's cost if
// that is more.
func NewShareGCRA(l Limit, s float64) GCRA {
	g := NewGCRA(l)
	if g.Interval == 0 {
		return g
	}
	x := float64(g.Interval/int64(time.Microsecond)) / s
	if !(x < maxShareInterval) {
		x = maxShareInterval
	}
	g.Interval = int64(math.Floor(x)) * int64(time.Microsecond)
	if g.Cost <= maxTolerance/g.Interval {
		// Else never this much at once: Step refuses it.
		g.Tolerance = max(g.Tolerance, g.Cost*g.Interval)
	}
	return g
}

// ShareHorizon is when a tenant whose theoretical arrival time is tat
// (unix ns) stops being active in the pool of l: a Window later, counted
// in whole microseconds.
func ShareHorizon(l Limit, tat int64) int64 {
	return tat + int64(l.Window)/int64(time.Microsecond)*int64(time.Microsecond)
}
