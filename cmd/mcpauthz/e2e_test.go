package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// syncBuffer collects what the sidecar writes from its goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startSidecar builds and runs the sidecar from cfg; the returned stop
// shuts it down and reports Run's error.
func startSidecar(t *testing.T, cfg Config, stdout io.Writer) (*sidecar, func() error) {
	t.Helper()
	if cfg.Admin.Addr == DefaultAdminAddr {
		cfg.Admin.Addr = "127.0.0.1:0" // tests may run side by side
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := buildSidecar(ctx, cfg, stdout, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(15 * time.Second):
				runErr = fmt.Errorf("the sidecar did not stop")
			}
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return s, stop
}

func loopback(cfg Config) Config {
	cfg.GRPC.Addr = "127.0.0.1:0"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Admin.Addr = "127.0.0.1:0"
	return cfg
}

func checkRequest(tool string, headers map[string]string) *authv3.CheckRequest {
	h := map[string]string{"content-type": "application/json"}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{
			Method: "POST", Path: "/mcp", Headers: h,
			Body: fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":%q}}`, tool),
		},
	}}}
}

func dial(t *testing.T, addr string) authv3.AuthorizationClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

func TestDevEndToEnd(t *testing.T) {
	var stdout syncBuffer
	s, stop := startSidecar(t, loopback(devConfig(t)), &stdout)
	client := dial(t, s.grpc.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A credential that does not verify is refused, never taken for none.
	resp, err := client.Check(ctx, checkRequest("echo", map[string]string{"authorization": "Bearer super-secret-token"}))
	if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_Unauthorized {
		t.Fatalf("echo with a bad token: %v %v", resp, err)
	}
	// An API key allowed the echo tool; cookies that are not the
	// session's are the upstream's business.
	key := devKey(t, s)
	resp, err = client.Check(ctx, checkRequest("echo", map[string]string{"x-api-key": key, "cookie": "tracker=super-secret-cookie"}))
	if err != nil || resp.GetStatus().GetCode() != int32(codes.OK) {
		t.Fatalf("echo: %v %v", resp, err)
	}
	// An undeclared tool is destructive: a key may not call it without a
	// fresh session.
	resp, err = client.Check(ctx, checkRequest("delete_files", map[string]string{"x-api-key": key}))
	if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_Forbidden {
		t.Fatalf("delete_files: %v %v", resp, err)
	}

	httpURL := "http://" + s.httpLis.Addr().String() + "/mcp"
	post := func(body string, withKey bool) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", httpURL, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if withKey {
			req.Header.Set("X-Api-Key", key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := post(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo"}}`, true)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("X-Mcpauthz-Decision-Id") == "" {
		t.Fatalf("forward-auth allow: %d %v", res.StatusCode, res.Header)
	}
	res = post(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo"}}`, false)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), `"id":4`) ||
		!strings.Contains(res.Header.Get("Www-Authenticate"), "resource_metadata=") {
		t.Fatalf("forward-auth anonymous: %d %v %s", res.StatusCode, res.Header, body)
	}

	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// The decision log has one line per decision, secrets removed.
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var events []map[string]any
	for _, l := range lines {
		if !strings.HasPrefix(l, "{") {
			continue // the dev banner
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("decision log line is not JSON: %v: %s", err, l)
		}
		events = append(events, ev)
	}
	if len(events) != 5 {
		t.Fatalf("%d decision log events, want 5:\n%s", len(events), stdout.String())
	}
	if strings.Contains(stdout.String(), "super-secret") || strings.Contains(stdout.String(), key) {
		t.Fatal("a credential header reached the decision log")
	}
	erased, _ := json.Marshal(events[1]["erased"])
	if !strings.Contains(string(erased), "/input/attributes/request/http/headers/cookie") ||
		!strings.Contains(string(erased), "/input/attributes/request/http/headers/x-api-key") {
		t.Fatalf("erased = %s", erased)
	}
}

// TestGrpcurl asks the dev sidecar for decisions with grpcurl, as the
// README does. CI installs grpcurl and sets MCPAUTHZ_TEST_GRPCURL.
func TestGrpcurl(t *testing.T) {
	grpcurl := os.Getenv("MCPAUTHZ_TEST_GRPCURL")
	if grpcurl == "" {
		t.Skip("MCPAUTHZ_TEST_GRPCURL is not set")
	}
	s, _ := startSidecar(t, loopback(devConfig(t)), io.Discard)
	addr := s.grpc.Addr().String()
	call := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(grpcurl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("grpcurl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	key := devKey(t, s)
	body := func(tool, key string) string {
		return fmt.Sprintf(`{"attributes":{"request":{"http":{"method":"POST","path":"/mcp","headers":{"content-type":"application/json","x-api-key":"%s"},"body":"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\"}}"}}}}`, key, tool)
	}
	if out := call("-plaintext", "-d", body("echo", key), addr, "envoy.service.auth.v3.Authorization/Check"); !strings.Contains(out, `"okResponse"`) {
		t.Fatalf("allow: %s", out)
	}
	out := call("-plaintext", "-d", body("delete_files", key), addr, "envoy.service.auth.v3.Authorization/Check")
	if !strings.Contains(out, `"deniedResponse"`) || !strings.Contains(out, `"Forbidden"`) || !strings.Contains(out, `-32003`) {
		t.Fatalf("deny: %s", out)
	}
	if out := call("-plaintext", addr, "grpc.health.v1.Health/Check"); !strings.Contains(out, "SERVING") {
		t.Fatalf("health: %s", out)
	}
	if out := call("-plaintext", addr, "list"); !strings.Contains(out, "envoy.service.auth.v3.Authorization") {
		t.Fatalf("reflection: %s", out)
	}
}

// TestHotReloadUnderLoad rewrites the watched bundle — to a new policy, to
// a broken one, and back — while clients check continuously: no check
// fails, every answer is one of the two policies', and the new policy is
// picked up.
func TestHotReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	policy := func(tool string) string {
		return fmt.Sprintf("package mcpauthz.authz\n\ndefault decision := {\"allowed\": false}\n\ndecision := {\"allowed\": true} if input.mcp.tool == %q\n", tool)
	}
	writeAtomic := func(body string) {
		tmp := filepath.Join(dir, ".authz.rego.tmp")
		if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "authz.rego")); err != nil {
			t.Fatal(err)
		}
	}
	writeAtomic(policy("alpha"))
	cfg := loopback(Defaults())
	cfg.HTTP.Addr = ""
	cfg.Policy.Bundle = dir
	s, _ := startSidecar(t, cfg, io.Discard)
	client := dial(t, s.grpc.Addr().String())

	ctx, cancel := context.WithCancel(context.Background())
	var checks, failures, other atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tool := []string{"alpha", "beta"}[w%2]
			for ctx.Err() == nil {
				resp, err := client.Check(context.Background(), checkRequest(tool, nil))
				checks.Add(1)
				switch {
				case err != nil:
					failures.Add(1)
				case resp.GetStatus().GetCode() == int32(codes.OK):
				case resp.GetDeniedResponse().GetStatus().GetCode() == typev3.StatusCode_Forbidden:
				default:
					other.Add(1) // a 503 would mean a policy error reached a decision
				}
			}
		}()
	}
	waitRevision := func(old string) string {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if r := s.engine.Status().Revision; r != old {
				return r
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("the bundle change was not picked up (revision still %s)", old)
		return ""
	}
	rev := s.engine.Status().Revision
	writeAtomic(policy("beta"))
	rev = waitRevision(rev)
	failuresBefore := s.engine.Status().Failures
	writeAtomic("package mcpauthz.authz\n\ndecision := {") // broken
	deadline := time.Now().Add(10 * time.Second)
	for s.engine.Status().Failures == failuresBefore && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if s.engine.Status().Failures == failuresBefore || s.engine.Status().Revision != rev {
		t.Fatalf("the broken bundle was not rejected: %+v", s.engine.Status())
	}
	// Still beta: alpha denied, beta allowed.
	resp, err := client.Check(context.Background(), checkRequest("beta", nil))
	if err != nil || resp.GetStatus().GetCode() != int32(codes.OK) {
		t.Fatalf("after the broken bundle, beta: %v %v", resp, err)
	}
	writeAtomic(policy("alpha"))
	waitRevision(rev)
	cancel()
	wg.Wait()
	if failures.Load() != 0 || other.Load() != 0 || checks.Load() < 100 {
		t.Fatalf("%d checks, %d failed, %d neither allowed nor forbidden", checks.Load(), failures.Load(), other.Load())
	}
	t.Logf("%d checks across three reloads, none failed", checks.Load())
}

func TestDecisionLogFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.jsonl")
	cfg := loopback(Defaults())
	cfg.HTTP.Addr = ""
	cfg.DecisionLog.Output = path
	s, stop := startSidecar(t, cfg, io.Discard)
	client := dial(t, s.grpc.Addr().String())
	for _, tool := range []string{"echo", "rm"} {
		if _, err := client.Check(context.Background(), checkRequest(tool, map[string]string{"cookie": "sid=secret-cookie"})); err != nil {
			t.Fatal(err)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("decision log mode %v, want 0600", info.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 || strings.Contains(string(data), "secret-cookie") {
		t.Fatalf("decision log:\n%s", data)
	}
	for _, l := range lines {
		var ev struct {
			DecisionID string `json:"decision_id"`
			Mcpauthz   struct {
				Allowed bool `json:"allowed"`
			} `json:"mcpauthz"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.DecisionID == "" {
			t.Fatalf("line %q: %v", l, err)
		}
	}
}
