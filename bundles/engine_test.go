package bundles_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/mcpauthz/mcpauthz/bundles"
)

// loadFS reads a bundle from in-memory files, as the embedded bundle is read.
func loadFS(tb testing.TB, files map[string]string) *bundle.Bundle {
	tb.Helper()
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	b, err := bundles.LoadFS(fsys)
	if err != nil {
		tb.Fatalf("LoadFS: %v", err)
	}
	return b
}

func newEngine(tb testing.TB) *bundles.Engine {
	tb.Helper()
	e, err := bundles.NewEngine(bundles.DefaultDecisionPath)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func activate(tb testing.TB, e *bundles.Engine, files map[string]string) {
	tb.Helper()
	if err := e.Activate(context.Background(), loadFS(tb, files), "test"); err != nil {
		tb.Fatalf("Activate: %v", err)
	}
}

func input(tb testing.TB, v any) *ast.Term {
	tb.Helper()
	val, err := ast.InterfaceToValue(v)
	if err != nil {
		tb.Fatal(err)
	}
	return ast.NewTerm(val)
}

// decide evaluates the decision and returns it in Rego's text form.
func decide(tb testing.TB, e *bundles.Engine, in any) string {
	tb.Helper()
	t, _, err := e.Eval(context.Background(), input(tb, in))
	if err != nil {
		tb.Fatalf("Eval: %v", err)
	}
	return t.String()
}

const roleRego = `package mcpauthz.authz

default decision := {"allowed": false, "http_status": 403}

decision := {"allowed": true} if input.role in data.roles.allowed
`

const roleData = `{"roles": {"allowed": ["admin", "member"]}}`

func TestParseDecisionPath(t *testing.T) {
	tests := []struct {
		name, path, want string
	}{
		{"ok/rego reference", "data.mcpauthz.authz.decision", "data.mcpauthz.authz.decision"},
		{"ok/slash path", "mcpauthz/authz/decision", "data.mcpauthz.authz.decision"},
		{"ok/opa-envoy decision_path", "envoy/authz/allow", "data.envoy.authz.allow"},
		{"ok/slash path with leading and trailing slashes", "/envoy/authz/allow/", "data.envoy.authz.allow"},
		{"ok/surrounding space", "  data.envoy.authz.allow\n", "data.envoy.authz.allow"},
		{"ok/string key in brackets", `data.envoy["authz"].allow`, "data.envoy.authz.allow"},
		{"fail/empty", "", ""},
		{"fail/blank", "   ", ""},
		{"fail/variable key", "data.x[y]", ""},
		{"fail/wildcard key", "data.x[_]", ""},
		{"fail/number key", "data.x[1]", ""},
		{"fail/not a reference", "data.x y", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref, err := bundles.ParseDecisionPath(tt.path)
			e, eerr := bundles.NewEngine(tt.path)
			if strings.HasPrefix(tt.name, "fail/") {
				if err == nil || eerr == nil {
					t.Fatalf("ParseDecisionPath(%q) = %v, %v; NewEngine err = %v; want errors", tt.path, ref, err, eerr)
				}
				return
			}
			if err != nil || eerr != nil {
				t.Fatalf("ParseDecisionPath(%q): %v; NewEngine: %v", tt.path, err, eerr)
			}
			if got := ref.String(); got != tt.want {
				t.Errorf("ParseDecisionPath(%q) = %s, want %s", tt.path, got, tt.want)
			}
			if got := e.Path(); got != tt.want {
				t.Errorf("NewEngine(%q).Path() = %s, want %s", tt.path, got, tt.want)
			}
		})
	}
}

