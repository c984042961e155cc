package policy_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/policy"
)

// TestCachedDecisionsAsSessionsAge: the decision cache keys a session's or
// a token's age by its class among the fresh-session bounds, so a decision
// remembered at one age answers at another. Every decision must be the one
// the uncached engine makes at that age, on both sides of each bound, and
// the cache must answer most of them.
func TestCachedDecisionsAsSessionsAge(t *testing.T) {
	cachedEngine := defaultEngine(t, bundles.WithDecisionCache(bundles.DefaultDecisionCacheSize))
	uncachedEngine := defaultEngine(t, bundles.WithDecisionCache(0))
	var now time.Time
	clock := func() time.Time { return now }
	check := func(e *bundles.Engine, id extauthz.Identity) *extauthz.Authorizer {
		return extauthz.NewAuthorizer(policy.NewEvaluator(e, policy.WithClock(clock)), func() string { return "d-1" },
			extauthz.WithClock(clock), extauthz.WithIdentityVerifier(fixedIdentity{id: id}),
			extauthz.WithTimeout(time.Minute), extauthz.WithLimiter(admitAll{}))
	}

	authTime := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	base := extauthz.Identity{Authenticated: true, Subject: "u-1", UserID: "u-1", Tenant: "org-1", Tier: "pro",
		TimeZone: "Europe/Berlin", OrgRole: "owner", Roles: []string{"owner"}}
	jwt := base
	jwt.Method = extauthz.MethodJWT
	jwt.Claims = map[string]any{"sub": "u-1", "auth_time": float64(authTime.Unix())}
	session := base
	session.Method = extauthz.MethodSession
	session.Session = &extauthz.SessionInfo{ID: "s-1", AuthTime: authTime}

	// "rm" is undeclared, so destructive: it needs a fresh session.
	body := `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"rm","arguments":{}}}`
	req := mcpRequest(body, nil)

	// Ages from before the auth time (a clock ahead of ours) to past the
	// bound, in both directions, so each class is entered from each side.
	var ages []int64
	for a := int64(-120); a <= 1000; a++ {
		ages = append(ages, a)
	}
	for a := int64(1000); a >= -120; a -= 7 {
		ages = append(ages, a)
	}
	for _, id := range []extauthz.Identity{jwt, session} {
		cached, uncached := check(cachedEngine, id), check(uncachedEngine, id)
		fresh, stale := 0, 0
		for _, age := range ages {
			now = authTime.Add(time.Duration(age)*time.Second + 300*time.Millisecond)
			got, err := cached.Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			want, err := uncached.Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s at age %d: cached %+v, uncached %+v", id.Method, age, got, want)
			}
			if got.Allowed {
				fresh++
			} else {
				stale++
			}
			// The default bundle's bounds: max_age 900, and for a token's
			// auth_time in the future, clock_leeway 60 (a session's is
			// the identity service's own).
			wantFresh := age <= 900 && (age >= -60 || id.Method == extauthz.MethodSession)
			if got.Allowed != wantFresh || !wantFresh && got.Status != 401 {
				t.Fatalf("%s at age %d: allowed %v, status %d", id.Method, age, got.Allowed, got.Status)
			}
		}
		if fresh == 0 || stale == 0 {
			t.Fatalf("%s: %d allowed and %d denied: the ages do not cross the bound", id.Method, fresh, stale)
		}
	}
	// Each identity's age falls in one of 5 classes among the default
	// bundle's bounds (-clock_leeway and max_age): below, on and between
	// them; only the first decision of each class is evaluated.
	stats := cachedEngine.CacheStats()
	if evaluated := stats.Misses; evaluated > 2*5 {
		t.Errorf("%d of %d decisions evaluated: the cache keys on the age itself", evaluated, 2*len(ages))
	}
	t.Logf("cache: %+v over %d decisions", stats, 2*len(ages))
}
