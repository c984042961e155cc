package bundles

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// compileModules compiles Rego modules the way Engine.compile does.
func compileModules(tb testing.TB, sources ...string) *ast.Compiler {
	tb.Helper()
	modules := map[string]*ast.Module{}
	for i, src := range sources {
		name := "m" + string(rune('0'+i)) + ".rego"
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			tb.Fatalf("parsing %s: %v", name, err)
		}
		modules[name] = m
	}
	c := ast.NewCompiler().WithEnablePrintStatements(false)
	if c.Compile(modules); c.Failed() {
		tb.Fatalf("compiling: %v", c.Errors)
	}
	return c
}

// usePaths lists the subtrees u reads whole, as dotted paths ("" for all
// of the input).
func usePaths(u *InputUse) []string {
	var out []string
	var walk func(u *InputUse, prefix []string)
	walk = func(u *InputUse, prefix []string) {
		if u.Whole() {
			out = append(out, strings.Join(prefix, "."))
			return
		}
		for _, k := range u.Keys() {
			walk(u.Child(k), append(slices.Clone(prefix), k))
		}
	}
	walk(u, nil)
	slices.Sort(out)
	return out
}

// covers reports whether u reads everything at and below the dotted path.
func covers(u *InputUse, path string) bool {
	for k := range strings.SplitSeq(path, ".") {
		if u.Whole() {
			return true
		}
		if u = u.Child(k); u == nil {
			return false
		}
	}
	return u.Whole()
}

const pkg = "package mcpauthz.authz\n\n"

var inputUseTests = []struct {
	name    string
	modules []string
	exact   []string // the whole-read subtrees, when the analysis is exact
	reads   []string // subtrees that must be read (a superset is fine)
	unread  []string // subtrees that must not be read
}{
	{"ok/nested member", []string{pkg + `decision if input.a.b == 1`}, []string{"a.b"}, nil, []string{"a.c", "x"}},
	{"ok/string keys in brackets", []string{pkg + `decision if input["a"]["b"] == 1`}, []string{"a.b"}, nil, nil},
	{"ok/variable key reads the parent whole", []string{pkg + `decision if input.a[x] == 1`}, []string{"a"}, nil, []string{"b"}},
	{"ok/variable key in the middle reads the parent whole", []string{pkg + `decision if input.x[k].b == 1`}, []string{"x"}, nil, []string{"y"}},
	{"ok/number key reads the parent whole", []string{pkg + `decision if input.a[0] == 1`}, []string{"a"}, nil, nil},
	{"ok/bare input reads everything", []string{pkg + `decision if { x := input; x.a == 1 }`}, []string{""}, nil, nil},
	{"ok/input as a function argument", []string{pkg + `f(x) := x.b
decision if f(input.a) == 1`}, []string{"a"}, nil, []string{"b"}},
	{"ok/member and its parent: the parent whole", []string{pkg + `decision if input.a.b == 1
decision if count(input.a) > 2`}, []string{"a"}, nil, nil},
	{"ok/parent then member: the parent whole", []string{pkg + `decision if count(input.a) > 2
decision if input.a.b == 1`}, []string{"a"}, nil, nil},
	{"ok/imported alias", []string{pkg + `import input.attributes.request as req
decision if req.http.method == "GET"`}, nil, []string{"attributes.request.http.method"}, []string{"parsed_body", "attributes.source", "identity"}},
	{"ok/with input in a test rule does not read the input", []string{pkg + `decision if input.mcp.method == "tools/list"`,
		"package mcpauthz.authz_test\n\nimport data.mcpauthz.authz\n\n" + `test_list if authz.decision with input as {"mcp": {"method": "tools/list"}, "attributes": {}}`,
	}, []string{"mcp.method"}, nil, nil},
	{"ok/with target member is not read, its value is", []string{pkg + `p if input.a.b == 1
decision if p with input.a.b as input.c.d`}, []string{"a.b", "c.d"}, nil, []string{"a.x"}},
	{"ok/with data target, input value", []string{pkg + `p if data.limit > 3
decision if p with data.limit as input.quota.limit`}, []string{"quota.limit"}, nil, nil},
	{"ok/some key value in", []string{pkg + `decision if {
	some k, v in input.x
	startswith(k, "a")
	v == 1
}`}, []string{"x"}, nil, []string{"y"}},
	{"ok/some value in nested member", []string{pkg + `decision if "admin" in input.identity.roles`}, []string{"identity.roles"}, nil, []string{"identity.subject"}},
	{"ok/every", []string{pkg + `decision if every s in input.scopes { startswith(s, "mcp:") }`}, []string{"scopes"}, nil, nil},
	{"ok/walk reads everything", []string{pkg + `decision if { walk(input, [p, v]); v == "x" }`}, []string{""}, nil, nil},
	{"ok/object.get on input reads everything", []string{pkg + `decision if object.get(input, "a", 1) == 1`}, []string{""}, nil, nil},
	{"ok/json.marshal of input reads everything", []string{pkg + `decision := json.marshal(input)`}, []string{""}, nil, nil},
	{"ok/input-derived key", []string{pkg + `decision if input.a[input.b.c] == 1`}, []string{"a", "b.c"}, nil, nil},
	{"ok/negation", []string{pkg + `decision if not input.attributes.request.http.headers.authorization`},
		[]string{"attributes.request.http.headers.authorization"}, nil, []string{"attributes.request.http.headers.cookie"}},
	{"ok/header by variable name", []string{pkg + `decision if {
	some name in ["x-api-key", "authorization"]
	input.attributes.request.http.headers[name]
}`}, []string{"attributes.request.http.headers"}, nil, []string{"attributes.request.http.body"}},
	{"ok/comprehension", []string{pkg + `decision := {t | some t in input.mcp.tools; t != "delete"}`}, []string{"mcp.tools"}, nil, nil},
	{"ok/template string", []string{pkg + `decision := $"user {input.identity.subject} on {input.mcp.tool}"`}, []string{"identity.subject", "mcp.tool"}, nil, nil},
	{"ok/else branch", []string{pkg + `decision := 1 if input.a == 1
else := 2 if input.b == 2`}, []string{"a", "b"}, nil, nil},
	{"ok/rule head key from input", []string{pkg + `tools[input.mcp.tool] := true
decision if tools.search`}, []string{"mcp.tool"}, nil, nil},
	{"ok/no input", []string{pkg + `decision := {"allowed": data.open}`}, nil, nil, []string{"", "a"}},
	{"ok/across modules", []string{pkg + `decision if helper`, "package mcpauthz.lib\n\nhelper if input.client_ip == \"10.0.0.1\"\n",
		pkg + `helper if data.mcpauthz.lib.helper`}, []string{"client_ip"}, nil, nil},
}

