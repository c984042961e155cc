package bundles

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// TestOperationsExamplePolicy: the policy docs/OPERATIONS.md shows compiles,
// and keeps to its own advice — its decisions are cached.
func TestOperationsExamplePolicy(t *testing.T) {
	doc, err := os.ReadFile("../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```rego\n")
	if !ok {
		t.Fatal("docs/OPERATIONS.md shows no Rego")
	}
	src, _, _ := strings.Cut(rest, "```")
	m, err := ast.ParseModuleWithOpts("example.rego", src, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(DefaultDecisionPath)
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle.Bundle{Modules: []bundle.ModuleFile{{Path: "/example.rego", Raw: []byte(src), Parsed: m}}}
	if err := e.Activate(context.Background(), b, "docs"); err != nil {
		t.Fatal(err)
	}
	if !e.Active().Cacheable() {
		t.Errorf("the example's decisions are not cached; it reads %q", usePaths(e.Active().InputUse()))
	}
}
