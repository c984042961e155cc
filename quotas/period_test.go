package quotas_test

import (
	"errors"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/quotas"
)

func TestPeriodBounds(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	tests := []struct {
		name        string
		period      quotas.Period
		at          time.Time
		loc         *time.Location
		start, next time.Time
		id          string
	}{
		{"ok/month in UTC", quotas.Month, time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC), nil,
			time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), "2026-11"},
		{"ok/december rolls the year", quotas.Month, time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), time.UTC,
			time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), "2026-12"},
		{"ok/month follows the zone, not UTC", quotas.Month, time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC), ny,
			time.Date(2026, 11, 1, 0, 0, 0, 0, ny), time.Date(2026, 12, 1, 0, 0, 0, 0, ny), "2026-11"},
		{"ok/a day of 25 hours (DST ends)", quotas.Day, time.Date(2026, 11, 1, 12, 0, 0, 0, ny), ny,
			time.Date(2026, 11, 1, 0, 0, 0, 0, ny), time.Date(2026, 11, 2, 0, 0, 0, 0, ny), "2026-11-01"},
		{"ok/february of a leap year", quotas.Month, time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC), nil,
			time.Date(2028, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2028, 3, 1, 0, 0, 0, 0, time.UTC), "2028-02"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, next, id := tt.period.Bounds(tt.at, tt.loc)
			if !start.Equal(tt.start) || !next.Equal(tt.next) || id != tt.id {
				t.Fatalf("Bounds = %v, %v, %q; want %v, %v, %q", start, next, id, tt.start, tt.next, tt.id)
			}
		})
	}
	if _, next, _ := quotas.Day.Bounds(time.Date(2026, 11, 1, 12, 0, 0, 0, ny), ny); next.Sub(time.Date(2026, 11, 1, 0, 0, 0, 0, ny)) != 25*time.Hour {
		t.Fatal("the day DST ends is 25 hours long")
	}
}

func TestGCRAStep(t *testing.T) {
	g := quotas.NewGCRA(quotas.Limit{Key: "k", Limit: 10, Window: time.Second, Burst: 3})
	if g.Interval != int64(100*time.Millisecond) || g.Tolerance != int64(300*time.Millisecond) || g.Cost != 1 {
		t.Fatalf("arithmetic %+v", g)
	}
	now := int64(time.Hour)
	tat := int64(0)
	for i := range 3 {
		next, st := g.Step(tat, now)
		if !st.Allowed || st.Remaining != int64(2-i) {
			t.Fatalf("step %d: %+v", i, st)
		}
		tat = next
	}
	if next, st := g.Step(tat, now); st.Allowed || next != tat || st.RetryAfter != 100*time.Millisecond {
		t.Fatalf("past the burst: tat %d → %d, %+v", tat, next, st)
	}
	// An interval that does not divide evenly is counted in whole
	// microseconds, as the Redis script counts it, rounded up: never more
	// than the limit.
	odd := quotas.NewGCRA(quotas.Limit{Key: "k", Limit: 3, Window: 10 * time.Second})
	if odd.Interval != 3333334000 {
		t.Fatalf("interval %d", odd.Interval)
	}
	fast := quotas.NewGCRA(quotas.Limit{Key: "k", Limit: 1_000_000, Window: 1500 * time.Millisecond})
	if fast.Interval != 2000 {
		t.Fatalf("1M per 1.5 s: interval %d, want 2 µs (1 µs would admit half as much again)", fast.Interval)
	}
}

// TestLimitBounds: a limit whose arithmetic could overflow is refused,
// and a cost beyond the burst is refused by Step without overflowing.
func TestLimitBounds(t *testing.T) {
	tests := []struct {
		name string
		l    quotas.Limit
	}{
		{"fail/cost over the maximum", quotas.Limit{Key: "k", Limit: 10, Window: time.Second, Cost: quotas.MaxCost + 1}},
		{"fail/window over a year", quotas.Limit{Key: "k", Limit: 10, Window: quotas.MaxWindow + time.Hour}},
		{"fail/burst too long for its rate", quotas.Limit{Key: "k", Limit: 1, Window: quotas.MaxWindow, Burst: 1 << 40}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.l.Validate(); !errors.Is(err, quotas.ErrInvalidLimit) {
				t.Errorf("Validate = %v, want ErrInvalidLimit", err)
			}
		})
	}
	// The largest cost against a slow limit: refused, never wrapped into
	// an admission.
	g := quotas.NewGCRA(quotas.Limit{Key: "k", Limit: 120, Window: quotas.MaxWindow, Cost: quotas.MaxCost})
	now := quotas.Micro(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	if next, st := g.Step(0, now); st.Allowed || next != 0 {
		t.Errorf("cost %d over a burst of 120 admitted: %+v", quotas.MaxCost, st)
	}
}
