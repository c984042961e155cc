package quotas

import "time"

// Period is a calendar period a quota counts in.
type Period string

// The periods.
const (
	Day   Period = "day"
	Month Period = "month"
)

// Bounds returns the period holding t in loc (UTC when nil): its start, the
// start of the next one, and an id naming it ("2026-11", "2026-11-25"),
// unique per key and period.
func (p Period) Bounds(t time.Time, loc *time.Location) (start, next time.Time, id string) {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	y, m, d := t.Date()
	switch p {
	case Day:
		start = time.Date(y, m, d, 0, 0, 0, 0, loc)
		return start, time.Date(y, m, d+1, 0, 0, 0, 0, loc), start.Format("2006-01-02")
	default:
		start = time.Date(y, m, 1, 0, 0, 0, 0, loc)
		return start, time.Date(y, m+1, 1, 0, 0, 0, 0, loc), start.Format("2006-01")
	}
}
