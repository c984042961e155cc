package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"time"
)

// faultEnv is what the fault phases act on.
type faultEnv struct {
	st    *stack
	ids   *idClient
	fix   *fixture
	mix   *mix
	rec   *recorder
	sch   schedule
	watch *bundleWatch
}

// hold is how long a fault lasts within its phase; the rest of the phase
// is recovery.
func (e *faultEnv) hold() time.Duration { return max(e.sch.slot*2/5, 5*time.Second) }

// fault is one phase: it injects, holds, repairs and lets the services
// recover, within about one slot.
type fault struct {
	name, what string
	run        func(ctx context.Context, e *faultEnv) error
}

// faults run in this order. Revocation comes first, so the revoked
// credentials are sent through every later fault too.
var faults = []fault{
	{"revocation", "sessions and API keys revoked through the identity API", revoke},
	{"redis-kill", "Redis killed (SIGKILL, nothing persisted) and restarted", redisKill},
	{"redis-pause", "Redis paused (SIGSTOP) and resumed (SIGCONT)", redisPause},
	{"postgres-stop", "PostgreSQL stopped (fast shutdown) and started", postgresStop},
	{"bundle", "the bundle server sends a corrupt, then an unsigned bundle, then a new signed one", badBundles},
	{"jwks-rotation", "the identity service's next signing key takes over", jwksRotation},
}

// until waits for cond, polling, up to d; it reports how long it took.
func until(ctx context.Context, d time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > d || ctx.Err() != nil {
			return time.Since(start), false
		}
		sleep(ctx, 200*time.Millisecond)
	}
}

// recovered notes how long the sidecar took to report itself whole again
// after a repair, and waits out the rest of the phase.
func (e *faultEnv) recovered(ctx context.Context, phaseStart time.Time, what string, cond func(readiness) bool) {
	took, ok := until(ctx, e.sch.slot, func() bool {
		r, err := e.st.readyz()
		return err == nil && cond(r)
	})
	if ok {
		e.rec.note(fmt.Sprintf("%s %s after the repair", what, took.Round(100*time.Millisecond)))
	} else {
		e.rec.note(fmt.Sprintf("%s: not within %s of the repair", what, took.Round(time.Second)))
	}
	sleep(ctx, time.Until(phaseStart.Add(e.sch.slot)))
}

func revoke(ctx context.Context, e *faultEnv) error {
	start := time.Now()
	// Revocations are announced to sidecars that hear the events.
	if _, ok := until(ctx, 10*time.Second, func() bool {
		r, err := e.st.readyz()
		return err == nil && r.Revocations == "live"
	}); !ok {
		e.rec.note("the revocation events were not live before revoking")
	}
	byName := map[string]*victim{}
	for _, v := range e.mix.victims {
		byName[v.name] = v
	}
	var failed []string
	for i, s := range e.fix.victimSessions {
		if err := e.ids.revokeSession(ctx, e.fix.revokers[i], s); err != nil {
			failed = append(failed, err.Error())
			continue
		}
		byName["session "+s.id].revokedAt.Store(time.Now().UnixNano())
	}
	for i, k := range e.fix.victimKeys {
		if err := e.ids.revokeKey(ctx, e.fix.victimKeyOrgs[i].owner, k); err != nil {
			failed = append(failed, err.Error())
			continue
		}
		byName["key "+k.id].revokedAt.Store(time.Now().UnixNano())
	}
	e.rec.note(fmt.Sprintf("%d sessions and %d API keys revoked", len(e.fix.victimSessions), len(e.fix.victimKeys)))
	sleep(ctx, time.Until(start.Add(e.sch.slot)))
	if len(failed) > 0 {
		return fmt.Errorf("revocations failed: %v", failed)
	}
	return nil
}

// whole is a sidecar back on shared limits and live revocation events.
func whole(r readiness) bool { return r.Limits.State == "shared" && r.Revocations == "live" }

func redisKill(ctx context.Context, e *faultEnv) error {
	start := time.Now()
	e.st.redis.kill()
	sleep(ctx, e.hold())
	if err := e.st.redis.start(ctx); err != nil {
		return fmt.Errorf("restarting Redis: %w", err)
	}
	e.recovered(ctx, start, "limits shared and revocation events live", whole)
	return nil
}