func TestAnalyzeInputUse(t *testing.T) {
	for _, tt := range inputUseTests {
		t.Run(tt.name, func(t *testing.T) {
			use := analyzeInputUse(compileModules(t, tt.modules...), nil, nil)
			got := usePaths(use)
			if tt.exact != nil && !reflect.DeepEqual(got, tt.exact) {
				t.Errorf("reads %q, want %q", got, tt.exact)
			}
			if tt.exact == nil && tt.reads == nil && len(got) != 0 {
				t.Errorf("reads %q, want nothing", got)
			}
			for _, p := range tt.reads {
				if !covers(use, p) {
					t.Errorf("does not read %q; reads %q", p, got)
				}
			}
			for _, p := range tt.unread {
				if p == "" && use.Whole() || p != "" && covers(use, p) {
					t.Errorf("reads %q; reads %q", p, got)
				}
			}
		})
	}
}

// prune keeps what u reads of a JSON value, as the input builder does.
func prune(v any, u *InputUse) any {
	if u.Whole() {
		return v
	}
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := map[string]any{}
	for _, k := range u.Keys() {
		if x, ok := m[k]; ok {
			out[k] = prune(x, u.Child(k))
		}
	}
	return out
}

// soundnessInputs are input documents the pruned evaluation must agree on.
var soundnessInputs = []string{
	`{}`,
	`{"a": {"b": 1, "c": 2}, "b": {"c": "b"}, "c": {"d": 1}, "x": {"abc": 1, "b": 2}, "quota": {"limit": 5}}`,
	`{"a": [1, 2, 3], "b": {"c": 0}, "x": {"b": 1}, "y": 1, "scopes": ["mcp:read", "mcp:write"], "client_ip": "10.0.0.1"}`,
	`{"a": {"b": 2, "x": 1}, "mcp": {"method": "tools/list", "tool": "search", "tools": ["delete", "echo"]}, "quota": {"limit": 2}}`,
	`{"attributes": {"request": {"http": {"method": "GET", "headers": {"authorization": "Bearer t", "cookie": "s=1"}, "body": "x"}}, "source": {"principal": "spiffe://a"}},
	  "identity": {"roles": ["admin"], "subject": "alice"}, "parsed_body": {"a": 1}, "mcp": {"tool": "search"}}`,
	`{"attributes": {"request": {"http": {"method": "POST", "headers": {"x-api-key": "k"}}}}, "identity": {"roles": ["viewer"], "subject": "bob"}, "scopes": ["other"]}`,
	`{"a": {"b": 1}, "c": {"d": 1}, "b": {"c": 1}, "quota": {"limit": 3}, "client_ip": "10.0.0.2"}`,
	`{"x": {"k1": {"b": 1, "c": 2}, "b": {"b": 2}}, "a": {"b": {"c": 1}}}`,
}

