// Command soak holds mcpauthz under sustained load while its dependencies
// fail, and checks that it stays safe and answers in time.
//
// It runs everything on loopback in a temporary directory: a private
// redis-server and PostgreSQL cluster, a bundle server (in this process)
// serving the default policy signed, and the identity service and the
// sidecar built from ./cmd/mcpauthz (Postgres as identity store and quota
// usage store, Redis for credentials, revocation events and limits, JWTs
// from the identity service's JWK set, the remote bundle verified). It
// creates organizations, members, sessions and API keys through the
// identity API, measures the sidecar's capacity with a closed-loop gRPC
// client, then sends a mix of API keys, sessions, JWTs, anonymous and
// invalid credentials (MCP tools/call and tools/list) at a share of that
// capacity while, one phase after another, it revokes credentials, kills
// and restarts Redis, pauses and resumes Redis, stops and starts
// Postgres, serves a corrupt then an unsigned bundle, and waits for the
// identity service to rotate its signing key.
//
// At the end it prints the phases and a table of invariants, and exits 1
// if one fails: no panics; no allow for an invalid or anonymous caller or
// for a revoked credential past the revocation bound; every Check
// answered within the decision budget; no gRPC errors; one audit event per
// identity write that succeeded (and the audit chain intact); goroutines
// and live heap back to their idle baseline after the load, once a new
// bundle revision has released the decision cache; no bad bundle ever
// active.
//
//	go run ./bench/soak                  # about 10 minutes
//	go run ./bench/soak -duration 2m -out soak.json
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

type options struct {
	duration  time.Duration
	load      float64
	allowance time.Duration
	workers   int
	probers   int
	settle    time.Duration
	out       string
	keep      bool
	logLevel  string
	bin       string
}

