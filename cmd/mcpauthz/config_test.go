package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultsValidate(t *testing.T) {
	data := t.TempDir()
	if err := prepareDevData(data); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]Config{"serve": Defaults(), "dev": devDefaults(data)} {
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s defaults: %v", name, err)
		}
	}
}

// tempWriter returns a temporary directory of t's and a function writing
// files into it, which returns their paths.
func tempWriter(t *testing.T) (func(name, body string) string, string) {
	dir := t.TempDir()
	return func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}, dir
}

// expectErr fails t unless err is what a table case wants: nil when want
// is empty, else an error containing want. It reports whether an error was
// wanted, so the case can stop there.
func expectErr(t *testing.T, err error, want string) bool {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatal(err)
		}
		return false
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want one containing %q", err, want)
	}
	return true
}

func TestLoadConfig(t *testing.T) {
	write, dir := tempWriter(t)
	good := write("good.yaml", `
grpc:
  addr: 127.0.0.1:7001
http:
  trusted_proxies: [10.0.0.0/8, 192.168.1.1]
policy:
  timeout: 50ms
mcp:
  paths: [/mcp, /rpc]
`)
	tests := []struct {
		name    string
		args    []string
		env     []string
		check   func(*testing.T, Config)
		wantErr string
	}{
		{name: "ok/file", args: []string{"--config", good}, check: func(t *testing.T, c Config) {
			if c.GRPC.Addr != "127.0.0.1:7001" || time.Duration(c.Policy.Timeout) != 50*time.Millisecond ||
				!slices.Equal(c.MCP.Paths, []string{"/mcp", "/rpc"}) || len(c.HTTP.TrustedProxies) != 2 {
				t.Fatalf("%+v", c)
			}
			if c.HTTP.Addr != ":9192" {
				t.Fatalf("unset keys must keep their defaults: %q", c.HTTP.Addr)
			}
		}},
		{name: "ok/env overrides the file", args: []string{"--config", good},
			env: []string{"MCPAUTHZ_GRPC_ADDR=127.0.0.1:7002", "MCPAUTHZ_POLICY_TIMEOUT=75ms", "MCPAUTHZ_MCP_PATHS=/a, /b",
				"MCPAUTHZ_MCP_ALLOW_BATCHES=true", "MCPAUTHZ_GRPC_MAX_RECV_MSG_BYTES=131072", "PATH=/bin"},
			check: func(t *testing.T, c Config) {
				if c.GRPC.Addr != "127.0.0.1:7002" || time.Duration(c.Policy.Timeout) != 75*time.Millisecond ||
					!slices.Equal(c.MCP.Paths, []string{"/a", "/b"}) || !c.MCP.AllowBatches || c.GRPC.MaxRecvMsgBytes != 131072 {
					t.Fatalf("%+v", c)
				}
			}},
		{name: "ok/flags override env", args: []string{"--config", good, "--grpc-addr", "127.0.0.1:7003", "--http-addr", "off", "--decision-log", "off"},
			env: []string{"MCPAUTHZ_GRPC_ADDR=127.0.0.1:7002", "MCPAUTHZ_DECISION_LOG_OUTPUT=stdout"},
			check: func(t *testing.T, c Config) {
				if c.GRPC.Addr != "127.0.0.1:7003" || c.HTTP.Addr != "" || c.DecisionLog.Output != "" {
					t.Fatalf("%+v", c)
				}
			}},
		{name: "ok/runtime sizes", env: []string{"MCPAUTHZ_RUNTIME_MEMORY_LIMIT=512MiB", "MCPAUTHZ_RUNTIME_GC_PERCENT=200", "MCPAUTHZ_POLICY_DECISION_CACHE=0"},
			check: func(t *testing.T, c Config) {
				if c.Runtime.MemoryLimit != 512<<20 || c.Runtime.GCPercent != 200 || c.Policy.DecisionCache != 0 {
					t.Fatalf("%+v", c.Runtime)
				}
			}},
		{name: "ok/runtime in the file", args: []string{"--config", write("rt.yaml", "runtime:\n  memory_limit: 1GiB\n")},
			check: func(t *testing.T, c Config) {
				if c.Runtime.MemoryLimit != 1<<30 {
					t.Fatalf("%+v", c.Runtime)
				}
			}},
		{name: "ok/admin off and the shadow's settings", args: []string{"--admin-addr", "off"},
			env: []string{"MCPAUTHZ_POLICY_SHADOW_LOG_PER_SECOND=2.5", "MCPAUTHZ_POLICY_SHADOW_QUEUE=64", "MCPAUTHZ_POLICY_SKIP_TESTS=true"},
			check: func(t *testing.T, c Config) {
				if c.Admin.Addr != "" || c.Policy.Shadow.LogPerSecond != 2.5 || c.Policy.Shadow.Queue != 64 || !c.Policy.SkipTests {
					t.Fatalf("admin %+v, policy %+v", c.Admin, c.Policy)
				}
			}},
		{name: "ok/limits in redis, usage in postgres", env: []string{"MCPAUTHZ_LIMITS_REDIS=redis://:pw@10.0.0.5:6379/2",
			"MCPAUTHZ_LIMITS_POSTGRES=postgres://u:pw@db/limits", "MCPAUTHZ_LIMITS_REPLICAS=3", "MCPAUTHZ_LIMITS_TIMEOUT=15ms"},
			check: func(t *testing.T, c Config) {
				if c.Limits.Redis == "" || c.Limits.Postgres == "" || c.Limits.Replicas != 3 || time.Duration(c.Limits.Timeout) != 15*time.Millisecond ||
					time.Duration(c.Limits.PersistInterval) != 30*time.Second || c.Limits.RedisPrefix != "mcpauthz" {
					t.Fatalf("%+v", c.Limits)
				}
			}},
		{name: "ok/admin address", args: []string{"--admin-addr", "127.0.0.1:7004"},
			check: func(t *testing.T, c Config) {
				if c.Admin.Addr != "127.0.0.1:7004" {
					t.Fatalf("%+v", c.Admin)
				}
			}},
		{name: "fail/bad admin address", args: []string{"--admin-addr", "nowhere"}, wantErr: "admin.addr"},
		{name: "fail/empty shadow queue", env: []string{"MCPAUTHZ_POLICY_SHADOW_QUEUE=0"}, wantErr: "policy.shadow.queue"},
		{name: "fail/shadow log rate", env: []string{"MCPAUTHZ_POLICY_SHADOW_LOG_PER_SECOND=0"}, wantErr: "policy.shadow.log_per_second"},
		{name: "fail/shadow log rate not a number", env: []string{"MCPAUTHZ_POLICY_SHADOW_LOG_PER_SECOND=lots"}, wantErr: "MCPAUTHZ_POLICY_SHADOW_LOG_PER_SECOND"},
		{name: "fail/missing shadow bundle", env: []string{"MCPAUTHZ_POLICY_SHADOW_BUNDLE=" + filepath.Join(dir, "nope")}, wantErr: "policy.shadow.bundle"},
		{name: "fail/bad size", env: []string{"MCPAUTHZ_RUNTIME_MEMORY_LIMIT=lots"}, wantErr: "MCPAUTHZ_RUNTIME_MEMORY_LIMIT"},
		{name: "fail/gc percent zero", env: []string{"MCPAUTHZ_RUNTIME_GC_PERCENT=0"}, wantErr: "runtime.gc_percent"},
		{name: "fail/negative cache", env: []string{"MCPAUTHZ_POLICY_DECISION_CACHE=-1"}, wantErr: "policy.decision_cache"},
		{name: "ok/test variables are not configuration", env: []string{"MCPAUTHZ_TEST_POSTGRES_URL=postgres://x"},
			check: func(*testing.T, Config) {}},
		{name: "fail/unknown file key", args: []string{"--config", write("typo.yaml", "grpc:\n  adr: :1\n")}, wantErr: "field adr not found"},
		{name: "fail/unknown section", args: []string{"--config", write("sect.yaml", "polcy: {}\n")}, wantErr: "field polcy not found"},
		{name: "fail/bad duration in file", args: []string{"--config", write("dur.yaml", "policy:\n  timeout: soon\n")}, wantErr: "invalid duration"},
		{name: "fail/missing file", args: []string{"--config", filepath.Join(dir, "none.yaml")}, wantErr: "no such file"},
		{name: "fail/unknown env variable", env: []string{"MCPAUTHZ_GRPC_ADRESS=:1"}, wantErr: "unknown configuration variable MCPAUTHZ_GRPC_ADRESS"},
		{name: "fail/bad env value", env: []string{"MCPAUTHZ_MCP_ALLOW_BATCHES=maybe"}, wantErr: "MCPAUTHZ_MCP_ALLOW_BATCHES"},
		{name: "fail/bad address", args: []string{"--grpc-addr", "nowhere"}, wantErr: "grpc.addr"},
		{name: "fail/timeout zero", env: []string{"MCPAUTHZ_POLICY_TIMEOUT=0s"}, wantErr: "policy.timeout"},
		{name: "fail/timeout too long", env: []string{"MCPAUTHZ_POLICY_TIMEOUT=1m"}, wantErr: "policy.timeout"},
		{name: "fail/bad trusted proxy", env: []string{"MCPAUTHZ_HTTP_TRUSTED_PROXIES=10.0.0.0/8,everyone"}, wantErr: "http.trusted_proxies"},
		{name: "fail/bad decision path", args: []string{"--decision-path", "data.x[y]"}, wantErr: "policy.decision_path"},
		{name: "fail/missing bundle", args: []string{"--bundle", filepath.Join(dir, "nope")}, wantErr: "policy.bundle"},
		{name: "fail/upper-case header name", env: []string{"MCPAUTHZ_HEADERS_USER=X-User"}, wantErr: "lower case"},
		{name: "fail/bad mask", env: []string{"MCPAUTHZ_DECISION_LOG_MASK=/attributes/x"}, wantErr: "decision_log.mask"},
		{name: "fail/bad log level", args: []string{"--log-level", "loud"}, wantErr: "log.level"},
		{name: "fail/half a TLS pair", env: []string{"MCPAUTHZ_GRPC_TLS_CERT_FILE=" + good}, wantErr: "grpc.tls"},
		{name: "fail/limits redis URL", env: []string{"MCPAUTHZ_LIMITS_REDIS=http://:hunter2@cache"}, wantErr: "limits.redis"},
		{name: "fail/limits timeout", env: []string{"MCPAUTHZ_LIMITS_TIMEOUT=5s"}, wantErr: "limits.timeout"},
		{name: "fail/limits retry interval", env: []string{"MCPAUTHZ_LIMITS_RETRY_INTERVAL=1ms"}, wantErr: "limits.retry_interval"},
		{name: "fail/negative replicas", env: []string{"MCPAUTHZ_LIMITS_REPLICAS=-1"}, wantErr: "limits.replicas"},
		{name: "fail/no local keys", env: []string{"MCPAUTHZ_LIMITS_MAX_KEYS=0"}, wantErr: "limits.max_keys"},
		{name: "fail/usage persisted without redis", env: []string{"MCPAUTHZ_LIMITS_POSTGRES=postgres://db/limits"}, wantErr: "set limits.redis too"},
		{name: "fail/usage store as a keyword DSN", env: []string{"MCPAUTHZ_LIMITS_REDIS=redis://cache", "MCPAUTHZ_LIMITS_POSTGRES=host=db password=hunter2"},
			wantErr: "not a postgres:// URL"},
		{name: "fail/persist interval", env: []string{"MCPAUTHZ_LIMITS_PERSIST_INTERVAL=100ms"}, wantErr: "limits.persist_interval"},
		{name: "fail/relative MCP path", env: []string{"MCPAUTHZ_MCP_PATHS=mcp"}, wantErr: "mcp.paths"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, fs, err := parseFlags("serve", tt.args, &bytes.Buffer{}, false)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := loadConfig(Defaults(), f, fs, tt.env)
			if expectErr(t, err, tt.wantErr) {
				return
			}
			tt.check(t, cfg)
		})
	}
}

