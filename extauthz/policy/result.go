package policy

import (
	"errors"
	"fmt"
	"net/http"
	"sort"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/mcp"
)

// decision maps a policy result to a Decision the way OPA-Envoy does: a
// boolean, or an object with "allowed" and optional response fields.
// Unknown members are ignored; known members of the wrong type are errors,
// and so is any other kind of result. A denial may carry a challenge (see
// challenge).
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
		if t := field("challenge"); t != nil {
			if d.Challenge, err = challenge(t.Value); err != nil {
				return d, fieldErr("challenge", err)
			}
			if extauthz.HasHeader(d.Headers, "www-authenticate") {
				return d, fieldErr("challenge", errors.New("the headers set WWW-Authenticate too"))
			}
			d.Status = http.StatusUnauthorized
			if st, ok := challengeStatus[d.Challenge.Error]; ok {
				d.Status = st
			}
		}
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
	if t := field("limits"); t != nil {
		if d.Take.Limits, err = limitsField(t.Value); err != nil {
			return d, fieldErr("limits", err)
		}
	}
	if t := field("quotas"); t != nil {
		if d.Take.Quotas, err = quotasField(t.Value); err != nil {
			return d, fieldErr("quotas", err)
		}
	}
	if t := field("concurrency"); t != nil {
		if d.Leases, err = concurrencyField(t.Value); err != nil {
			return d, fieldErr("concurrency", err)
		}
	}
	if t := field("rate_limit_headers"); t != nil {
		b, ok := t.Value.(ast.Boolean)
		if !ok {
			return d, fieldErr("rate_limit_headers", errors.New("not a boolean"))
		}
		d.RateLimitHeaders = bool(b)
	}
	return d, nil
}

// challengeStatus is the status of a denial whose challenge has this error
// code, unless the policy sets http_status (RFC 6750, section 3.1; RFC
// 9470, section 3); without an error code it is 401. The keys are the
// error codes a challenge may have.
var challengeStatus = map[string]int{
	mcp.ChallengeInvalidRequest:                 http.StatusBadRequest,
	mcp.ChallengeInvalidToken:                   http.StatusUnauthorized,
	mcp.ChallengeInsufficientScope:              http.StatusForbidden,
	mcp.ChallengeInsufficientUserAuthentication: http.StatusUnauthorized,
}

// challenge maps a decision's challenge object: {error, error_description,
// scope, max_age}, each optional. error is one of the codes of RFC 6750 and
// RFC 9470, error_description printable ASCII without '"' or '\', scope a
// space-separated list of scope tokens and max_age a non-negative integer
// (seconds). Unlike the decision itself, the object admits no other
// members: a misspelt max_age would silently drop a step-up.
func challenge(v ast.Value) (*mcp.Challenge, error) {
	o, ok := v.(ast.Object)
	if !ok {
		return nil, errors.New("not an object")
	}
	c := &mcp.Challenge{}
	ks := o.Keys()
	sort.Slice(ks, func(i, j int) bool { return ks[i].Value.Compare(ks[j].Value) < 0 })
	for _, k := range ks {
		name, _ := k.Value.(ast.String)
		val := o.Get(k).Value
		var err error
		switch name {
		case "error":
			c.Error, err = challengeString(name, val)
			if _, known := challengeStatus[c.Error]; err == nil && !known {
				err = fmt.Errorf("error %q is not one of %s, %s, %s, %s", c.Error, mcp.ChallengeInvalidRequest,
					mcp.ChallengeInvalidToken, mcp.ChallengeInsufficientScope, mcp.ChallengeInsufficientUserAuthentication)
			}
		case "error_description":
			c.ErrorDescription, err = challengeString(name, val)
		case "scope":
			c.Scope, err = challengeString(name, val)
			if err == nil && !mcp.ValidScope(c.Scope) {
				err = errors.New("scope is not a space-separated list of scope tokens")
			}
		case "max_age":
			c.MaxAge, err = maxAge(val)
		default:
			err = fmt.Errorf("unknown member %v", k)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func maxAge(v ast.Value) (*int, error) {
	if n, ok := v.(ast.Number); ok {
		if age, ok := n.Int(); ok && age >= 0 {
			return &age, nil
		}
	}
	return nil, fmt.Errorf("max_age %v is not a non-negative integer", v)
}

func challengeString(name ast.String, v ast.Value) (string, error) {
	s, ok := v.(ast.String)
	if !ok {
		return "", fmt.Errorf("%s is not a string", name)
	}
	return string(s), nil
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