func main() {
	var o options
	short := flag.Bool("short", false, "a smoke run: -duration 2m")
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "time under load: the capacity probe, steady load and the fault phases")
	flag.Float64Var(&o.load, "load", 0.7, "sustained rate as a share of the measured capacity")
	flag.DurationVar(&o.allowance, "allowance", 50*time.Millisecond, "transport allowance on top of the sidecar's decision timeout")
	flag.IntVar(&o.workers, "workers", 256, "most Checks in flight at the sustained rate")
	flag.IntVar(&o.probers, "c", 32, "concurrent clients of the capacity probe")
	flag.DurationVar(&o.settle, "settle", 150*time.Second, "longest wait for memory and goroutines to come back after the load (a forced GC comes within 2m)")
	flag.StringVar(&o.out, "out", "", "also write the report as JSON to this file")
	flag.StringVar(&o.bin, "bin", "", "an mcpauthz binary to run instead of building ./cmd/mcpauthz")
	flag.StringVar(&o.logLevel, "log-level", "info", "log level of the identity service and the sidecar")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (configurations, logs) even when every invariant holds")
	flag.Parse()
	if *short {
		o.duration = 2 * time.Minute
	}
	if o.duration < 90*time.Second {
		fmt.Fprintln(os.Stderr, "soak: -duration must be at least 90s")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ok, err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

// schedule is how the run's time is shared.
type schedule struct {
	capacity, steady, slot time.Duration
	// signingPeriod makes the identity service's next signing key take
	// over during the last phase.
	signingPeriod time.Duration
}

// setupAllowance is roughly the time from the identity service's start to
// the load's: migrations, the sidecar's first bundle, the fixtures.
const setupAllowance = 25 * time.Second

func plan(d time.Duration) schedule {
	s := schedule{
		capacity: min(max(d/30, 8*time.Second), 20*time.Second),
		steady:   min(max(d/15, 10*time.Second), 40*time.Second),
	}
	s.slot = max((d-s.capacity-s.steady)/time.Duration(len(faults)), 15*time.Second)
	// A successor key signs from between period−ttl and period after the
	// first key, so this puts the switch early in the last phase.
	lastPhase := setupAllowance + s.capacity + s.steady + time.Duration(len(faults)-1)*s.slot
	s.signingPeriod = max(2*tokenTTL+publishAhead+10*time.Second, lastPhase+tokenTTL)
	return s
}

func run(ctx context.Context, o options) (ok bool, err error) {
	root, err := repoRoot()
	if err != nil {
		return false, err
	}
	work, err := os.MkdirTemp("", "mcpauthz-soak-")
	if err != nil {
		return false, err
	}
	// The postgres user must reach its directory inside.
	if err := os.Chmod(work, 0o711); err != nil {
		return false, err
	}
	defer func() {
		if ok && !o.keep {
			os.RemoveAll(work)
			return
		}
		fmt.Println("work directory kept:", work)
	}()
	sch := plan(o.duration)
	fmt.Printf("soak: %s under load (capacity probe %s, steady %s, %d fault phases of %s), work directory %s\n",
		o.duration, sch.capacity, sch.steady, len(faults), sch.slot.Round(time.Second), work)

	st := &stack{work: work}
	defer st.stop()
	if err := st.start(ctx, root, o.bin, sch.signingPeriod, o.logLevel); err != nil {
		return false, err
	}
	ids := newIDClient(st.identityAddr)
	fmt.Println("creating organizations, members, sessions and API keys …")
	fix, err := setup(ctx, ids, st)
	if err != nil {
		return false, fmt.Errorf("setting up the identity fixtures: %w (last API error: %s)", err, ids.lastErr)
	}
	m, err := buildMix(ctx, ids, fix, "http://"+st.identityAddr)
	if err != nil {
		return false, err
	}
	rec := newRecorder()
	rec.know(m)
	gen, err := newGenerator(st.grpcAddr, 4, m, rec)
	if err != nil {
		return false, err
	}
	defer gen.close()
	if err := gen.preflight(ctx); err != nil {
		return false, err
	}
	idle, err := readBaseline(st)
	if err != nil {
		return false, err
	}

	rep := &report{Duration: o.duration.String(), Budget: toMS(decisionTimeout + o.allowance), Allowance: toMS(o.allowance), WorkDir: work}
	env := &faultEnv{st: st, ids: ids, fix: fix, mix: m, rec: rec, sch: sch, watch: newBundleWatch(st)}
	if err := drive(ctx, o, env, gen, rep); err != nil {
		return false, err
	}
	fmt.Println("load stopped; releasing the decision cache and waiting for memory and goroutines to settle …")
	if rep.Memory, err = settle(ctx, st, idle, o.settle); err != nil {
		rep.MemoryErr = err.Error()
	}
	rep.Latencies = rec.finish()
	rep.check(ctx, st, rec, ids, env.watch)
	st.stop()
	rep.print(os.Stdout)
	if o.out != "" {
		if err := rep.writeJSON(o.out); err != nil {
			return false, err
		}
	}
	return rep.ok(), nil
}

// drive measures the capacity, then holds the sustained load through the
// steady phase and every fault, with the identity writes, the JWT renewals
// and the bundle watch running alongside.
func drive(ctx context.Context, o options, env *faultEnv, gen *generator, rep *report) error {
	st, rec := env.st, env.rec
	background := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() { keepFresh(ctx, env.ids, env.mix.holders, background) })
	bg.Go(func() { churn(ctx, env.ids, env.fix, background) })
	bg.Go(func() { env.watch.run(ctx, background) })
	defer func() {
		close(background)
		bg.Wait()
		env.ids.http.CloseIdleConnections()
	}()

	loadStart := loadAverage()
	rec.begin("capacity", fmt.Sprintf("closed loop, %d clients", o.probers), false)
	rep.CapacityRPS = gen.closedLoop(ctx, o.probers, env.sch.capacity)
	rep.TargetRPS = rep.CapacityRPS * o.load
	fmt.Printf("capacity %.0f checks/s; holding %.0f/s (%.0f%%)\n", rep.CapacityRPS, rep.TargetRPS, 100*o.load)

	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	go func() { gen.openLoop(ctx, rep.TargetRPS, o.workers, stopLoad); close(loadDone) }()
	before, _ := metrics(st.sidecarAdm)
	p := rec.begin("steady", "no fault", true)
	sleep(ctx, env.sch.steady)
	sampleSidecar(st, p)
	for _, f := range faults {
		if ctx.Err() != nil {
			break
		}
		fmt.Printf("phase %s …\n", f.name)
		p := rec.begin(f.name, f.what, true)
		if err := f.run(ctx, env); err != nil {
			rec.note("fault injection failed: " + err.Error())
			fmt.Fprintf(os.Stderr, "soak: phase %s: %v\n", f.name, err)
		}
		sampleSidecar(st, p)
	}
	close(stopLoad)
	<-loadDone
	rec.end()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if after, err := metrics(st.sidecarAdm); err == nil && before != nil {
		n0, _ := slowDecisions(before, decisionTimeout)
		n1, bound := slowDecisions(after, decisionTimeout)
		rep.ServerSlow, rep.ServerBound = n1-n0, toMS(time.Duration(bound*float64(time.Second)))
	}
	rep.Skipped = gen.skipped.Load()
	rep.Machine = fmt.Sprintf("%d CPUs; load average %s as the load started, %s as it stopped (other work on the machine included)",
		runtime.NumCPU(), loadStart, loadAverage())
	return nil
}

// sampleSidecar records the sidecar's memory and goroutines at the end of
// a phase.
func sampleSidecar(st *stack, p *phase) {
	if s, err := readSample(st.sidecarAdm); err == nil {
		p.Sidecar = &s
	}
}

// loadAverage is the machine's one-minute load average.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// next waits for the ticker's next tick and returns its time; ok is false
// once ctx is done or stop is closed.
func next(ctx context.Context, stop <-chan struct{}, t *time.Ticker) (now time.Time, ok bool) {
	select {
	case <-ctx.Done():
		return time.Time{}, false
	case <-stop:
		return time.Time{}, false
	case now = <-t.C:
		return now, true
	}
}
