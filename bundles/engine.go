package bundles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// DefaultDecisionPath is the policy decision evaluated unless configured.
const DefaultDecisionPath = "data.mcpauthz.authz.decision"

// ErrUndefined is returned by Eval when the decision is undefined for the
// input, and ErrNoBundle when no bundle has been activated yet.
var (
	ErrUndefined = errors.New("decision undefined")
	ErrNoBundle  = errors.New("no policy bundle is active")
)

// NetworkBuiltins are the built-in functions a bundle may not call: policies
// stay pure, so `opa test` and `opa eval` judge them exactly as the sidecar
// does and a decision never waits on the network.
var NetworkBuiltins = []string{"http.send", "net.lookup_ip_addr"}

// Engine holds the active policy and evaluates decisions against it. A new
// bundle is compiled into an immutable Snapshot and swapped in atomically;
// evaluations in flight finish on the snapshot they started with, and a
// bundle that fails to compile never replaces the active one.
type Engine struct {
	path   ast.Ref
	pathS  string
	active atomic.Pointer[Snapshot]
	now    func() time.Time
	log    *slog.Logger

	cacheSize   int
	cacheCounts cacheCounts
	runTests    bool
	testLimit   time.Duration

	activating sync.Mutex // serializes activations
	mu         sync.Mutex // guards status, held briefly
	status     Status
}

// Status reports the engine's activation history, for health and metrics.
type Status struct {
	Revision    string
	Source      string
	ActivatedAt time.Time
	Activations int
	Failures    int
	LastError   string
	LastErrorAt time.Time
}

// Snapshot is one compiled bundle, immutable once built.
type Snapshot struct {
	Revision string
	Source   string
	compiler *ast.Compiler
	store    storage.Store
	query    ast.Body
	result   ast.Var
	input    *InputUse
	cache    *decisionCache // nil when decisions are not cached
}

// InputUse returns which parts of the input the snapshot's policy can read.
func (s *Snapshot) InputUse() *InputUse { return s.input }

// EngineOption configures an Engine.
type EngineOption func(*Engine)

// WithEngineLogger sets the operational logger (default: discard).
func WithEngineLogger(l *slog.Logger) EngineOption { return func(e *Engine) { e.log = l } }

// WithDecisionCache sets how many decisions a snapshot remembers (default
// DefaultDecisionCacheSize; 0 turns the cache off). Decisions are cached
// only for policies that call no clock-, randomness- or network-dependent
// builtin, keyed by the whole input the policy can read, and forgotten
// when a new bundle is activated.
func WithDecisionCache(size int) EngineOption { return func(e *Engine) { e.cacheSize = size } }

// WithBundleTests sets whether a bundle's own Rego tests (test_* rules)
// must pass before it is activated (default true), and the time each test
// may take (DefaultTestTimeout when zero). A bundle without tests activates
// either way.
func WithBundleTests(run bool, timeout time.Duration) EngineOption {
	return func(e *Engine) { e.runTests, e.testLimit = run, timeout }
}

// WithEngineClock sets the clock (default time.Now).
func WithEngineClock(now func() time.Time) EngineOption { return func(e *Engine) { e.now = now } }

// NewEngine returns an engine evaluating the decision at path, written as a
// Rego reference ("data.mcpauthz.authz.decision") or as a slash path
// ("mcpauthz/authz/decision", as OPA-Envoy's decision_path).
func NewEngine(path string, opts ...EngineOption) (*Engine, error) {
	ref, err := ParseDecisionPath(path)
	if err != nil {
		return nil, err
	}
	e := &Engine{path: ref, pathS: ref.String(), now: time.Now, log: slog.New(slog.DiscardHandler), cacheSize: DefaultDecisionCacheSize, runTests: true}
	for _, o := range opts {
		o(e)
	}
	return e, nil
}

