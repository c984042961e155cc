package bundles_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/policies"
)

const roleTests = `package mcpauthz.authz_test

import data.mcpauthz.authz

test_member_allowed if authz.decision.allowed with input as {"role": "member"}

test_viewer_denied if not authz.decision.allowed with input as {"role": "viewer"}
`

// A data change that breaks the bundle's own expectations: viewers allowed.
const roleDataBroken = `{"roles": {"allowed": ["admin", "member", "viewer"]}}`

func TestEngineRunsBundleTests(t *testing.T) {
	ctx := context.Background()
	good := loadFS(t, map[string]string{"authz.rego": roleRego, "data.json": roleData, "authz_test.rego": roleTests})
	broken := loadFS(t, map[string]string{"authz.rego": roleRego, "data.json": roleDataBroken, "authz_test.rego": roleTests})
	untested := loadFS(t, map[string]string{"authz.rego": roleRego, "data.json": roleDataBroken})

	e := newEngine(t)
	if err := e.Activate(ctx, good, "good"); err != nil {
		t.Fatalf("a bundle whose tests pass: %v", err)
	}
	err := e.Activate(ctx, broken, "broken")
	if !errors.Is(err, bundles.ErrTestsFailed) {
		t.Fatalf("a bundle whose tests fail: %v, want ErrTestsFailed", err)
	}
	if !strings.Contains(err.Error(), "1 of 2 fail") || !strings.Contains(err.Error(), "test_viewer_denied") {
		t.Errorf("error does not name the failing test: %v", err)
	}
	st := e.Status()
	if st.Source != "good" || st.Failures != 1 || !strings.Contains(st.LastError, "test_viewer_denied") {
		t.Errorf("status after the rejected bundle: %+v", st)
	}
	if got := decide(t, e, map[string]any{"role": "viewer"}); got != `{"allowed": false, "http_status": 403}` {
		t.Errorf("the rejected bundle decides: viewer = %s", got)
	}

	// Tests are the bundle's own: one without tests activates.
	if err := e.Activate(ctx, untested, "untested"); err != nil {
		t.Fatalf("a bundle without tests: %v", err)
	}

	off, err := bundles.NewEngine(bundles.DefaultDecisionPath, bundles.WithBundleTests(false, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := off.Activate(ctx, broken, "broken"); err != nil {
		t.Fatalf("with tests off, the bundle activates: %v", err)
	}
}

func TestBundleTestReport(t *testing.T) {
	ctx := context.Background()
	b := loadFS(t, map[string]string{"authz.rego": roleRego, "data.json": roleData, "authz_test.rego": roleTests + `
test_wrong if authz.decision.allowed with input as {"role": "guest"}

test_errors if {
	x := to_number("not a number")
	x > 0
}

todo_test_later if false
`})
	report, err := bundles.Test(ctx, b, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if report.Passed != 2 || report.Failed != 1 || report.Errs != 1 || report.Skips != 1 || report.OK() {
		t.Fatalf("report: %+v", report)
	}
	for _, r := range report.Results {
		want := strings.HasSuffix(r.Name, ".test_wrong") || strings.HasSuffix(r.Name, ".test_errors")
		if r.Failed() != want {
			t.Errorf("%s: failed = %v", r.Name, r.Failed())
		}
		if r.Location == "" || !strings.HasPrefix(r.Name, "data.mcpauthz.authz_test.") {
			t.Errorf("result %+v lacks a name or location", r)
		}
	}
	if err := report.Err(); !errors.Is(err, bundles.ErrTestsFailed) || !strings.Contains(err.Error(), "2 of 4 fail") {
		t.Errorf("Err() = %v", err)
	}
}

// TestRefHeadTests: tests written as ref heads (a.test_x) are found too.
func TestRefHeadTests(t *testing.T) {
	b := loadFS(t, map[string]string{"authz.rego": roleRego, "data.json": roleData, "authz_test.rego": `package mcpauthz.authz_test

import data.mcpauthz.authz

cases.test_guest_denied if not authz.decision.allowed with input as {"role": "member"}
`})
	report, err := bundles.Test(context.Background(), b, 0)
	if err != nil {
		t.Fatal(err)
	}
	if report.Failed != 1 || report.OK() {
		t.Fatalf("report %+v: the ref-head test was not run", report)
	}
}

// BenchmarkActivateDefaultBundle is the cost of activating the embedded
// bundle with and without running its Rego tests first.
func BenchmarkActivateDefaultBundle(b *testing.B) {
	bundle, err := bundles.LoadFS(policies.FS())
	if err != nil {
		b.Fatal(err)
	}
	for _, run := range []bool{false, true} {
		b.Run(map[bool]string{false: "without_tests", true: "with_tests"}[run], func(b *testing.B) {
			e, err := bundles.NewEngine(bundles.DefaultDecisionPath, bundles.WithBundleTests(run, 0))
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := e.Activate(context.Background(), bundle, "embedded"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPacedBundleTests: paced at 2, one at a time, the default bundle's
// tests take at least twice as long as they run, and none is lost.
func TestPacedBundleTests(t *testing.T) {
	b, err := bundles.LoadFS(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	report, err := bundles.RunTests(context.Background(), b, 0, 1, 2)
	wall := time.Since(start)
	if err != nil || !report.OK() || report.Passed < 100 {
		t.Fatalf("report %d passed, %d failed, %d errors: %v", report.Passed, report.Failed, report.Errs, err)
	}
	var ran time.Duration
	for _, r := range report.Results {
		ran += r.Duration
	}
	if ran <= 0 || wall < 2*ran {
		t.Fatalf("the tests ran for %v in %v: not paced", ran, wall)
	}
	t.Logf("%d tests ran for %v in %v", report.Passed, ran, wall)
}

// TestStatusDuringActivation: while a new bundle compiles and its tests
// run, Status answers at once (metrics and /readyz read it).
func TestStatusDuringActivation(t *testing.T) {
	b, err := bundles.LoadFS(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	e, err := bundles.NewEngine(bundles.DefaultDecisionPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.Activate(ctx, b, "first"); err != nil {
		t.Fatal(err)
	}
	done := make(chan time.Duration)
	start := time.Now()
	go func() {
		if err := e.Activate(ctx, b, "second"); err != nil {
			t.Error(err)
		}
		done <- time.Since(start)
	}()
	var slowest time.Duration
	calls := 0
	for {
		select {
		case took := <-done:
			if calls < 2 || slowest > took/2 {
				t.Fatalf("%d Status calls during an activation of %v, the slowest %v", calls, took, slowest)
			}
			if st := e.Status(); st.Source != "second" || st.Activations != 2 {
				t.Fatalf("status %+v", st)
			}
			return
		default:
		}
		t0 := time.Now()
		e.Status()
		slowest = max(slowest, time.Since(t0))
		calls++
		time.Sleep(10 * time.Millisecond)
	}
}
