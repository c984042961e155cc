package main

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
)

// outcome is one Check as the client saw it.
type outcome struct {
	start   time.Time
	latency time.Duration
	allowed bool
	status  int        // 200 for an allow, else the denial's HTTP status
	code    codes.Code // a gRPC error's code; OK when the sidecar answered
	err     error      // the gRPC error
	cred    *credential
	op      operation
	kid     string // of a JWT
}

// counts are answers by result.
type counts struct {
	Requests int            `json:"requests"`
	Allows   int            `json:"allows"`
	Denies   map[int]int    `json:"denies_by_status,omitempty"`
	Errors   map[string]int `json:"grpc_errors,omitempty"`
}

func (c *counts) add(o outcome) {
	c.Requests++
	switch {
	case o.code != codes.OK:
		if c.Errors == nil {
			c.Errors = map[string]int{}
		}
		c.Errors[o.code.String()]++
	case o.allowed:
		c.Allows++
	default:
		if c.Denies == nil {
			c.Denies = map[int]int{}
		}
		c.Denies[o.status]++
	}
}

func (c *counts) errors() int {
	n := 0
	for _, v := range c.Errors {
		n += v
	}
	return n
}

// phase is a stretch of the run: the capacity probe, steady load, or a
// fault and the recovery after it.
type phase struct {
	Name  string    `json:"name"`
	What  string    `json:"what"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Budgeted phases run at the sustained rate: every answer must come
	// within the decision budget. The capacity probe overloads on purpose.
	Budgeted bool `json:"latency_budget_applies"`
	counts
	ByKind map[string]*counts `json:"by_credential"`
	P50    ms                 `json:"p50_ms"`
	P99    ms                 `json:"p99_ms"`
	P999   ms                 `json:"p99_9_ms"`
	Max    ms                 `json:"max_ms"`
	Notes  []string           `json:"notes,omitempty"`
	// Sidecar is its memory and goroutines as the phase ended.
	Sidecar *sample `json:"sidecar_at_end,omitempty"`
	lat     []time.Duration
}

// ms is a duration written in milliseconds.
type ms float64

func toMS(d time.Duration) ms { return ms(float64(d) / float64(time.Millisecond)) }

// quantile of sorted latencies.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

// revokedStats follow one revoked credential after its revocation.
type revokedStats struct {
	Credential string      `json:"credential"`
	RevokedAt  time.Time   `json:"revoked_at"`
	Sent       int         `json:"sent_after_revocation"`
	Allowed    int         `json:"allowed_after_revocation"`
	PastBound  int         `json:"allowed_past_bound"`
	LastAllow  ms          `json:"latest_allow_ms_after_revocation,omitempty"`
	Statuses   map[int]int `json:"statuses"`
}

// slowest is one of the slowest answers, for the report.
type slowest struct {
	Phase   string `json:"phase"`
	Into    ms     `json:"ms_into_phase"` // when it was sent
	Latency ms     `json:"latency_ms"`
	Kind    string `json:"credential"`
	Op      string `json:"operation"`
	Status  int    `json:"status"`
	Code    string `json:"grpc_code"`
}

// recorder collects every outcome into the current phase and follows
// the invariants the load itself can see.
type recorder struct {
	mu        sync.Mutex
	cur       *phase
	phases    []*phase
	jwtByKid  map[string]*counts       // valid JWTs' answers to what needs no fresh session, by signing key
	revoked   map[string]*revokedStats // by credential label
	victims   []string                 // labels of the credentials to be revoked
	kinds     map[string][]string      // labels by kind
	invalidOK map[string]int           // allows of credentials that must never verify
	anonMCPOK int                      // allows of anonymous tool calls
	slow      []slowest
	byLabel   map[string]*counts // every credential's answers to what needs no fresh session
	errs      []string           // the first gRPC errors, described
}

func newRecorder() *recorder {
	return &recorder{jwtByKid: map[string]*counts{}, revoked: map[string]*revokedStats{}, invalidOK: map[string]int{},
		byLabel: map[string]*counts{}}
}

// begin ends the current phase and starts the next.
func (r *recorder) begin(name, what string, budgeted bool) *phase {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.cur != nil {
		r.cur.End = now
	}
	p := &phase{Name: name, What: what, Start: now, Budgeted: budgeted, ByKind: map[string]*counts{}}
	r.cur = p
	r.phases = append(r.phases, p)
	return p
}

// end closes the current phase; outcomes after it are not recorded.
func (r *recorder) end() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur != nil {
		r.cur.End = time.Now()
		r.cur = nil
	}
}

// note adds a line to the current phase's report.
func (r *recorder) note(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur != nil {
		r.cur.Notes = append(r.cur.Notes, line)
	}
}

// countsOf returns m's counts under key, made if need be.
func countsOf(m map[string]*counts, key string) *counts {
	c := m[key]
	if c == nil {
		c = &counts{}
		m[key] = c
	}
	return c
}

// record counts one outcome in the current phase, and against the
// invariants.
func (r *recorder) record(o outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.cur
	if p == nil {
		return
	}
	p.add(o)
	countsOf(p.ByKind, o.cred.kind).add(o)
	p.lat = append(p.lat, o.latency)
	if !o.op.fresh {
		countsOf(r.byLabel, o.cred.label).add(o)
		if o.kid != "" && o.cred.victim == nil {
			countsOf(r.jwtByKid, o.kid).add(o)
		}
	}
	if o.code != codes.OK && len(r.errs) < 5 {
		r.errs = append(r.errs, fmt.Sprintf("%s, %s, %s after %s: %v", p.Name, o.cred.label, o.op.name, o.latency.Round(time.Millisecond), o.err))
	}
	if p.Budgeted {
		r.keepSlowest(slowest{Phase: p.Name, Into: toMS(o.start.Sub(p.Start)), Latency: toMS(o.latency), Kind: o.cred.label, Op: o.op.name,
			Status: o.status, Code: o.code.String()})
	}
	switch {
	case o.cred.victim != nil:
		r.followRevoked(o)
	case !o.allowed:
	case o.cred.kind == kindInvalid:
		r.invalidOK[o.cred.label]++
	case o.cred.kind == kindAnonymous && o.op.mcp != "":
		r.anonMCPOK++
	}
}

// followRevoked counts an answer to a revoked credential sent after its
// revocation; an allow past the bound breaks the revocation invariant.
func (r *recorder) followRevoked(o outcome) {
	at, gone := o.cred.victim.revoked()
	if !gone || !o.start.After(at) {
		return
	}
	s := r.revoked[o.cred.label]
	if s == nil {
		s = &revokedStats{Credential: o.cred.label, RevokedAt: at, Statuses: map[int]int{}}
		r.revoked[o.cred.label] = s
	}
	s.Sent++
	s.Statuses[o.status]++
	if o.allowed {
		since := o.start.Sub(at)
		s.Allowed++
		s.LastAllow = max(s.LastAllow, toMS(since))
		if since > liveMaxAge {
			s.PastBound++
		}
	}
}

// jwtCounts returns a copy of the answers to JWTs by signing key.
func (r *recorder) jwtCounts() map[string]counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]counts, len(r.jwtByKid))
	for kid, c := range r.jwtByKid {
		out[kid] = counts{Requests: c.Requests, Allows: c.Allows, Denies: maps.Clone(c.Denies), Errors: maps.Clone(c.Errors)}
	}
	return out
}

// know learns the credentials of the mix by kind; each of those to be
// revoked must be seen after its revocation.
func (r *recorder) know(m *mix) {
	r.kinds = map[string][]string{}
	for kind, creds := range m.byKind {
		for _, cr := range creds {
			r.kinds[kind] = append(r.kinds[kind], cr.label)
		}
	}
	r.victims = r.kinds[kindRevoked]
}

func (r *recorder) keepSlowest(s slowest) {
	const keep = 8
	if len(r.slow) == keep && s.Latency <= r.slow[keep-1].Latency {
		return
	}
	r.slow = append(r.slow, s)
	slices.SortFunc(r.slow, func(a, b slowest) int {
		switch {
		case a.Latency > b.Latency:
			return -1
		case a.Latency < b.Latency:
			return 1
		}
		return 0
	})
	if len(r.slow) > keep {
		r.slow = r.slow[:keep]
	}
}

// finish computes the phases' latency quantiles and returns every
// latency of the budgeted phases, sorted.
func (r *recorder) finish() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []time.Duration
	for _, p := range r.phases {
		sort.Slice(p.lat, func(i, j int) bool { return p.lat[i] < p.lat[j] })
		p.P50, p.P99, p.P999 = toMS(quantile(p.lat, 0.5)), toMS(quantile(p.lat, 0.99)), toMS(quantile(p.lat, 0.999))
		if len(p.lat) > 0 {
			p.Max = toMS(p.lat[len(p.lat)-1])
		}
		if p.Budgeted {
			all = append(all, p.lat...)
		}
	}
	slices.Sort(all)
	return all
}
