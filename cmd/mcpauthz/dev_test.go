package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// devRun is one `mcpauthz dev` run on loopback ports.
type devRun struct {
	stdout *syncBuffer
	stop   func() int
}

func startDev(t *testing.T, data string) *devRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &devRun{stdout: &syncBuffer{}}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"dev", "-data", data, "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0",
			"-identity-addr", "127.0.0.1:0", "-decision-log", "off"}, nil, r.stdout, io.Discard)
	}()
	r.stop = func() int { cancel(); return <-code }
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(r.stdout.String(), "Ctrl-C stops") {
		select {
		case c := <-code:
			t.Fatalf("mcpauthz dev exited with %d: %s", c, r.stdout.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no banner: %s", r.stdout.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r
}

// field is the first submatch of re in the banner.
func (r *devRun) field(t *testing.T, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(r.stdout.String())
	if m == nil {
		t.Fatalf("%s not in the banner:\n%s", re, r.stdout.String())
	}
	return m[1]
}

// post sends body (JSON, when not empty) with header and decodes the JSON
// answer.
func post(t *testing.T, url string, header http.Header, body string) (int, map[string]any) {
	t.Helper()
	return send(t, "POST", url, header, body)
}

// send sends a request with header and body (JSON, when not empty) and
// decodes the JSON answer.
func send(t *testing.T, method, url string, header http.Header, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

// TestDevBootstrap runs `mcpauthz dev` as the README says: the first run
// creates an admin, an organization and an API key and prints them once;
// they work against the identity API; a second run on the same data keeps
// them and prints no secret.
func TestDevBootstrap(t *testing.T) {
	data := t.TempDir()
	first := startDev(t, data)
	api := "http://" + first.field(t, `Identity API\s+http://(\S+)`)
	email := first.field(t, `Admin\s+(\S+)\s+password`)
	password := first.field(t, `Admin\s+\S+\s+password (\S+)`)
	key := first.field(t, `API key\s+(mcpk_\S+)`)

	if code, body := post(t, api+"/v1/token", http.Header{"X-Api-Key": {key}}, ""); code != 200 || body["access_token"] == nil {
		t.Fatalf("token exchange with the printed key: %d %v", code, body)
	}
	code, body := post(t, api+"/v1/sessions", http.Header{}, `{"email":"`+email+`","password":"`+password+`"}`)
	if code != 201 {
		t.Fatalf("login with the printed password: %d %v", code, body)
	}
	req, _ := http.NewRequest("GET", api+"/v1/admin/users", nil)
	req.Header.Set("Authorization", "Bearer "+body["token"].(string))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("the dev admin lists users: %d", res.StatusCode)
	}
	// The sidecar knows the key: allowed, with the key's identity for the
	// upstream; a forged key is refused.
	sidecar := "http://" + first.field(t, `HTTP forward-auth\s+(\S+)`) + "/mcp"
	call := func(key string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", sidecar, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("X-Api-Key", key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if res := call(key); res.StatusCode != 200 || res.Header.Get("X-Mcpauthz-Auth-Method") != "api_key" || res.Header.Get("X-Mcpauthz-Tenant") == "" {
		t.Fatalf("the sidecar with the printed key: %d %v", res.StatusCode, res.Header)
	}
	// A JWT the identity service issues for the key is accepted too.
	_, issued := post(t, api+"/v1/token", http.Header{"X-Api-Key": {key}}, "")
	jwtReq, _ := http.NewRequest("POST", sidecar, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`))
	jwtReq.Header.Set("Content-Type", "application/json")
	jwtReq.Header.Set("Authorization", "Bearer "+issued["access_token"].(string))
	if res, err := http.DefaultClient.Do(jwtReq); err != nil || res.StatusCode != 200 || res.Header.Get("X-Mcpauthz-Auth-Method") != "jwt" {
		t.Fatalf("the sidecar with an issued JWT: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	// Without one, the policy answers 401, and so does a bad key; the
	// challenge names the protected resource metadata.
	if res := call(""); res.StatusCode != 401 || !strings.Contains(res.Header.Get("Www-Authenticate"), "resource_metadata=") {
		t.Fatalf("no credential: %d %q", res.StatusCode, res.Header.Get("Www-Authenticate"))
	}
	if res := call("mcpk_nope"); res.StatusCode != 401 || !strings.Contains(res.Header.Get("Www-Authenticate"), `resource_metadata="http://127.0.0.1:9192/.well-known/oauth-protected-resource/mcp"`) {
		t.Fatalf("a bad key's challenge: %d %q", res.StatusCode, res.Header.Get("Www-Authenticate"))
	}
	if res := call(key[:len(key)-2] + "xx"); res.StatusCode != 401 {
		t.Fatalf("the sidecar with a forged key: %d", res.StatusCode)
	}
	// Revoked through the identity API, refused by the sidecar at once.
	org := first.field(t, `Organization\s+dev \((\S+)\)`)
	keys := api + "/v1/orgs/" + org + "/api-keys"
	req, _ = http.NewRequest("GET", keys, nil)
	req.Header.Set("Authorization", "Bearer "+body["token"].(string))
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var listed struct {
		APIKeys []struct{ ID string } `json:"api_keys"`
	}
	json.NewDecoder(res.Body).Decode(&listed)
	res.Body.Close()
	if len(listed.APIKeys) != 1 {
		t.Fatalf("keys: %+v", listed)
	}
	req, _ = http.NewRequest("DELETE", keys+"/"+listed.APIKeys[0].ID, nil)
	req.Header.Set("Authorization", "Bearer "+body["token"].(string))
	if res, err = http.DefaultClient.Do(req); err != nil || res.StatusCode != 204 {
		t.Fatalf("revoking the key: %v %v", res, err)
	}
	res.Body.Close()
	if res := call(key); res.StatusCode != 401 {
		t.Fatalf("the sidecar with the revoked key: %d", res.StatusCode)
	}

	if c := first.stop(); c != 0 {
		t.Fatalf("dev exited with %d", c)
	}

	second := startDev(t, data)
	defer second.stop()
	out := second.stdout.String()
	if !strings.Contains(out, "is set up") || strings.Contains(out, password) || strings.Contains(out, key) {
		t.Fatalf("second run banner:\n%s", out)
	}
	// The admin from the first run still signs in.
	if code, _ := post(t, "http://"+second.field(t, `Identity API\s+http://(\S+)`)+"/v1/sessions", http.Header{},
		`{"email":"`+email+`","password":"`+password+`"}`); code != 201 {
		t.Fatalf("the first run's admin after a restart: %d", code)
	}
	api = "http://" + second.field(t, `Identity API\s+http://(\S+)`)
	if code, body := post(t, api+"/v1/token", http.Header{"X-Api-Key": {key}}, ""); code != 401 {
		t.Fatalf("the key revoked in the first run after a restart: %d %v", code, body)
	}
}

// devConfig is dev's configuration on a fresh data directory.
func devConfig(t *testing.T) Config {
	t.Helper()
	data := t.TempDir()
	if err := prepareDevData(data); err != nil {
		t.Fatal(err)
	}
	return devDefaults(data)
}

// TestDevListensOnLoopback: `mcpauthz dev` serves nothing beyond the
// machine, the admin listener included.
func TestDevListensOnLoopback(t *testing.T) {
	cfg := devDefaults(t.TempDir())
	for name, addr := range map[string]string{"grpc": cfg.GRPC.Addr, "http": cfg.HTTP.Addr, "admin": cfg.Admin.Addr, "identity": cfg.Identity.Addr} {
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("%s listens on %q", name, addr)
		}
	}
}
