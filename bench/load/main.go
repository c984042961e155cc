// Command load measures mcpauthz over loopback gRPC against no-op
// ext_authz servers in the same run, with the default bundle's policy and
// real identities. It builds the servers, creates principals in an
// identity store, runs the identity service and a Redis of its own,
// drives each target with ghz (pinned to v0.120.0) sending MCP tools/call
// CheckRequests, reads each server's CPU time from /proc and its
// decisions from its metrics, and prints throughput, latency, server and
// client CPU per request, peak RSS and the ratios mcpauthz / no-op.
//
// Targets:
//
//   - noop answers every check with an empty OK: the gRPC layer alone.
//     noop-answer answers with the response mcpauthz gives (its identity
//     headers and dynamic metadata): the same bytes on the wire. Both get
//     the api_key requests.
//   - <method>/<limiter>: mcpauthz with the default bundle's Rego and its
//     data with every limit and quota raised (see limitScale), so every
//     request is allowed and every limit and quota is still taken. The
//     method is the credential every request carries: api_key, jwt,
//     session-cookie (the signed session cache cookie) or session-redis
//     (the session read from the identity service's Redis). The limiter
//     is mem (in process) or redis (limits.redis). The sidecar's metrics
//     must show every decision an allow (but for a few past the 100 ms
//     budget: maxLate) and the credential and limits read where the
//     target says (minOnPath, minInRedis), or the run fails.
//
// A keys phase then runs a sidecar whose store holds N API keys, for each
// N of -keys: it verifies every key once, then reports the Check latency
// over a sample of them and the sidecar's memory.
//
//	go run ./bench/load -duration 15s -rounds 3
//	go run ./bench/load -duration 2s -warmup 1s -rounds 1 -targets noop,api_key/mem -keys 1000
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/mcpauthz/mcpauthz/bench/loadfile"
)

// defaultGOGC is mcpauthz's default garbage collector setting; every server
// in the run gets the same one.
const defaultGOGC = 400

type options struct {
	duration, warmup time.Duration
	concurrency      int
	connections      int
	rounds           int
	variants         int
	ghz              string
	out              string
	gogc             string
	targets          string
	keys             []int
	keysDuration     time.Duration
}

