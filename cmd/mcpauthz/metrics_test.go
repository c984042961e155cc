package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/internal/testpg"
)

// scrape reads a Prometheus text exposition into series → value, the
// series written as exposed: name{label="v",...} with labels sorted.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d", url, res.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsAfterDecisions: /metrics counts a mix of decisions by result,
// reason and credential method, times them, and counts where API keys
// were found.
func TestMetricsAfterDecisions(t *testing.T) {
	s, stop := startSidecar(t, loopback(devConfig(t)), io.Discard)
	defer stop()
	ctx := context.Background()
	svc, owner, org := ownerOrg(t, s)
	_, key, err := svc.CreateAPIKey(ctx, owner.ID, org.ID, identity.NewAPIKey{Name: "ci", Scopes: []string{"mcp:tools:call"}}, identity.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	call := func(header ...string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+s.httpLis.Addr().String()+"/mcp",
			strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for range 3 {
		if code := call("X-Api-Key", key); code != http.StatusOK {
			t.Fatalf("with the key: %d", code)
		}
	}
	for range 2 {
		if code := call(); code != http.StatusUnauthorized {
			t.Fatalf("anonymous: %d", code)
		}
	}
	if code := call("X-Api-Key", "mcpk_"+strings.Repeat("A", 43)); code != http.StatusUnauthorized {
		t.Fatalf("a made-up key: %d", code)
	}

	m := scrape(t, "http://"+s.adminLis.Addr().String()+"/metrics")
	if m["go_gc_heap_live_bytes"] <= 0 || m["go_gc_heap_goal_bytes"] < m["go_gc_heap_live_bytes"] {
		t.Errorf("live heap %v, heap goal %v", m["go_gc_heap_live_bytes"], m["go_gc_heap_goal_bytes"])
	}
	sum := func(prefix string, parts ...string) float64 {
		var n float64
		for series, v := range m {
			if !strings.HasPrefix(series, prefix+"{") {
				continue
			}
			match := true
			for _, p := range parts {
				match = match && strings.Contains(series, p)
			}
			if match {
				n += v
			}
		}
		return n
	}
	for _, c := range []struct {
		what string
		got  float64
		want float64
	}{
		{"allowed with the key", m[`mcpauthz_decisions_total{method="api_key",reason="granted",result="allow"}`], 3},
		{"anonymous denials", sum("mcpauthz_decisions_total", `method="none"`, `result="deny"`), 2},
		{"refused credentials", m[`mcpauthz_decisions_total{method="unverified",reason="unauthenticated",result="deny"}`], 1},
		{"timed allows", m[`mcpauthz_decision_duration_seconds_count{result="allow"}`], 3},
		{"timed denials", m[`mcpauthz_decision_duration_seconds_count{result="deny"}`], 3},
		{"policy evaluations (not for a refused key)", m[`mcpauthz_policy_eval_duration_seconds_count`], 5},
		// The made-up key fails its checksum before any lookup.
		{"keys read from the store", m[`mcpauthz_credential_lookups_total{kind="api_key",source="store"}`], 1},
		{"keys found in memory", m[`mcpauthz_credential_lookups_total{kind="api_key",source="memory"}`], 2},
		{"store errors", m[`mcpauthz_credential_backend_errors_total{backend="store",kind="api_key"}`], 0},
		{"key reads timed", m[`mcpauthz_store_query_duration_seconds_count{op="api_key"}`], 1},
		{"key reads found", m[`mcpauthz_store_queries_total{op="api_key",result="ok"}`], 1},
		// The key's three calls and the two anonymous ones are one input each.
		{"decisions evaluated", m[`mcpauthz_policy_decision_cache_lookups_total{result="miss",role="active"}`], 2},
		{"decisions remembered", m[`mcpauthz_policy_decision_cache_lookups_total{result="hit",role="active"}`], 3},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
}

// TestReadinessFollowsTheStore: /readyz flips to 503 while the identity
// store is unreachable, and back once it answers again.
func TestReadinessFollowsTheStore(t *testing.T) {
	pg := testpg.Private(t)
	if code, out, errOut := runCmd(t, nil, "migrate", "-store", pg.URL); code != 0 {
		t.Fatalf("migrate: %s %s", out, errOut)
	}
	cfg := devConfig(t)
	cfg.Identity.Store = pg.URL
	s, stop := startSidecar(t, loopback(cfg), io.Discard)
	defer stop()
	readyz := "http://" + s.adminLis.Addr().String() + "/readyz"
	check := func(want int, store string) {
		t.Helper()
		code, body := getBody(t, readyz)
		if code != want || !strings.Contains(body, `"store":"`+store+`"`) {
			t.Fatalf("/readyz: %d %s, want %d with the store %s", code, body, want, store)
		}
	}
	check(http.StatusOK, "ok")
	pg.Stop()
	check(http.StatusServiceUnavailable, "unreachable")
	pg.Start()
	check(http.StatusOK, "ok")
}

// TestIdentityMetrics: the identity service's admin listener counts the
// changes it committed, by audit action, and is ready while its store
// answers.
func TestIdentityMetrics(t *testing.T) {
	cfg := devConfig(t)
	c := cfg.Identity
	c.Addr, c.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	s, err := buildIdentity(context.Background(), c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	srv := httptest.NewServer(s.adminHandler())
	defer srv.Close()
	ctx := context.Background()
	consents := []identity.Consent{{Kind: "privacy_policy", Version: "2026-01", Granted: true}, {Kind: "terms", Version: "2026-01", Granted: true}}
	u, err := s.svc.SignUp(ctx, identity.SignUp{Email: "ada@example.com", Password: "correct horse battery staple", Consents: consents}, identity.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	s.svc.Login(ctx, u.Email, "not the password at all", identity.Meta{})
	s.svc.Login(ctx, u.Email, "correct horse battery staple", identity.Meta{})
	org, _ := s.svc.CreateOrg(ctx, u.ID, "Acme", "UTC", identity.Meta{})
	if _, _, err := s.svc.CreateAPIKey(ctx, u.ID, org.ID, identity.NewAPIKey{Name: "ci"}, identity.Meta{}); err != nil {
		t.Fatal(err)
	}
	m := scrape(t, srv.URL+"/metrics")
	for action, want := range map[string]float64{"user.signup": 1, "user.login_failed": 1, "user.login": 1, "org.create": 1, "api_key.create": 1} {
		if got := m[`mcpauthz_identity_events_total{action="`+action+`"}`]; got != want {
			t.Errorf("%s: %v, want %v", action, got, want)
		}
	}
	if code, body := getBody(t, srv.URL+"/readyz"); code != http.StatusOK || !strings.Contains(body, `"ready":true`) {
		t.Errorf("/readyz: %d %s", code, body)
	}
}
