package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/mcpauthz/mcpauthz/examples/mcp-echo/echo"
	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/policies"
)

// TestNginx puts nginx (auth_request, configured from
// testdata/nginx/nginx.conf.tmpl) in front of the example MCP server, with
// the sidecar deciding through its forward-auth listener, and sends real
// requests through it. CI installs nginx and sets MCPAUTHZ_TEST_NGINX.
func TestNginx(t *testing.T) {
	bin := nginxBinary(t)
	ctx := context.Background()

	upstream := &recordingUpstream{next: echo.Handler()}
	mcpServer := httptest.NewServer(upstream)
	t.Cleanup(mcpServer.Close)

	listen := freeLoopbackAddr(t)
	cfg := loopback(devConfig(t))
	cfg.Policy.Bundle = nginxBundle(t)
	cfg.MCP.Resource.URL = "http://" + listen + "/mcp"
	// The default budget (100 ms) is for latency; this test measures none,
	// and under the race detector a 1 MiB body can take longer.
	cfg.Policy.Timeout = Duration(5 * time.Second)
	s, stop := startSidecar(t, cfg, io.Discard)
	startNginx(t, bin, nginxConfig{Listen: listen, Sidecar: s.httpLis.Addr().String(), Upstream: mcpServer.Listener.Addr().String()})

	svc, owner, org := devAccount(t, s)
	keys := 0
	newKey := func(k identity.NewAPIKey) (id, secret string) {
		t.Helper()
		keys++
		k.Name = "nginx-" + strconv.Itoa(keys)
		if k.Scopes == nil {
			k.Scopes = []string{"mcp:tools:call", "mcp:tools:list"}
		}
		key, secret, err := svc.CreateAPIKey(ctx, owner.ID, org.ID, k, identity.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		return key.ID, secret
	}
	// A key for each case: each may make two requests a minute (nginxBundle).
	keyID, key := newKey(identity.NewAPIKey{})
	forgedID, forged := newKey(identity.NewAPIKey{})
	_, bodyKey := newKey(identity.NewAPIKey{})
	_, xffKey := newKey(identity.NewAPIKey{IPAllowlist: []string{"127.0.0.1"}})
	_, malformedKey := newKey(identity.NewAPIKey{})
	_, listOnly := newKey(identity.NewAPIKey{Scopes: []string{"mcp:tools:list"}})
	_, limited := newKey(identity.NewAPIKey{})
	_, elsewhere := newKey(identity.NewAPIKey{IPAllowlist: []string{"192.0.2.1"}})
	_, lastKey := newKey(identity.NewAPIKey{})
	identityOf := func(keyID string) map[string]any {
		return map[string]any{"user": "key:" + keyID, "tenant": org.ID, "roles": []any{"owner"}, "auth_method": "api_key"}
	}

	url := "http://" + listen + "/mcp"
	const whoami = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami"}}`
	big := strings.Repeat("a", 1000000) // with the JSON-RPC envelope, just under nginx's and mcpauthz's 1 MiB
	for _, c := range []struct {
		name   string
		header []string // name, value, ...
		body   string
		before int // identical requests sent first, each allowed
		status int
		// challenge is in WWW-Authenticate; code is the JSON-RPC error's.
		challenge string
		code      int
		check     func(t *testing.T, res *http.Response, reply *nginxReply, got http.Header)
	}{
		{name: "ok/an API key calls whoami", header: []string{"X-Api-Key", key}, body: whoami, status: 200,
			check: func(t *testing.T, _ *http.Response, reply *nginxReply, got http.Header) {
				if want := identityOf(keyID); !sameJSON(reply.Result.StructuredContent, want) {
					t.Errorf("whoami %v, want %v", reply.Result.StructuredContent, want)
				}
				if got.Get("X-Mcpauthz-Decision-Id") != "" {
					t.Errorf("the upstream got a decision id %q", got.Get("X-Mcpauthz-Decision-Id"))
				}
			}},
		{name: "ok/forged identity headers are replaced", body: whoami, status: 200,
			header: []string{"X-Api-Key", forged, "X-Mcpauthz-User", "admin", "X-Mcpauthz-Tenant", "other-org",
				"X-Mcpauthz-Roles", "platform:super-admin", "X-Mcpauthz-Auth-Method", "session", "X-Mcpauthz-Decision-Id", "forged"},
			check: func(t *testing.T, _ *http.Response, reply *nginxReply, got http.Header) {
				if want := identityOf(forgedID); !sameJSON(reply.Result.StructuredContent, want) {
					t.Errorf("whoami %v, want %v", reply.Result.StructuredContent, want)
				}
				for name, values := range got {
					for _, v := range values {
						if v == "admin" || v == "other-org" || strings.Contains(v, "super-admin") || v == "session" || v == "forged" {
							t.Errorf("the upstream got the client's %s: %q", name, v)
						}
					}
				}
			}},
		{name: "ok/the body reaches mcpauthz and the upstream whole", header: []string{"X-Api-Key", bodyKey}, status: 200,
			body: `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo","arguments":{"message":"` + big + `"}}}`,
			check: func(t *testing.T, _ *http.Response, reply *nginxReply, _ http.Header) {
				if m, _ := reply.Result.StructuredContent["message"].(string); m != big {
					t.Errorf("echo returned %d bytes, want %d", len(m), len(big))
				}
			}},
		{name: "ok/a forged X-Forwarded-For is replaced", header: []string{"X-Api-Key", xffKey, "X-Forwarded-For", "192.0.2.1"}, body: whoami, status: 200},
		{name: "fail/no credential", body: whoami, status: 401, code: -32001,
			challenge: `resource_metadata="http://` + listen + `/.well-known/oauth-protected-resource/mcp"`},
		{name: "fail/forged identity headers are no credential", body: whoami, status: 401, code: -32001,
			header: []string{"X-Mcpauthz-User", "key:" + keyID, "X-Mcpauthz-Tenant", org.ID, "X-Mcpauthz-Auth-Method", "api_key"}},
		{name: "fail/a client's X-Original-* and X-Forwarded-* do not describe the request", body: whoami, status: 401, code: -32001,
			header: []string{"X-Original-URI", "/healthz", "X-Original-Method", "GET", "X-Forwarded-Uri", "/healthz", "X-Forwarded-Method", "GET"}},
		{name: "fail/an invalid key", header: []string{"X-Api-Key", "mcpk_not-a-key"}, body: whoami, status: 401, code: -32001,
			challenge: `error="invalid_token"`},
		{name: "fail/a forged X-Forwarded-For does not pass an IP allowlist", header: []string{"X-Api-Key", elsewhere, "X-Forwarded-For", "192.0.2.1"},
			body: whoami, status: 401, code: -32001, challenge: `error="invalid_token"`},
		{name: "fail/a key narrower than its owner", header: []string{"X-Api-Key", listOnly}, body: whoami, status: 403, code: -32003},
		{name: "fail/a malformed MCP request", header: []string{"X-Api-Key", malformedKey}, body: `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{}}`,
			status: 400, code: -32600},
		{name: "fail/over the rate limit", header: []string{"X-Api-Key", limited}, body: whoami, before: 2, status: 429, code: -32029,
			check: func(t *testing.T, res *http.Response, _ *nginxReply, _ http.Header) {
				if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 30 {
					t.Errorf("Retry-After %q, want 1..30 s (a minute for two)", res.Header.Get("Retry-After"))
				}
				if !strings.Contains(res.Header.Get("RateLimit"), `"key_requests";r=0`) {
					t.Errorf("RateLimit %q", res.Header.Get("RateLimit"))
				}
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for i := range c.before {
				if res, reply := nginxPost(t, url, c.body, c.header...); res.StatusCode != 200 || reply.Error != nil {
					t.Fatalf("request %d before: %d %+v", i+1, res.StatusCode, reply.Error)
				}
			}
			served := upstream.served()
			res, reply := nginxPost(t, url, c.body, c.header...)
			if res.StatusCode != c.status {
				t.Fatalf("status %d, want %d (%+v)", res.StatusCode, c.status, reply.Error)
			}
			if c.challenge != "" && !strings.Contains(res.Header.Get("Www-Authenticate"), c.challenge) {
				t.Errorf("WWW-Authenticate %q, want %s", res.Header.Get("Www-Authenticate"), c.challenge)
			}
			if c.status == 401 && len(res.Header.Values("Www-Authenticate")) != 1 {
				t.Errorf("WWW-Authenticate sent %d times", len(res.Header.Values("Www-Authenticate")))
			}
			if c.status == 200 {
				if reply.Error != nil || reply.Result == nil {
					t.Fatalf("want a result, got %+v", reply.Error)
				}
				if upstream.served() != served+1 {
					t.Fatal("the request did not reach the upstream")
				}
			} else {
				if upstream.served() != served {
					t.Fatal("a denied request reached the upstream")
				}
				if reply.Error == nil || reply.Error.Code != c.code || string(reply.ID) != "null" {
					t.Errorf("JSON-RPC error %s %+v, want code %d", reply.ID, reply.Error, c.code)
				}
				if res.Header.Get("X-Mcpauthz-Decision-Id") == "" {
					t.Error("a denial without its decision id")
				}
			}
			if c.check != nil {
				c.check(t, res, reply, upstream.last())
			}
		})
	}

	t.Run("ok/the resource metadata is served through nginx", func(t *testing.T) {
		res, err := http.Get("http://" + listen + "/.well-known/oauth-protected-resource/mcp")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var meta struct{ Resource string }
		if err := json.NewDecoder(res.Body).Decode(&meta); err != nil || res.StatusCode != 200 || meta.Resource != url {
			t.Fatalf("%d %+v %v", res.StatusCode, meta, err)
		}
	})

	t.Run("fail/no sidecar", func(t *testing.T) {
		if res, _ := nginxPost(t, url, whoami, "X-Api-Key", lastKey); res.StatusCode != 200 {
			t.Fatalf("with the sidecar: %d", res.StatusCode)
		}
		if err := stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		served := upstream.served()
		res, reply := nginxPost(t, url, whoami, "X-Api-Key", lastKey)
		if res.StatusCode != 503 || reply.Error == nil || upstream.served() != served {
			t.Fatalf("status %d %+v, upstream reached: %v", res.StatusCode, reply.Error, upstream.served() != served)
		}
	})
}

// nginxReply is what the tests read from a JSON-RPC response.
type nginxReply struct {
	ID     json.RawMessage `json:"id"`
	Result *struct {
		StructuredContent map[string]any `json:"structuredContent"`
	} `json:"result"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// nginxPost sends an MCP request and decodes the JSON-RPC answer.
func nginxPost(t *testing.T, url, body string, header ...string) (*http.Response, *nginxReply) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	var reply nginxReply
	if err := json.Unmarshal(b, &reply); err != nil {
		t.Fatalf("status %d, the answer is not JSON: %v: %.300s", res.StatusCode, err, b)
	}
	return res, &reply
}

// sameJSON compares decoded JSON values.
func sameJSON(a, b any) bool {
	x, errX := json.Marshal(a)
	y, errY := json.Marshal(b)
	return errX == nil && errY == nil && bytes.Equal(x, y)
}

// recordingUpstream serves next and keeps the headers of the last request
// that reached it.
type recordingUpstream struct {
	next http.Handler

	mu     sync.Mutex
	n      int
	header http.Header
}

func (u *recordingUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.n++
	u.header = r.Header.Clone()
	u.mu.Unlock()
	u.next.ServeHTTP(w, r)
}

func (u *recordingUpstream) served() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.n
}

func (u *recordingUpstream) last() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.header
}

// nginxBinary is MCPAUTHZ_TEST_NGINX, which must be an nginx with the
// auth_request module; the test is skipped when it is not set.
func nginxBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("MCPAUTHZ_TEST_NGINX")
	if bin == "" {
		t.Skip("MCPAUTHZ_TEST_NGINX is not set")
	}
	out, err := exec.Command(bin, "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -V: %v\n%s", bin, err, out)
	}
	if !strings.Contains(string(out), "--with-http_auth_request_module") {
		t.Fatalf("%s is built without the auth_request module:\n%s", bin, out)
	}
	return bin
}

// nginxBundle is the default bundle, without its Rego tests (they check
// the data changed here), with the example server's whoami declared
// read-only and an API key allowed two requests a minute.
func nginxBundle(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{}
	err := fs.WalkDir(policies.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, "_test.rego") {
			return err
		}
		b, err := fs.ReadFile(policies.FS(), p)
		files[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal([]byte(files["data.json"]), &data); err != nil {
		t.Fatal(err)
	}
	config := dataObject(t, data, "mcpauthz", "config")
	dataObject(t, config, "tools")["whoami"] = map[string]any{"risk": "read_only"}
	all, _ := dataObject(t, config, "limits")["all"].([]any)
	found := false
	for _, l := range all {
		if l, ok := l.(map[string]any); ok && l["name"] == "key_requests" {
			l["limit"], l["window"] = 2, "60s"
			found = true
		}
	}
	if !found {
		t.Fatal("the default bundle has no key_requests limit")
	}
	b, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	files["data.json"] = string(b)
	writeTree(t, dir, files)
	return dir
}

// dataObject returns the object at the path of member names under v.
func dataObject(t *testing.T, v map[string]any, names ...string) map[string]any {
	t.Helper()
	for _, n := range names {
		next, ok := v[n].(map[string]any)
		if !ok {
			t.Fatalf("data.json: %s is not an object", n)
		}
		v = next
	}
	return v
}

// freeLoopbackAddr is a loopback address nothing listens on, for a server
// that cannot report the port it chose.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// nginxConfig fills testdata/nginx/nginx.conf.tmpl.
type nginxConfig struct {
	Dir      string // pid, logs, temp files and the read-body socket
	Listen   string
	Sidecar  string
	Upstream string
}

// startNginx runs nginx in the foreground with the configuration from the
// template, until the test ends; it returns once nginx accepts connections.
func startNginx(t *testing.T, bin string, cfg nginxConfig) {
	t.Helper()
	cfg.Dir = t.TempDir()
	tmpl, err := template.ParseFiles(filepath.Join("testdata", "nginx", "nginx.conf.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	var conf bytes.Buffer
	if err := tmpl.Execute(&conf, cfg); err != nil {
		t.Fatal(err)
	}
	confFile := filepath.Join(cfg.Dir, "nginx.conf")
	if err := os.WriteFile(confFile, conf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd := exec.Command(bin, "-p", cfg.Dir+"/", "-c", confFile, "-e", filepath.Join(cfg.Dir, "error.log"))
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	errorLog := func() string {
		b, _ := os.ReadFile(filepath.Join(cfg.Dir, "error.log"))
		return stderr.String() + string(b)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // fast shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("nginx did not stop:\n%s", errorLog())
		}
		if t.Failed() {
			t.Logf("nginx error log:\n%s", errorLog())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("nginx exited: %v\n%s", err, errorLog())
		default:
		}
		if c, err := net.DialTimeout("tcp", cfg.Listen, time.Second); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not accept connections on %s:\n%s", cfg.Listen, errorLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
