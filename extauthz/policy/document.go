package policy

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/mcp"
)

// inputDoc is the input of one decision for the decision log. The hot path
// builds only what the policy reads; the log gets the whole document,
// built when the log writes it, off the request path.
type inputDoc struct {
	in  extauthz.PolicyInput
	now time.Time
}

func (d *inputDoc) AppendJSON(dst []byte, mask *extauthz.Mask) ([]byte, []string) {
	t := buildInput(&d.in, bundles.AllInput, d.now)
	var erased []string
	return appendTerm(dst, t, mask, "", &erased), erased
}

// result is a policy's result: the term, or for a remembered decision the
// term's JSON when JSON holds it exactly — OPA's values take about ten
// times the space, and the decision cache holds thousands. It is the
// decision log's document of the result too.
type result struct {
	term *ast.Term
	json []byte
}

// compact returns t as a result to remember.
func compact(t *ast.Term) result {
	if !jsonExact(t.Value) {
		return result{term: t}
	}
	var erased []string
	return result{json: appendTerm(nil, t, nil, "", &erased)}
}

// Term returns the result as a term, nil when there is none.
func (r result) Term() *ast.Term {
	if r.term != nil || r.json == nil {
		return r.term
	}
	t, err := ast.ParseTerm(string(r.json))
	if err != nil { // it was written by appendTerm
		panic(fmt.Sprintf("a remembered policy result does not parse: %v", err))
	}
	return t
}

func (r result) AppendJSON(dst []byte, mask *extauthz.Mask) ([]byte, []string) {
	if r.json != nil && mask == nil {
		return append(dst, r.json...), nil
	}
	var erased []string
	return appendTerm(dst, r.Term(), mask, "", &erased), erased
}

// jsonExact reports whether appendTerm writes v as JSON that parses back to
// v: no sets, and only string keys.
func jsonExact(v ast.Value) bool {
	switch v := v.(type) {
	case ast.Null, ast.Boolean, ast.Number, ast.String:
		return true
	case *ast.Array:
		for i := range v.Len() {
			if !jsonExact(v.Elem(i).Value) {
				return false
			}
		}
		return true
	case ast.Object:
		ok := true
		v.Foreach(func(k, x *ast.Term) {
			if _, s := k.Value.(ast.String); !s || !jsonExact(x.Value) {
				ok = false
			}
		})
		return ok
	}
	return false
}

// appendTerm writes t as JSON, leaving out members mask selects and noting
// their JSON pointers in erased. Sets become arrays, object keys that are
// not strings are written in their Rego form.
func appendTerm(dst []byte, t *ast.Term, mask *extauthz.Mask, pointer string, erased *[]string) []byte {
	switch v := t.Value.(type) {
	case ast.Null:
		return append(dst, "null"...)
	case ast.Boolean:
		if v {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case ast.Number:
		return append(dst, v...)
	case ast.String:
		return mcp.AppendString(dst, string(v))
	case *ast.Array:
		dst = append(dst, '[')
		for i := range v.Len() {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendTerm(dst, v.Elem(i), nil, "", erased)
		}
		return append(dst, ']')
	case ast.Set:
		return appendTerm(dst, ast.NewTerm(v.Sorted()), nil, "", erased)
	case ast.Object:
		ks := v.Keys()
		sort.Slice(ks, func(i, j int) bool { return ks[i].Value.Compare(ks[j].Value) < 0 })
		dst = append(dst, '{')
		n := 0
		for _, k := range ks {
			name := keyString(k)
			child := mask.Child(name)
			var p string
			if child != nil {
				p = pointer + "/" + escapePointer(name)
			}
			if child.Selected() {
				*erased = append(*erased, p)
				continue
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = mcp.AppendString(dst, name)
			dst = append(dst, ':')
			dst = appendTerm(dst, v.Get(k), child, p, erased)
		}
		return append(dst, '}')
	}
	return mcp.AppendString(dst, t.String())
}

func keyString(k *ast.Term) string {
	if s, ok := k.Value.(ast.String); ok {
		return string(s)
	}
	return k.String()
}

func escapePointer(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
