package policies

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// BenchmarkDecision evaluates a tools/call with the bundle's data grown to
// many organizations, each with its own tool rules: 1 to 1,000
// organizations of 5 rules, then 5 to 500 rules in each of 1,000
// organizations. The rules look tenants and tools up by key, so the large
// cases should cost about what the small one does (compare the
// sub-benchmarks' ns/op).
func BenchmarkDecision(b *testing.B) {
	for _, size := range []struct{ orgs, rules int }{{1, 5}, {10, 5}, {100, 5}, {1000, 5}, {1000, 50}, {1000, 500}} {
		b.Run(fmt.Sprintf("orgs=%d/rules=%d", size.orgs, size.rules), func(b *testing.B) {
			pq := prepareScaled(b, size.orgs, size.rules)
			org := fmt.Sprintf("org-%d", size.orgs/2)
			tool := fmt.Sprintf("tool-%d", size.rules/2)
			input := ast.MustParseTerm(fmt.Sprintf(`{
				"attributes": {"request": {"http": {"method": "POST", "path": "/mcp", "headers": {"content-type": "application/json"}}}},
				"parsed_path": ["mcp"],
				"identity": {"authenticated": true, "method": "session", "subject": "u-1", "user_id": "u-1",
					"tenant": %q, "tier": "pro", "org_role": "member", "roles": ["member"], "permissions": [], "scopes": [],
					"session": {"id": "s-1", "auth_time": 1750000000, "age_seconds": 60}},
				"mcp": {"method": "tools/call", "id": 1, "tool": %q, "is_notification": false, "is_response": false}
			}`, org, tool)).Value
			ctx := context.Background()
			check := func() {
				rs, err := pq.Eval(ctx, rego.EvalParsedInput(input))
				if err != nil || len(rs) != 1 {
					b.Fatal(rs, err)
				}
				d := rs[0].Expressions[0].Value.(map[string]any)
				if d["allowed"] != true || len(d["limits"].([]any)) == 0 {
					b.Fatal(d)
				}
			}
			check()
			b.ReportAllocs()
			for b.Loop() {
				check()
			}
		})
	}
}

// prepareScaled prepares the decision query over the bundle's modules and
// data, with orgs tenants of rules tool rules each added.
func prepareScaled(tb testing.TB, orgs, rules int) rego.PreparedEvalQuery {
	tb.Helper()
	raw, err := fs.ReadFile(FS(), "data.json")
	if err != nil {
		tb.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		tb.Fatal(err)
	}
	config := data["mcpauthz"].(map[string]any)["config"].(map[string]any)
	risks := []string{"read_only", "open_world", "read_only"}
	tenants := make(map[string]any, orgs)
	for i := range orgs {
		tools := make(map[string]any, rules)
		for j := range rules {
			tools[fmt.Sprintf("tool-%d", j)] = map[string]any{
				"risk":  risks[j%len(risks)],
				"allow": map[string]any{"roles": []any{"owner", "admin", "member"}},
				"deny":  map[string]any{"tiers": []any{"free"}},
			}
		}
		tenants[fmt.Sprintf("org-%d", i)] = map[string]any{"tools": tools}
	}
	config["tenants"] = tenants

	opts := []func(*rego.Rego){
		rego.Query("data.mcpauthz.authz.decision"),
		// As bundles.Engine stores data: AST values, read without conversion.
		rego.Store(inmem.NewFromObjectWithOpts(data, inmem.OptReturnASTValuesOnRead(true), inmem.OptRoundTripOnWrite(false))),
		rego.SetRegoVersion(ast.RegoV1),
	}
	err = fs.WalkDir(FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rego") || strings.HasSuffix(p, "_test.rego") {
			return err
		}
		src, err := fs.ReadFile(FS(), p)
		opts = append(opts, rego.Module(p, string(src)))
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return pq
}
