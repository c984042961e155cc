package policy_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/policy"
	"github.com/mcpauthz/mcpauthz/mcp"
)

// hs builds headers from name, value pairs.
func hs(pairs ...string) []extauthz.Header {
	out := make([]extauthz.Header, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, extauthz.Header{Name: pairs[i], Value: pairs[i+1]})
	}
	return out
}

// TestResultMapping maps policy results to decisions as OPA-Envoy maps
// them (envoyauth.EvalResult): a boolean, or an object with "allowed".
func TestResultMapping(t *testing.T) {
	tests := []struct {
		name   string
		result string // the Rego value of the decision
		want   extauthz.Decision
	}{
		{"ok/true", `true`, extauthz.Decision{Allowed: true}},
		{"ok/false is 403", `false`, extauthz.Decision{Status: http.StatusForbidden, Reason: extauthz.ReasonPolicyDenied}},
		{"ok/allowed object with every OPA-Envoy field", `{
			"allowed": true,
			"headers": {"x-user": "alice", "x-groups": ["a", "b"]},
			"response_headers_to_add": {"x-frame-options": "DENY"},
			"request_headers_to_remove": ["x-internal", "x-debug"],
			"query_parameters_to_set": {"a": "b", "c": ["d", "e"]},
			"query_parameters_to_remove": ["token"],
			"dynamic_metadata": {"tenant": "acme", "limits": {"rpm": 60}},
			"http_status": 999,
			"body": 42,
			"unknown": "ignored"
		}`, extauthz.Decision{
			Allowed:                 true,
			Headers:                 hs("x-groups", "a", "x-groups", "b", "x-user", "alice"),
			ResponseHeadersToAdd:    hs("x-frame-options", "DENY"),
			RequestHeadersToRemove:  []string{"x-internal", "x-debug"},
			QueryParametersToSet:    hs("a", "b", "c", "d", "c", "e"),
			QueryParametersToRemove: []string{"token"},
			DynamicMetadata:         map[string]any{"tenant": "acme", "limits": map[string]any{"rpm": json.Number("60")}},
		}},
		{"ok/headers to remove as a set", `{"allowed": true, "request_headers_to_remove": {"x-b", "x-a"}}`,
			extauthz.Decision{Allowed: true, RequestHeadersToRemove: []string{"x-a", "x-b"}}},
		{"ok/denied with status, body and repeated headers", `{
			"allowed": false,
			"http_status": 401,
			"body": "{\"error\": \"login required\"}",
			"headers": [{"a": "1"}, {"a": "2"}, {"www-authenticate": "Bearer"}],
			"reason": "unauthenticated",
			"response_headers_to_add": {"ignored": "on denial"},
			"query_parameters_to_set": "ignored on denial"
		}`, extauthz.Decision{
			Status: http.StatusUnauthorized, Reason: "unauthenticated", Body: `{"error": "login required"}`,
			Headers: hs("a", "1", "a", "2", "www-authenticate", "Bearer"),
		}},
		{"ok/denied without status is 403", `{"allowed": false}`, extauthz.Decision{Status: http.StatusForbidden, Reason: extauthz.ReasonPolicyDenied}},
		{"ok/denied 429", `{"allowed": false, "http_status": 429, "headers": {"retry-after": "30"}}`,
			extauthz.Decision{Status: http.StatusTooManyRequests, Reason: extauthz.ReasonPolicyDenied, Headers: hs("retry-after", "30")}},
		{"ok/insufficient_scope challenge is 403", `{"allowed": false, "challenge": {"error": "insufficient_scope", "scope": "tools:call admin"}}`,
			extauthz.Decision{Status: http.StatusForbidden, Reason: extauthz.ReasonPolicyDenied,
				Challenge: &mcp.Challenge{Error: mcp.ChallengeInsufficientScope, Scope: "tools:call admin"}}},
		{"ok/step-up challenge is 401", `{"allowed": false, "reason": "stale", "challenge": {"error": "insufficient_user_authentication", "error_description": "Sign in again", "max_age": 300}}`,
			extauthz.Decision{Status: http.StatusUnauthorized, Reason: "stale",
				Challenge: &mcp.Challenge{Error: mcp.ChallengeInsufficientUserAuthentication, ErrorDescription: "Sign in again", MaxAge: new(300)}}},
		{"ok/max_age zero", `{"allowed": false, "challenge": {"error": "insufficient_user_authentication", "max_age": 0}}`,
			extauthz.Decision{Status: http.StatusUnauthorized, Reason: extauthz.ReasonPolicyDenied,
				Challenge: &mcp.Challenge{Error: mcp.ChallengeInsufficientUserAuthentication, MaxAge: new(0)}}},
		{"ok/empty challenge is 401", `{"allowed": false, "challenge": {}}`,
			extauthz.Decision{Status: http.StatusUnauthorized, Reason: extauthz.ReasonPolicyDenied, Challenge: &mcp.Challenge{}}},
		{"ok/invalid_request challenge is 400", `{"allowed": false, "challenge": {"error": "invalid_request"}}`,
			extauthz.Decision{Status: http.StatusBadRequest, Reason: extauthz.ReasonPolicyDenied, Challenge: &mcp.Challenge{Error: mcp.ChallengeInvalidRequest}}},
		{"ok/http_status overrides the challenge's", `{"allowed": false, "http_status": 403, "challenge": {"error": "invalid_token"}}`,
			extauthz.Decision{Status: http.StatusForbidden, Reason: extauthz.ReasonPolicyDenied, Challenge: &mcp.Challenge{Error: mcp.ChallengeInvalidToken}}},
		{"ok/challenge ignored on allow", `{"allowed": true, "challenge": "not even an object"}`, extauthz.Decision{Allowed: true}},
		{"fail/challenge not an object", `{"allowed": false, "challenge": "Bearer"}`, extauthz.Decision{}},
		{"fail/challenge error unknown", `{"allowed": false, "challenge": {"error": "access_denied"}}`, extauthz.Decision{}},
		{"fail/challenge error empty", `{"allowed": false, "challenge": {"error": ""}}`, extauthz.Decision{}},
		{"fail/challenge error not a string", `{"allowed": false, "challenge": {"error": 401}}`, extauthz.Decision{}},
		{"fail/challenge scope with a quote", `{"allowed": false, "challenge": {"scope": "a\"b"}}`, extauthz.Decision{}},
		{"fail/challenge scope with a double space", `{"allowed": false, "challenge": {"scope": "a  b"}}`, extauthz.Decision{}},
		{"fail/challenge scope empty", `{"allowed": false, "challenge": {"scope": ""}}`, extauthz.Decision{}},
		{"fail/challenge scope as an array", `{"allowed": false, "challenge": {"scope": ["a", "b"]}}`, extauthz.Decision{}},
		{"fail/challenge description with a newline", `{"allowed": false, "challenge": {"error_description": "a\r\nx-evil: 1"}}`, extauthz.Decision{}},
		{"fail/challenge description with a quote", `{"allowed": false, "challenge": {"error_description": "say \"hi\""}}`, extauthz.Decision{}},
		{"fail/challenge max_age negative", `{"allowed": false, "challenge": {"max_age": -1}}`, extauthz.Decision{}},
		{"fail/challenge max_age not an integer", `{"allowed": false, "challenge": {"max_age": 1.5}}`, extauthz.Decision{}},
		{"fail/challenge max_age a string", `{"allowed": false, "challenge": {"max_age": "300"}}`, extauthz.Decision{}},
		{"fail/challenge max_age huge", `{"allowed": false, "challenge": {"max_age": 1e40}}`, extauthz.Decision{}},
		{"fail/challenge unknown member", `{"allowed": false, "challenge": {"max-age": 300}}`, extauthz.Decision{}},
		{"fail/challenge and a WWW-Authenticate header", `{"allowed": false, "headers": {"WWW-Authenticate": "Bearer"}, "challenge": {}}`, extauthz.Decision{}},
		{"fail/missing allowed", `{"headers": {"x": "1"}}`, extauthz.Decision{}},
		{"fail/allowed is a string", `{"allowed": "true"}`, extauthz.Decision{}},
		{"fail/allowed is a number", `{"allowed": 1}`, extauthz.Decision{}},
		{"fail/http_status out of range", `{"allowed": false, "http_status": 999}`, extauthz.Decision{}},
		{"fail/http_status as a string", `{"allowed": false, "http_status": "401"}`, extauthz.Decision{}},
		{"fail/http_status not an integer", `{"allowed": false, "http_status": 401.5}`, extauthz.Decision{}},
		{"fail/header with a number value", `{"allowed": true, "headers": {"x-count": 1}}`, extauthz.Decision{}},
		{"fail/header array with a number", `{"allowed": true, "headers": {"x-a": ["1", 2]}}`, extauthz.Decision{}},
		{"fail/headers array of strings", `{"allowed": false, "headers": ["x-a: 1"]}`, extauthz.Decision{}},
		{"fail/body not a string", `{"allowed": false, "body": {"error": "no"}}`, extauthz.Decision{}},
		{"fail/dynamic_metadata not an object", `{"allowed": true, "dynamic_metadata": ["a"]}`, extauthz.Decision{}},
		{"fail/request_headers_to_remove not strings", `{"allowed": true, "request_headers_to_remove": [1]}`, extauthz.Decision{}},
		{"fail/query_parameters_to_set not an object", `{"allowed": true, "query_parameters_to_set": [["a", "b"]]}`, extauthz.Decision{}},
		{"fail/reason not a string", `{"allowed": false, "reason": 403}`, extauthz.Decision{}},
		{"fail/result is a string", `"allow"`, extauthz.Decision{}},
		{"fail/result is a number", `1`, extauthz.Decision{}},
		{"fail/result is an array", `[true]`, extauthz.Decision{}},
		{"fail/result is null", `null`, extauthz.Decision{}},
		{"fail/result is a set", `{true}`, extauthz.Decision{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rego := pkgAuthz + "decision := " + tt.result + " if input.attributes.request.http.method == \"GET\"\n"
			engine := engineWith(t, map[string]string{"authz.rego": rego})
			ev := policy.NewEvaluator(engine)
			req := request("GET", "/", nil, "")
			res, err := ev.Evaluate(context.Background(), &extauthz.PolicyInput{Request: req, Identity: &extauthz.Anonymous})
			if res.Path != bundles.DefaultDecisionPath || res.Revision == "" {
				t.Errorf("result path %q revision %q", res.Path, res.Revision)
			}

			a := extauthz.NewAuthorizer(ev, func() string { return "d-1" }, extauthz.WithIdentityHeaders(extauthz.IdentityHeaders{}))
			d, aerr := a.Check(context.Background(), req)

			if strings.HasPrefix(tt.name, "fail/") {
				if !errors.Is(err, extauthz.ErrPolicyResult) {
					t.Fatalf("Evaluate: %+v, %v; want ErrPolicyResult", res.Decision, err)
				}
				if !errors.Is(aerr, extauthz.ErrPolicyResult) || d.Allowed || d.Status != http.StatusServiceUnavailable || d.Reason != extauthz.ReasonPolicyError {
					t.Errorf("Check: %+v, %v; want a 503 denial", d, aerr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if !reflect.DeepEqual(res.Decision, tt.want) {
				t.Errorf("decision\n%#v\nwant\n%#v", res.Decision, tt.want)
			}
			if aerr != nil || d.Allowed != tt.want.Allowed || d.Status != tt.want.Status {
				t.Errorf("Check: %+v, %v", d, aerr)
			}
		})
	}
}

func TestEvaluateErrors(t *testing.T) {
	req := request("POST", "/", nil, "")
	in := &extauthz.PolicyInput{Request: req, Identity: &extauthz.Anonymous}
	tests := []struct {
		name    string
		engine  func(t *testing.T) *bundles.Engine
		wantErr error
		status  int
	}{
		{"fail/undefined decision", func(t *testing.T) *bundles.Engine {
			return engineWith(t, map[string]string{"authz.rego": pkgAuthz + "decision if input.attributes.request.http.method == \"GET\"\n"})
		}, extauthz.ErrPolicyUndefined, http.StatusForbidden},
		{"fail/no bundle", func(t *testing.T) *bundles.Engine {
			e, err := bundles.NewEngine(bundles.DefaultDecisionPath)
			if err != nil {
				t.Fatal(err)
			}
			return e
		}, bundles.ErrNoBundle, http.StatusServiceUnavailable},
		{"fail/conflicting rules", func(t *testing.T) *bundles.Engine {
			return engineWith(t, map[string]string{"authz.rego": pkgAuthz + "decision := true\n\ndecision := false if input.attributes.request.http.method == \"POST\"\n"})
		}, nil, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := policy.NewEvaluator(tt.engine(t))
			_, err := ev.Evaluate(context.Background(), in)
			if err == nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Evaluate: %v, want %v", err, tt.wantErr)
			}
			d, _ := extauthz.NewAuthorizer(ev, func() string { return "d-1" }).Check(context.Background(), req)
			if d.Allowed || d.Status != tt.status {
				t.Errorf("Check: %+v, want a %d denial", d, tt.status)
			}
		})
	}
}

// TestEvaluateDeadline: a policy that runs past the decision timeout is
// stopped and the request denied with 503, in about the timeout.
func TestEvaluateDeadline(t *testing.T) {
	engine := engineWith(t, map[string]string{"authz.rego": pkgAuthz + `decision := {"allowed": n > 0} if {
	xs := numbers.range(1, 20000)
	n := count([1 | some i in xs; some j in xs; i != j])
}
`})
	a := extauthz.NewAuthorizer(policy.NewEvaluator(engine), func() string { return "d-1" }, extauthz.WithTimeout(30*time.Millisecond))
	start := time.Now()
	d, err := a.Check(context.Background(), request("GET", "/", nil, ""))
	elapsed := time.Since(start)
	// Where OPA notices the deadline decides whether the error wraps
	// context.DeadlineExceeded or only OPA's cancellation error.
	if !errors.Is(err, context.DeadlineExceeded) && !topdown.IsCancel(err) {
		t.Errorf("Check error %v, want a deadline or a cancellation", err)
	}
	if d.Allowed || d.Status != http.StatusServiceUnavailable || d.Reason != extauthz.ReasonDeadline {
		t.Errorf("Check: %+v, want a 503 deadline denial", d)
	}
	if elapsed > time.Second {
		t.Errorf("Check took %v with a 30ms timeout", elapsed)
	}
}
