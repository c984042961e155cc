package bundles

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

func compileModule(t *testing.T, src string) *ast.Compiler {
	t.Helper()
	c := ast.NewCompiler()
	if c.Compile(map[string]*ast.Module{"p.rego": ast.MustParseModuleWithOpts(src, ast.ParserOptions{RegoVersion: ast.RegoV1})}); c.Failed() {
		t.Fatal(c.Errors)
	}
	return c
}

func TestPure(t *testing.T) {
	tests := []struct {
		name string
		body string
		pure bool
	}{
		{"ok/plain comparisons", `allow if input.a == "x"`, true},
		{"ok/deterministic builtins", `allow if { startswith(input.p, "/a"); count(input.r) > 1; time.parse_rfc3339_ns("2026-01-01T00:00:00Z") > 0 }`, true},
		{"fail/time.now_ns in a body", `allow if time.now_ns() > 0`, false},
		{"fail/time.now_ns in a head", `stamp := time.now_ns()`, false},
		{"fail/time.now_ns nested in a call", `allow if abs(time.now_ns()) > 0`, false},
		{"fail/time.now_ns in a comprehension", `xs := [x | some x in [1]; time.now_ns() > x]`, false},
		{"fail/rand.intn", `n := rand.intn("seed", 10)`, false},
		{"fail/uuid", `id := uuid.rfc4122("k")`, false},
		{"fail/jwt verification reads the clock", `ok if io.jwt.decode_verify(input.t, {"secret": "s"})[0]`, false},
		{"fail/x509 verification reads the clock", `ok if crypto.x509.parse_and_verify_certificates(input.c)[0]`, false},
		{"fail/opa.runtime", `r := opa.runtime()`, false},
		{"fail/in a function", `f(x) := time.now_ns() + x`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := compileModule(t, "package p\n\n"+tt.body+"\n")
			if got := pure(c); got != tt.pure {
				t.Fatalf("pure = %v, want %v", got, tt.pure)
			}
		})
	}
}

func TestWorthCaching(t *testing.T) {
	tests := []struct {
		name string
		body string
		want bool
	}{
		{"ok/method, tool and a header", `allow if { input.mcp.tool == "x"; input.attributes.request.http.headers["x-role"] == "r" }`, true},
		{"ok/identity", `allow if "admin" in input.identity.roles`, true},
		{"fail/whole input", `x := input`, false},
		{"fail/whole headers", `h := input.attributes.request.http.headers`, false},
		{"fail/request id", `id := input.attributes.request.http.id`, false},
		{"fail/request id header", `id := input.attributes.request.http.headers["x-request-id"]`, false},
		{"fail/raw body", `b := input.attributes.request.http.body`, false},
		{"fail/request time", `t := input.attributes.request.time`, false},
		{"fail/whole http", `h := input.attributes.request.http`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := compileModule(t, "package p\n\n"+tt.body+"\n")
			if got := worthCaching(analyzeInputUse(c)); got != tt.want {
				t.Fatalf("worthCaching = %v, want %v", got, tt.want)
			}
		})
	}
}

