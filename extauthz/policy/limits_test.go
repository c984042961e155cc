package policy_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/policy"
	"github.com/mcpauthz/mcpauthz/quotas"
)

// TestLimitsMapping maps a decision's limits, quotas and
// rate_limit_headers to what the Authorizer takes.
func TestLimitsMapping(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		result string // the members besides "allowed": true
		want   extauthz.Decision
	}{
		{"ok/a limit with every member", `"limits": [{"name": "user_requests", "key": "user:u-1", "limit": 120, "window": "1m",
			"cost": 3, "burst": 10, "on_backend_error": "deny"}]`,
			extauthz.Decision{Take: quotas.Request{Limits: []quotas.Limit{{Name: "user_requests", Key: "user:u-1", Limit: 120,
				Window: time.Minute, Cost: 3, Burst: 10, OnBackendError: quotas.Deny}}}}},
		{"ok/a fair share of a pool", `"limits": [{"name": "tool_capacity", "key": "tenant:acme", "limit": 1000, "window": "1s",
			"share": {"pool": "tool:search", "weight": 3, "max_share": 0.3}}]`,
			extauthz.Decision{Take: quotas.Request{Limits: []quotas.Limit{{Name: "tool_capacity", Key: "tenant:acme", Limit: 1000,
				Window: time.Second, Share: &quotas.Share{Pool: "tool:search", Weight: 3, MaxShare: 0.3}}}}}},
		{"fail/share without a pool", `"limits": [{"name": "a", "key": "k", "limit": 1, "window": "1s", "share": {"weight": 1}}]`, extauthz.Decision{}},
		{"fail/share weight zero", `"limits": [{"name": "a", "key": "k", "limit": 1, "window": "1s", "share": {"pool": "p", "weight": 0}}]`, extauthz.Decision{}},
		{"fail/share max over one", `"limits": [{"name": "a", "key": "k", "limit": 1, "window": "1s", "share": {"pool": "p", "max_share": 1.5}}]`, extauthz.Decision{}},
		{"fail/share misspelt", `"limits": [{"name": "a", "key": "k", "limit": 1, "window": "1s", "share": {"pool": "p", "max-share": 0.5}}]`, extauthz.Decision{}},
		{"ok/window in seconds", `"limits": [{"name": "a", "key": "k", "limit": 0, "window": 0.5}]`,
			extauthz.Decision{Take: quotas.Request{Limits: []quotas.Limit{{Name: "a", Key: "k", Window: 500 * time.Millisecond}}}}},
		{"ok/quotas default to allow on backend errors", `"quotas": [{"name": "monthly", "key": "tenant:acme", "limit": 10000, "period": "month"}]`,
			extauthz.Decision{Take: quotas.Request{Quotas: []quotas.Quota{{Name: "monthly", Key: "tenant:acme", Limit: 10000,
				Period: quotas.Month, Location: time.UTC, OnBackendError: quotas.Allow}}}}},
		{"ok/a strict quota in the org's time zone", `"quotas": [{"name": "daily", "key": "tenant:acme", "limit": 5, "period": "day",
			"time_zone": "Europe/Paris", "strict": true}]`,
			extauthz.Decision{Take: quotas.Request{Quotas: []quotas.Quota{{Name: "daily", Key: "tenant:acme", Limit: 5,
				Period: quotas.Day, Location: paris, OnBackendError: quotas.Deny}}}}},
		{"ok/rate limit headers", `"rate_limit_headers": true`, extauthz.Decision{RateLimitHeaders: true}},
		{"ok/concurrency", `"concurrency": [{"name": "streams", "key": "tenant:acme:streams", "limit": 10, "ttl": "1h"}]`,
			extauthz.Decision{Leases: []quotas.Lease{{Name: "streams", Key: "tenant:acme:streams", Limit: 10, TTL: time.Hour}}}},
		{"fail/concurrency without a ttl", `"concurrency": [{"name": "streams", "key": "k", "limit": 10}]`, extauthz.Decision{}},
		{"fail/concurrency capping a key twice", `"concurrency": [{"name": "a", "key": "k", "limit": 1, "ttl": "1m"}, {"name": "b", "key": "k", "limit": 2, "ttl": "1m"}]`, extauthz.Decision{}},
		{"fail/concurrency misspelt", `"concurrency": [{"name": "a", "key": "k", "limit": 1, "ttl": "1m", "tll": "1m"}]`, extauthz.Decision{}},
		{"ok/empty lists", `"limits": [], "quotas": []`, extauthz.Decision{}},
		{"fail/limits not an array", `"limits": {"name": "a"}`, extauthz.Decision{}},
		{"fail/limit entry not an object", `"limits": ["a"]`, extauthz.Decision{}},
		{"fail/limit without a key", `"limits": [{"name": "a", "limit": 1, "window": "1s"}]`, extauthz.Decision{}},
		{"fail/limit without a limit", `"limits": [{"name": "a", "key": "k", "window": "1s"}]`, extauthz.Decision{}},
		{"fail/limit without a window", `"limits": [{"name": "a", "key": "k", "limit": 1}]`, extauthz.Decision{}},
		{"fail/limit misspelt", `"limits": [{"name": "a", "key": "k", "limt": 1, "limit": 1, "window": "1s"}]`, extauthz.Decision{}},
		{"fail/limit negative", `"limits": [{"name": "a", "key": "k", "limit": -1, "window": "1s"}]`, extauthz.Decision{}},
		{"fail/limit fractional", `"limits": [{"name": "a", "key": "k", "limit": 1.5, "window": "1s"}]`, extauthz.Decision{}},
		{"fail/cost zero", `"limits": [{"name": "a", "key": "k", "limit": 1, "window": "1s", "cost": 0}]`, extauthz.Decision{}},
		{"fail/window zero", `"limits": [{"name": "a", "key": "k", "limit": 1, "window": "0s"}]`, extauthz.Decision{}},
		{"fail/window over a year", `"limits": [{"name": "a", "key": "k", "limit": 1, "window": "9000h"}]`, extauthz.Decision{}},
		{"fail/window not a duration", `"limits": [{"name": "a", "key": "k", "limit": 1, "window": "a minute"}]`, extauthz.Decision{}},
		{"fail/name with a quote", `"limits": [{"name": "a\"b", "key": "k", "limit": 1, "window": "1s"}]`, extauthz.Decision{}},
		{"fail/name too long", `"limits": [{"name": "` + strings.Repeat("a", 65) + `", "key": "k", "limit": 1, "window": "1s"}]`, extauthz.Decision{}},
		{"fail/unknown backend mode", `"limits": [{"name": "a", "key": "k", "limit": 1, "window": "1s", "on_backend_error": "ignore"}]`, extauthz.Decision{}},
		{"fail/quota period a week", `"quotas": [{"name": "q", "key": "k", "limit": 1, "period": "week"}]`, extauthz.Decision{}},
		{"fail/quota in an unknown zone", `"quotas": [{"name": "q", "key": "k", "limit": 1, "period": "day", "time_zone": "Mars/Olympus"}]`, extauthz.Decision{}},
		{"fail/quota in the machine's zone", `"quotas": [{"name": "q", "key": "k", "limit": 1, "period": "day", "time_zone": "Local"}]`, extauthz.Decision{}},
		{"fail/quota local on backend errors", `"quotas": [{"name": "q", "key": "k", "limit": 1, "period": "day", "on_backend_error": "local"}]`, extauthz.Decision{}},
		{"fail/strict and allow", `"quotas": [{"name": "q", "key": "k", "limit": 1, "period": "day", "strict": true, "on_backend_error": "allow"}]`, extauthz.Decision{}},
		{"fail/strict not a boolean", `"quotas": [{"name": "q", "key": "k", "limit": 1, "period": "day", "strict": "yes"}]`, extauthz.Decision{}},
		{"fail/quota without a period", `"quotas": [{"name": "q", "key": "k", "limit": 1}]`, extauthz.Decision{}},
		{"fail/too many limits", `"limits": [` + strings.TrimSuffix(strings.Repeat(`{"name": "a", "key": "k", "limit": 1, "window": "1s"},`, 33), ",") + `]`, extauthz.Decision{}},
		{"fail/rate_limit_headers not a boolean", `"rate_limit_headers": "yes"`, extauthz.Decision{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rego := pkgAuthz + `decision := {"allowed": true, ` + tt.result + "} if input.attributes.request.http.method == \"GET\"\n"
			ev := policy.NewEvaluator(engineWith(t, map[string]string{"authz.rego": rego}))
			res, err := ev.Evaluate(context.Background(), &extauthz.PolicyInput{Request: request("GET", "/", nil, ""), Identity: &extauthz.Anonymous})
			if strings.HasPrefix(tt.name, "fail/") {
				if !errors.Is(err, extauthz.ErrPolicyResult) {
					t.Fatalf("Evaluate: %+v, %v; want ErrPolicyResult", res.Decision, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Allowed = true
			if !reflect.DeepEqual(res.Decision, tt.want) {
				t.Errorf("decision\n got %+v\nwant %+v", res.Decision, tt.want)
			}
		})
	}
}