// TestInputUseIsSound evaluates every module above with the full input and
// with the input pruned to what the analysis reports: the decisions must be
// the same.
func TestInputUseIsSound(t *testing.T) {
	ctx := context.Background()
	for _, tt := range inputUseTests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewEngine(DefaultDecisionPath)
			if err != nil {
				t.Fatal(err)
			}
			b := &bundle.Bundle{Data: map[string]any{"open": true, "limit": 1}}
			for i, src := range tt.modules {
				m, err := ast.ParseModuleWithOpts("m.rego", src, ast.ParserOptions{RegoVersion: ast.RegoV1})
				if err != nil {
					t.Fatal(err)
				}
				b.Modules = append(b.Modules, bundle.ModuleFile{Path: "/m" + string(rune('0'+i)) + ".rego", Raw: []byte(src), Parsed: m})
			}
			if err := e.Activate(ctx, b, "test"); err != nil {
				t.Fatal(err)
			}
			use := e.Active().InputUse()
			for _, doc := range soundnessInputs {
				var full any
				if err := json.Unmarshal([]byte(doc), &full); err != nil {
					t.Fatal(err)
				}
				want, wantErr := evalJSON(t, e, full)
				got, gotErr := evalJSON(t, e, prune(full, use))
				if got != want || (wantErr == nil) != (gotErr == nil) {
					t.Errorf("input %s:\nfull   → %s %v\npruned → %s %v (pruned input %v)", doc, want, wantErr, got, gotErr, prune(full, use))
				}
			}
		})
	}
}

func evalJSON(tb testing.TB, e *Engine, in any) (string, error) {
	tb.Helper()
	v, err := ast.InterfaceToValue(in)
	if err != nil {
		tb.Fatal(err)
	}
	t, _, err := e.Eval(context.Background(), ast.NewTerm(v))
	if err != nil {
		return "", err
	}
	return t.String(), nil
}

