package policy

import (
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

// termDoc is a policy result for the decision log.
type termDoc struct{ t *ast.Term }

func (d termDoc) AppendJSON(dst []byte, mask *extauthz.Mask) ([]byte, []string) {
	var erased []string
	return appendTerm(dst, d.t, mask, "", &erased), erased
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
