package bundles

import (
	"context"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
)

// InputUse describes which parts of the input document a compiled policy
// can read, so the caller can skip building the rest. A nil *InputUse means
// "not read"; a whole one means "read all of it and everything below".
//
// The analysis is conservative: Rego reaches input only through references
// rooted at `input` in the compiled modules, and any reference that is bare
// (`x := input`), continues with a non-constant key (`input[k]`) or stops at
// an object (`f(input.attributes)`) marks that whole subtree as read.
type InputUse struct {
	whole    bool
	children map[string]*InputUse
	keys     []string // the keys of children, in the order they were added
	cuts     *Cuts    // set on a number the policy only compares with constants
}

// AllInput reads everything.
var AllInput = &InputUse{whole: true}

// Whole reports whether everything below u is read.
func (u *InputUse) Whole() bool { return u != nil && u.whole }

// Child returns the use of the member key below u: u itself when u is
// whole, nil when the member is not read.
func (u *InputUse) Child(key string) *InputUse {
	switch {
	case u == nil:
		return nil
	case u.whole:
		return u
	}
	return u.children[key]
}

// Keys returns the members read below u when u is not whole. The slice
// belongs to u and must not be modified.
func (u *InputUse) Keys() []string {
	if u == nil || u.whole {
		return nil
	}
	return u.keys
}

func (u *InputUse) add(path []string) {
	node := u
	for _, key := range path {
		if node.whole {
			return
		}
		if node.children == nil {
			node.children = map[string]*InputUse{}
		}
		next, ok := node.children[key]
		if !ok {
			next = &InputUse{}
			node.children[key] = next
			node.keys = append(node.keys, key)
		}
		node = next
	}
	node.whole = true
	node.children, node.keys = nil, nil
}

// analyzeInputUse collects the input references of compiled modules. With
// a store of the bundle's data, a reference whose key is a variable that
// the same body (or an enclosing one) binds to a member of a data document
// — `some name in config.headers; input.headers[name]` — reads only the
// members that document names, unless a rule the decision depends on
// replaces that document with `with`; otherwise it reads the whole
// subtree.
func analyzeInputUse(c *ast.Compiler, data storage.Store, decision ast.Ref) *InputUse {
	a := &inputAnalysis{use: &InputUse{}, compiler: c, data: data}
	if data != nil {
		a.replaced, a.mocked = replacedData(c, decision)
	}
	for _, m := range c.Modules {
		a.walk(m)
	}
	if data != nil {
		for _, path := range ordinalInput {
			if leaf := a.use.member(path); leaf != nil {
				leaf.cuts = a.cuts(path)
			}
		}
	}
	return a.use
}

// ordinalInput are the input numbers the decision cache may key by their
// class among the constants a policy compares them with: the integers
// the sidecar builds that change from one request to the next (the
// policy package's builder.integer).
var ordinalInput = [][]string{
	{"identity", "auth_age_seconds"},
	{"identity", "session", "age_seconds"},
}

// member returns the node of the member at path when it is read whole and
// nothing above it is: nil otherwise.
func (u *InputUse) member(path []string) *InputUse {
	for _, k := range path {
		if u.whole {
			return nil
		}
		if u = u.children[k]; u == nil {
			return nil
		}
	}
	if !u.whole {
		return nil
	}
	return u
}

// replacedData lists the data documents that a `with` in a rule the
// decision depends on replaces, and reports whether such a `with` replaces
// a built-in (`with lte as f`). Tests replace
// data freely; what they replace matters only if the decision calls them.
func replacedData(c *ast.Compiler, decision ast.Ref) (out []ast.Ref, mocked bool) {
	todo := append(c.GetRules(decision), c.GetRulesWithPrefix(decision)...)
	seen := map[*ast.Rule]bool{}
	for len(todo) > 0 {
		r := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[r] {
			continue
		}
		seen[r] = true
		ast.WalkWiths(r, func(w *ast.With) bool {
			t, ok := w.Target.Value.(ast.Ref)
			switch {
			case ok && t[0].Equal(ast.InputRootDocument):
			case ok && t[0].Equal(ast.DefaultRootDocument):
				out = append(out, t)
			default: // a built-in
				mocked = true
				mocked = true
			}
			return false
		})
		for dep := range c.Graph.Dependencies(r) {
			if d, ok := dep.(*ast.Rule); ok {
				todo = append(todo, d)
			}
		}
	}
	return out, mocked
}