// ParseDecisionPath turns a decision path into a reference under data.
func ParseDecisionPath(path string) (ast.Ref, error) {
	p := strings.TrimSpace(path)
	if p == "" {
		return nil, errors.New("decision path is empty")
	}
	if !strings.HasPrefix(p, "data.") && p != "data" {
		p = "data." + strings.ReplaceAll(strings.Trim(p, "/"), "/", ".")
	}
	ref, err := ast.ParseRef(p)
	if err != nil {
		return nil, fmt.Errorf("decision path %q: %w", path, err)
	}
	for _, t := range ref[1:] {
		if _, ok := t.Value.(ast.String); !ok {
			return nil, fmt.Errorf("decision path %q: only names are allowed, not %v", path, t)
		}
	}
	return ref, nil
}

// Path returns the decision path as a Rego reference.
func (e *Engine) Path() string { return e.pathS }

// Active returns the active snapshot, or nil before the first activation.
func (e *Engine) Active() *Snapshot { return e.active.Load() }

// Status returns the activation history.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status
}

// CacheStats reports the decision cache: whether the active snapshot
// remembers decisions, and the lookups of every snapshot so far.
func (e *Engine) CacheStats() CacheStats {
	snap := e.active.Load()
	return CacheStats{
		Enabled: snap != nil && snap.cache != nil,
		Hits:    e.cacheCounts.hits.Load(), Misses: e.cacheCounts.misses.Load(),
	}
}

// Load reads a bundle with load and activates it; a bundle that cannot be
// read counts as a failed activation, and the active policy is unchanged.
func (e *Engine) Load(ctx context.Context, source string, load func() (*bundle.Bundle, error)) error {
	b, err := load()
	if err != nil {
		e.mu.Lock()
		e.recordFailure(err)
		e.mu.Unlock()
		return err
	}
	return e.Activate(ctx, b, source)
}

func (e *Engine) recordFailure(err error) {
	e.status.Failures++
	e.status.LastError = err.Error()
	e.status.LastErrorAt = e.now()
}

// Activate compiles b and, if it compiles, defines the decision and passes
// its own Rego tests, makes it the active policy. On error the active
// policy is unchanged.
func (e *Engine) Activate(ctx context.Context, b *bundle.Bundle, source string) error {
	// Compiling and testing take a while: status stays readable meanwhile.
	e.activating.Lock()
	defer e.activating.Unlock()
	snap, err := e.compile(ctx, b, source)
	if err == nil && e.runTests {
		err = e.test(ctx, b, source)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		e.recordFailure(err)
		return err
	}
	e.active.Store(snap)
	e.status.Revision = snap.Revision
	e.status.Source = source
	e.status.ActivatedAt = e.now()
	e.status.Activations++
	e.log.LogAttrs(ctx, slog.LevelInfo, "policy bundle activated",
		slog.String("revision", snap.Revision), slog.String("source", source))
	return nil
}

func (e *Engine) compile(ctx context.Context, b *bundle.Bundle, source string) (*Snapshot, error) {
	modules := make(map[string]*ast.Module, len(b.Modules))
	for _, m := range b.Modules {
		if m.Parsed == nil {
			return nil, fmt.Errorf("bundle %s: module %s was not parsed", source, m.Path)
		}
		modules[m.Path] = m.Parsed
	}
	unsafe := make(map[string]struct{}, len(NetworkBuiltins))
	for _, name := range NetworkBuiltins {
		unsafe[name] = struct{}{}
	}
	c := ast.NewCompiler().
		WithUnsafeBuiltins(unsafe).
		WithEnablePrintStatements(false)
	if c.Compile(modules); c.Failed() {
		return nil, fmt.Errorf("bundle %s does not compile: %w", source, c.Errors)
	}

	data := b.Data
	if data == nil {
		data = map[string]any{}
	}
	store := inmem.NewFromObjectWithOpts(data,
		inmem.OptReturnASTValuesOnRead(true),
		inmem.OptRoundTripOnWrite(false))
	if err := e.checkDefined(ctx, c, store); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", source, err)
	}

	result := ast.Var("decision")
	query, err := c.QueryCompiler().Compile(ast.NewBody(ast.Equality.Expr(ast.NewTerm(result), ast.NewTerm(e.path))))
	if err != nil {
		return nil, fmt.Errorf("bundle %s: compiling the decision query: %w", source, err)
	}
	snap := &Snapshot{
		Revision: Revision(b),
		Source:   source,
		compiler: c,
		store:    store,
		query:    query,
		result:   result,
		input:    analyzeInputUse(c, store, e.path),
	}
	if e.cacheSize > 0 && pure(c) && worthCaching(snap.input) {
		snap.cache = newDecisionCache(e.cacheSize, &e.cacheCounts)
	}
	return snap, nil
}

