package bundles

import (
	"encoding/json"
	"io/fs"
	"math/big"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/mcpauthz/mcpauthz/policies"
)

const cutsData = `{"cfg": {"max": 900, "leeway": 60, "half": 0.5, "name": "x", "list": [1, 2], "one": [900]}}`

// cutsOf analyzes modules with data and returns the cuts of the input
// member at the dotted path, as the constants they stand for.
func cutsOf(t *testing.T, data string, path string, modules ...string) (floors []int64, exact []bool, found bool) {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(data), &doc); err != nil {
		t.Fatal(err)
	}
	store := inmem.NewFromObjectWithOpts(doc, inmem.OptReturnASTValuesOnRead(true), inmem.OptRoundTripOnWrite(false))
	use := analyzeInputUse(compileModules(t, modules...), store, ast.MustParseRef("data.mcpauthz.authz.decision"))
	for k := range strings.SplitSeq(path, ".") {
		use = use.Child(k)
	}
	c := use.Cuts()
	if c == nil {
		return nil, nil, false
	}
	return c.floors, c.exact, true
}

func TestCutsAnalysis(t *testing.T) {
	for _, tt := range []struct {
		name   string
		module string
		floors []int64 // nil: no cuts
		exact  []bool
	}{
		{"ok/fresh-session rule", `fresh if {
	age := input.identity.auth_age_seconds
	is_number(age)
	age <= data.cfg.max
	age >= 0 - data.cfg.leeway
}
decision := fresh`, []int64{-60, 900}, []bool{true, true}},
		{"ok/literal comparisons in several rules", `a if input.identity.auth_age_seconds < 10
b if { x := input.identity.auth_age_seconds; y := x; y > 3; not y == 7 }
decision := [a, b]`, []int64{3, 7, 10}, []bool{true, true, true}},
		{"ok/a non-integer constant", `decision if input.identity.auth_age_seconds > data.cfg.half`, []int64{0}, []bool{false}},
		{"ok/computed constants", `decision if { input.identity.auth_age_seconds < (data.cfg.max * 2) + 1 }`, []int64{1801}, []bool{true}},
		{"ok/a comparison as a value", `decision := input.identity.auth_age_seconds < 5`, []int64{5}, []bool{true}},
		{"ok/in a comprehension", `decision := count([1 | input.identity.auth_age_seconds > 2])`, []int64{2}, []bool{true}},
		{"ok/is_number alone", `decision if is_number(input.identity.auth_age_seconds)`, []int64{}, []bool{}},
		{"fail/returned", `decision := input.identity.auth_age_seconds`, nil, nil},
		{"fail/bound and returned", `decision := x if { x := input.identity.auth_age_seconds; x > 1 }`, nil, nil},
		{"fail/an argument of another function", `decision if abs(input.identity.auth_age_seconds) < 3`, nil, nil},
		{"fail/arithmetic on the member", `decision if input.identity.auth_age_seconds + 1 < 3`, nil, nil},
		{"fail/compared with another input member", `decision if input.identity.auth_age_seconds < input.identity.max`, nil, nil},
		{"fail/compared with a string", `decision if input.identity.auth_age_seconds < data.cfg.name`, nil, nil},
		{"fail/compared with a member of iterated data", `decision if { some m in data.cfg.list; input.identity.auth_age_seconds < m }`, nil, nil},
		{"fail/compared with data a rule defines", `limits := {"max": 3}
decision if input.identity.auth_age_seconds < data.mcpauthz.authz.limits.max`, nil, nil},
		{"fail/compared with data a with replaces", `p if input.identity.auth_age_seconds < data.cfg.max
decision if p with data.cfg.max as 5`, nil, nil},
		{"ok/replaced with with, which reads nothing", `p if input.identity.auth_age_seconds < 3
decision if p with input.identity.auth_age_seconds as 1`, []int64{3}, []bool{true}},
		{"fail/a user function", `f(x) if x < 3
decision if f(input.identity.auth_age_seconds)`, nil, nil},
		{"fail/a variable key", `decision if { some k; input.identity[k] < 3 }`, nil, nil},
		{"fail/the parent read", `decision if { input.identity.auth_age_seconds < 3; count(input.identity) > 1 }`, nil, nil},
		{"fail/in a rule head", `p[input.identity.auth_age_seconds] if input.identity.auth_age_seconds < 3
decision := p`, nil, nil},
		{"fail/unified with data", `decision if input.identity.auth_age_seconds = data.cfg.max`, nil, nil},
		{"fail/bound twice", `decision if { x := input.identity.auth_age_seconds; x > 3; x = data.cfg.max }`, nil, nil},
		{"fail/sprintf", `decision := sprintf("%d", [input.identity.auth_age_seconds]) if input.identity.auth_age_seconds > 2`, nil, nil},
		{"fail/compared with a function's argument", `fresh(max_age) if {
	not max_age == 0
	input.identity.auth_age_seconds <= max_age
}
decision if fresh(3600)`, nil, nil},
		{"fail/compared with a variable bound only in a comprehension", `decision if {
	[limit] = data.cfg.one
	count([1 | limit == 0]) >= 0
	input.identity.auth_age_seconds <= limit
}`, nil, nil},
		{"fail/compared with a variable also tested under not", `decision if {
	limit := data.cfg.max
	not limit == 0
	input.identity.auth_age_seconds <= limit
}`, nil, nil},
		{"fail/a comparison replaced with with", `fresh if input.identity.auth_age_seconds <= 900
odd(a, _) := a % 2 == 1
decision if { fresh with lte as odd }`, nil, nil},
		{"fail/computed from a non-integer, which OPA rounds", `decision if input.identity.auth_age_seconds <= data.cfg.half * 60`, nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			floors, exact, found := cutsOf(t, cutsData, "identity.auth_age_seconds", pkg+tt.module)
			if found != (tt.floors != nil) {
				t.Fatalf("cuts found: %v, want %v (%v %v)", found, tt.floors != nil, floors, exact)
			}
			if found && (!slices.Equal(floors, tt.floors) || !slices.Equal(exact, tt.exact)) {
				t.Fatalf("cuts %v %v, want %v %v", floors, exact, tt.floors, tt.exact)
			}
		})
	}
}

