package policy

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcpauthz/mcpauthz/quotas"
)

// Bounds on what one decision may ask the limiter to take.
const (
	maxLimitEntries = 32
	maxWindow       = 366 * 24 * time.Hour
	maxNameLen      = 64
)

// limitsField parses the decision's "limits": an array of
//
//	{name, key, limit, window, cost?, burst?, on_backend_error?, share?}
//
// name a short token, key a non-empty string, limit a non-negative integer,
// window a duration string ("10s", "1m") or a number of seconds, cost and
// burst positive integers, on_backend_error "local", "deny" or "allow",
// share {pool, weight?, max_share?} (see quotas.Share: the limit is then a
// pool's capacity, and key the tenant taking its weighted fair share).
// Like the challenge, an entry admits no other members: a misspelt member
// would silently change a limit.
func limitsField(v ast.Value) ([]quotas.Limit, error) {
	var out []quotas.Limit
	err := entries(v, func(o ast.Object) error {
		var h head
		l := quotas.Limit{}
		err := entryMembers(o, &h, func(name string, v ast.Value) error {
			var err error
			switch name {
			case "window":
				l.Window, err = window(v)
			case "cost":
				l.Cost, err = integer(v, 1)
			case "burst":
				l.Burst, err = integer(v, 1)
			case "on_backend_error":
				var s string
				s, err = oneOf(v, "local", "deny", "allow")
				l.OnBackendError = quotas.Mode(s)
			case "share":
				l.Share, err = share(v)
			default:
				return errors.New("unknown member")
			}
			return err
		})
		if err != nil {
			return err
		}
		if !h.complete() || l.Window == 0 {
			return errors.New("name, key, limit and window are required")
		}
		l.Name, l.Key, l.Limit = h.name, h.key, h.limit
		out = append(out, l)
		return nil
	})
	return out, err
}

