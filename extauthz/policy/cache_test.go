package policy_test

import (
	"context"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/policy"
)

// TestCachedDecisionsMatch decides every request with every policy, three
// times over, with the decision cache on and off: the answers must be the
// same, and the cache must have been used where the policy allows it.
func TestCachedDecisionsMatch(t *testing.T) {
	reqs := pruneRequests()
	clock := func() time.Time { return testNow }
	for name, rego := range prunePolicies {
		t.Run("ok/"+name, func(t *testing.T) {
			files := map[string]string{"authz.rego": rego, "data.json": pruneData}
			cachedEngine := engineWith(t, files, bundles.WithDecisionCache(1024))
			check := func(e *bundles.Engine) func(*extauthz.Request) (extauthz.Decision, error) {
				a := extauthz.NewAuthorizer(policy.NewEvaluator(e, policy.WithClock(clock)),
					func() string { return "d-1" }, extauthz.WithClock(clock),
					extauthz.WithIdentityVerifier(pruneUsers), extauthz.WithTimeout(5*time.Second))
				return func(r *extauthz.Request) (extauthz.Decision, error) { return a.Check(context.Background(), r) }
			}
			cached, uncached := check(cachedEngine), check(engineWith(t, files, bundles.WithDecisionCache(0)))
			for round := range 3 {
				for i, r := range reqs {
					cd, cerr := cached(r)
					ud, uerr := uncached(r)
					if !reflect.DeepEqual(cd, ud) || (cerr == nil) != (uerr == nil) {
						t.Fatalf("round %d, request %d %s %s:\ncached   %+v %v\nuncached %+v %v", round, i, r.Method, r.Path, cd, cerr, ud, uerr)
					}
				}
			}
			st := cachedEngine.CacheStats()
			if st.Enabled && st.Hits == 0 {
				t.Fatalf("the cache is on but was never hit: %+v", st)
			}
			t.Logf("cache %+v", st)
		})
	}
}

// TestCachedDecisionIsNotModified: a remembered decision is shared by
// every later request with the same input; what the Authorizer adds to an
// answer (identity headers, removals, the decision id) must not leak into
// it.
func TestCachedDecisionIsNotModified(t *testing.T) {
	e := engineWith(t, map[string]string{"authz.rego": pkgAuthz + `decision := {
	"allowed": true,
	"headers": {"x-policy": "1"},
	"request_headers_to_remove": ["x-drop"],
	"dynamic_metadata": {"tier": "pro"},
}
`})
	id := extauthz.Identity{Authenticated: true, Method: extauthz.MethodJWT, Subject: "alice", Roles: []string{"member"}}
	var n int64
	var mu sync.Mutex
	a := extauthz.NewAuthorizer(policy.NewEvaluator(e), func() string {
		mu.Lock()
		defer mu.Unlock()
		n++
		return "d-" + string(rune('a'+n%26))
	}, extauthz.WithIdentityVerifier(fixedIdentity{id: id}))
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				d, err := a.Check(context.Background(), request("GET", "/x", map[string]string{"x-mcpauthz-admin": "1"}, ""))
				if err != nil {
					t.Error(err)
					return
				}
				names := make([]string, len(d.Headers))
				for i, h := range d.Headers {
					names[i] = h.Name
				}
				want := []string{"x-policy", "x-mcpauthz-auth-method", "x-mcpauthz-user", "x-mcpauthz-roles"}
				if !slices.Equal(names, want) {
					t.Errorf("headers %v, want %v", names, want)
					return
				}
				if !slices.Equal(d.RequestHeadersToRemove, []string{"x-drop", "x-mcpauthz-admin"}) {
					t.Errorf("removals %v", d.RequestHeadersToRemove)
					return
				}
				if len(d.DynamicMetadata) != 2 || d.DynamicMetadata["decision_id"] != d.DecisionID {
					t.Errorf("metadata %v for %s", d.DynamicMetadata, d.DecisionID)
					return
				}
			}
		}()
	}
	wg.Wait()
	if st := e.CacheStats(); st.Hits < 700 {
		t.Fatalf("cache %+v: the decisions were not shared", st)
	}
}