// TestCutsClass: integers of one class compare alike with every constant,
// and integers of different classes differ against one of them.
func TestCutsClass(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	cmp := func(x int64, c *big.Rat) int { return new(big.Rat).SetInt64(x).Cmp(c) }
	for round := range 300 {
		var constants []*big.Rat
		for range rng.IntN(6) {
			c := new(big.Rat).SetFrac64(rng.Int64N(41)-20, int64(1+rng.IntN(3)))
			constants = append(constants, c)
		}
		cuts := newCuts(append([]*big.Rat(nil), constants...))
		type class struct {
			below int
			equal bool
		}
		signs := map[class][]int{}
		for x := int64(-25); x <= 25; x++ {
			b, e := cuts.Class(x)
			var s []int
			for _, c := range constants {
				s = append(s, cmp(x, c))
			}
			k := class{b, e}
			if prev, ok := signs[k]; ok && !reflect.DeepEqual(prev, s) {
				t.Fatalf("round %d, constants %v: %d is in class %v with an integer that compares otherwise (%v against %v)", round, constants, x, k, s, prev)
			}
			signs[k] = s
		}
		seen := map[string]class{}
		for k, s := range signs {
			key, _ := json.Marshal(s)
			if other, ok := seen[string(key)]; ok {
				t.Fatalf("round %d, constants %v: classes %v and %v compare alike", round, constants, k, other)
			}
			seen[string(key)] = k
		}
	}
}

// TestCutsOfTheDefaultBundle: the ages the fresh-session rules compare are
// keyed by their class, so a session's decisions stay cached as it ages.
func TestCutsOfTheDefaultBundle(t *testing.T) {
	var data map[string]any
	var modules []string
	err := fs.WalkDir(policies.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(policies.FS(), p)
		switch {
		case err != nil:
			return err
		case p == "data.json":
			return json.Unmarshal(b, &data)
		case strings.HasSuffix(p, ".rego"):
			modules = append(modules, string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	store := inmem.NewFromObjectWithOpts(data, inmem.OptReturnASTValuesOnRead(true), inmem.OptRoundTripOnWrite(false))
	use := analyzeInputUse(compileModules(t, modules...), store, ast.MustParseRef("data.mcpauthz.authz.decision"))
	identity := use.Child("identity")
	if !worthCaching(use) {
		t.Fatal("the default bundle's decisions are not cached")
	}
	for path, want := range map[string][]int64{
		"auth_age_seconds":    {-60, 900},
		"session.age_seconds": {900},
	} {
		u := identity
		for k := range strings.SplitSeq(path, ".") {
			u = u.Child(k)
		}
		c := u.Cuts()
		if c == nil {
			t.Errorf("identity.%s: no cuts", path)
			continue
		}
		if !reflect.DeepEqual(c.floors, want) {
			t.Errorf("identity.%s: cuts %v, want %v", path, c.floors, want)
		}
	}
}