// dataKeyTests are references keyed by a variable that the policy binds to
// the members of a data document.
var dataKeyTests = []struct {
	name    string
	data    string
	modules []string
	exact   []string
}{
	{"ok/names from an array of strings", `{"cfg": {"headers": ["x-org", "x-team"]}}`, []string{pkg + `import data.cfg
decision contains org if {
	some name in cfg.headers
	org := input.headers[name]
}`}, []string{"headers.x-org", "headers.x-team"}},
	{"ok/names from the values of an object", `{"cfg": {"ext": {"a": "tenant", "b": "team"}}}`, []string{pkg + `decision contains v if {
	some name in data.cfg.ext
	v := input.ext[name].id
}`}, []string{"ext.team", "ext.tenant"}},
	{"ok/names from a set", `{"cfg": {"headers": ["x-org"]}}`, []string{pkg + `names := {n | some n in data.cfg.headers}
decision if {
	some name in data.cfg.headers
	input.headers[name] == "a"
}`}, []string{"headers.x-org"}},
	{"ok/bound in the enclosing body, read in a comprehension", `{"cfg": {"headers": ["x-org"]}}`, []string{pkg + `decision contains x if {
	some name in data.cfg.headers
	x := [v | v := input.headers[name]]
}`}, []string{"headers.x-org"}},
	{"ok/an empty document reads nothing below", `{"cfg": {"headers": []}}`, []string{pkg + `decision if {
	some name in data.cfg.headers
	input.headers[name]
}`}, nil},
	{"ok/a test replacing the document does not count", `{"cfg": {"headers": ["x-org"]}}`, []string{pkg + `decision if {
	some name in data.cfg.headers
	input.headers[name] == "a"
}`, "package mcpauthz.authz_test\n\nimport data.mcpauthz.authz\n\n" + `test_other if authz.decision with data.cfg.headers as ["x-other"] with input as {"headers": {"x-other": "a"}}`},
		[]string{"headers.x-org"}},
	{"whole/a non-string member", `{"cfg": {"headers": ["x-org", 1]}}`, []string{pkg + `decision if {
	some name in data.cfg.headers
	input.headers[name] == "a"
}`}, []string{"headers"}},
	{"whole/the document is a rule", `{}`, []string{pkg + `names := ["x-org"]
decision if {
	some name in names
	input.headers[name] == "a"
}`}, []string{"headers"}},
	{"whole/a rule defines part of the document", `{"cfg": {"headers": ["x-org"]}}`, []string{pkg + `decision if {
	some name in data.cfg.headers
	input.headers[name] == "a"
}`, "package cfg.headers\n\nextra := \"x-other\"\n"}, []string{"headers"}},
	{"whole/the decision replaces the document", `{"cfg": {"headers": ["x-org"]}}`, []string{pkg + `p if {
	some name in data.cfg.headers
	input.headers[name] == "a"
}
decision if p with data.cfg.headers as ["x-other"]`}, []string{"headers"}},
	{"whole/the decision replaces a parent", `{"cfg": {"headers": ["x-org"]}}`, []string{pkg + `p if {
	some name in data.cfg.headers
	input.headers[name] == "a"
}
decision if p with data.cfg as {"headers": ["x-other"]}`}, []string{"headers"}},
	{"whole/a function argument", `{"cfg": {"headers": ["x-org"]}}`, []string{pkg + `h(name) := input.headers[name]
decision if h(data.cfg.headers[0]) == "a"`}, []string{"headers"}},
	{"whole/bound by a literal array", `{}`, []string{pkg + `decision if {
	some name in ["x-org"]
	input.headers[name] == "a"
}`}, []string{"headers"}},
}

func TestInputUseWithData(t *testing.T) {
	ctx := context.Background()
	inputs := []string{
		`{}`,
		`{"headers": {"x-org": "a", "x-team": "b", "x-other": "a"}, "ext": {"tenant": {"id": 1}, "team": {"id": 2}, "x": {"id": 3}}}`,
		`{"headers": {"x-other": "a"}, "ext": {"x": {"id": 3}}}`,
		`{"headers": {"x-org": "b", "1": "a"}}`,
	}
	for _, tt := range dataKeyTests {
		t.Run(tt.name, func(t *testing.T) {
			var data map[string]any
			if err := json.Unmarshal([]byte(tt.data), &data); err != nil {
				t.Fatal(err)
			}
			e, err := NewEngine(DefaultDecisionPath, WithBundleTests(false, 0))
			if err != nil {
				t.Fatal(err)
			}
			b := &bundle.Bundle{Data: data}
			for i, src := range tt.modules {
				m, err := ast.ParseModuleWithOpts("m.rego", src, ast.ParserOptions{RegoVersion: ast.RegoV1})
				if err != nil {
					t.Fatal(err)
				}
				b.Modules = append(b.Modules, bundle.ModuleFile{Path: "/m" + string(rune('0'+i)) + ".rego", Raw: []byte(src), Parsed: m})
			}
			if err := e.Activate(ctx, b, "test"); err != nil {
				t.Fatal(err)
			}
			use := e.Active().InputUse()
			if got := usePaths(use); !reflect.DeepEqual(got, tt.exact) {
				t.Errorf("reads %q, want %q", got, tt.exact)
			}
			for _, doc := range inputs {
				var full any
				if err := json.Unmarshal([]byte(doc), &full); err != nil {
					t.Fatal(err)
				}
				want, wantErr := evalJSON(t, e, full)
				got, gotErr := evalJSON(t, e, prune(full, use))
				if got != want || (wantErr == nil) != (gotErr == nil) {
					t.Errorf("input %s:\nfull   → %s %v\npruned → %s %v", doc, want, wantErr, got, gotErr)
				}
			}
		})
	}
}
