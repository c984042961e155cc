package bundles

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/fstest"

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
		{"fail/the JSON-RPC id", `allow if input.mcp.id == 1`, false},
		{"fail/the whole MCP message", `allow if input.mcp`, false},
		{"ok/a member of the parsed body", `allow if input.parsed_body.method == "x"`, true},
		{"fail/the whole parsed body", `b := input.parsed_body`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := compileModule(t, "package p\n\n"+tt.body+"\n")
			if got := worthCaching(analyzeInputUse(c, nil, nil)); got != tt.want {
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

func TestCacheable(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		policy string
		want   bool
	}{
		{"ok/pure policy", 1024, "package p\ndecision := input.a\n", true},
		{"fail/cache turned off", 0, "package p\ndecision := input.a\n", false},
		{"fail/policy reads the clock", 1024, "package p\ndecision := time.now_ns()\n", false},
		{"fail/policy reads the request id", 1024, "package p\ndecision := input.attributes.request.http.id\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := engineWith(t, tt.size, map[string]string{"p.rego": tt.policy})
			if got := e.Active().Cacheable(); got != tt.want {
				t.Fatalf("Cacheable = %v, want %v", got, tt.want)
			}
			if got := e.CacheStats().Enabled; got != tt.want {
				t.Fatalf("CacheStats.Enabled = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCacheBounded(t *testing.T) {
	c := newDecisionCache(64, &cacheCounts{})
	for i := range 10000 {
		c.put([]byte(fmt.Sprint(i)), i)
	}
	n := 0
	for i := range c.shards {
		if l := len(c.shards[i].m); l > c.perShard {
			t.Fatalf("shard %d holds %d > %d", i, l, c.perShard)
		}
		n += len(c.shards[i].m)
	}
	if n > 64 {
		t.Fatalf("%d entries in a cache of 64", n)
	}
	if v, ok := c.get([]byte("9999")); !ok || v != 9999 {
		t.Fatalf("the last entry is gone: %v %v", v, ok)
	}
}

func TestCacheConcurrent(t *testing.T) {
	c := newDecisionCache(128, &cacheCounts{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 2))
			for range 5000 {
				k := []byte(fmt.Sprint(r.IntN(300)))
				if v, ok := c.get(k); ok && v != string(k) {
					t.Errorf("key %s holds %v", k, v)
					return
				}
				c.put(k, string(k))
			}
		}()
	}
	wg.Wait()
}
