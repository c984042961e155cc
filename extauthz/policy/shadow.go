package policy

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"golang.org/x/time/rate"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz"
)

// Shadow evaluates a candidate bundle beside the active one on live
// traffic, off the request path: each decision's input is queued, the
// candidate decides it in the background, and decisions that would change
// are counted and logged. The candidate never affects an answer. When the
// queue is full the decision is not shadowed and the drop is counted.
type Shadow struct {
	engine  *bundles.Engine
	queue   chan shadowJob
	timeout time.Duration
	log     *slog.Logger
	logRate *rate.Limiter // difference lines per second; counts are exact

	counts [numChanges]atomic.Uint64
	drops  atomic.Uint64
	quiet  atomic.Uint64 // differences not logged by the rate cap
}

// Change is how the candidate's decision differs from the active one's.
type Change int

// The changes a shadow decision is counted under.
const (
	// Same: the candidate returned the same result.
	Same Change = iota
	// AllowToDeny: the active policy allows and the candidate denies.
	AllowToDeny
	// DenyToAllow: the active policy denies and the candidate allows.
	DenyToAllow
	// Changed: both allow or both deny, but the results differ (status,
	// reason, headers, limits, challenge, ...).
	Changed
	// CandidateError: the candidate failed (undefined, an evaluation error,
	// a malformed result) where the active policy decided.
	CandidateError
	numChanges
)

var changeNames = [numChanges]string{"same", "allow_to_deny", "deny_to_allow", "changed", "candidate_error"}

func (c Change) String() string {
	if c < 0 || c >= numChanges {
		return "unknown"
	}
	return changeNames[c]
}

// Changes lists every Change, for metrics.
func Changes() []Change {
	out := make([]Change, numChanges)
	for i := range out {
		out[i] = Change(i)
	}
	return out
}

// ShadowOptions configure a Shadow.
type ShadowOptions struct {
	// Queue is how many decisions may wait for the candidate (default 1024).
	Queue int
	// Timeout bounds one candidate evaluation (default 1s).
	Timeout time.Duration
	// LogPerSecond caps the difference log lines (default 10; the counts
	// are exact either way).
	LogPerSecond float64
	Logger       *slog.Logger
}

// NewShadow returns a shadow evaluating engine's active bundle. Run must be
// running for queued decisions to be evaluated.
func NewShadow(engine *bundles.Engine, opts ShadowOptions) *Shadow {
	if opts.Queue <= 0 {
		opts.Queue = 1024
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.LogPerSecond <= 0 {
		opts.LogPerSecond = 10
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Shadow{
		engine:  engine,
		queue:   make(chan shadowJob, opts.Queue),
		timeout: opts.Timeout,
		log:     opts.Logger,
		logRate: rate.NewLimiter(rate.Limit(opts.LogPerSecond), max(1, int(opts.LogPerSecond))),
	}
}

// Engine returns the candidate's engine.
func (s *Shadow) Engine() *bundles.Engine { return s.engine }

// ShadowStats counts shadow decisions.
type ShadowStats struct {
	Revision  string // the candidate's, empty while none is active
	Counts    map[Change]uint64
	Evaluated uint64 // the sum of Counts
	Dropped   uint64 // decisions not shadowed because the queue was full
	Unlogged  uint64 // differences counted but not logged (rate cap)
}

// Stats returns the counts so far.
func (s *Shadow) Stats() ShadowStats {
	st := ShadowStats{Counts: make(map[Change]uint64, numChanges), Dropped: s.drops.Load(), Unlogged: s.quiet.Load()}
	if snap := s.engine.Active(); snap != nil {
		st.Revision = snap.Revision
	}
	for i := range s.counts {
		n := s.counts[i].Load()
		st.Counts[Change(i)] = n
		st.Evaluated += n
	}
	return st
}

// shadowJob is one decision waiting for the candidate. Every field is owned
// by the job: the request may be gone when it is evaluated.
type shadowJob struct {
	snap       *bundles.Snapshot
	input      *ast.Term
	now        time.Time
	active     result // the active result, empty when it failed
	allowed    bool   // the active decision
	revision   string // the active revision
	decisionID string
	method     string
	tool       string
	tenant     string
}

// offer queues a decision for the candidate, or counts a drop. The input is
// built only when there is room.
func (s *Shadow) offer(in *extauthz.PolicyInput, now time.Time, active result, allowed bool, revision string) {
	snap := s.engine.Active()
	if snap == nil {
		return
	}
	if len(s.queue) == cap(s.queue) {
		s.drops.Add(1)
		return
	}
	job := shadowJob{
		snap:       snap,
		input:      buildInput(in, snap.InputUse(), now),
		now:        now,
		active:     active,
		allowed:    allowed,
		revision:   revision,
		decisionID: in.DecisionID,
	}
	if m := in.Message; m != nil {
		job.method, job.tool = m.Method, m.Tool
	}
	if id := in.Identity; id != nil {
		job.tenant = id.Tenant
	}
	select {
	case s.queue <- job:
	default:
		s.drops.Add(1)
	}
}

// Run evaluates queued decisions until ctx is done.
func (s *Shadow) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case job := <-s.queue:
			s.evaluate(ctx, job)
		}
	}
}

func (s *Shadow) evaluate(ctx context.Context, job shadowJob) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	t, err := job.snap.Eval(ctx, job.input, job.now)
	var d extauthz.Decision
	if err == nil {
		d, err = decision(t.Value)
	}
	change := compare(job, t, d, err)
	// Counted last, so that once Stats shows a decision evaluated its log
	// line has been written.
	defer s.counts[change].Add(1)
	if change == Same {
		return
	}
	if !s.logRate.Allow() {
		s.quiet.Add(1)
		return
	}
	attrs := []slog.Attr{
		slog.String("change", change.String()),
		slog.String("decision_id", job.decisionID),
		slog.String("revision", job.revision),
		slog.String("candidate_revision", job.snap.Revision),
		slog.Bool("allowed", job.allowed),
		slog.String("mcp_method", job.method),
		slog.String("tool", job.tool),
		slog.String("tenant", job.tenant),
	}
	if err != nil {
		attrs = append(attrs, slog.String("candidate_error", err.Error()))
	} else {
		attrs = append(attrs, slog.Bool("candidate_allowed", d.Allowed),
			slog.Int("candidate_status", d.Status), slog.String("candidate_reason", d.Reason))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "shadow policy decides differently", attrs...)
}

// compare classifies the candidate's outcome against the active one. Two
// results are the same when they are equal as Rego values; two failures
// are the same, whatever their messages.
func compare(job shadowJob, t *ast.Term, d extauthz.Decision, err error) Change {
	active := job.active.Term()
	switch {
	case err != nil && active == nil:
		return Same
	case err != nil:
		return CandidateError
	case active != nil && active.Value.Compare(t.Value) == 0:
		return Same
	case job.allowed && !d.Allowed:
		return AllowToDeny
	case !job.allowed && d.Allowed:
		return DenyToAllow
	}
	return Changed
}
