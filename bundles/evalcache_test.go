package bundles_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/mcpauthz/mcpauthz/bundles"
)

// cachePolicies stress the engine's own rule cache: rules referenced many
// times, undefined rules, `with` frames that must not leak values into each
// other, functions and partial rules.
var cachePolicies = map[string]string{
	"with frames": `package mcpauthz.authz

role := input.role

is_admin if role == "admin"

decision := {
	"plain": is_admin,
	"as_admin": as_admin,
	"as_viewer": as_viewer,
	"plain_again": is_admin,
	"nested": [r | r := role with input.role as "outer"],
	"data_override": overridden,
	"tools": allowed_tools,
} if {
	as_admin := is_admin with input.role as "admin"
	as_viewer := is_admin with input.role as "viewer"
	overridden := allowed_tools with data.tools as ["x"]
}

default is_admin := false

allowed_tools contains t if some t in data.tools
`,
	"undefined cached": `package mcpauthz.authz

missing if input.nope == true

decision := {
	"a": count([1 | missing]),
	"b": count([1 | not missing]),
	"c": object.get({"k": 1}, "k", 0) + count([1 | missing]),
	"d": [x | x := input.list[_]; not missing],
	"e": count([1 | missing]) + count([1 | missing with input.nope as true]),
}
`,
	"functions and else": `package mcpauthz.authz

tier(n) := "gold" if n > 100
else := "silver" if n > 10
else := "bronze"

limits[name] := tier(n) if some name, n in input.usage

decision := {"limits": limits, "first": first, "overridden": overridden} if {
	first := object.get(limits, "a", "none")
	overridden := limits with input.usage as {"z": 1000}
}
`,
	"partial sets": `package mcpauthz.authz

tools contains t if some t in input.list

tools contains "always"

denied contains t if {
	some t in tools
	startswith(t, "del")
}

decision := {
	"allowed": count(denied) == 0,
	"denied": denied,
	"without_input": replaced,
	"tools": tools,
} if replaced := denied with input.list as ["delete-all"]
`,
}

var cacheInputs = []string{
	`{}`,
	`{"role": "admin", "list": ["echo", "delete"], "usage": {"a": 500, "b": 20, "c": 1}}`,
	`{"role": "viewer", "list": [], "usage": {"a": 1}}`,
	`{"role": "admin", "nope": true, "list": ["search"], "usage": {"a": 11}}`,
}

// TestEngineMatchesOPA evaluates policies with the engine and with OPA's
// rego package: the results must be the same.
func TestEngineMatchesOPA(t *testing.T) {
	const data = `{"tools": ["echo", "search"]}`
	ctx := context.Background()
	for name, src := range cachePolicies {
		t.Run("ok/"+name, func(t *testing.T) {
			e := newEngine(t)
			activate(t, e, map[string]string{"authz.rego": src, "data.json": data})
			var store map[string]any
			if err := json.Unmarshal([]byte(data), &store); err != nil {
				t.Fatal(err)
			}
			query, err := rego.New(
				rego.Query(bundles.DefaultDecisionPath),
				rego.Module("authz.rego", src),
				rego.SetRegoVersion(ast.RegoV1),
				rego.Store(inmem.NewFromObject(store)),
			).PrepareForEval(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, doc := range cacheInputs {
				var in any
				if err := json.Unmarshal([]byte(doc), &in); err != nil {
					t.Fatal(err)
				}
				rs, err := query.Eval(ctx, rego.EvalInput(in))
				if err != nil || len(rs) != 1 {
					t.Fatalf("OPA: %v, %v", rs, err)
				}
				want, err := ast.InterfaceToValue(rs[0].Expressions[0].Value)
				if err != nil {
					t.Fatal(err)
				}
				// Evaluate twice: the pooled cache must not carry anything over.
				for range 2 {
					got, _, err := e.Eval(ctx, input(t, in))
					if err != nil {
						t.Fatalf("Eval(%s): %v", doc, err)
					}
					// The rego package returns JSON values (sets as arrays).
					j, err := ast.JSON(got.Value)
					if err != nil {
						t.Fatal(err)
					}
					if gv, err := ast.InterfaceToValue(j); err != nil || gv.Compare(want) != 0 {
						t.Errorf("input %s:\nengine %v\nOPA    %v", doc, got, want)
					}
				}
			}
		})
	}
}
