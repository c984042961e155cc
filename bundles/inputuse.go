package bundles

import (
	"github.com/open-policy-agent/opa/v1/ast"
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

// analyzeInputUse collects the input references of compiled modules.
func analyzeInputUse(c *ast.Compiler) *InputUse {
	use := &InputUse{}
	var visit func(x any) bool
	vis := ast.NewGenericVisitor(func(x any) bool {
		switch x := x.(type) {
		case *ast.With:
			// The target of a `with` is replaced, not read; its value is read.
			ast.NewGenericVisitor(visit).Walk(x.Value)
			return true
		case ast.Ref:
			recordRef(use, x)
		}
		return false
	})
	visit = func(x any) bool {
		if r, ok := x.(ast.Ref); ok {
			recordRef(use, r)
		}
		return false
	}
	for _, m := range c.Modules {
		vis.Walk(m)
	}
	return use
}

func recordRef(use *InputUse, r ast.Ref) {
	if len(r) == 0 || !r[0].Equal(ast.InputRootDocument) {
		return
	}
	path := make([]string, 0, len(r)-1)
	for _, t := range r[1:] {
		s, ok := t.Value.(ast.String)
		if !ok {
			break
		}
		path = append(path, string(s))
	}
	use.add(path)
}
