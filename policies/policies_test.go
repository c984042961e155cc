package policies

import (
	"context"
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
	report := cov.Report(modules)
	t.Logf("%d Rego tests; coverage %.1f%% (%d lines covered, %d not)",
		n, report.Coverage, report.CoveredLines, report.NotCoveredLines)
	if report.Coverage < minCoverage {
		for file, fr := range report.Files {
			for _, r := range fr.NotCovered {
				t.Logf("%s:%d-%d not covered", file, r.Start.Row, r.End.Row)
			}
		}
		t.Fatalf("Rego coverage %.1f%% is below %.0f%%", report.Coverage, minCoverage)
	}
}
