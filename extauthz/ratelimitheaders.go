package extauthz

import (
	"strconv"
	"time"

	"github.com/mcpauthz/mcpauthz/quotas"
)

// limitState is one limit or quota as the RateLimit headers tell it.
type limitState struct {
	name      string
	quota     int64 // units per window (q)
	window    int64 // seconds (w); 0 when the period has no fixed length
	remaining int64 // units left (r)
	reset     int64 // seconds until the state is replenished (t)
	refused   bool
	wait      time.Duration // until a refused request would be admitted
}

// limitStates lists the state of each limit and quota after a Take, once
// per name (a batch names a limit once per message; the last state is the
// latest). A state the limiter did not count (a fallback that admitted
// without counting) is left out.
func limitStates(req quotas.Request, res quotas.Result, now time.Time) []limitState {
	out := make([]limitState, 0, len(res.Limits)+len(res.Quotas))
	add := func(st limitState) {
		for i := range out {
			if out[i].name == st.name {
				out[i] = st
				return
			}
		}
		out = append(out, st)
	}
	for i, st := range res.Limits {
		if st.Remaining < 0 || i >= len(req.Limits) {
			continue
		}
		l := req.Limits[i]
		s := limitState{
			name:      l.Name,
			quota:     l.Limit,
			window:    seconds(l.Window),
			remaining: st.Remaining,
			reset:     ceilSeconds(st.Reset),
			refused:   !st.Allowed,
			wait:      st.RetryAfter,
		}
		if s.refused {
			// What the client acts on: when a retry is admitted.
			s.remaining, s.reset = 0, seconds(st.RetryAfter)
		}
		add(s)
	}
	for i, st := range res.Quotas {
		if st.Remaining < 0 || i >= len(req.Quotas) {
			continue
		}
		q := req.Quotas[i]
		s := limitState{
			name:      q.Name,
			quota:     q.Limit,
			remaining: st.Remaining,
			reset:     seconds(st.Resets.Sub(now)),
			refused:   !st.Allowed,
			wait:      st.Resets.Sub(now),
		}
		if q.Period == quotas.Day {
			s.window = 86400
		}
		add(s)
	}
	return out
}

// renderLimitStates renders states as RateLimit-Policy and RateLimit
// (draft-ietf-httpapi-ratelimit-headers-10: one list member per policy,
// `"name";q=…;w=…` and `"name";r=…;t=…`), and as the legacy
// X-RateLimit-Limit, -Remaining and -Reset (seconds from now) of the
// state that constrains the client most: the refusal with the longest
// wait, else the fewest units left.
func renderLimitStates(states []limitState) []Header {
	if len(states) == 0 {
		return nil
	}
	var policy, current []byte
	worst := 0
	for i, s := range states {
		if i > 0 {
			policy = append(policy, ", "...)
			current = append(current, ", "...)
		}
		policy = appendSFString(policy, s.name)
		policy = append(policy, ";q="...)
		policy = strconv.AppendInt(policy, s.quota, 10)
		if s.window > 0 {
			policy = append(policy, ";w="...)
			policy = strconv.AppendInt(policy, s.window, 10)
		}
		current = appendSFString(current, s.name)
		current = append(current, ";r="...)
		current = strconv.AppendInt(current, s.remaining, 10)
		current = append(current, ";t="...)
		current = strconv.AppendInt(current, s.reset, 10)
		if w := states[worst]; s.refused && (!w.refused || s.wait > w.wait) || !s.refused && !w.refused && s.remaining < w.remaining {
			worst = i
		}
	}
	w := states[worst]
	return []Header{
		{"ratelimit-policy", string(policy)},
		{"ratelimit", string(current)},
		{"x-ratelimit-limit", strconv.FormatInt(w.quota, 10)},
		{"x-ratelimit-remaining", strconv.FormatInt(w.remaining, 10)},
		{"x-ratelimit-reset", strconv.FormatInt(w.reset, 10)},
	}
}

// refusing names the refused limit or quota with the longest wait.
func refusing(states []limitState) string {
	name, wait := "", time.Duration(-1)
	for _, s := range states {
		if s.refused && s.wait > wait {
			name, wait = s.name, s.wait
		}
	}
	return name
}

// appendSFString appends s as a structured-field string (RFC 8941,
// section 3.3.3): quoted, '"' and '\' escaped, and any byte outside
// printable ASCII replaced by '?'.
func appendSFString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			buf = append(buf, '\\', c)
		case c < 0x20 || c > 0x7e:
			buf = append(buf, '?')
		default:
			buf = append(buf, c)
		}
	}
	return append(buf, '"')
}

// ceilSeconds rounds d up to whole seconds (0 stays 0).
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
