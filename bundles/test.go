package bundles

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// ErrTestsFailed is returned (wrapped) when a bundle's own Rego tests fail:
// such a bundle is not activated.
var ErrTestsFailed = errors.New("the bundle's Rego tests fail")

// DefaultTestTimeout bounds each Rego test a bundle runs before activation.
const DefaultTestTimeout = 5 * time.Second

// TestResult is the outcome of one Rego test (a test_* rule).
type TestResult struct {
	Name     string // package and rule, "data.mcpauthz.authz.test_member_calls"
	Location string // file:line
	Fail     bool   // the rule was false or undefined
	Err      error  // the rule did not evaluate (e.g. a built-in error, a timeout)
	Skip     bool   // a todo_test_ rule
	Output   []byte // what the test printed
	Duration time.Duration
}

// Failed reports whether the test failed or did not evaluate.
func (r TestResult) Failed() bool { return r.Fail || r.Err != nil }

// TestReport is the outcome of running a bundle's Rego tests.
type TestReport struct {
	Results                     []TestResult
	Passed, Failed, Errs, Skips int
}

// OK reports whether no test failed.
func (r *TestReport) OK() bool { return r.Failed+r.Errs == 0 }

// Err describes the failures, naming up to three tests, or returns nil.
func (r *TestReport) Err() error {
	if r.OK() {
		return nil
	}
	var names []string
	for _, t := range r.Results {
		if t.Failed() {
			names = append(names, t.Name)
		}
	}
	more := ""
	if len(names) > 3 {
		more = fmt.Sprintf(" and %d more", len(names)-3)
		names = names[:3]
	}
	return fmt.Errorf("%w: %d of %d fail (%s%s)", ErrTestsFailed,
		r.Failed+r.Errs, r.Passed+r.Failed+r.Errs, strings.Join(names, ", "), more)
}

// Test runs the bundle's Rego tests with OPA's test runner against the
// bundle's own data, as `opa test` runs them on the bundle's directory. Each
// test is bounded by timeout (DefaultTestTimeout when zero). A bundle
// without tests yields an empty report.
func Test(ctx context.Context, b *bundle.Bundle, timeout time.Duration) (*TestReport, error) {
	return runTests(ctx, b, timeout, 0, 0)
}

// runTests runs b's tests, parallel at a time (0: one per CPU). After each
// test it waits pace times as long as the test ran before taking the next
// result; with one test at a time, the next runs during that wait, so a
// pace of k ≥ 1 keeps the tests to about 1/k of one CPU.
func runTests(ctx context.Context, b *bundle.Bundle, timeout time.Duration, parallel int, pace float64) (*TestReport, error) {
	if timeout <= 0 {
		timeout = DefaultTestTimeout
	}
	report := &TestReport{}
	if !hasTests(b) {
		return report, nil
	}
	cp := *b
	cp.Manifest.Init() // a bundle built in code may have no roots
	store := inmem.New()
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return nil, err
	}
	defer store.Abort(ctx, txn)
	ch, err := tester.NewRunner().
		SetStore(store).
		SetBundles(map[string]*bundle.Bundle{"bundle": &cp}).
		SetTimeout(timeout).
		SetParallel(parallel).
		CapturePrintOutput(true).
		RaiseBuiltinErrors(true).
		RunTests(ctx, txn)
	if err != nil {
		return nil, fmt.Errorf("running the Rego tests: %w", err)
	}
	for r := range ch {
		res := TestResult{
			Name:     r.Package + "." + r.Name,
			Fail:     r.Fail,
			Err:      r.Error,
			Skip:     r.Skip,
			Output:   r.Output,
			Duration: r.Duration,
		}
		if r.Location != nil {
			res.Location = r.Location.String()
		}
		switch {
		case res.Err != nil:
			report.Errs++
		case res.Fail:
			report.Failed++
		case res.Skip:
			report.Skips++
		default:
			report.Passed++
		}
		report.Results = append(report.Results, res)
		if pace > 0 {
			// The next test runs meanwhile, and waits to be received.
			sleep(ctx, time.Duration(pace*float64(r.Duration)))
		}
	}
	return report, ctx.Err()
}

// hasTests reports whether any module of b defines a test rule.
func hasTests(b *bundle.Bundle) bool {
	for _, m := range b.Modules {
		if m.Parsed == nil {
			continue
		}
		for _, r := range m.Parsed.Rules {
			for _, t := range r.Head.Ref() { // as OPA's runner finds them
				var name string
				switch v := t.Value.(type) {
				case ast.Var:
					name = string(v)
				case ast.String:
					name = string(v)
				}
				if strings.HasPrefix(name, tester.TestPrefix) || strings.HasPrefix(name, tester.SkipTestPrefix) {
					return true
				}
			}
		}
	}
	return false
}

// sleep waits d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
