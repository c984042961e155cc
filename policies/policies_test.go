package policies

import (
	"context"
	"io/fs"
	"path"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// minCoverage is the share of Rego lines the bundle's own tests must cover.
const minCoverage = 90.0

// TestStrict compiles every module, tests included, as `opa check --strict`
// does: unused variables, imports and function arguments, shadowed
// keywords and deprecated built-ins are errors.
func TestStrict(t *testing.T) {
	modules := map[string]*ast.Module{}
	err := fs.WalkDir(FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".rego" {
			return err
		}
		src, err := fs.ReadFile(FS(), p)
		if err != nil {
			return err
		}
		m, err := ast.ParseModuleWithOpts(p, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return err
		}
		modules[p] = m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(modules) == 0 {
		t.Fatal("no Rego modules in the embedded bundle")
	}
	c := ast.NewCompiler().WithStrict(true).WithEnablePrintStatements(true)
	if c.Compile(modules); c.Failed() {
		for _, e := range c.Errors {
			t.Error(e)
		}
	}
}

// TestRego runs the bundle's *_test.rego files with OPA's tester, as
// `opa test --coverage policies/` does, so CI counts every Rego test.
func TestRego(t *testing.T) {
	loader, err := bundle.NewFSLoader(FS())
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.NewCustomReader(loader).WithRegoVersion(ast.RegoV1).Read()
	if err != nil {
		t.Fatalf("reading the embedded bundle: %v", err)
	}
	ctx := context.Background()
	store := inmem.New()
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Abort(ctx, txn)
	cov := cover.New()
	ch, err := tester.NewRunner().
		SetStore(store).
		SetBundles(map[string]*bundle.Bundle{"policies": &b}).
		SetCoverageQueryTracer(cov).
		RaiseBuiltinErrors(true).
		RunTests(ctx, txn)
	if err != nil {
		t.Fatalf("running Rego tests: %v", err)
	}
	n := 0
	for r := range ch {
		n++
		t.Run(r.Package+"/"+r.Name, func(t *testing.T) {
			if r.Error != nil {
				t.Fatalf("%s: error: %v", r.Location, r.Error)
			}
			if r.Fail {
				t.Fatalf("%s: failed", r.Location)
			}
		})
	}
	if n == 0 {
		t.Fatal("the embedded bundle has no Rego tests")
	}

	modules := map[string]*ast.Module{}
	for _, m := range b.Modules {
		if !strings.HasSuffix(m.Path, "_test.rego") {
			modules[m.Path] = m.Parsed
		}
	}
	// The tracer records the tests' own lines too: count the policy's only.
	report := cov.Report(modules)
	covered, notCovered := 0, 0
	for file, fr := range report.Files {
		if _, policy := modules[file]; !policy {
			continue
		}
		covered += fr.CoveredLines
		notCovered += fr.NotCoveredLines
		for _, r := range fr.NotCovered {
			t.Logf("%s:%d-%d not covered", file, r.Start.Row, r.End.Row)
		}
	}
	if covered+notCovered == 0 {
		t.Fatal("coverage found no policy lines")
	}
	coverage := 100 * float64(covered) / float64(covered+notCovered)
	t.Logf("%d Rego tests; coverage of %d policy files %.1f%% (%d lines covered, %d not)",
		n, len(modules), coverage, covered, notCovered)
	if coverage < minCoverage {
		t.Fatalf("Rego coverage %.1f%% is below %.0f%%", coverage, minCoverage)
	}
}