func TestEngineActivate(t *testing.T) {
	good := map[string]string{"authz.rego": roleRego, "data.json": roleData}
	tests := []struct {
		name  string
		files map[string]string
		// ok: the decision for {"role": "viewer"}; fail: a word the error names.
		want string
	}{
		{"ok/rule defines the decision", map[string]string{"authz.rego": `package mcpauthz.authz

decision := {"allowed": input.role == "viewer", "via": "rule"}
`}, `{"allowed": true, "via": "rule"}`},
		{"ok/data.json alone defines the decision", map[string]string{
			"data.json": `{"mcpauthz": {"authz": {"decision": {"allowed": true, "via": "data"}}}}`,
		}, `{"allowed": true, "via": "data"}`},
		{"ok/decision in a subpackage layout", map[string]string{
			"mcpauthz/authz/policy.rego": "package mcpauthz.authz\n\ndecision := true if input.role == \"viewer\"\n",
		}, "true"},
		{"fail/unsafe variable does not compile", map[string]string{"authz.rego": `package mcpauthz.authz

decision := x if input.role == y
`}, "unsafe"},
		{"fail/unknown function does not compile", map[string]string{"authz.rego": `package mcpauthz.authz

decision := lookup_role(input.role)
`}, "lookup_role"},
		{"fail/no rule and no data at the decision path", map[string]string{"authz.rego": `package envoy.authz

allow := true
`, "data.json": `{"mcpauthz": {"authz": {"other": true}}}`}, "defined by no rule and no data"},
		{"fail/http.send is not allowed", map[string]string{"authz.rego": `package mcpauthz.authz

decision := http.send({"method": "GET", "url": "https://opa.example/allow"}).body
`}, "http.send"},
		{"fail/net.lookup_ip_addr is not allowed", map[string]string{"authz.rego": `package mcpauthz.authz

decision if "10.0.0.1" in net.lookup_ip_addr("internal.example")
`}, "net.lookup_ip_addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEngine(t)
			activate(t, e, good)
			before := e.Status()
			if before.Activations != 1 || before.Failures != 0 || !strings.HasPrefix(before.Revision, "sha256:") {
				t.Fatalf("status after the first activation: %+v", before)
			}
			snapBefore := e.Active()

			err := e.Activate(ctx, loadFS(t, tt.files), "candidate")
			after := e.Status()
			if strings.HasPrefix(tt.name, "ok/") {
				if err != nil {
					t.Fatalf("Activate: %v", err)
				}
				if after.Activations != 2 || after.Source != "candidate" || after.Revision == before.Revision {
					t.Errorf("status after a good activation: %+v (before %+v)", after, before)
				}
				if got := decide(t, e, map[string]any{"role": "viewer"}); got != tt.want {
					t.Errorf("decision = %s, want %s", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatal("Activate accepted a bad bundle")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name %q", err, tt.want)
			}
			if e.Active() != snapBefore {
				t.Error("the active snapshot changed")
			}
			if after.Revision != before.Revision || after.Source != "test" || after.Activations != 1 {
				t.Errorf("status changed: %+v, was %+v", after, before)
			}
			if after.Failures != before.Failures+1 || after.LastError != err.Error() || after.LastErrorAt.IsZero() {
				t.Errorf("failure not recorded: %+v (error %v)", after, err)
			}
			// The previous policy still decides.
			if got := decide(t, e, map[string]any{"role": "admin"}); got != `{"allowed": true}` {
				t.Errorf("decision for admin = %s", got)
			}
			if got := decide(t, e, map[string]any{"role": "viewer"}); got != `{"allowed": false, "http_status": 403}` {
				t.Errorf("decision for viewer = %s", got)
			}
		})
	}
}

func TestEngineLoadRecordsReadFailures(t *testing.T) {
	e := newEngine(t)
	activate(t, e, map[string]string{"authz.rego": roleRego, "data.json": roleData})
	readErr := errors.New("bundle server returned 500")
	err := e.Load(context.Background(), "https://bundles.example/authz.tar.gz", func() (*bundle.Bundle, error) { return nil, readErr })
	if !errors.Is(err, readErr) {
		t.Fatalf("Load: %v, want %v", err, readErr)
	}
	if st := e.Status(); st.Failures != 1 || st.Activations != 1 || st.LastError != readErr.Error() {
		t.Errorf("status: %+v", st)
	}
}

func TestEngineEvalErrors(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t)
	if _, snap, err := e.Eval(ctx, input(t, map[string]any{})); !errors.Is(err, bundles.ErrNoBundle) || snap != nil {
		t.Fatalf("Eval before any bundle: %v, %v; want ErrNoBundle", snap, err)
	}
	activate(t, e, map[string]string{"authz.rego": `package mcpauthz.authz

decision := {"allowed": true} if input.attributes.request.http.method == "GET"
`})
	_, snap, err := e.Eval(ctx, input(t, map[string]any{"attributes": map[string]any{"request": map[string]any{"http": map[string]any{"method": "POST"}}}}))
	if !errors.Is(err, bundles.ErrUndefined) {
		t.Fatalf("Eval with no matching rule: %v, want ErrUndefined", err)
	}
	if snap == nil || snap.Revision != e.Status().Revision {
		t.Errorf("Eval returned snapshot %v, want the active one", snap)
	}
}

