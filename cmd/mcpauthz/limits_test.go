package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mcpauthz/mcpauthz/internal/testpg"
	"github.com/mcpauthz/mcpauthz/internal/testredis"
	"github.com/mcpauthz/mcpauthz/quotas/pgusage"
)

// limitedPolicy allows every tool call, three per minute per tool, and
// asks for the limits' state on allowed responses.
const limitedPolicy = `package mcpauthz.authz

decision := {
	"allowed": true,
	"rate_limit_headers": true,
	"limits": [{"name": "per_tool", "key": concat(":", ["tool", input.mcp.tool]), "limit": 3, "window": "1m"}],
	"quotas": [{"name": "daily", "key": "all", "limit": 1000, "period": "day", "time_zone": "Europe/Paris"}],
}
`

func limitedSidecar(t *testing.T, redisURL string) (*sidecar, authv3.AuthorizationClient) {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"authz.rego": limitedPolicy})
	cfg := loopback(Defaults())
	cfg.Policy.Bundle = dir
	cfg.Limits.Redis = redisURL
	cfg.Limits.Replicas = 2
	cfg.Limits.RetryInterval = Duration(50 * time.Millisecond)
	s, _ := startSidecar(t, cfg, io.Discard)
	return s, dial(t, s.grpc.Addr().String())
}

// header returns a header of an Envoy CheckResponse, allowed or denied.
func responseHeader(resp *authv3.CheckResponse, name string) string {
	hs := resp.GetDeniedResponse().GetHeaders()
	if ok := resp.GetOkResponse(); ok != nil {
		hs = ok.GetResponseHeadersToAdd()
	}
	for _, h := range hs {
		if strings.EqualFold(h.GetHeader().GetKey(), name) {
			return h.GetHeader().GetValue()
		}
	}
	return ""
}

