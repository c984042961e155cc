package bundles

import (
	"math"
	"math/big"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Cuts are the constants a number of the input is compared with, when the
// policy does nothing else with it: a session's age tested against the
// fresh-session bound, say. Two integers that fall between the same cuts,
// or on the same one, are told apart by no decision, so the decision cache
// can key on the class of such a number rather than on the number itself,
// and a session's decisions stay cached as it ages.
type Cuts struct {
	floors []int64 // the floor of each constant, ascending by the constant
	exact  []bool  // whether constant i is an integer
}

// Cuts returns the constants a whole member of the input is compared with,
// or nil when the policy may do anything else with it.
func (u *InputUse) Cuts() *Cuts {
	if u == nil {
		return nil
	}
	return u.cuts
}

// Class returns the class of the integer x: how many constants are below
// it, and whether one equals it. Integers of the same class compare alike
// with every constant: for an integer x, a constant t is below x exactly
// when floor(t) is.
func (c *Cuts) Class(x int64) (below int, equal bool) {
	below, _ = slices.BinarySearch(c.floors, x)
	// Constants of one floor sort the integer first.
	equal = below < len(c.floors) && c.floors[below] == x && c.exact[below]
	return below, equal
}

// newCuts returns the cuts of constants, or nil when one does not fit an
// int64.
func newCuts(constants []*big.Rat) *Cuts {
	slices.SortFunc(constants, (*big.Rat).Cmp)
	constants = slices.CompactFunc(constants, func(a, b *big.Rat) bool { return a.Cmp(b) == 0 })
	c := &Cuts{}
	for _, t := range constants {
		floor := new(big.Int).Div(t.Num(), t.Denom()) // Euclidean: the floor, as the denominator is positive
		if !floor.IsInt64() || floor.Int64() == math.MaxInt64 {
			return nil
		}
		c.floors = append(c.floors, floor.Int64())
		c.exact = append(c.exact, t.IsInt())
	}
	return c
}

// comparisons are the built-ins whose result depends on a number only
// through its order against the other operand.
var comparisons = map[string]bool{
	ast.LessThan.Name: true, ast.LessThanEq.Name: true,
	ast.GreaterThan.Name: true, ast.GreaterThanEq.Name: true,
	ast.Equal.Name: true, ast.NotEqual.Name: true,
}

// arithmetic are the built-ins a constant may be computed with.
var arithmetic = map[string]func(z, x, y *big.Rat) *big.Rat{
	ast.Plus.Name:     (*big.Rat).Add,
	ast.Minus.Name:    (*big.Rat).Sub,
	ast.Multiply.Name: (*big.Rat).Mul,
}

// cuts returns the cuts of the input member at path, or nil unless every
// reference to it, in every rule, is one of:
//
//   - an operand of a comparison whose other operand is a constant: a
//     number, plain bundle data holding a number, or a local variable bound
//     to one, or to a sum, difference or product of constants;
//   - the operand of is_number;
//   - a binding of a local variable (`age := input.identity.age`) used only
//     in those ways.
//
// Any other reference — in a rule's head, under `with`, as an argument of
// another function, through a parent or a variable key — makes the exact
// value matter.
func (a *inputAnalysis) cuts(path []string) *Cuts {
	if a.mocked {
		// A comparison may not compare: `with lte as f`.
		return nil
	}
	var constants []*big.Rat
	for _, m := range a.compiler.Modules {
		for _, r := range m.Rules {
			for ; r != nil; r = r.Else {
				found, ok := a.ruleCuts(r, path)
				if !ok {
					return nil
				}
				constants = append(constants, found...)
			}
		}
	}
	return newCuts(constants)
}

// reach is how a reference reaches an input member.
type reach int

const (
	apart   reach = iota // not at all
	exactly              // it names the member
	maybe                // it names a parent, or a variable key may be the member
)

func reaches(r ast.Ref, path []string) reach {
	if len(r) == 0 || !r[0].Equal(ast.InputRootDocument) {
		return apart
	}
	for i, t := range r[1:] {
		if i == len(path) {
			return maybe // below the member
		}
		k, ok := t.Value.(ast.String)
		if !ok {
			return maybe
		}
		if string(k) != path[i] {
			return apart
		}
	}
	if len(r)-1 == len(path) {
		return exactly
	}
	return maybe
}

// ruleCuts returns the constants the member at path is compared with in the
// rule r (not its else branches), and whether r uses it only as cuts allow.
func (a *inputAnalysis) ruleCuts(r *ast.Rule, path []string) ([]*big.Rat, bool) {
	refs, ok := 0, true
	var count func(x any)
	count = func(x any) {
		ast.NewGenericVisitor(func(x any) bool {
			switch x := x.(type) {
			case *ast.With:
				// The target of a `with` is replaced, not read.
				count(x.Value)
				return true
			case ast.Ref:
				switch reaches(x, path) {
				case exactly:
					refs++
				case maybe:
					ok = false
				}
			}
			return false
		}).Walk(x)
	}
	count(r.Head)
	headRefs := refs
	count(r.Body)
	if !ok || headRefs > 0 {
		return nil, false
	}
	if refs == 0 {
		return nil, true
	}

	var exprs []*ast.Expr
	ast.WalkExprs(r.Body, func(e *ast.Expr) bool {
		exprs = append(exprs, e)
		return false
	})
	isRef := func(t *ast.Term) bool {
		ref, ok := t.Value.(ast.Ref)
		return ok && reaches(ref, path) == exactly
	}

	// The local variables the member is bound to, directly or through
	// another of them.
	aliases := map[ast.Var]bool{}
	for grown := true; grown; {
		grown = false
		for _, e := range exprs {
			if !e.IsEquality() || e.Negated || len(e.With) > 0 {
				continue
			}
			for _, side := range [2][2]*ast.Term{{e.Operand(0), e.Operand(1)}, {e.Operand(1), e.Operand(0)}} {
				v, isVar := side[0].Value.(ast.Var)
				other, _ := side[1].Value.(ast.Var)
				if isVar && !aliases[v] && (isRef(side[1]) || aliases[other]) {
					aliases[v], grown = true, true
				}
			}
		}
	}
	isTarget := func(t *ast.Term) bool {
		v, ok := t.Value.(ast.Var)
		return isRef(t) || ok && aliases[v]
	}

	// Every use of the member or an alias must be one of the allowed ones.
	uses := map[ast.Var]int{}
	ast.WalkVars(r.Head, func(v ast.Var) bool {
		if aliases[v] {
			ok = false
		}
		return false
	})
	ast.WalkVars(r.Body, func(v ast.Var) bool {
		if aliases[v] {
			uses[v]++
		}
		return false
	})
	if !ok {
		return nil, false
	}
	allowed := map[ast.Var]int{}
	allow := func(t *ast.Term) {
		if v, isVar := t.Value.(ast.Var); isVar {
			allowed[v]++
		} else {
			refs--
		}
	}
	var constants []*big.Rat
	for _, e := range exprs {
		if len(e.With) > 0 {
			continue
		}
		switch {
		case e.IsEquality():
			l, rt := e.Operand(0), e.Operand(1)
			if !isTarget(l) && !isTarget(rt) {
				continue
			}
			_, lv := l.Value.(ast.Var)
			_, rv := rt.Value.(ast.Var)
			switch {
			case isTarget(l) && isTarget(rt) || isTarget(l) && rv || isTarget(rt) && lv: // a binding
				if e.Negated {
					continue
				}
				allow(l)
				allow(rt)
			default: // a test against a number
				target, other := l, rt
				if isTarget(rt) {
					target, other = rt, l
				}
				n, isNum := other.Value.(ast.Number)
				t, okNum := new(big.Rat).SetString(string(n))
				if !isNum || !okNum {
					continue
				}
				constants = append(constants, t)
				allow(target)
			}
		case e.IsCall() && comparisons[e.Operator().String()]:
			ops := e.Operands()
			if len(ops) < 2 || len(ops) > 3 || len(ops) == 3 && isTarget(ops[2]) || isTarget(ops[0]) == isTarget(ops[1]) {
				continue
			}
			target, other := ops[0], ops[1]
			if isTarget(other) {
				target, other = other, target
			}
			t, found := a.constant(other, r, exprs, 0)
			if !found {
				continue
			}
			constants = append(constants, t)
			allow(target)
		case e.IsCall() && e.Operator().String() == ast.IsNumber.Name:
			ops := e.Operands()
			if len(ops) >= 1 && isTarget(ops[0]) && (len(ops) == 1 || !isTarget(ops[1])) {
				allow(ops[0])
			}
		}
	}
	if refs != 0 {
		return nil, false
	}
	for v, n := range uses {
		if allowed[v] != n {
			return nil, false
		}
	}
	return constants, true
}

// constant returns the number t stands for in the rule r, whose
// expressions (nested ones too) are exprs, when it is a constant: a number,
// plain bundle data holding a number, or a local variable the rule pins to
// one (constantVar).
func (a *inputAnalysis) constant(t *ast.Term, r *ast.Rule, exprs []*ast.Expr, depth int) (*big.Rat, bool) {
	if depth > 8 {
		return nil, false
	}
	switch v := t.Value.(type) {
	case ast.Number:
		return new(big.Rat).SetString(string(v))
	case ast.Ref:
		if a.data == nil {
			return nil, false
		}
		val, ok := a.plainData(v)
		if n, isNum := val.(ast.Number); ok && isNum {
			return new(big.Rat).SetString(string(n))
		}
		return nil, false
	case ast.Var:
		return a.constantVar(v, r, exprs, depth)
	}
	return nil, false
}

// constantVar returns the number the local variable v stands for when the
// rule pins it: v is not in the rule's head, exactly one expression at the
// top of the rule's body binds it — unifies it with a constant, or computes
// it from two integer constants (OPA computes with other numbers in
// floating point) — and every other occurrence of v is an operand of a
// comparison or of such a computation. A binding anywhere else (in a nested
// body, under `not`, in a pattern or a reference, as a function's argument)
// need not hold for the whole rule.
func (a *inputAnalysis) constantVar(v ast.Var, r *ast.Rule, exprs []*ast.Expr, depth int) (*big.Rat, bool) {
	inHead := false
	ast.WalkVars(r.Head, func(x ast.Var) bool {
		inHead = inHead || x.Equal(v)
		return false
	})
	if inHead {
		return nil, false
	}
	var def *ast.Expr
	for _, e := range r.Body {
		if defines(e, v) {
			if def != nil {
				return nil, false
			}
			def = e
		}
	}
	if def == nil || def.Negated || len(def.With) > 0 {
		return nil, false
	}
	occurrences, accounted := 0, 1 // the definition
	ast.WalkVars(r.Body, func(x ast.Var) bool {
		if x.Equal(v) {
			occurrences++
		}
		return false
	})
	for _, e := range exprs {
		if e == def || len(e.With) > 0 || !e.IsCall() {
			continue
		}
		name := e.Operator().String()
		if _, arith := arithmetic[name]; !arith && !comparisons[name] {
			continue
		}
		ops := e.Operands()
		for _, op := range ops[:min(len(ops), 2)] {
			if op.Value.Compare(v) == 0 {
				accounted++
			}
		}
	}
	if occurrences != accounted {
		return nil, false
	}
	if def.IsEquality() {
		other := def.Operand(0)
		if other.Value.Compare(v) == 0 {
			other = def.Operand(1)
		}
		return a.constant(other, r, exprs, depth+1)
	}
	ops := def.Operands()
	x, okX := a.constant(ops[0], r, exprs, depth+1)
	y, okY := a.constant(ops[1], r, exprs, depth+1)
	if !okX || !okY || !x.IsInt() || !y.IsInt() {
		return nil, false
	}
	return arithmetic[def.Operator().String()](new(big.Rat), x, y), true
}

// defines reports whether e binds v at its top: unifies the variable v
// with something, or computes v as the output of an arithmetic built-in.
func defines(e *ast.Expr, v ast.Var) bool {
	if e.IsEquality() {
		return e.Operand(0).Value.Compare(v) == 0 || e.Operand(1).Value.Compare(v) == 0
	}
	if !e.IsCall() {
		return false
	}
	_, arith := arithmetic[e.Operator().String()]
	ops := e.Operands()
	return arith && len(ops) == 3 && ops[2].Value.Compare(v) == 0
}
