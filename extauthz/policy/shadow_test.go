package policy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/policy"
)

const activeRego = pkgAuthz + `default decision := {"allowed": false, "http_status": 403, "reason": "nope"}

decision := {"allowed": true} if input.attributes.request.http.method == "GET"
`

// The candidate closes /admin to GETs, opens /public to everything,
// answers DELETE with another denial, and fails on PATCH (two values for
// one complete rule).
const candidateRego = pkgAuthz + `default decision := {"allowed": false, "http_status": 403, "reason": "nope"}

http := input.attributes.request.http

decision := {"allowed": true} if {
	http.method == "GET"
	not startswith(http.path, "/admin")
}

decision := {"allowed": true} if http.path == "/public"

decision := {"allowed": false, "http_status": 401, "reason": "stale"} if http.method == "DELETE"

decision := {"allowed": false, "reason": "a"} if http.method == "PATCH"

decision := {"allowed": false, "reason": "b"} if http.method == "PATCH"
`

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitShadow waits until the shadow has evaluated or dropped n decisions.
func waitShadow(t *testing.T, s *policy.Shadow, n uint64) policy.ShadowStats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.Stats()
		if st.Evaluated+st.Dropped >= n {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shadow handled %d of %d decisions: %+v", st.Evaluated+st.Dropped, n, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestShadowCountsChanges(t *testing.T) {
	active := engineWith(t, map[string]string{"authz.rego": activeRego})
	candidate := engineWith(t, map[string]string{"authz.rego": candidateRego})
	var logs lockedBuffer
	shadow := policy.NewShadow(candidate, policy.ShadowOptions{
		LogPerSecond: 1000,
		Logger:       slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); shadow.Run(ctx) }()
	defer func() { cancel(); <-done }()

	id := extauthz.Identity{Authenticated: true, Method: extauthz.MethodJWT, Subject: "alice", Tenant: "org-1", Roles: []string{"member"}}
	n := 0
	a := extauthz.NewAuthorizer(policy.NewEvaluator(active, policy.WithShadow(shadow)),
		func() string { n++; return "d-" + string(rune('a'+n)) },
		extauthz.WithIdentityVerifier(fixedIdentity{id: id}))
	plain := extauthz.NewAuthorizer(policy.NewEvaluator(active), func() string { return "d" },
		extauthz.WithIdentityVerifier(fixedIdentity{id: id}))

	cases := []struct {
		method, path string
		want         policy.Change
	}{
		{"GET", "/a", policy.Same},
		{"POST", "/a", policy.Same},
		{"GET", "/admin/users", policy.AllowToDeny},
		{"POST", "/public", policy.DenyToAllow},
		{"DELETE", "/a", policy.Changed},
		{"PATCH", "/a", policy.CandidateError},
	}
	const rounds = 5
	for range rounds {
		for _, c := range cases {
			r := request(c.method, c.path, map[string]string{"authorization": "Bearer s3cr3t-token"}, "")
			got, err := a.Check(ctx, r)
			want, werr := plain.Check(ctx, r)
			// The candidate never changes an answer.
			if err != nil || werr != nil || got.Allowed != want.Allowed || got.Status != want.Status || got.Reason != want.Reason {
				t.Fatalf("%s %s: with the shadow %+v %v, without %+v %v", c.method, c.path, got, err, want, werr)
			}
		}
	}
	st := waitShadow(t, shadow, rounds*uint64(len(cases)))
	wantCounts := map[policy.Change]uint64{}
	for _, c := range cases {
		wantCounts[c.want] += rounds
	}
	for _, c := range policy.Changes() {
		if st.Counts[c] != wantCounts[c] {
			t.Errorf("%s: %d, want %d (stats %+v)", c, st.Counts[c], wantCounts[c], st)
		}
	}
	if st.Dropped != 0 || st.Revision != candidate.Active().Revision {
		t.Errorf("stats %+v", st)
	}

	// One line per difference, joinable with the decision log by id, and
	// without the request's secrets.
	var lines []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 4*rounds {
		t.Fatalf("%d difference lines, want %d:\n%s", len(lines), 4*rounds, logs.String())
	}
	byChange := map[string]map[string]any{}
	for _, l := range lines {
		byChange[l["change"].(string)] = l
		if !strings.HasPrefix(l["decision_id"].(string), "d-") || l["tenant"] != "org-1" || l["candidate_revision"] != candidate.Active().Revision {
			t.Errorf("line lacks the decision id, tenant or revision: %v", l)
		}
	}
	if l := byChange["allow_to_deny"]; l == nil || l["allowed"] != true || l["candidate_allowed"] != false || l["candidate_status"] != float64(403) {
		t.Errorf("allow_to_deny line: %v", l)
	}
	if l := byChange["changed"]; l == nil || l["candidate_reason"] != "stale" {
		t.Errorf("changed line: %v", l)
	}
	if l := byChange["candidate_error"]; l == nil || !strings.Contains(l["candidate_error"].(string), "conflict") {
		t.Errorf("candidate_error line: %v", l)
	}
	if strings.Contains(logs.String(), "s3cr3t") {
		t.Error("the shadow log holds the bearer token")
	}
}

// TestShadowNeverBlocks: with the candidate stalled, decisions go on and
// the overflow is counted, not queued without bound.
func TestShadowNeverBlocks(t *testing.T) {
	active := engineWith(t, map[string]string{"authz.rego": activeRego})
	candidate := engineWith(t, map[string]string{"authz.rego": candidateRego})
	shadow := policy.NewShadow(candidate, policy.ShadowOptions{Queue: 4}) // Run is not started
	a := extauthz.NewAuthorizer(policy.NewEvaluator(active, policy.WithShadow(shadow)), func() string { return "d" },
		extauthz.WithIdentityVerifier(fixedIdentity{id: extauthz.Identity{Authenticated: true, Method: extauthz.MethodJWT, Subject: "a"}}))
	for range 100 {
		if d, err := a.Check(context.Background(), request("GET", "/a", nil, "")); err != nil || !d.Allowed {
			t.Fatalf("decision %+v %v", d, err)
		}
	}
	if st := shadow.Stats(); st.Dropped != 96 || st.Evaluated != 0 {
		t.Fatalf("stats %+v, want 96 dropped", st)
	}

	// Once Run drains the queue, the four queued decisions are counted.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go shadow.Run(ctx)
	if st := waitShadow(t, shadow, 100); st.Counts[policy.Same] != 4 {
		t.Fatalf("stats %+v", st)
	}
}

// TestShadowWithoutCandidate: until the candidate bundle is active nothing
// is shadowed, and the active decisions are unaffected.
func TestShadowWithoutCandidate(t *testing.T) {
	active := engineWith(t, map[string]string{"authz.rego": activeRego})
	empty, err := bundles.NewEngine(bundles.DefaultDecisionPath)
	if err != nil {
		t.Fatal(err)
	}
	shadow := policy.NewShadow(empty, policy.ShadowOptions{Queue: 1})
	a := extauthz.NewAuthorizer(policy.NewEvaluator(active, policy.WithShadow(shadow)), func() string { return "d" },
		extauthz.WithIdentityVerifier(fixedIdentity{id: extauthz.Identity{Authenticated: true, Method: extauthz.MethodJWT, Subject: "a"}}))
	for range 3 {
		if d, err := a.Check(context.Background(), request("GET", "/a", nil, "")); err != nil || !d.Allowed {
			t.Fatalf("decision %+v %v", d, err)
		}
	}
	if st := shadow.Stats(); st.Dropped != 0 || st.Evaluated != 0 || st.Revision != "" {
		t.Fatalf("stats %+v", st)
	}
}