type inputAnalysis struct {
	use      *InputUse
	compiler *ast.Compiler
	data     storage.Store
	replaced []ast.Ref  // data documents some `with` replaces
	mocked   bool       // some `with` replaces a built-in
	bodies   []ast.Body // the bodies enclosing the node being walked
}

func (a *inputAnalysis) walk(x any) {
	ast.NewGenericVisitor(func(x any) bool {
		switch x := x.(type) {
		case ast.Body:
			a.bodies = append(a.bodies, x)
			for _, e := range x {
				a.walk(e)
			}
			a.bodies = a.bodies[:len(a.bodies)-1]
			return true
		case *ast.With:
			// The target of a `with` is replaced, not read; its value is read.
			a.walk(x.Value)
			return true
		case ast.Ref:
			a.record(x)
		}
		return false
	}).Walk(x)
}

func (a *inputAnalysis) record(r ast.Ref) {
	if len(r) == 0 || !r[0].Equal(ast.InputRootDocument) {
		return
	}
	path := make([]string, 0, len(r)-1)
	for _, t := range r[1:] {
		if k, ok := t.Value.(ast.String); ok {
			path = append(path, string(k))
			continue
		}
		if v, ok := t.Value.(ast.Var); ok {
			if keys, ok := a.dataKeys(v); ok {
				for _, key := range keys {
					a.use.add(append(slices.Clip(path), key))
				}
				return
			}
		}
		break
	}
	a.use.add(path)
}

// dataKeys returns the strings v can take when an enclosing body binds it
// to a member of a data document (`v = data.x.y[_]`, which `some v in
// data.x.y` compiles to) that is plain bundle data — defined by no rule,
// replaced by no `with` — holding only strings. Any binding of v
// constrains it: a body succeeds only when all its expressions hold.
func (a *inputAnalysis) dataKeys(v ast.Var) ([]string, bool) {
	if a.data == nil {
		return nil, false
	}
	for i := len(a.bodies) - 1; i >= 0; i-- {
		for _, e := range a.bodies[i] {
			if !e.IsEquality() || e.Negated {
				continue
			}
			l, r := e.Operand(0), e.Operand(1)
			if l.Value.Compare(v) != 0 {
				l, r = r, l
			}
			if l.Value.Compare(v) != 0 {
				continue
			}
			if keys, ok := a.members(r); ok {
				return keys, true
			}
		}
	}
	return nil, false
}

// members returns the members of the data document t iterates (t is
// data.<constant path>[<variable>]) when they are all strings.
func (a *inputAnalysis) members(t *ast.Term) ([]string, bool) {
	r, ok := t.Value.(ast.Ref)
	if !ok || len(r) < 3 || !r[0].Equal(ast.DefaultRootDocument) {
		return nil, false
	}
	if _, ok := r[len(r)-1].Value.(ast.Var); !ok {
		return nil, false
	}
	val, ok := a.plainData(r[:len(r)-1])
	if !ok {
		return nil, false
	}
	var keys []string
	add := func(t *ast.Term) bool {
		s, ok := t.Value.(ast.String)
		keys = append(keys, string(s))
		return ok
	}
	switch doc := val.(type) {
	case *ast.Array:
		for i := range doc.Len() {
			if !add(doc.Elem(i)) {
				return nil, false
			}
		}
	case ast.Set:
		for _, t := range doc.Slice() {
			if !add(t) {
				return nil, false
			}
		}
	case ast.Object:
		for _, k := range doc.Keys() {
			if !add(doc.Get(k)) {
				return nil, false
			}
		}
	default:
		return nil, false
	}
	return keys, true
}

// plainData returns the value of the data document doc (a ground ref
// rooted at data) when it is plain bundle data: defined by no rule,
// replaced by no `with` that the decision can reach.
func (a *inputAnalysis) plainData(doc ast.Ref) (any, bool) {
	if len(doc) < 2 || !doc[0].Equal(ast.DefaultRootDocument) || !doc[1:].IsGround() ||
		len(a.compiler.GetRules(doc)) > 0 || len(a.compiler.GetRulesWithPrefix(doc)) > 0 {
		return nil, false
	}
	for _, w := range a.replaced {
		if w.HasPrefix(doc) || doc.HasPrefix(w) {
			return nil, false
		}
	}
	path, err := storage.NewPathForRef(doc)
	if err != nil {
		return nil, false
	}
	val, err := storage.ReadOne(context.Background(), a.data, path)
	if err != nil {
		return nil, false
	}
	return val, true
}