func redisPause(ctx context.Context, e *faultEnv) error {
	start := time.Now()
	if err := e.st.redis.proc.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	sleep(ctx, e.hold())
	if err := e.st.redis.proc.signal(syscall.SIGCONT); err != nil {
		return err
	}
	e.recovered(ctx, start, "limits shared and revocation events live", whole)
	return nil
}

func postgresStop(ctx context.Context, e *faultEnv) error {
	start := time.Now()
	if err := e.st.pg.stop(ctx); err != nil {
		return err
	}
	sleep(ctx, e.hold())
	if err := e.st.pg.start(ctx); err != nil {
		return fmt.Errorf("starting PostgreSQL again: %w", err)
	}
	e.recovered(ctx, start, "identity store reachable", func(r readiness) bool { return r.Store == "ok" })
	return nil
}

// badBundles serves each bad bundle until the sidecar has fetched it
// twice, then a new good one, and waits for the sidecar to take it. The
// watch checks the active revision all along.
func badBundles(ctx context.Context, e *faultEnv) error {
	start := time.Now()
	defer sleep(ctx, time.Until(start.Add(e.sch.slot)))
	b := e.st.bundles
	for _, variant := range []string{bundleCorrupt, bundleUnsigned} {
		b.use(variant)
		// Failed fetches back off: 1s, 2s, 4s, …
		took, ok := until(ctx, e.sch.slot, func() bool { return b.servedCount(variant) >= 2 })
		e.rec.note(fmt.Sprintf("%s bundle fetched %d times in %s", variant, b.servedCount(variant), took.Round(100*time.Millisecond)))
		if !ok {
			b.use(bundleGood)
			return fmt.Errorf("the sidecar did not fetch the %s bundle", variant)
		}
	}
	b.use(bundleGood2)
	took, ok := until(ctx, 2*e.sch.slot, func() bool {
		r, err := e.st.readyz()
		return err == nil && r.Policy.Revision == revGood2
	})
	if !ok {
		return fmt.Errorf("the sidecar did not activate the new signed bundle within %s", took.Round(time.Second))
	}
	e.rec.note(fmt.Sprintf("new signed bundle %s active %s after it was served, %s into the phase", revGood2,
		took.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond)))
	return nil
}

// jwksRotation waits for the identity service's tokens to be signed by a
// new key, then lets the load run on them.
func jwksRotation(ctx context.Context, e *faultEnv) error {
	start := time.Now()
	first := map[string]bool{}
	for _, h := range e.mix.holders {
		first[h.current().kid] = true
	}
	// The successor signs at the latest one signing period after the
	// identity service started, plus a key check and token refresh.
	deadline := time.Until(e.st.startedIdentity.Add(e.sch.signingPeriod + time.Minute + tokenTTL))
	took, ok := until(ctx, max(deadline, 0), func() bool {
		for _, h := range e.mix.holders {
			if h.victim == nil && !first[h.current().kid] {
				return true
			}
		}
		return false
	})
	if !ok {
		sleep(ctx, time.Until(start.Add(e.sch.slot)))
		return fmt.Errorf("no token signed by a new key within %s", took.Round(time.Second))
	}
	e.rec.note(fmt.Sprintf("tokens signed by a new key %s into the phase", took.Round(100*time.Millisecond)))
	// Every JWT of the mix moves to the new key within a refresh period.
	sleep(ctx, max(time.Until(start.Add(e.sch.slot)), tokenTTL))
	for kid, c := range e.rec.jwtCounts() {
		if !first[kid] {
			e.rec.note(fmt.Sprintf("JWTs signed by the new key %s: %d sent, %d allowed, denied %s",
				kid, c.Requests, c.Allows, statusList(c.Denies)))
		}
	}
	return nil
}

// bundleWatch records every revision the sidecar reports as active.
type bundleWatch struct {
	st   *stack
	mu   sync.Mutex
	seen []string
}

func newBundleWatch(st *stack) *bundleWatch { return &bundleWatch{st: st} }

func (w *bundleWatch) run(ctx context.Context, stop <-chan struct{}) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		if _, ok := next(ctx, stop, t); !ok {
			return
		}
		r, err := w.st.readyz()
		if err != nil || r.Policy.Revision == "" {
			continue
		}
		w.mu.Lock()
		if !slices.Contains(w.seen, r.Policy.Revision) {
			w.seen = append(w.seen, r.Policy.Revision)
		}
		w.mu.Unlock()
	}
}

func (w *bundleWatch) revisions() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seen)
}
