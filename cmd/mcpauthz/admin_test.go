package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"

	"github.com/mcpauthz/mcpauthz/bundles"
)

// toolPolicy allows the listed tools and denies the rest.
func toolPolicy(tools ...string) string {
	return fmt.Sprintf(`package mcpauthz.authz

default decision := {"allowed": false, "http_status": 403}

decision := {"allowed": true} if input.mcp.tool in %s
`, strings.ReplaceAll(fmt.Sprintf("%q", tools), `" "`, `", "`))
}

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestShadowBundle runs a candidate bundle beside the active one through a
// running sidecar: answers follow the active bundle, and /metrics and
// /readyz count what the candidate would have changed.
func TestShadowBundle(t *testing.T) {
	active, candidate := t.TempDir(), t.TempDir()
	writeTree(t, active, map[string]string{"authz.rego": toolPolicy("read", "search")})
	// The candidate closes search and opens write.
	writeTree(t, candidate, map[string]string{"authz.rego": toolPolicy("read", "write")})
	cfg := loopback(Defaults())
	cfg.HTTP.Addr = ""
	cfg.Policy.Bundle = active
	cfg.Policy.Shadow.Bundle = candidate
	s, _ := startSidecar(t, cfg, io.Discard)
	client := dial(t, s.grpc.Addr().String())
	ctx := context.Background()

	calls := map[string]int{"read": 7, "search": 5, "write": 3, "delete": 2}
	for tool, n := range calls {
		for range n {
			resp, err := client.Check(ctx, checkRequest(tool, nil))
			if err != nil {
				t.Fatal(err)
			}
			allowed := resp.GetStatus().GetCode() == int32(codes.OK)
			if want := tool == "read" || tool == "search"; allowed != want {
				t.Fatalf("%s: allowed %v; the active bundle decides", tool, allowed)
			}
			if !allowed && resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_Forbidden {
				t.Fatalf("%s: %v", tool, resp)
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for st := s.shadow.Stats(); st.Evaluated < 17; st = s.shadow.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("the shadow evaluated %d of 17 decisions", st.Evaluated)
		}
		time.Sleep(5 * time.Millisecond)
	}

	admin := "http://" + s.adminLis.Addr().String()
	code, metrics := getBody(t, admin+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`mcpauthz_policy_shadow_decisions_total{change="same"} 9`, // read 7, delete 2
		`mcpauthz_policy_shadow_decisions_total{change="allow_to_deny"} 5`,
		`mcpauthz_policy_shadow_decisions_total{change="deny_to_allow"} 3`,
		`mcpauthz_policy_shadow_decisions_total{change="changed"} 0`,
		`mcpauthz_policy_shadow_dropped_total 0`,
		fmt.Sprintf(`mcpauthz_policy_bundle_info{revision=%q,role="active"} 1`, s.engine.Status().Revision),
		fmt.Sprintf(`mcpauthz_policy_bundle_info{revision=%q,role="shadow"} 1`, s.shadow.Engine().Status().Revision),
		`mcpauthz_policy_bundle_activations_total{role="active"} 1`,
		`mcpauthz_policy_bundle_activation_failures_total{role="shadow"} 0`,
		"go_goroutines ",
	} {
		if !strings.Contains(metrics, want+"\n") && !(strings.HasSuffix(want, " ") && strings.Contains(metrics, want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	code, body := getBody(t, admin+"/readyz")
	var r readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil || code != http.StatusOK {
		t.Fatalf("/readyz: %d %s %v", code, body, err)
	}
	if !r.Ready || r.Policy.Revision != s.engine.Status().Revision || r.Policy.Source != active || r.Revocations != "off" ||
		r.Shadow == nil || r.Shadow.Bundle.Source != candidate || r.Shadow.Decisions["allow_to_deny"] != 5 || r.Shadow.Decisions["deny_to_allow"] != 3 {
		t.Fatalf("/readyz: %s", body)
	}

	// A candidate whose own tests fail is rejected; the old one stays, and
	// the rejection is counted.
	writeTree(t, candidate, map[string]string{"authz_test.rego": "package mcpauthz.authz_test\n\nimport data.mcpauthz.authz\n\ntest_search if authz.decision.allowed with input as {\"mcp\": {\"tool\": \"search\"}}\n"})
	for deadline := time.Now().Add(10 * time.Second); s.shadow.Engine().Status().Failures == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the candidate with failing tests was not noticed")
		}
	}
	_, metrics = getBody(t, admin+"/metrics")
	if !strings.Contains(metrics, `mcpauthz_policy_bundle_activation_failures_total{role="shadow"} 1`) {
		t.Errorf("the rejected candidate is not counted:\n%s", grepLines(metrics, "mcpauthz_policy_bundle"))
	}
	_, body = getBody(t, admin+"/readyz")
	if !strings.Contains(body, "test_search") {
		t.Errorf("/readyz does not say which test failed: %s", body)
	}

	if code, body := getBody(t, admin+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// TestReadinessWithoutPolicy: no active bundle, not ready.
func TestReadinessWithoutPolicy(t *testing.T) {
	e, err := bundles.NewEngine(bundles.DefaultDecisionPath)
	if err != nil {
		t.Fatal(err)
	}
	s := &sidecar{engine: e, source: &policySource{engine: e, location: filepath.Join(os.TempDir(), "missing")}, log: slog.New(slog.DiscardHandler)}
	srv := httptest.NewServer(s.adminHandler())
	defer srv.Close()
	code, body := getBody(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"ready":false`) {
		t.Fatalf("/readyz without a policy: %d %s", code, body)
	}
}

// TestSidecarRunsBundleTests: a bundle whose own tests fail does not
// start the sidecar, unless policy.skip_tests says so.
func TestSidecarRunsBundleTests(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"authz.rego":      toolPolicy("read"),
		"authz_test.rego": "package mcpauthz.authz_test\n\nimport data.mcpauthz.authz\n\ntest_search if authz.decision.allowed with input as {\"mcp\": {\"tool\": \"search\"}}\n",
	})
	cfg := loopback(Defaults())
	cfg.HTTP.Addr, cfg.Admin.Addr = "", ""
	cfg.Policy.Bundle = dir
	_, err := buildSidecar(context.Background(), cfg, io.Discard, slog.New(slog.DiscardHandler))
	if !errors.Is(err, bundles.ErrTestsFailed) || !strings.Contains(err.Error(), "test_search") {
		t.Fatalf("a bundle with a failing test: %v, want ErrTestsFailed naming it", err)
	}
	cfg.Policy.SkipTests = true
	s, _ := startSidecar(t, cfg, io.Discard)
	if st := s.engine.Status(); st.Activations != 1 || st.Source != dir {
		t.Fatalf("with skip_tests: %+v", st)
	}
}
