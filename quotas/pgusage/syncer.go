package pgusage

import (
	"context"
	"log/slog"
	"time"

	"github.com/mcpauthz/mcpauthz/quotas"
)

// Syncer defaults.
const (
	DefaultInterval        = 30 * time.Second
	DefaultRoundTimeout    = 10 * time.Second
	DefaultShutdownTimeout = 5 * time.Second
)

// Syncer keeps a limiter's quota counters in a store: every interval it
// reads them out and saves them, and it raises them back from the store
// when it starts (a restart may follow a loss of Redis) and whenever a
// counter is seen to go back or vanish before its expiry (Redis lost its
// data while the Syncer ran). Usage counted between the last save and a
// loss is lost, up to an interval's worth; usage counted after a loss and
// before the restore is overtaken by the restored count rather than added
// to it, since restoring only ever raises.
//
// It works beside the limiter, never in the way of a decision: each round
// is bounded by a timeout, and a round that fails is logged and the work
// retried the next round. Several replicas may each run one over the same
// limiter and store: saves keep the greatest count and restores only
// raise, so they agree.
type Syncer struct {
	limiter  quotas.UsageSnapshotter
	store    quotas.UsageStore
	interval time.Duration
	timeout  time.Duration // of one round
	shutdown time.Duration // of the final save
	now      func() time.Time
	log      *slog.Logger
}

// pruner deletes usage expired at now; *Store is one.
type pruner interface {
	Prune(ctx context.Context, now time.Time) (int64, error)
}

// SyncOption configures a Syncer.
type SyncOption func(*Syncer)

// WithInterval sets how often the counters are saved (default
// DefaultInterval): at most this much usage is lost with Redis.
func WithInterval(d time.Duration) SyncOption { return func(s *Syncer) { s.interval = d } }

// WithRoundTimeout bounds one round, restore and save (default
// DefaultRoundTimeout).
func WithRoundTimeout(d time.Duration) SyncOption { return func(s *Syncer) { s.timeout = d } }

// WithShutdownTimeout bounds the final save when Run's context ends
// (default DefaultShutdownTimeout).
func WithShutdownTimeout(d time.Duration) SyncOption { return func(s *Syncer) { s.shutdown = d } }

// WithClock sets the clock expiry is judged by (default time.Now).
func WithClock(now func() time.Time) SyncOption { return func(s *Syncer) { s.now = now } }

// WithLogger sets where failed rounds and restores are logged (default
// nowhere).
func WithLogger(l *slog.Logger) SyncOption {
	return func(s *Syncer) {
		if l != nil {
			s.log = l
		}
	}
}

// NewSyncer returns a syncer of limiter's counters into store. If store
// can also Prune, as *Store can, expired rows are deleted every round.
// Durations of zero or less take the defaults.
func NewSyncer(limiter quotas.UsageSnapshotter, store quotas.UsageStore, opts ...SyncOption) *Syncer {
	s := &Syncer{limiter: limiter, store: store, now: time.Now, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(s)
	}
	if s.interval <= 0 {
		s.interval = DefaultInterval
	}
	if s.timeout <= 0 {
		s.timeout = DefaultRoundTimeout
	}
	if s.shutdown <= 0 {
		s.shutdown = DefaultShutdownTimeout
	}
	return s
}

// Restore raises the limiter's counters to the store's and returns how
// many records it restored.
func (s *Syncer) Restore(ctx context.Context) (int, error) {
	usage, err := s.store.Load(ctx, s.now())
	if err != nil {
		return 0, err
	}
	if err := s.limiter.Restore(ctx, usage); err != nil {
		return 0, err
	}
	return len(usage), nil
}

// Save saves the limiter's counters into the store and returns how many.
func (s *Syncer) Save(ctx context.Context) (int, error) {
	usage, err := s.limiter.Usage(ctx)
	if err != nil {
		return 0, err
	}
	if err := s.store.Save(ctx, usage); err != nil {
		return 0, err
	}
	return len(usage), nil
}

// Run restores the counters, then saves them every interval, until ctx
// ends; then it saves them once more, bounded by the shutdown timeout, and
// returns nil. A restore that fails is tried again each round until it
// succeeds. Call it once.
func (s *Syncer) Run(ctx context.Context) error {
	st := &syncState{restore: true}
	s.round(ctx, st)
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			s.round(ctx, st)
		case <-ctx.Done():
			// The run's context is over; the final save gets its own,
			// bounded, so the usage of the last interval is kept.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.shutdown)
			defer cancel()
			if n, err := s.Save(fctx); err != nil {
				s.log.LogAttrs(fctx, slog.LevelWarn, "saving quota usage on shutdown failed", slog.Any("error", err))
			} else {
				s.log.LogAttrs(fctx, slog.LevelDebug, "quota usage saved on shutdown", slog.Int("counters", n))
			}
			return nil
		}
	}
}

// syncState is what Run carries from one round to the next.
type syncState struct {
	restore bool                       // a restore is due
	last    map[[2]string]quotas.Usage // the counters read last round
}

// round restores if due, reads the counters, restores if they went back,
// saves them and prunes, within the round timeout.
func (s *Syncer) round(parent context.Context, st *syncState) {
	ctx, cancel := context.WithTimeout(parent, s.timeout)
	defer cancel()
	warn := func(msg string, err error) {
		if parent.Err() == nil { // a failure because Run is ending is no news
			s.log.LogAttrs(ctx, slog.LevelWarn, msg, slog.Any("error", err))
		}
	}
	if st.restore {
		s.restore(ctx, st, "restoring quota usage failed; retrying next round", warn)
	}
	usage, err := s.limiter.Usage(ctx)
	if err != nil {
		warn("reading quota usage failed; retrying next round", err)
		return
	}
	if !st.restore && wentBack(st.last, usage, s.now()) {
		s.log.LogAttrs(ctx, slog.LevelWarn, "quota counters went back: the limiter lost its state; restoring them")
		s.restore(ctx, st, "restoring quota usage after a loss failed; retrying next round", warn)
	}
	st.last = index(usage)
	if err := s.store.Save(ctx, usage); err != nil {
		warn("saving quota usage failed; retrying next round", err)
		return
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "quota usage saved", slog.Int("counters", len(usage)))
	if p, ok := s.store.(pruner); ok {
		if n, err := p.Prune(ctx, s.now()); err != nil {
			warn("pruning expired quota usage failed; retrying next round", err)
		} else if n > 0 {
			s.log.LogAttrs(ctx, slog.LevelDebug, "expired quota usage pruned", slog.Int64("counters", n))
		}
	}
}

// restore restores and records whether another is due.
func (s *Syncer) restore(ctx context.Context, st *syncState, failed string, warn func(string, error)) {
	n, err := s.Restore(ctx)
	st.restore = err != nil
	if err != nil {
		warn(failed, err)
		return
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "quota usage restored", slog.Int("counters", n))
}

// wentBack reports whether a counter of last that has not expired at now
// is missing from usage or lower in it: counters only go up within their
// period, so the limiter lost its state.
func wentBack(last map[[2]string]quotas.Usage, usage []quotas.Usage, now time.Time) bool {
	if len(last) == 0 {
		return false
	}
	cur := index(usage)
	for id, u := range last {
		if c, ok := cur[id]; u.Expires.After(now) && (!ok || c.Used < u.Used) {
			return true
		}
	}
	return false
}

// index maps usage by key and period.
func index(usage []quotas.Usage) map[[2]string]quotas.Usage {
	m := make(map[[2]string]quotas.Usage, len(usage))
	for _, u := range usage {
		m[[2]string{u.Key, u.PeriodID}] = u
	}
	return m
}