// test runs the bundle's Rego tests; any failure rejects the bundle. While
// a bundle is active, requests are being decided: the tests then run one at
// a time, and after each the runner waits twice as long as it ran (the next
// test running meanwhile), so that they take about half of one CPU from
// the decisions rather than every CPU.
func (e *Engine) test(ctx context.Context, b *bundle.Bundle, source string) error {
	parallel, pace := 0, 0.0
	if e.active.Load() != nil {
		parallel, pace = 1, 2
	}
	report, err := runTests(ctx, b, e.testLimit, parallel, pace)
	if err != nil {
		return fmt.Errorf("bundle %s: %w", source, err)
	}
	if err := report.Err(); err != nil {
		return fmt.Errorf("bundle %s: %w", source, err)
	}
	return nil
}

// checkDefined makes sure the decision path names a rule or data in the
// bundle: a bundle that cannot answer would deny every request.
func (e *Engine) checkDefined(ctx context.Context, c *ast.Compiler, store storage.Store) error {
	if len(c.GetRulesWithPrefix(e.path)) > 0 || len(c.GetRules(e.path)) > 0 {
		return nil
	}
	path, err := storage.NewPathForRef(e.path)
	if err == nil {
		_, err = storage.ReadOne(ctx, store, path)
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("the decision %s is defined by no rule and no data", e.path)
}

type noBaseCache struct{}

func (noBaseCache) Get(ast.Ref) ast.Value  { return nil }
func (noBaseCache) Put(ast.Ref, ast.Value) {}

var noMetrics = metrics.NoOp()

// Eval evaluates the decision for input against the active snapshot. It
// returns ErrUndefined when the policy produces no decision.
func (e *Engine) Eval(ctx context.Context, input *ast.Term) (*ast.Term, *Snapshot, error) {
	snap := e.active.Load()
	if snap == nil {
		return nil, nil, ErrNoBundle
	}
	t, err := snap.Eval(ctx, input, e.now())
	return t, snap, err
}

// Cacheable reports whether the snapshot remembers decisions: its policy
// is pure (a function of input and data) and the cache is on.
func (s *Snapshot) Cacheable() bool { return s.cache != nil }

// Cached returns what Remember stored for key. The key must identify the
// whole input the policy reads: equal keys only for inputs the policy
// cannot tell apart (InputUse, Cuts).
func (s *Snapshot) Cached(key []byte) (any, bool) {
	if s.cache == nil {
		return nil, false
	}
	return s.cache.get(key)
}

// Remember stores a decision for key. The value must not change later.
func (s *Snapshot) Remember(key []byte, v any) {
	if s.cache != nil {
		s.cache.put(key, v)
	}
}

// Eval evaluates the decision for input at the given time.
func (s *Snapshot) Eval(ctx context.Context, input *ast.Term, now time.Time) (*ast.Term, error) {
	txn, err := s.store.NewTransaction(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening a read transaction: %w", err)
	}
	defer s.store.Abort(ctx, txn)

	cache := getRuleCache()
	defer putRuleCache(cache)
	cache.cancel.ctx = ctx

	var result *ast.Term
	n := 0
	err = topdown.NewQuery(s.query).
		WithCompiler(s.compiler).
		WithStore(s.store).
		WithTransaction(txn).
		WithInput(input).
		WithCancel(&cache.cancel).
		WithVirtualCache(cache).
		WithTime(now).
		WithMetrics(noMetrics).
		// The store returns AST values, so there is nothing to cache.
		WithBaseCache(noBaseCache{}).
		Iter(ctx, func(qr topdown.QueryResult) error {
			result = qr[s.result]
			n++
			return nil
		})
	switch {
	case err != nil:
		return nil, fmt.Errorf("evaluating the policy: %w", err)
	case n == 0 || result == nil:
		return nil, ErrUndefined
	case n > 1:
		return nil, fmt.Errorf("evaluating the policy: %d results for one decision", n)
	}
	return result, nil
}
