package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/mcpauthz/mcpauthz/identity/sqlite"
)

// running is a command started by run in the test's process.
type running struct {
	stderr *syncBuffer
	stop   func()
}

func start(t *testing.T, args, env []string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{stderr: &syncBuffer{}}
	code := make(chan int, 1)
	go func() { code <- run(ctx, args, env, io.Discard, r.stderr) }()
	r.stop = func() {
		cancel()
		if c := <-code; c != 0 {
			t.Errorf("%s exited with %d: %s", args[0], c, r.stderr.String())
		}
	}
	t.Cleanup(r.stop)
	return r
}

// logged waits for a log line and returns the first submatch of re in it.
func (r *running) logged(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if m := rx.FindStringSubmatch(r.stderr.String()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s in: %s", re, r.stderr.String())
		}
	}
}

// call sends body as JSON (none when nil) with the bearer token, if any,
// and decodes the JSON answer.
func call(t *testing.T, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	var raw string
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		raw = string(b)
	}
	header := http.Header{}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	return send(t, method, url, header, raw)
}

// TestRevocationAcrossProcesses runs the identity service and the sidecar
// as two services sharing a store and Redis, as deployed: a key revoked or
// a user banned through the identity API is refused by the sidecar at the
// next check, through the pub/sub events, though its cache would keep it
// for five minutes.
func TestRevocationAcrossProcesses(t *testing.T) {
	redisURL := os.Getenv("MCPAUTHZ_TEST_REDIS_URL")
	if redisURL == "" {
		t.Skip("MCPAUTHZ_TEST_REDIS_URL is not set")
	}
	key := make([]byte, 32)
	rand.Read(key)
	dir := t.TempDir()
	prefix := fmt.Sprintf("test-revocation-%d", time.Now().UnixNano())
	env := []string{
		"MCPAUTHZ_IDENTITY_STORE=" + filepath.Join(dir, "id.db"),
		"MCPAUTHZ_IDENTITY_AUDIT_KEY=" + base64.StdEncoding.EncodeToString(key),
		"MCPAUTHZ_IDENTITY_KEK=" + base64.StdEncoding.EncodeToString(key),
		"MCPAUTHZ_IDENTITY_TOKENS_ISSUER=https://id.example.com",
		"MCPAUTHZ_IDENTITY_TOKENS_AUDIENCE=https://mcp.example.com/mcp",
		"MCPAUTHZ_IDENTITY_REDIS=" + redisURL,
		"MCPAUTHZ_CREDENTIALS_API_KEYS=true",
		"MCPAUTHZ_CREDENTIALS_SESSIONS=true",
		"MCPAUTHZ_CREDENTIALS_REDIS=" + redisURL,
		"MCPAUTHZ_CREDENTIALS_REDIS_PREFIX=" + prefix,
		"MCPAUTHZ_CREDENTIALS_LIVE_MAX_AGE=5m",
	}
	// The identity service writes under the same prefix as the sidecar
	// reads: the default, unless the test isolates it.
	idEnv := append(append([]string{}, env...), "MCPAUTHZ_IDENTITY_REDIS_PREFIX="+prefix, "MCPAUTHZ_IDENTITY_ADMIN_ADDR=127.0.0.1:0")
	id := start(t, []string{"identity", "-addr", "127.0.0.1:0"}, idEnv)
	api := "http://" + id.logged(t, `"msg":"mcpauthz identity serving".*"addr":"([^"]+)"`)
	side := start(t, []string{"serve", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-decision-log", "off"}, env)
	sidecar := "http://" + side.logged(t, `"msg":"mcpauthz serving".*"http":"([^"]+)"`) + "/mcp"
	side.logged(t, `(revocation events live)`)
	// gRPC health names the events apart; live, they are SERVING.
	conn, err := grpc.NewClient(side.logged(t, `"msg":"mcpauthz serving".*"grpc":"([^"]+)"`), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hres, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: revocationsHealth})
	if err != nil || hres.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("revocations health: %v %v", hres, err)
	}
	// And /readyz says so.
	admin := "http://" + side.logged(t, `"msg":"mcpauthz serving".*"admin":"([^"]+)"`)
	if c, ready := send(t, "GET", admin+"/readyz", http.Header{}, ""); c != 200 || ready["revocations"] != "live" {
		t.Fatalf("/readyz: %d %v", c, ready)
	}

	consents := []map[string]any{{"kind": "privacy_policy", "version": "2026-01", "granted": true}, {"kind": "terms", "version": "2026-01", "granted": true}}
	for _, email := range []string{"ada@example.com", "root@example.com"} {
		if c, b := call(t, "POST", api+"/v1/users", "", map[string]any{"email": email, "password": "correct horse battery staple", "consents": consents}); c != 201 {
			t.Fatalf("sign-up: %d %v", c, b)
		}
	}
	login := func(email string) string {
		c, b := call(t, "POST", api+"/v1/sessions", "", map[string]any{"email": email, "password": "correct horse battery staple"})
		if c != 201 {
			t.Fatalf("login: %d %v", c, b)
		}
		return b["token"].(string)
	}
	ada := login("ada@example.com")
	_, org := call(t, "POST", api+"/v1/orgs", ada, map[string]any{"name": "Acme"})
	orgID := org["id"].(string)
	_, created := call(t, "POST", api+"/v1/orgs/"+orgID+"/api-keys", ada, map[string]any{"name": "ci", "scopes": []string{"mcp:tools:call"}})
	if c, b := call(t, "PUT", api+"/v1/sessions/current/org", ada, map[string]any{"org_id": orgID}); c != 200 {
		t.Fatalf("active org: %d %v", c, b)
	}
	secret := created["secret"].(string)
	keyID := created["api_key"].(map[string]any)["id"].(string)

	check := func(header, value string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", sidecar, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(header, value)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	cookie := "__Host-mcpauthz_session=" + ada
	if c := check("X-Api-Key", secret); c != 200 {
		t.Fatalf("the key: %d", c)
	}
	if c := check("Cookie", cookie); c != 200 {
		t.Fatalf("the session: %d", c)
	}
	if c, _ := call(t, "DELETE", api+"/v1/orgs/"+orgID+"/api-keys/"+keyID, ada, nil); c != 204 {
		t.Fatalf("revoke: %d", c)
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: still accepted", what)
			}
		}
	}
	eventually("the revoked key", func() bool { return check("X-Api-Key", secret) == 401 })

	// A ban, by an admin: the session is refused.
	if c := check("Cookie", cookie); c != 200 {
		t.Fatalf("the session before the ban: %d", c)
	}
	root := grantAdmin(t, filepath.Join(dir, "id.db"), "root@example.com", login)
	_, users := call(t, "GET", api+"/v1/admin/users?q=ada", root, nil)
	adaID := users["users"].([]any)[0].(map[string]any)["id"].(string)
	if c, b := call(t, "PUT", api+"/v1/admin/users/"+adaID+"/ban", root, map[string]any{"reason": "abuse"}); c != 204 {
		t.Fatalf("ban: %d %v", c, b)
	}
	eventually("the banned user's session", func() bool { return check("Cookie", cookie) == 401 })
}

// grantAdmin makes the user a platform admin in the store, as an operator
// would, and returns a fresh session of theirs.
func grantAdmin(t *testing.T, storePath, email string, login func(string) string) string {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, storePath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.UserByEmail(ctx, email)
	if err != nil {
		t.Fatal(err)
	}
	u.PlatformRoles = []string{"admin"}
	if err := st.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	return login(email)
}
