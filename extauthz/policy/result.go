package policy

import (
	"errors"
	"fmt"
	"net/http"
	"sort"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcpauthz/mcpauthz/extauthz"
)

// decision maps a policy result to a Decision the way OPA-Envoy does: a
// boolean, or an object with "allowed" and optional response fields.
// Unknown members are ignored; known members of the wrong type are errors,
// and so is any other kind of result.
func decision(v ast.Value) (extauthz.Decision, error) {
	switch v := v.(type) {
	case ast.Boolean:
		if v {
			return extauthz.Decision{Allowed: true}, nil
		}
		return extauthz.Deny(http.StatusForbidden, extauthz.ReasonPolicyDenied), nil
	case ast.Object:
		return objectDecision(v)
	}
	return extauthz.Decision{}, fmt.Errorf("%w: the result is %s, not a boolean or an object", extauthz.ErrPolicyResult, ast.ValueName(v))
}

func objectDecision(obj ast.Object) (extauthz.Decision, error) {
	var d extauthz.Decision
	allowed := obj.Get(keys["allowed"])
	if allowed == nil {
		return d, fmt.Errorf(`%w: missing "allowed"`, extauthz.ErrPolicyResult)
	}
	b, ok := allowed.Value.(ast.Boolean)
	if !ok {
		return d, fmt.Errorf(`%w: "allowed" is %s, not a boolean`, extauthz.ErrPolicyResult, ast.ValueName(allowed.Value))
	}
	d.Allowed = bool(b)
	var err error
	field := func(name string) *ast.Term { return obj.Get(keys[name]) }

	if t := field("headers"); t != nil {
		if d.Headers, err = headers(t.Value); err != nil {
			return d, fieldErr("headers", err)
		}
	}
	if t := field("reason"); t != nil {
		s, ok := t.Value.(ast.String)
		if !ok {
			return d, fieldErr("reason", errors.New("not a string"))
		}
		d.Reason = string(s)
	}
	if t := field("dynamic_metadata"); t != nil {
		o, ok := t.Value.(ast.Object)
		if !ok {
			return d, fieldErr("dynamic_metadata", errors.New("not an object"))
		}
		m, err := ast.JSON(o)
		if err != nil {
			return d, fieldErr("dynamic_metadata", err)
		}
		d.DynamicMetadata, _ = m.(map[string]any)
	}

	if !d.Allowed {
		d.Status = http.StatusForbidden
		if t := field("http_status"); t != nil {
			if d.Status, err = status(t.Value); err != nil {
				return d, fieldErr("http_status", err)
			}
		}
		if t := field("body"); t != nil {
			s, ok := t.Value.(ast.String)
			if !ok {
				return d, fieldErr("body", errors.New("not a string"))
			}
			d.Body = string(s)
		}
		if d.Reason == "" {
			d.Reason = extauthz.ReasonPolicyDenied
		}
		return d, nil
	}

	if t := field("response_headers_to_add"); t != nil {
		if d.ResponseHeadersToAdd, err = headers(t.Value); err != nil {
			return d, fieldErr("response_headers_to_add", err)
		}
	}
	if t := field("request_headers_to_remove"); t != nil {
		if d.RequestHeadersToRemove, err = stringList(t.Value); err != nil {
			return d, fieldErr("request_headers_to_remove", err)
		}
	}
	if t := field("query_parameters_to_set"); t != nil {
		o, ok := t.Value.(ast.Object)
		if !ok {
			return d, fieldErr("query_parameters_to_set", errors.New("not an object"))
		}
		if d.QueryParametersToSet, err = pairs(o); err != nil {
			return d, fieldErr("query_parameters_to_set", err)
		}
	}
	if t := field("query_parameters_to_remove"); t != nil {
		if d.QueryParametersToRemove, err = stringList(t.Value); err != nil {
			return d, fieldErr("query_parameters_to_remove", err)
		}
	}
	return d, nil
}

func fieldErr(name string, err error) error {
	return fmt.Errorf("%w: %q: %v", extauthz.ErrPolicyResult, name, err)
}

// status accepts the HTTP status codes Envoy's StatusCode enum knows.
func status(v ast.Value) (int, error) {
	n, ok := v.(ast.Number)
	if !ok {
		return 0, errors.New("not a number")
	}
	code, ok := n.Int()
	if !ok || code < 100 || code > 599 || http.StatusText(code) == "" {
		return 0, fmt.Errorf("%v is not a valid HTTP status", n)
	}
	return code, nil
}

// headers accepts an object of name → string or array of strings, or an
// array of such objects.
func headers(v ast.Value) ([]extauthz.Header, error) {
	switch v := v.(type) {
	case ast.Object:
		return pairs(v)
	case *ast.Array:
		var out []extauthz.Header
		var err error
		v.Foreach(func(t *ast.Term) {
			if err != nil {
				return
			}
			o, ok := t.Value.(ast.Object)
			if !ok {
				err = errors.New("array elements must be objects")
				return
			}
			var hs []extauthz.Header
			if hs, err = pairs(o); err == nil {
				out = append(out, hs...)
			}
		})
		return out, err
	}
	return nil, errors.New("not an object or an array of objects")
}

// pairs flattens an object of name → string | [string] into pairs, in key
// order so the output is deterministic.
func pairs(o ast.Object) ([]extauthz.Header, error) {
	out := make([]extauthz.Header, 0, o.Len())
	ks := o.Keys()
	sort.Slice(ks, func(i, j int) bool { return ks[i].Value.Compare(ks[j].Value) < 0 })
	for _, k := range ks {
		name, ok := k.Value.(ast.String)
		if !ok {
			return nil, fmt.Errorf("name %v is not a string", k)
		}
		switch v := o.Get(k).Value.(type) {
		case ast.String:
			out = append(out, extauthz.Header{Name: string(name), Value: string(v)})
		case *ast.Array:
			for i := range v.Len() {
				s, ok := v.Elem(i).Value.(ast.String)
				if !ok {
					return nil, fmt.Errorf("value of %s is not a string", name)
				}
				out = append(out, extauthz.Header{Name: string(name), Value: string(s)})
			}
		default:
			return nil, fmt.Errorf("value of %s is not a string or an array of strings", name)
		}
	}
	return out, nil
}

func stringList(v ast.Value) ([]string, error) {
	var out []string
	add := func(t *ast.Term) error {
		s, ok := t.Value.(ast.String)
		if !ok {
			return errors.New("elements must be strings")
		}
		out = append(out, string(s))
		return nil
	}
	switch v := v.(type) {
	case *ast.Array:
		for i := range v.Len() {
			if err := add(v.Elem(i)); err != nil {
				return nil, err
			}
		}
	case ast.Set:
		arr := v.Sorted()
		for i := range arr.Len() {
			if err := add(arr.Elem(i)); err != nil {
				return nil, err
			}
		}
	default:
		return nil, errors.New("not an array of strings")
	}
	return out, nil
}