// TestEnvNamesAreUnique guards the env naming scheme: no two fields may map
// to the same variable, and every field has one.
func TestEnvNamesAreUnique(t *testing.T) {
	var cfg Config
	fields := envFields(&cfg)
	if len(fields) < 25 {
		t.Fatalf("only %d variables: fields are missing", len(fields))
	}
	seen := map[string]bool{}
	for name := range fields {
		if seen[name] {
			t.Fatalf("duplicate %s", name)
		}
		seen[name] = true
		if strings.Contains(name, "__") || strings.HasSuffix(name, "_") {
			t.Fatalf("malformed name %s", name)
		}
	}
	for _, want := range []string{"MCPAUTHZ_GRPC_ADDR", "MCPAUTHZ_GRPC_TLS_CLIENT_CA_FILE", "MCPAUTHZ_POLICY_DECISION_PATH", "MCPAUTHZ_DECISION_LOG_OUTPUT"} {
		if !seen[want] {
			t.Errorf("%s missing", want)
		}
	}
}

func TestRedaction(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(LogConfig{Level: "debug", Format: "json"}, &buf)
	log.Info("request",
		slog.String("authorization", "Bearer eyJhbGciOi.secret"),
		slog.Group("headers", slog.String("Cookie", "sid=secret-cookie"), slog.String("x-api-key", "mcpk_secret"), slog.String("accept", "*/*")),
		slog.String("password", "hunter2"),
		slog.String("path", "/mcp"))
	out := buf.String()
	for _, secret := range []string{"eyJhbGciOi", "secret-cookie", "mcpk_secret", "hunter2"} {
		if strings.Contains(out, secret) {
			t.Fatalf("%q reached the log: %s", secret, out)
		}
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(out), &line); err != nil {
		t.Fatal(err)
	}
	if line["path"] != "/mcp" || line["headers"].(map[string]any)["accept"] != "*/*" {
		t.Fatalf("non-secret attributes lost: %s", out)
	}
}

func TestRunCommands(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "ok/version", args: []string{"version"}, code: 0, stdout: "mcpauthz dev (go"},
		{name: "ok/help", args: []string{"help"}, code: 0, stdout: "mcpauthz serve"},
		{name: "fail/no command", args: nil, code: 2, stderr: "Usage"},
		{name: "fail/unknown command", args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{name: "fail/unknown flag", args: []string{"serve", "--nope"}, code: 2, stderr: "flag provided but not defined"},
		{name: "fail/stray argument", args: []string{"serve", "extra"}, code: 2, stderr: `unexpected argument "extra"`},
		{name: "fail/invalid configuration", args: []string{"serve", "--grpc-addr", "bad"}, code: 1, stderr: "invalid configuration"},
		{name: "fail/broken bundle", args: []string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "off", "--admin-addr", "off", "--bundle", brokenBundle(t)},
			code: 1, stderr: "loading the policy bundle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(ctx, tt.args, nil, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
				t.Fatalf("stdout %q / stderr %q, want %q / %q", stdout.String(), stderr.String(), tt.stdout, tt.stderr)
			}
		})
	}
}

func brokenBundle(t *testing.T) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.rego"), []byte("package mcpauthz.authz\ndecision := {"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}
