package credentials

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/redisfeed"
)

// Freshness says how long a credential read from a backend may be
// trusted from memory: the longest a revoked credential can still be
// accepted.
type Freshness interface {
	MaxAge() time.Duration
}

// FixedFreshness trusts reads for a fixed time; it is the bound when no
// revocation events arrive at all.
type FixedFreshness time.Duration

// MaxAge implements Freshness.
func (f FixedFreshness) MaxAge() time.Duration { return time.Duration(f) }

// Evictor drops what it cached about revoked credentials, or everything
// when events may have been missed.
type Evictor interface {
	Evict(ev identity.Event)
	Purge()
}

// Defaults of Revocations.
const (
	DefaultLiveMaxAge     = 5 * time.Minute  // while events arrive
	DefaultDegradedMaxAge = 30 * time.Second // while they may be missed
	revocationPing        = 10 * time.Second
	// revocationMaxBackoff caps the wait between two subscriptions, so
	// events are heard again within seconds of Redis returning: a
	// subscription attempt costs Redis nothing worth saving.
	revocationMaxBackoff = 5 * time.Second
)

// Revocations listens to the identity service's revocation events on
// Redis pub/sub and evicts what they revoke. While subscribed it is live:
// reads may be trusted for the live age, since an event evicts them at
// once. While not — Redis down, paused, the connection lost — it is
// degraded: reads are trusted only for the degraded age. A read from
// before it subscribed again stays on the degraded age, since events may
// have been missed meanwhile: those reads expire as they would have, one by
// one, instead of all at once when Redis returns — which would send every
// caller to the store in the same moment.
type Revocations struct {
	rdb      redis.UniversalClient
	channel  string
	evictors []Evictor
	live     time.Duration
	degraded time.Duration
	ping     time.Duration
	log      *slog.Logger
	onChange func(live bool)
	now      func() time.Time
	up       atomic.Bool
	since    atomic.Int64 // when it went live, in Unix nanoseconds
}

var _ Freshness = (*Revocations)(nil)

// RevocationOption configures Revocations.
type RevocationOption func(*Revocations)

// WithMaxAges sets how long reads are trusted while live and while
// degraded.
func WithMaxAges(live, degraded time.Duration) RevocationOption {
	return func(r *Revocations) { r.live, r.degraded = live, degraded }
}

// WithRevocationLogger sets the logger (default: discard).
func WithRevocationLogger(l *slog.Logger) RevocationOption {
	return func(r *Revocations) { r.log = l }
}

// WithLiveness calls fn each time the events go live or are lost, for
// health reporting.
func WithLiveness(fn func(live bool)) RevocationOption {
	return func(r *Revocations) { r.onChange = fn }
}

// withPing sets how often a quiet subscription is checked (tests).
func withPing(d time.Duration) RevocationOption { return func(r *Revocations) { r.ping = d } }

// withRevocationClock sets the clock of the ages (tests).
func withRevocationClock(now func() time.Time) RevocationOption {
	return func(r *Revocations) { r.now = now }
}

// NewRevocations returns a listener on the events channel of the feed
// prefix (redisfeed.Channel) that tells the evictors.
func NewRevocations(rdb redis.UniversalClient, prefix string, evictors []Evictor, opts ...RevocationOption) *Revocations {
	r := &Revocations{
		rdb: rdb, channel: redisfeed.Channel(prefix), evictors: evictors,
		live: DefaultLiveMaxAge, degraded: DefaultDegradedMaxAge, ping: revocationPing,
		log: slog.New(slog.DiscardHandler), onChange: func(bool) {}, now: time.Now,
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// MaxAge implements Freshness. Live, it is the live age, except that a
// read from before going live keeps the degraded age: a read younger than
// the time since then was made live, so the bound is the longer of that
// time and the degraded age, up to the live age.
func (r *Revocations) MaxAge() time.Duration {
	if !r.up.Load() {
		return r.degraded
	}
	sinceLive := time.Duration(r.now().UnixNano() - r.since.Load())
	return min(r.live, max(r.degraded, sinceLive))
}

// Live reports whether events are arriving: false means caches are on
// the degraded age, which health reports as degraded.
func (r *Revocations) Live() bool { return r.up.Load() }

// Run listens until ctx is done, subscribing again after each failure.
func (r *Revocations) Run(ctx context.Context) error {
	backoff := time.Second
	for {
		err := r.listen(ctx)
		r.setUp(false, err)
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, revocationMaxBackoff)
		if err == nil {
			backoff = time.Second
		}
	}
}

// listen subscribes and handles messages until the subscription fails. A
// subscription quiet for a ping interval is pinged; no answer within the
// next interval counts as a failure, so a paused Redis is noticed.
func (r *Revocations) listen(ctx context.Context) error {
	ps := r.rdb.Subscribe(ctx, r.channel)
	defer ps.Close()
	// A receive waits out its timeout whatever ctx says; closing the
	// subscription ends it at once.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, r.ping)
		var ne net.Error
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && errors.As(err, &ne) && ne.Timeout() && !pinged:
			if err := ps.Ping(ctx); err != nil {
				return err
			}
			pinged = true
			continue
		case err != nil:
			return err
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				r.setUp(true, nil)
			}
		case *redis.Message:
			r.handle(m.Payload)
		}
	}
}

// setUp records the subscription's state.
func (r *Revocations) setUp(up bool, cause error) {
	if up && !r.up.Load() {
		r.since.Store(r.now().UnixNano())
	}
	if r.up.Swap(up) != up {
		r.onChange(up)
		if up {
			r.log.Info("revocation events live: credentials cached up to " + r.live.String())
		} else {
			r.log.Warn("revocation events lost: credentials cached only "+r.degraded.String(), slog.Any("error", cause))
		}
	}
}

// knownEvents are the kinds the evictors act on.
var knownEvents = []identity.EventKind{identity.EventSessionsRevoked, identity.EventAPIKeysRevoked,
	identity.EventUserBanned, identity.EventUserDeleted, identity.EventUserChanged, identity.EventMemberRemoved,
	identity.EventMemberChanged, identity.EventOrgDeleted, identity.EventOrgChanged, identity.EventSessionChanged}

// handle applies one event. An event that does not decode, or of a kind
// this version does not know, purges everything: whatever it revoked is
// then read afresh.
func (r *Revocations) handle(payload string) {
	ev, err := redisfeed.DecodeEvent([]byte(payload))
	if err == nil && !slices.Contains(knownEvents, ev.Kind) {
		err = fmt.Errorf("unknown kind %q", ev.Kind)
	}
	if err != nil {
		r.log.Warn("a revocation event is not understood; purging every cached credential", slog.Any("error", err))
		for _, e := range r.evictors {
			e.Purge()
		}
		return
	}
	for _, e := range r.evictors {
		e.Evict(ev)
	}
}