// TestRateLimitedThroughTheSidecar: the in-process limiter enforces what
// the policy asks for, through Envoy's gRPC API and forward-auth alike.
func TestRateLimitedThroughTheSidecar(t *testing.T) {
	s, client := limitedSidecar(t, "")
	ctx := context.Background()
	for i := range 3 {
		resp, err := client.Check(ctx, checkRequest("search", nil))
		if err != nil || resp.GetStatus().GetCode() != int32(codes.OK) {
			t.Fatalf("call %d: %v %v", i+1, resp, err)
		}
		if got := responseHeader(resp, "x-ratelimit-remaining"); got != []string{"2", "1", "0"}[i] {
			t.Errorf("call %d: X-RateLimit-Remaining %q", i+1, got)
		}
	}
	resp, err := client.Check(ctx, checkRequest("search", nil))
	if err != nil {
		t.Fatal(err)
	}
	denied := resp.GetDeniedResponse()
	if denied.GetStatus().GetCode() != typev3.StatusCode_TooManyRequests {
		t.Fatalf("the fourth call: %v", resp)
	}
	if ra := responseHeader(resp, "retry-after"); ra != "20" {
		t.Errorf("Retry-After %q, want 20 (a minute for three)", ra)
	}
	if rl := responseHeader(resp, "ratelimit"); !strings.HasPrefix(rl, `"per_tool";r=0;t=20, "daily";r=997;t=`) {
		t.Errorf("RateLimit %q", rl)
	}
	var reply struct {
		ID    int
		Error struct {
			Code int
			Data struct {
				RetryAfter int `json:"retry_after"`
			}
		}
	}
	if err := json.Unmarshal([]byte(denied.GetBody()), &reply); err != nil || reply.ID != 1 || reply.Error.Code != -32029 || reply.Error.Data.RetryAfter != 20 {
		t.Errorf("body %s: %v", denied.GetBody(), err)
	}
	// Another tool has its own limit.
	if resp, _ := client.Check(ctx, checkRequest("read", nil)); resp.GetStatus().GetCode() != int32(codes.OK) {
		t.Errorf("another tool: %v", resp)
	}

	// Forward-auth answers the same, Retry-After included.
	req, _ := http.NewRequest("POST", "http://"+s.httpLis.Addr().String()+"/mcp",
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}`))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Errorf("forward-auth: %d %v", res.StatusCode, res.Header)
	}

	_, body := getBody(t, "http://"+s.adminLis.Addr().String()+"/readyz")
	var r readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Limits.State != "local" || r.Limits.Keys != 3 {
		t.Errorf("/readyz limits: %s", body)
	}
}

// TestLimitsOnRedisCluster: limits.cluster takes the policy's limits in a
// Redis Cluster, where the request's keys fall in different slots.
func TestLimitsOnRedisCluster(t *testing.T) {
	rdb := testredis.StartCluster(t, 3)
	addrs := rdb.Options().Addrs
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"authz.rego": limitedPolicy})
	cfg := loopback(Defaults())
	cfg.Policy.Bundle = dir
	cfg.Limits.Redis = "redis://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2]
	cfg.Limits.Cluster = true
	cfg.Limits.Timeout = Duration(200 * time.Millisecond) // a cluster client learns the slots on first use
	s, _ := startSidecar(t, cfg, io.Discard)
	client := dial(t, s.grpc.Addr().String())
	for i := range 4 {
		resp, err := client.Check(context.Background(), checkRequest("search", nil))
		if err != nil {
			t.Fatal(err)
		}
		if allowed := resp.GetStatus().GetCode() == int32(codes.OK); allowed != (i < 3) {
			t.Fatalf("call %d: %v", i+1, resp)
		}
		if i == 2 && responseHeader(resp, "ratelimit") == "" {
			t.Errorf("call %d: no RateLimit header", i+1)
		}
	}
	if st := s.limiter.Stats(); st.Fallbacks != 0 {
		t.Errorf("fell back %d times with the cluster up", st.Fallbacks)
	}
}

// TestLimitsFallBackWhenRedisFails: with limits in Redis, a paused Redis
// costs no decision its budget; limits fall back to this replica's share,
// /readyz and /metrics say so, and once Redis answers again the shared
// count is back.
func TestLimitsFallBackWhenRedisFails(t *testing.T) {
	cmd, addr := testredis.Start(t)
	s, client := limitedSidecar(t, "redis://"+addr)
	ctx := context.Background()
	admin := "http://" + s.adminLis.Addr().String()
	check := func(tool string) (*authv3.CheckResponse, time.Duration) {
		t.Helper()
		start := time.Now()
		resp, err := client.Check(ctx, checkRequest(tool, nil))
		if err != nil {
			t.Fatal(err)
		}
		return resp, time.Since(start)
	}
	for range 3 {
		if resp, _ := check("search"); resp.GetStatus().GetCode() != int32(codes.OK) {
			t.Fatalf("with Redis: %v", resp)
		}
	}

	cmd.Process.Signal(syscall.SIGSTOP)
	defer cmd.Process.Signal(syscall.SIGCONT)
	// Two replicas: this one's share is one call at once (and one every
	// 40 s), counted afresh in process.
	var allowed int
	for range 5 {
		resp, took := check("search")
		if took > 100*time.Millisecond {
			t.Errorf("a decision took %v with Redis paused", took)
		}
		if resp.GetStatus().GetCode() == int32(codes.OK) {
			allowed++
		} else if resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_TooManyRequests {
			t.Fatalf("with Redis paused: %v", resp)
		}
	}
	if allowed != 1 {
		t.Errorf("with Redis paused: %d of 5 allowed, want this replica's share of 1", allowed)
	}
	_, body := getBody(t, admin+"/readyz")
	var r readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Limits.State != "fallback" || r.Limits.Fallbacks != 5 {
		t.Errorf("/readyz limits with Redis paused: %s", body)
	}
	if st := limitsServing(t, s); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("gRPC health of %s with Redis paused: %v", limitsHealth, st)
	}
	if _, m := getBody(t, admin+"/metrics"); !strings.Contains(m, "mcpauthz_limiter_fallback 1\n") ||
		!strings.Contains(m, "mcpauthz_limiter_fallback_decisions_total 5\n") {
		t.Errorf("/metrics:\n%s", grepLines(m, "mcpauthz_limiter"))
	}

	cmd.Process.Signal(syscall.SIGCONT)
	deadline := time.Now().Add(5 * time.Second)
	for s.limiter.Stats().Down && time.Now().Before(deadline) {
		time.Sleep(60 * time.Millisecond)
		check("read")
	}
	// Redis counted three calls of search before the pause: a fourth is
	// refused by the shared limit.
	if resp, _ := check("search"); resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_TooManyRequests {
		t.Errorf("with Redis back: %v", resp)
	}
	_, body = getBody(t, admin+"/readyz")
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Limits.State != "shared" {
		t.Errorf("/readyz limits with Redis back: %s", body)
	}
	if st := limitsServing(t, s); st != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health of %s with Redis back: %v", limitsHealth, st)
	}
}

// limitsServing asks the sidecar's gRPC health service about the limits.
func limitsServing(t *testing.T, s *sidecar) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	conn, err := grpc.NewClient(s.grpc.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	res, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: limitsHealth})
	if err != nil {
		t.Fatal(err)
	}
	return res.GetStatus()
}

// TestLeaseReleasedByEnvoysAccessLog: a concurrency cap of one stream per
// tenant; the second stream waits until Envoy's gRPC access logger reports
// the first finished, to the sidecar's own gRPC listener.
func TestLeaseReleasedByEnvoysAccessLog(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"authz.rego": `package mcpauthz.authz

decision := {"allowed": true, "concurrency": [{"name": "streams", "key": "tenant:acme:streams", "limit": 1, "ttl": "1h"}]}
`})
	cfg := loopback(Defaults())
	cfg.Policy.Bundle = dir
	s, _ := startSidecar(t, cfg, io.Discard)
	client := dial(t, s.grpc.Addr().String())
	ctx := context.Background()

	first, err := client.Check(ctx, checkRequest("stream", nil))
	if err != nil || first.GetStatus().GetCode() != int32(codes.OK) {
		t.Fatalf("first: %v %v", first, err)
	}
	if second, _ := client.Check(ctx, checkRequest("stream", nil)); second.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_TooManyRequests {
		t.Fatalf("second, over the cap: %v", second)
	}

	// Envoy keeps the ext_authz dynamic metadata under the filter's name
	// and sends it with the access log entry when the request ends.
	conn, err := grpc.NewClient(s.grpc.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := alsv3.NewAccessLogServiceClient(conn).StreamAccessLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	entry := &accesslogv3.HTTPAccessLogEntry{
		CommonProperties: &accesslogv3.AccessLogCommon{
			AccessLogType: accesslogv3.AccessLogType_DownstreamEnd,
			Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
				"envoy.filters.http.ext_authz": first.GetDynamicMetadata(),
			}},
		},
		Request: &accesslogv3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_POST, Path: "/mcp"},
	}
	err = stream.Send(&alsv3.StreamAccessLogsMessage{
		Identifier: &alsv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: "envoy-1"}, LogName: "mcpauthz_leases"},
		LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
			LogEntry: []*accesslogv3.HTTPAccessLogEntry{entry}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	if third, _ := client.Check(ctx, checkRequest("stream", nil)); third.GetStatus().GetCode() != int32(codes.OK) {
		t.Fatalf("after the first ended: %v", third)
	}
}

// TestQuotaUsageSurvivesRedis: with limits in Redis and usage persisted to
// Postgres, a Redis that loses everything gets the day's usage back, and
// the quota goes on from where it was.
func TestQuotaUsageSurvivesRedis(t *testing.T) {
	pg := testpg.Schema(t)
	_, addr := testredis.Start(t)
	env := []string{"MCPAUTHZ_LIMITS_REDIS=redis://" + addr, "MCPAUTHZ_LIMITS_POSTGRES=" + pg}
	code, stdout, stderr := runCmd(t, env, "migrate", "-store", filepath.Join(t.TempDir(), "id.db"))
	if code != 0 || !strings.Contains(stdout, "quota usage store") || !strings.Contains(stdout, "migrated from version 0 to 1") {
		t.Fatalf("migrate: %d\n%s\n%s", code, stdout, stderr)
	}

	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"authz.rego": limitedPolicy})
	cfg := loopback(Defaults())
	cfg.Policy.Bundle = dir
	cfg.Limits.Redis = "redis://" + addr
	cfg.Limits.Postgres = pg
	cfg.Limits.PersistInterval = Duration(time.Second)
	s, _ := startSidecar(t, cfg, io.Discard)
	client := dial(t, s.grpc.Addr().String())
	ctx := context.Background()
	daily := func(tool string) string {
		t.Helper()
		resp, err := client.Check(ctx, checkRequest(tool, nil))
		if err != nil || resp.GetStatus().GetCode() != int32(codes.OK) {
			t.Fatalf("%s: %v %v", tool, resp, err)
		}
		_, rl, _ := strings.Cut(responseHeader(resp, "ratelimit"), `"daily";`)
		r, _, _ := strings.Cut(rl, ";")
		return r
	}
	for _, tool := range []string{"a", "b", "c", "d", "e"} {
		daily(tool)
	}

	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	store, err := pgusage.Open(ctx, pg, pgusage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	saved := func() int64 {
		usage, err := store.Load(ctx, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range usage {
			if u.Key == "all" {
				return u.Used
			}
		}
		return 0
	}
	for deadline := time.Now().Add(10 * time.Second); saved() != 5; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the usage was not saved: %d", saved())
		}
	}
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// The next round notices the counters went back, and restores them.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		keys, _ := rdb.Keys(ctx, "mcpauthz:q:all:*").Result()
		if len(keys) == 1 && rdb.Get(ctx, keys[0]).Val() == "5" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the usage was not restored: %v", keys)
		}
	}
	if r := daily("f"); r != "r=994" {
		t.Errorf("after the restore: %s, want r=994", r)
	}
}