func engineWith(t *testing.T, size int, files map[string]string, opts ...EngineOption) *Engine {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	e, err := NewEngine("data.p.decision", append([]EngineOption{WithDecisionCache(size)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadFS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Activate(context.Background(), b, "test"); err != nil {
		t.Fatal(err)
	}
	return e
}

func evalObj(t *testing.T, e *Engine, kv ...string) string {
	t.Helper()
	obj := ast.NewObject()
	for i := 0; i+1 < len(kv); i += 2 {
		obj.Insert(ast.StringTerm(kv[i]), ast.StringTerm(kv[i+1]))
	}
	r, _, err := e.Eval(context.Background(), ast.NewTerm(obj))
	if err != nil {
		t.Fatal(err)
	}
	return r.String()
}

// TestCacheCollisionsNeverShareDecisions: object hashes are sums, so
// swapping two values gives the same hash; the cache must still tell the
// inputs apart.
func TestCacheCollisionsNeverShareDecisions(t *testing.T) {
	e := engineWith(t, 1024, map[string]string{"p.rego": `package p
decision := input.a == "x" if input.b
`})
	in1 := ast.NewTerm(ast.NewObject(ast.Item(ast.StringTerm("a"), ast.StringTerm("x")), ast.Item(ast.StringTerm("b"), ast.StringTerm("y"))))
	in2 := ast.NewTerm(ast.NewObject(ast.Item(ast.StringTerm("a"), ast.StringTerm("y")), ast.Item(ast.StringTerm("b"), ast.StringTerm("x"))))
	if in1.Hash() != in2.Hash() {
		t.Skip("these inputs no longer collide; the test needs another pair")
	}
	for range 3 {
		for _, c := range []struct {
			in   *ast.Term
			want string
		}{{in1, "true"}, {in2, "false"}} {
			r, _, err := e.Eval(context.Background(), c.in)
			if err != nil {
				t.Fatal(err)
			}
			if r.String() != c.want {
				t.Fatalf("decision for %v = %v, want %s", c.in, r, c.want)
			}
		}
	}
	if st := e.Active().CacheStats(); !st.Enabled || st.Hits == 0 {
		t.Fatalf("cache stats %+v", st)
	}
}

func TestCacheHitsAndScope(t *testing.T) {
	policy := `package p
decision := {"allowed": input.role == "admin"}
`
	e := engineWith(t, 1024, map[string]string{"p.rego": policy})
	for range 5 {
		if got := evalObj(t, e, "role", "admin"); got != `{"allowed": true}` {
			t.Fatal(got)
		}
	}
	if got := evalObj(t, e, "role", "viewer"); got != `{"allowed": false}` {
		t.Fatal(got)
	}
	st := e.Active().CacheStats()
	if st.Hits != 4 || st.Misses != 2 {
		t.Fatalf("stats %+v, want 4 hits and 2 misses", st)
	}
	// A new bundle starts with an empty cache: no decision survives it.
	b, err := LoadFS(fstest.MapFS{"p.rego": &fstest.MapFile{Data: []byte(`package p
decision := {"allowed": input.role == "viewer"}
`)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Activate(context.Background(), b, "v2"); err != nil {
		t.Fatal(err)
	}
	if got := evalObj(t, e, "role", "admin"); got != `{"allowed": false}` {
		t.Fatalf("a decision survived the bundle swap: %s", got)
	}
}

func TestCacheOffForClockPolicies(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	e := engineWith(t, 1024, map[string]string{"p.rego": `package p
decision := time.now_ns()
`}, WithEngineClock(clock))
	if e.Active().CacheStats().Enabled {
		t.Fatal("a policy reading the clock is cached")
	}
	a := evalObj(t, e)
	now = now.Add(time.Second)
	if b := evalObj(t, e); a == b {
		t.Fatalf("the clock-dependent decision did not change: %s", a)
	}
}

func TestCacheDisabled(t *testing.T) {
	e := engineWith(t, 0, map[string]string{"p.rego": "package p\ndecision := input.a\n"})
	if e.Active().CacheStats().Enabled {
		t.Fatal("size 0 should turn the cache off")
	}
}

func TestCacheBounded(t *testing.T) {
	c := newDecisionCache(64)
	for i := range 10000 {
		c.put(ast.StringTerm(fmt.Sprint(i)), ast.BooleanTerm(true))
	}
	n := 0
	for i := range c.shards {
		for _, b := range c.shards[i].m {
			n += len(b)
		}
		if c.shards[i].n > c.perShard {
			t.Fatalf("shard %d holds %d > %d", i, c.shards[i].n, c.perShard)
		}
	}
	if n > 64 {
		t.Fatalf("%d entries in a cache of 64", n)
	}
}

// TestCacheMatchesUncached evaluates many inputs, concurrently, with and
// without the cache: every decision must be the same.
func TestCacheMatchesUncached(t *testing.T) {
	files := map[string]string{"p.rego": `package p
default decision := {"allowed": false, "reason": "default"}
decision := {"allowed": true, "headers": {"x-role": input.role}} if {
	input.role in data.roles[input.tool]
}
decision := {"allowed": false, "reason": "blocked"} if input.tool == "blocked"
`, "data.json": `{"roles": {"a": ["r1", "r2"], "b": ["r2"], "c": ["r3"]}}`}
	cached, uncached := engineWith(t, 32, files), engineWith(t, 0, files)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 2000 {
				in := ast.NewTerm(ast.NewObject(
					ast.Item(ast.StringTerm("role"), ast.StringTerm(fmt.Sprintf("r%d", r.IntN(4)))),
					ast.Item(ast.StringTerm("tool"), ast.StringTerm([]string{"a", "b", "c", "blocked", "z"}[r.IntN(5)])),
				))
				a, _, err1 := cached.Eval(context.Background(), in)
				b, _, err2 := uncached.Eval(context.Background(), in)
				if err1 != nil || err2 != nil || !a.Equal(b) {
					errs <- fmt.Errorf("input %v: cached %v (%v), uncached %v (%v)", in, a, err1, b, err2)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := cached.Active().CacheStats(); st.Hits == 0 {
		t.Fatalf("no hits: %+v", st)
	}
}