func main() {
	var o options
	keys := "1,1000,10000,100000"
	flag.DurationVar(&o.duration, "duration", 15*time.Second,
		"measured load per target and round: as many requests as the warm-up's rate sends in this time, so none is cut off")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "unmeasured load before each measurement")
	flag.IntVar(&o.concurrency, "c", 50, "concurrent ghz workers")
	flag.IntVar(&o.connections, "connections", 2, "gRPC connections (Envoy opens one per worker thread)")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every target, the median round is reported")
	flag.IntVar(&o.variants, "variants", 64, "distinct requests in the mix, sent round-robin")
	flag.StringVar(&o.ghz, "ghz", "", "ghz binary (default: go install "+ghzModule+")")
	flag.StringVar(&o.out, "out", "", "also write the results as JSON to this file")
	flag.StringVar(&o.gogc, "gogc", strconv.Itoa(defaultGOGC), "GOGC for every server")
	flag.StringVar(&o.targets, "targets", "all", "comma-separated targets: noop, noop-answer, <method>/<limiter> for the methods "+
		strings.Join(methods, ", ")+" and the limiters "+strings.Join(limiters, ", ")+" (a method alone names both), all, or none")
	flag.StringVar(&keys, "keys", keys, "comma-separated numbers of API keys for the keys phase; empty skips it")
	flag.DurationVar(&o.keysDuration, "keys-duration", 5*time.Second, "latency run of the keys phase, per number of keys")
	flag.Parse()
	var err error
	if o.keys, err = parseKeys(keys); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func parseKeys(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-keys: %q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// bench is the run's environment: the built servers, the identity store,
// the identity service and Redis.
type bench struct {
	o               options
	tmp             string
	noopBin, mcpBin string
	template        []byte // bench/rbac/checkrequest.json
	bundle          string // the default bundle with its limits raised
	store           string // the identity store of the targets
	auditKey        []byte
	sessionCacheKey string // the signed session cache's key file
	answer          string // noop-answer's response
	ids             *identities
	redis           *redisServer
	identity        identityService
}

func run(o options) error {
	targets, err := selectTargets(o.targets)
	if err != nil {
		return err
	}
	if err := checkOptions(o, targets); err != nil {
		return err
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mcpauthz-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	b := &bench{o: o, tmp: tmp}
	if b.template, err = os.ReadFile(filepath.Join(root, "bench/rbac/checkrequest.json")); err != nil {
		return err
	}

	if err := b.build(root); err != nil {
		return err
	}
	ghzVer, err := ghzVersionOf(b.o.ghz)
	if err != nil {
		return err
	}

	ctx := context.Background()
	if err := b.setup(ctx); err != nil {
		return err
	}
	defer b.close()

	out := loadfile.File{Targets: []loadfile.Target{}, Keys: []loadfile.KeysRow{}, Meta: loadfile.Meta{
		Duration: o.duration, Warmup: o.warmup, Rounds: o.rounds, Concurrency: o.concurrency,
		Connections: o.connections, Variants: o.variants, GOGC: o.gogc, GHZ: ghzVer,
		CPUs: runtime.NumCPU(), Go: runtime.Version(),
	}}
	if len(targets) > 0 {
		ts, err := b.measureTargets(targets)
		if err != nil {
			return err
		}
		printTargets(o, ts)
		for _, t := range ts {
			out.Targets = append(out.Targets, t.Target)
		}
	}
	for _, n := range o.keys {
		fmt.Printf("\nkeys phase: %d API keys …\n", n)
		r, err := b.measureKeys(ctx, n)
		if err != nil {
			return fmt.Errorf("keys phase, %d keys: %w", n, err)
		}
		printKeys(r)
		out.Keys = append(out.Keys, r.KeysRow)
	}
	if o.out != "" {
		j, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.out, append(j, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// build builds the servers and, unless -ghz names one, installs ghz.
func (b *bench) build(root string) error {
	fmt.Println("building mcpauthz and the no-op server …")
	b.noopBin, b.mcpBin = filepath.Join(b.tmp, "noopauthz"), filepath.Join(b.tmp, "mcpauthz")
	if err := gobuild(root, b.noopBin, "./bench/noopauthz"); err != nil {
		return err
	}
	if err := gobuild(root, b.mcpBin, "./cmd/mcpauthz"); err != nil {
		return err
	}
	if b.o.ghz != "" {
		return nil
	}
	fmt.Println("installing", ghzModule, "…")
	gobin := filepath.Join(b.tmp, "gobin")
	cmd := exec.Command("go", "install", ghzModule)
	cmd.Env = append(os.Environ(), "GOBIN="+gobin)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("installing ghz: %w", err)
	}
	b.o.ghz = filepath.Join(gobin, "ghz")
	return nil
}

// checkOptions refuses settings under which a target would not measure
// what it names.
func checkOptions(o options, targets []target) error {
	for _, t := range targets {
		switch {
		case t.method == "session-cookie" && o.warmup+o.duration > sessionCacheMaxAge-time.Minute:
			return fmt.Errorf("session-cookie: -warmup plus -duration must stay under %s, the cache cookies' max age less a minute",
				sessionCacheMaxAge-time.Minute)
		case t.method == "session-redis" && o.variants < 2*principals:
			return fmt.Errorf("session-redis: -variants must be at least %d, twice the sessions the sidecar's memory holds", 2*principals)
		}
	}
	return nil
}

// setup writes the bundle and the keys, creates the identities, and
// starts Redis and the identity service.
func (b *bench) setup(ctx context.Context) error {
	b.bundle = filepath.Join(b.tmp, "bundle")
	if err := writeBundle(b.bundle); err != nil {
		return err
	}
	var err error
	auditKey, kek := filepath.Join(b.tmp, "audit.key"), filepath.Join(b.tmp, "kek")
	b.sessionCacheKey = filepath.Join(b.tmp, "session-cache.key")
	if b.auditKey, err = writeKey(auditKey); err != nil {
		return err
	}
	if _, err := writeKey(kek); err != nil {
		return err
	}
	if _, err := writeKey(b.sessionCacheKey); err != nil {
		return err
	}
	fmt.Println("creating users, organizations, API keys and sessions …")
	b.store = filepath.Join(b.tmp, "identity.db")
	if b.ids, err = seedIdentities(ctx, b.store, b.auditKey, true); err != nil {
		return fmt.Errorf("identities: %w", err)
	}
	redisDir := filepath.Join(b.tmp, "redis")
	if err := os.Mkdir(redisDir, 0o700); err != nil {
		return err
	}
	if b.redis, err = startRedis(redisDir); err != nil {
		return err
	}
	b.identity, err = startIdentity(b.o, b.mcpBin, filepath.Join(b.tmp, "identity.yaml"), b.store, auditKey, kek, b.redis.url)
	if err != nil {
		b.redis.stop()
		return err
	}
	return nil
}

func (b *bench) close() {
	b.identity.stop()
	b.redis.stop()
}

// offPathTries bounds the measurements of a target in a round that took
// another path than the one it names.
const offPathTries = 3

// measureTargets runs every target in each round and returns them with
// their rounds and median round.
func (b *bench) measureTargets(targets []target) ([]targetReport, error) {
	if slices.ContainsFunc(targets, func(t target) bool { return t.name == "noop-answer" }) {
		if err := b.captureAnswer(); err != nil {
			return nil, fmt.Errorf("capturing mcpauthz's answer: %w", err)
		}
	}
	rounds := make([][]result, len(targets))
	for round := 1; round <= b.o.rounds; round++ {
		for i, t := range targets {
			r, err := b.measure(t)
			// A measurement of another path than the target's is made
			// again: on a busy machine a Redis stall beyond limits.timeout
			// (20 ms) sends decisions to the in-process fallback until
			// Redis answers again, and a descheduled request finds its
			// session still in memory. Denials are never retried.
			for try := 2; errors.Is(err, errOffPath) && try <= offPathTries; try++ {
				fmt.Printf("round %d  %-20s measured again: %v\n", round, t.name, err)
				r, err = b.measure(t)
			}
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", round, t.name, err)
			}
			fmt.Printf("round %d  %-20s %8.0f req/s  p50 %8s  p99 %8s  p99.9 %8s  cpu/req %7s  ghz cpu/req %7s  errors %d\n",
				round, t.name, r.RPS, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.P999.Round(time.Microsecond),
				r.CPUPerReq.Round(100*time.Nanosecond), r.ClientCPU.Round(100*time.Nanosecond), r.Errors)
			rounds[i] = append(rounds[i], r)
		}
	}
	out := make([]targetReport, len(targets))
	for i, t := range targets {
		med := median(rounds[i])
		note := t.note
		if med.path != "" {
			note += "; measured: " + med.path
		}
		kept := make([]loadfile.Round, len(rounds[i]))
		for j, r := range rounds[i] {
			kept[j] = r.Round
		}
		out[i] = targetReport{Target: loadfile.Target{Name: t.name, Method: t.method, Limiter: t.limiter, Note: note,
			Rounds: kept, Median: med.Round}, redisCPU: med.redisCPU}
	}
	return out, nil
}

// captureAnswer keeps api_key/mem's answer to the first api_key request
// for noop-answer.
func (b *bench) captureAnswer() error {
	t := target{name: "api_key/mem", method: "api_key", limiter: "mem"}
	srv, err := b.startTarget(t)
	if err != nil {
		return err
	}
	defer srv.stop()
	mix, err := b.mix(t, srv.addr)
	if err != nil {
		return err
	}
	resps, err := allowAll(srv.addr, mix[:1], answerWait)
	if err != nil {
		return err
	}
	answer, err := protojson.Marshal(resps[0])
	if err != nil {
		return err
	}
	b.answer = filepath.Join(b.tmp, "answer.json")
	return os.WriteFile(b.answer, answer, 0o600)
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func gobuild(dir, out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}
