package password

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestLockoutUntil(t *testing.T) {
	last := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return last.Add(d) }
	tests := []struct {
		name     string
		l        Lockout
		failures int
		want     time.Time
	}{
		{name: "ok/no failures", l: DefaultLockout, failures: 0},
		{name: "ok/negative failures", l: DefaultLockout, failures: -3},
		{name: "ok/below threshold", l: DefaultLockout, failures: 4},
		{name: "ok/at threshold locks for base", l: DefaultLockout, failures: 5, want: at(time.Minute)},
		{name: "ok/6 doubles", l: DefaultLockout, failures: 6, want: at(2 * time.Minute)},
		{name: "ok/7", l: DefaultLockout, failures: 7, want: at(4 * time.Minute)},
		{name: "ok/8", l: DefaultLockout, failures: 8, want: at(8 * time.Minute)},
		{name: "ok/9", l: DefaultLockout, failures: 9, want: at(16 * time.Minute)},
		{name: "ok/10", l: DefaultLockout, failures: 10, want: at(32 * time.Minute)},
		{name: "ok/11 capped at max", l: DefaultLockout, failures: 11, want: at(time.Hour)},
		{name: "ok/12 stays at max", l: DefaultLockout, failures: 12, want: at(time.Hour)},
		{name: "ok/huge count stays at max", l: DefaultLockout, failures: math.MaxInt, want: at(time.Hour)},
		{name: "ok/max not a power-of-two multiple", l: Lockout{Threshold: 3, Base: 10 * time.Second, Max: 45 * time.Second}, failures: 5, want: at(40 * time.Second)},
		{name: "ok/capped mid-doubling", l: Lockout{Threshold: 3, Base: 10 * time.Second, Max: 45 * time.Second}, failures: 6, want: at(45 * time.Second)},
		{name: "ok/threshold 1", l: Lockout{Threshold: 1, Base: time.Second, Max: time.Minute}, failures: 1, want: at(time.Second)},
		{name: "ok/max equals base", l: Lockout{Threshold: 2, Base: time.Minute, Max: time.Minute}, failures: 9, want: at(time.Minute)},
		{name: "ok/max near overflow", l: Lockout{Threshold: 1, Base: time.Nanosecond, Max: math.MaxInt64}, failures: 100, want: at(math.MaxInt64)},
		{name: "ok/max below base counts as base", l: Lockout{Threshold: 1, Base: time.Minute, Max: time.Second}, failures: 4, want: at(time.Minute)},
		{name: "ok/zero max counts as base", l: Lockout{Threshold: 1, Base: time.Minute}, failures: 4, want: at(time.Minute)},
		{name: "fail/zero lockout never locks", l: Lockout{}, failures: 100},
		{name: "fail/zero threshold never locks", l: Lockout{Base: time.Minute, Max: time.Hour}, failures: 100},
		{name: "fail/zero base never locks", l: Lockout{Threshold: 5, Max: time.Hour}, failures: 100},
		{name: "fail/negative base never locks", l: Lockout{Threshold: 5, Base: -time.Minute, Max: time.Hour}, failures: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.l.Until(tt.failures, last)
			if !got.Equal(tt.want) {
				t.Fatalf("Until(%d) = %v, want %v", tt.failures, got, tt.want)
			}
			if tt.want.IsZero() && !got.IsZero() {
				t.Fatalf("Until(%d) = %v, want the zero time", tt.failures, got)
			}
		})
	}
}

// The lock is relative to the last failure and ends exactly at Until.
func TestLockoutWindow(t *testing.T) {
	last := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	until := DefaultLockout.Until(6, last)
	for _, tc := range []struct {
		now    time.Time
		locked bool
	}{
		{last, true},
		{last.Add(2*time.Minute - time.Nanosecond), true},
		{last.Add(2 * time.Minute), false},
		{last.Add(time.Hour), false},
	} {
		if got := tc.now.Before(until); got != tc.locked {
			t.Errorf("at %v: locked = %v, want %v", tc.now.Sub(last), got, tc.locked)
		}
	}
	if (time.Time{}).After(time.Now()) || time.Now().Before(DefaultLockout.Until(0, last)) {
		t.Error("the zero time must never lock")
	}
}

func TestLockoutValidate(t *testing.T) {
	tests := []struct {
		name string
		l    Lockout
		ok   bool
	}{
		{name: "ok/default", l: DefaultLockout, ok: true},
		{name: "ok/max equals base", l: Lockout{Threshold: 1, Base: time.Second, Max: time.Second}, ok: true},
		{name: "fail/zero", l: Lockout{}},
		{name: "fail/threshold 0", l: Lockout{Base: time.Minute, Max: time.Hour}},
		{name: "fail/base 0", l: Lockout{Threshold: 5, Max: time.Hour}},
		{name: "fail/max below base", l: Lockout{Threshold: 5, Base: time.Hour, Max: time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.l.Validate()
			if tt.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidLockout) {
				t.Fatalf("Validate() = %v, want ErrInvalidLockout", err)
			}
		})
	}
}