// share parses {pool, weight?, max_share?}: pool a non-empty string,
// weight a positive number, max_share a number in (0, 1].
func share(v ast.Value) (*quotas.Share, error) {
	o, ok := v.(ast.Object)
	if !ok {
		return nil, errors.New("not an object")
	}
	s := &quotas.Share{}
	err := eachMember(o, func(name string, v ast.Value) error {
		var err error
		switch name {
		case "pool":
			s.Pool, err = nonEmpty(v)
		case "weight":
			s.Weight, err = fraction(v, false)
		case "max_share":
			s.MaxShare, err = fraction(v, true)
		default:
			return errors.New("unknown member")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if s.Pool == "" {
		return nil, errors.New("pool is required")
	}
	return s, nil
}

// fraction accepts a positive finite number, at most 1 when capped.
func fraction(v ast.Value, capped bool) (float64, error) {
	if n, ok := v.(ast.Number); ok {
		if f, ok := n.Float64(); ok && f > 0 && !math.IsInf(f, 0) && (!capped || f <= 1) {
			return f, nil
		}
	}
	if capped {
		return 0, fmt.Errorf("%v is not a number in (0, 1]", v)
	}
	return 0, fmt.Errorf("%v is not a positive number", v)
}

// concurrencyField parses the decision's "concurrency": an array of
//
//	{name, key, limit, ttl}
//
// caps on requests running at once: limit a non-negative integer, ttl (a
// duration string or a number of seconds) how long a slot is held when
// the proxy never reports the request finished.
func concurrencyField(v ast.Value) ([]quotas.Lease, error) {
	var out []quotas.Lease
	err := entries(v, func(o ast.Object) error {
		var h head
		l := quotas.Lease{}
		err := entryMembers(o, &h, func(name string, v ast.Value) error {
			var err error
			switch name {
			case "ttl":
				l.TTL, err = window(v)
			default:
				return errors.New("unknown member")
			}
			return err
		})
		if err != nil {
			return err
		}
		if !h.complete() || l.TTL == 0 {
			return errors.New("name, key, limit and ttl are required")
		}
		l.Name, l.Key, l.Limit = h.name, h.key, h.limit
		if slices.ContainsFunc(out, func(h quotas.Lease) bool { return h.Key == l.Key }) {
			return fmt.Errorf("key %q is capped twice", l.Key)
		}
		out = append(out, l)
		return nil
	})
	return out, err
}

// quotasField parses the decision's "quotas": an array of
//
//	{name, key, limit, period, time_zone?, strict?, on_backend_error?}
//
// period "day" or "month", time_zone an IANA zone name (default UTC),
// strict true to refuse requests when the shared state cannot be reached
// (on_backend_error "deny"; the default is "allow").
func quotasField(v ast.Value) ([]quotas.Quota, error) {
	var out []quotas.Quota
	err := entries(v, func(o ast.Object) error {
		var h head
		q := quotas.Quota{Location: time.UTC}
		var strict, hasMode bool
		err := entryMembers(o, &h, func(name string, v ast.Value) error {
			var err error
			switch name {
			case "period":
				var s string
				s, err = oneOf(v, "day", "month")
				q.Period = quotas.Period(s)
			case "time_zone":
				q.Location, err = zone(v)
			case "strict":
				b, ok := v.(ast.Boolean)
				if !ok {
					return errors.New("not a boolean")
				}
				strict = bool(b)
			case "on_backend_error":
				var s string
				s, err = oneOf(v, "deny", "allow")
				q.OnBackendError, hasMode = quotas.Mode(s), true
			default:
				return errors.New("unknown member")
			}
			return err
		})
		if err != nil {
			return err
		}
		if !h.complete() || q.Period == "" {
			return errors.New("name, key, limit and period are required")
		}
		q.Name, q.Key, q.Limit = h.name, h.key, h.limit
		switch {
		case strict && hasMode && q.OnBackendError != quotas.Deny:
			return errors.New(`strict contradicts on_backend_error "allow"`)
		case strict:
			q.OnBackendError = quotas.Deny
		case !hasMode:
			q.OnBackendError = quotas.Allow
		}
		out = append(out, q)
		return nil
	})
	return out, err
}

// head is what every limits, quotas and concurrency entry has: a name,
// a key and a limit, all required.
type head struct {
	name, key string
	limit     int64
	hasLimit  bool
}

func (h *head) complete() bool { return h.name != "" && h.key != "" && h.hasLimit }

// entryMembers calls each for every member of o in key order, the head's
// members parsed into h, the others handed to rest.
func entryMembers(o ast.Object, h *head, rest func(name string, v ast.Value) error) error {
	return eachMember(o, func(name string, v ast.Value) error {
		var err error
		switch name {
		case "name":
			h.name, err = entryName(v)
		case "key":
			h.key, err = nonEmpty(v)
		case "limit":
			h.limit, err = integer(v, 0)
			h.hasLimit = true
		default:
			return rest(name, v)
		}
		return err
	})
}

// entries calls each for every object of an array of at most
// maxLimitEntries.
func entries(v ast.Value, each func(ast.Object) error) error {
	arr, ok := v.(*ast.Array)
	if !ok {
		return errors.New("not an array")
	}
	if arr.Len() > maxLimitEntries {
		return fmt.Errorf("%d entries, more than %d", arr.Len(), maxLimitEntries)
	}
	for i := range arr.Len() {
		o, ok := arr.Elem(i).Value.(ast.Object)
		if !ok {
			return fmt.Errorf("entry %d is not an object", i)
		}
		if err := each(o); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
	}
	return nil
}

// eachMember calls each for every member of o, in key order.
func eachMember(o ast.Object, each func(name string, v ast.Value) error) error {
	ks := o.Keys()
	sort.Slice(ks, func(i, j int) bool { return ks[i].Value.Compare(ks[j].Value) < 0 })
	for _, k := range ks {
		name, ok := k.Value.(ast.String)
		if !ok {
			return fmt.Errorf("member %v is not named by a string", k)
		}
		if err := each(string(name), o.Get(k).Value); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// entryName accepts a name fit for headers and metrics: 1 to 64 of
// [A-Za-z0-9_.:-].
func entryName(v ast.Value) (string, error) {
	s, ok := v.(ast.String)
	if !ok || len(s) == 0 || len(s) > maxNameLen {
		return "", fmt.Errorf("not a string of 1 to %d characters", maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return "", errors.New("only letters, digits and _ . : - may name a limit")
		}
	}
	return string(s), nil
}

func nonEmpty(v ast.Value) (string, error) {
	s, ok := v.(ast.String)
	if !ok || s == "" {
		return "", errors.New("not a non-empty string")
	}
	return string(s), nil
}

func oneOf(v ast.Value, allowed ...string) (string, error) {
	s, ok := v.(ast.String)
	if ok {
		for _, a := range allowed {
			if string(s) == a {
				return a, nil
			}
		}
	}
	return "", fmt.Errorf("%v is not one of %q", v, allowed)
}

// integer accepts an integer of at least least.
func integer(v ast.Value, least int64) (int64, error) {
	if n, ok := v.(ast.Number); ok {
		if i, ok := n.Int64(); ok && i >= least {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%v is not an integer of at least %d", v, least)
}

// window accepts a Go duration string or a number of seconds, positive and
// at most a year.
func window(v ast.Value) (time.Duration, error) {
	var d time.Duration
	switch v := v.(type) {
	case ast.String:
		var err error
		if d, err = time.ParseDuration(string(v)); err != nil {
			return 0, err
		}
	case ast.Number:
		f, ok := v.Float64()
		if !ok || math.IsNaN(f) || f > maxWindow.Seconds() {
			return 0, fmt.Errorf("%v is not a number of seconds", v)
		}
		d = time.Duration(f * float64(time.Second))
	default:
		return 0, errors.New("not a duration string or a number of seconds")
	}
	if d <= 0 || d > maxWindow {
		return 0, fmt.Errorf("%v is not a positive duration of at most a year", v)
	}
	return d, nil
}

// zones caches time zones: time.LoadLocation reads the zone database each
// time.
var zones sync.Map // name → *time.Location

// zone accepts an IANA time zone name ("Europe/Paris", "UTC"), not "" or
// "Local" (whose meaning depends on the machine).
func zone(v ast.Value) (*time.Location, error) {
	s, ok := v.(ast.String)
	if !ok || s == "" || s == "Local" {
		return nil, errors.New("not an IANA time zone name")
	}
	if loc, ok := zones.Load(string(s)); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(string(s))
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q", s)
	}
	zones.Store(string(s), loc)
	return loc, nil
}