func TestEngineEvalStopsAtDeadline(t *testing.T) {
	tests := []struct{ name, rego string }{
		{"fail/huge range", `package mcpauthz.authz

decision := {"allowed": n > 0} if n := count([y | some y in numbers.range(1, 100000000)])
`},
		{"fail/nested iteration", `package mcpauthz.authz

decision := {"allowed": n > 0} if {
	xs := numbers.range(1, 20000)
	n := count([1 | some i in xs; some j in xs; i != j])
}
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t)
			activate(t, e, map[string]string{"authz.rego": tt.rego})
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			start := time.Now()
			res, _, err := e.Eval(ctx, input(t, map[string]any{}))
			elapsed := time.Since(start)
			if err == nil {
				t.Fatalf("Eval returned %v, want a cancellation error", res)
			}
			if !topdown.IsCancel(err) {
				t.Errorf("error %v is not a cancellation", err)
			}
			// 1e8 range elements or 4e8 iterations take tens of seconds.
			if elapsed > time.Second {
				t.Errorf("Eval took %v after a 50ms deadline", elapsed)
			}
		})
	}
}

func TestRevision(t *testing.T) {
	policy := map[string]string{"authz.rego": roleRego, "data.json": roleData}
	rev := bundles.Revision(loadFS(t, policy))
	if !strings.HasPrefix(rev, "sha256:") || len(rev) <= len("sha256:") {
		t.Fatalf("Revision = %q, want a sha256: digest", rev)
	}
	tests := []struct {
		name  string
		files map[string]string
		same  bool   // same revision as policy
		want  string // exact revision, when set
	}{
		{"ok/same content read again", map[string]string{"authz.rego": roleRego, "data.json": roleData}, true, ""},
		{"ok/manifest revision wins", map[string]string{
			"authz.rego": roleRego, "data.json": roleData, ".manifest": `{"revision": "2024-06-01T12:00:00Z-a1b2c3"}`,
		}, false, "2024-06-01T12:00:00Z-a1b2c3"},
		{"ok/module changed", map[string]string{"authz.rego": roleRego + "\n# reviewed\n", "data.json": roleData}, false, ""},
		{"ok/data changed", map[string]string{"authz.rego": roleRego, "data.json": `{"roles": {"allowed": ["admin"]}}`}, false, ""},
		{"ok/module renamed", map[string]string{"policy.rego": roleRego, "data.json": roleData}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := bundles.Revision(loadFS(t, tt.files))
			switch {
			case tt.want != "":
				if got != tt.want {
					t.Errorf("Revision = %q, want %q", got, tt.want)
				}
			case tt.same && got != rev:
				t.Errorf("Revision = %q, want %q", got, rev)
			case !tt.same && got == rev:
				t.Errorf("Revision = %q for different content", got)
			}
			if tt.want == "" && !strings.HasPrefix(got, "sha256:") {
				t.Errorf("Revision = %q, want a sha256: digest", got)
			}
			// The engine reports the same revision.
			e := newEngine(t)
			activate(t, e, tt.files)
			if st := e.Status(); st.Revision != got || e.Active().Revision != got {
				t.Errorf("engine revision %q / %q, want %q", st.Revision, e.Active().Revision, got)
			}
		})
	}
}

// TestEngineConcurrentSwaps evaluates continuously while bundles are swapped
// underneath: every evaluation must see one whole bundle.
func TestEngineConcurrentSwaps(t *testing.T) {
	const answerRego = `package mcpauthz.authz

decision := {"allowed": true, "bundle": data.bundle.name, "rule": name} if {
	name := rule_name
	input.n >= 0
}
`
	a := loadFS(t, map[string]string{"authz.rego": answerRego, "rule.rego": "package mcpauthz.authz\n\nrule_name := \"A\"\n", "data.json": `{"bundle": {"name": "A"}}`})
	b := loadFS(t, map[string]string{"authz.rego": answerRego, "rule.rego": "package mcpauthz.authz\n\nrule_name := \"B\"\n", "data.json": `{"bundle": {"name": "B"}}`})
	broken := loadFS(t, map[string]string{"authz.rego": "package mcpauthz.authz\n\ndecision := x if input.n == y\n"})
	undefined := loadFS(t, map[string]string{"authz.rego": "package elsewhere\n\ndecision := true\n"})
	wantA, wantB := `{"allowed": true, "bundle": "A", "rule": "A"}`, `{"allowed": true, "bundle": "B", "rule": "B"}`

	e := newEngine(t)
	ctx := context.Background()
	if err := e.Activate(ctx, a, "A"); err != nil {
		t.Fatal(err)
	}

	var stop atomic.Bool
	var evals, bad atomic.Int64
	var firstBad atomic.Value
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := input(t, map[string]any{"n": g})
			for !stop.Load() {
				res, snap, err := e.Eval(ctx, in)
				evals.Add(1)
				var got string
				if err == nil {
					got = res.String()
				}
				if err != nil || (got != wantA && got != wantB) || (snap.Source == "A") != (got == wantA) {
					bad.Add(1)
					firstBad.CompareAndSwap(nil, struct {
						got string
						err error
					}{got, err})
				}
			}
		}()
	}

	// Up to 300 swaps, within a time budget: compiling under -race on a
	// small machine, with eight evaluators busy, is slow.
	const maxSwaps = 300
	swaps, rejected := 0, 0
	for start := time.Now(); swaps < maxSwaps && time.Since(start) < 1500*time.Millisecond; swaps++ {
		i := swaps
		next, src := b, "B"
		if i%2 == 1 {
			next, src = a, "A"
		}
		if err := e.Activate(ctx, next, src); err != nil {
			t.Errorf("Activate %s: %v", src, err)
		}
		if i%10 == 0 {
			if e.Activate(ctx, broken, "broken") != nil {
				rejected++
			}
			if e.Activate(ctx, undefined, "undefined") != nil {
				rejected++
			}
		}
	}
	stop.Store(true)
	wg.Wait()

	if n := bad.Load(); n > 0 {
		t.Errorf("%d of %d evaluations were wrong; first: %+v", n, evals.Load(), firstBad.Load())
	}
	t.Logf("%d swaps, %d rejected bundles, %d evaluations", swaps, rejected, evals.Load())
	if evals.Load() < int64(swaps) || swaps < 20 {
		t.Errorf("only %d evaluations over %d swaps ran", evals.Load(), swaps)
	}
	st := e.Status()
	if st.Activations != swaps+1 || st.Failures != rejected || rejected != 2*((swaps+9)/10) {
		t.Errorf("status %+v, rejected %d", st, rejected)
	}
}
