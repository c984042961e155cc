package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

// testKey returns n random bytes and their base64.
func testKey(t *testing.T, n int) ([]byte, string) {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b, base64.StdEncoding.EncodeToString(b)
}

func TestIdentityConfig(t *testing.T) {
	write, dir := tempWriter(t)
	auditKey, auditB64 := testKey(t, 48)
	kek, kekB64 := testKey(t, token.KEKSize)
	_, shortB64 := testKey(t, identity.MinAuditKeyBytes-1)
	_, kek31B64 := testKey(t, token.KEKSize-1)
	auditFile := write("audit.key", auditB64+"\n")
	kekFile := write("kek", base64.RawURLEncoding.EncodeToString(kek)+"\n")
	shortFile := write("short.key", shortB64+"\n")
	notB64File := write("raw.key", "not*base64!\n")
	emptyFile := write("empty.key", "\n")

	full := write("identity.yaml", fmt.Sprintf(`
identity:
  addr: 127.0.0.1:7100
  store: postgres://mcpauthz@db.internal:5432/identity?sslmode=verify-full
  postgres:
    max_conns: 16
    max_idle_conns: 8
    conn_lifetime: 5m
  audit_key_file: %s
  kek_file: %s
  tokens:
    issuer: https://id.example.com
    audience: https://mcp.example.com
    ttl: 10m
    alg: EdDSA
    signing_period: 720h
  sessions:
    idle: 1h
    max: 24h
    max_sessions: 3
    fresh_auth: 5m
  redis: rediss://cache.internal:6380/0
  trusted_proxies: [10.0.0.0/8]
`, auditFile, kekFile))

	tests := []struct {
		name    string
		args    []string
		env     []string
		check   func(*testing.T, Config)
		wantErr string
		secret  string // must not appear in the error
	}{
		{name: "ok/defaults need no secret", check: func(t *testing.T, c Config) {
			id := c.Identity
			if id.Store != DefaultIdentityStore || id.Addr != DefaultIdentityAddr || id.Redis != "" || id.AuditKey != nil {
				t.Fatalf("%+v", id)
			}
			_, err := id.auditor()
			if !errors.Is(err, errNoSecret) || !strings.Contains(err.Error(), "identity.audit_key_file") ||
				!strings.Contains(err.Error(), "MCPAUTHZ_IDENTITY_AUDIT_KEY") {
				t.Fatalf("auditor: %v", err)
			}
			_, err = id.tokenConfig()
			for _, want := range []string{"identity.tokens.issuer", "identity.tokens.audience", "identity.kek_file", "MCPAUTHZ_IDENTITY_KEK"} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("tokenConfig: %v, want it to name %s", err, want)
				}
			}
			if err := id.serviceConfig().Validate(); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "ok/file", args: []string{"--config", full}, check: func(t *testing.T, c Config) {
			id := c.Identity
			if id.Addr != "127.0.0.1:7100" || !strings.HasPrefix(id.Store, "postgres://") || id.Redis == "" {
				t.Fatalf("%+v", id)
			}
			if o := id.postgresOptions(); o.MaxConns != 16 || o.MaxIdleConns != 8 || o.ConnLifetime != 5*time.Minute || o.Migrate {
				t.Fatalf("pool %+v", o)
			}
			if got := describeStore(id.Store); got != "postgres postgres://mcpauthz@db.internal:5432/identity" {
				t.Fatalf("describeStore = %q", got)
			}
			a, err := id.auditor()
			if err != nil {
				t.Fatal(err)
			}
			want, _ := identity.NewAuditor(auditKey)
			if a.Ref("u1") != want.Ref("u1") {
				t.Fatal("the auditor is not keyed with the file's key")
			}
			tc, err := id.tokenConfig()
			if err != nil {
				t.Fatal(err)
			}
			if tc.Issuer != "https://id.example.com" || tc.Audience != "https://mcp.example.com" || tc.TTL != 10*time.Minute ||
				tc.Alg != token.EdDSA || tc.SigningPeriod != 720*time.Hour || !bytes.Equal(tc.KEK, kek) {
				t.Fatalf("token config %+v", tc)
			}
			sc := id.serviceConfig()
			if sc.SessionIdle != time.Hour || sc.SessionMax != 24*time.Hour || sc.MaxSessions != 3 || sc.FreshAuth != 5*time.Minute {
				t.Fatalf("service config %+v", sc)
			}
			if p, err := id.trustedProxies(); err != nil || len(p) != 1 || p[0].String() != "10.0.0.0/8" {
				t.Fatalf("proxies %v %v", p, err)
			}
		}},
		{name: "ok/env overrides the file", args: []string{"--config", write("store.yaml", "identity:\n  store: /var/lib/a.db\n")},
			env: []string{"MCPAUTHZ_IDENTITY_STORE=/var/lib/b.db", "MCPAUTHZ_IDENTITY_AUDIT_KEY=" + auditB64,
				"MCPAUTHZ_IDENTITY_KEK=" + strings.TrimRight(kekB64, "="), "MCPAUTHZ_IDENTITY_SESSIONS_IDLE=30m",
				"MCPAUTHZ_IDENTITY_TOKENS_ISSUER=http://127.0.0.1:9193", "MCPAUTHZ_IDENTITY_TOKENS_AUDIENCE=mcp",
				"MCPAUTHZ_IDENTITY_TRUSTED_PROXIES=10.1.0.0/16, 10.2.0.1", "MCPAUTHZ_IDENTITY_POSTGRES_MAX_CONNS=1"},
			check: func(t *testing.T, c Config) {
				id := c.Identity
				if id.Store != "/var/lib/b.db" || time.Duration(id.Sessions.Idle) != 30*time.Minute || len(id.TrustedProxies) != 2 {
					t.Fatalf("%+v", id)
				}
				if id.postgresOptions().MaxIdleConns != 1 {
					t.Fatal("idle connections must not exceed the pool")
				}
				if _, err := id.auditor(); err != nil {
					t.Fatal(err)
				}
				if tc, err := id.tokenConfig(); err != nil || !bytes.Equal(tc.KEK, kek) {
					t.Fatalf("%v", err)
				}
			}},
		{name: "ok/store flag overrides env", args: []string{"--store", "/tmp/flag.db"}, env: []string{"MCPAUTHZ_IDENTITY_STORE=/tmp/env.db"},
			check: func(t *testing.T, c Config) {
				if c.Identity.Store != "/tmp/flag.db" {
					t.Fatal(c.Identity.Store)
				}
			}},
		{name: "ok/empty secret variable is unset", env: []string{"MCPAUTHZ_IDENTITY_AUDIT_KEY="},
			check: func(t *testing.T, c Config) {
				if _, err := c.Identity.auditor(); !errors.Is(err, errNoSecret) {
					t.Fatal(err)
				}
			}},
		{name: "ok/password cost", args: []string{"--config", write("pw.yaml", "identity:\n  password: {memory: 64MiB, iterations: 3, parallelism: 2}\n")},
			env: []string{"MCPAUTHZ_IDENTITY_PASSWORD_ITERATIONS=4"},
			check: func(t *testing.T, c Config) {
				p := c.Identity.serviceConfig().Password
				if p.Memory != 64*1024 || p.Iterations != 4 || p.Parallelism != 2 || p.SaltLen != 16 {
					t.Fatalf("%+v", p)
				}
			}},
		{name: "fail/password too cheap", args: []string{"--config", write("pw2.yaml", "identity:\n  password: {memory: 1MiB, iterations: 1}\n")},
			wantErr: "identity.password"},
		{name: "fail/password memory not in KiB", env: []string{"MCPAUTHZ_IDENTITY_PASSWORD_MEMORY=19000001"}, wantErr: "identity.password.memory"},
		{name: "fail/unknown identity key", args: []string{"--config", write("typo.yaml", "identity:\n  stor: x.db\n")}, wantErr: "field stor not found"},
		{name: "fail/unknown tokens key", args: []string{"--config", write("typo2.yaml", "identity:\n  tokens:\n    algorithm: ES256\n")}, wantErr: "field algorithm not found"},
		{name: "fail/audit key in the file", args: []string{"--config", write("inline.yaml", "identity:\n  audit_key: "+auditB64+"\n")},
			wantErr: "not read from the configuration file", secret: auditB64},
		{name: "fail/kek in the file", args: []string{"--config", write("inline2.yaml", "identity:\n  kek: "+kekB64+"\n")},
			wantErr: "MCPAUTHZ_IDENTITY_KEK", secret: kekB64},
		{name: "fail/short audit key in env", env: []string{"MCPAUTHZ_IDENTITY_AUDIT_KEY=" + shortB64},
			wantErr: "MCPAUTHZ_IDENTITY_AUDIT_KEY: the audit key must be at least 32 bytes", secret: shortB64},
		{name: "fail/short audit key in a file", env: []string{"MCPAUTHZ_IDENTITY_AUDIT_KEY_FILE=" + shortFile},
			wantErr: "identity.audit_key_file: the audit key must be at least 32 bytes", secret: shortB64},
		{name: "fail/audit key not base64", env: []string{"MCPAUTHZ_IDENTITY_AUDIT_KEY=" + hex.EncodeToString(auditKey) + "!"},
			wantErr: "MCPAUTHZ_IDENTITY_AUDIT_KEY: not valid base64", secret: hex.EncodeToString(auditKey)},
		{name: "fail/key file not base64", env: []string{"MCPAUTHZ_IDENTITY_KEK_FILE=" + notB64File},
			wantErr: "identity.kek_file: not valid base64", secret: "not*base64"},
		{name: "fail/empty key file", env: []string{"MCPAUTHZ_IDENTITY_KEK_FILE=" + emptyFile}, wantErr: "identity.kek_file: the file is empty"},
		{name: "fail/missing key file", env: []string{"MCPAUTHZ_IDENTITY_AUDIT_KEY_FILE=" + filepath.Join(dir, "nope")},
			wantErr: "identity.audit_key_file"},
		{name: "fail/kek of 31 bytes", env: []string{"MCPAUTHZ_IDENTITY_KEK=" + kek31B64}, wantErr: "MCPAUTHZ_IDENTITY_KEK: the key-encryption key must be 32 bytes", secret: kek31B64},
		{name: "fail/file and variable", env: []string{"MCPAUTHZ_IDENTITY_AUDIT_KEY=" + auditB64, "MCPAUTHZ_IDENTITY_AUDIT_KEY_FILE=" + auditFile},
			wantErr: "identity.audit_key_file and MCPAUTHZ_IDENTITY_AUDIT_KEY are both set", secret: auditB64},
		{name: "fail/unsupported store", env: []string{"MCPAUTHZ_IDENTITY_STORE=mysql://root:hunter2@db/identity"},
			wantErr: `identity.store: unsupported scheme "mysql"`, secret: "hunter2"},
		{name: "fail/bad postgres URL", env: []string{"MCPAUTHZ_IDENTITY_STORE=postgres://u:hunter2@[bad/identity"},
			wantErr: "identity.store: the postgres URL cannot be parsed", secret: "hunter2"},
		{name: "fail/empty store", env: []string{"MCPAUTHZ_IDENTITY_STORE="}, wantErr: "identity.store: must be set"},
		{name: "fail/sqlite path with a query", env: []string{"MCPAUTHZ_IDENTITY_STORE=id.db?mode=memory"}, wantErr: "identity.store"},
		{name: "fail/bad addr", env: []string{"MCPAUTHZ_IDENTITY_ADDR=9193"}, wantErr: "identity.addr"},
		{name: "fail/pool of zero", env: []string{"MCPAUTHZ_IDENTITY_POSTGRES_MAX_CONNS=0"}, wantErr: "identity.postgres.max_conns"},
		{name: "fail/token ttl too long", env: []string{"MCPAUTHZ_IDENTITY_TOKENS_TTL=2h"}, wantErr: "identity.tokens.ttl"},
		{name: "fail/unknown alg", env: []string{"MCPAUTHZ_IDENTITY_TOKENS_ALG=HS256"}, wantErr: "identity.tokens.alg"},
		{name: "fail/signing period too short", env: []string{"MCPAUTHZ_IDENTITY_TOKENS_SIGNING_PERIOD=9m"}, wantErr: "identity.tokens.signing_period"},
		{name: "fail/issuer not a URL", env: []string{"MCPAUTHZ_IDENTITY_TOKENS_ISSUER=identity"}, wantErr: "identity.tokens.issuer"},
		{name: "fail/idle above max", env: []string{"MCPAUTHZ_IDENTITY_SESSIONS_IDLE=200h"}, wantErr: "identity.sessions.max"},
		{name: "fail/no sessions", env: []string{"MCPAUTHZ_IDENTITY_SESSIONS_MAX_SESSIONS=0"}, wantErr: "identity.sessions.max_sessions"},
		{name: "fail/fresh auth zero", env: []string{"MCPAUTHZ_IDENTITY_SESSIONS_FRESH_AUTH=0s"}, wantErr: "identity.sessions.fresh_auth"},
		{name: "fail/redis not a URL", env: []string{"MCPAUTHZ_IDENTITY_REDIS=cache:6379"}, wantErr: "identity.redis"},
		{name: "fail/redis URL stays hidden", env: []string{"MCPAUTHZ_IDENTITY_REDIS=http://:hunter2@cache:6379"}, wantErr: "identity.redis", secret: "hunter2"},
		{name: "fail/bad trusted proxy", env: []string{"MCPAUTHZ_IDENTITY_TRUSTED_PROXIES=everyone"}, wantErr: "identity.trusted_proxies"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, f := storeFlagSet("test", &bytes.Buffer{})
			if err := parseCommand(fs, tt.args, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			cfg, err := loadConfig(Defaults(), f, fs, tt.env)
			if expectErr(t, err, tt.wantErr) {
				if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
					t.Fatalf("the error shows the secret: %v", err)
				}
				return
			}
			tt.check(t, cfg)
		})
	}
}

// TestIdentityEnvNames pins the variables operators are told to set.
func TestIdentityEnvNames(t *testing.T) {
	fields := envFields(&Config{})
	for _, want := range []string{"MCPAUTHZ_IDENTITY_STORE", "MCPAUTHZ_IDENTITY_ADDR", "MCPAUTHZ_IDENTITY_AUDIT_KEY",
		"MCPAUTHZ_IDENTITY_AUDIT_KEY_FILE", "MCPAUTHZ_IDENTITY_KEK", "MCPAUTHZ_IDENTITY_KEK_FILE", "MCPAUTHZ_IDENTITY_REDIS",
		"MCPAUTHZ_IDENTITY_POSTGRES_MAX_CONNS", "MCPAUTHZ_IDENTITY_TOKENS_SIGNING_PERIOD", "MCPAUTHZ_IDENTITY_SESSIONS_MAX_SESSIONS",
		"MCPAUTHZ_IDENTITY_TRUSTED_PROXIES"} {
		if _, ok := fields[want]; !ok {
			t.Errorf("%s missing", want)
		}
	}
}

// TestSecretNeverShows prints a configuration holding secrets every way
// code might, and looks for the key.
func TestSecretNeverShows(t *testing.T) {
	key, b64 := testKey(t, 32)
	cfg := Defaults()
	if err := applyEnv(&cfg, []string{"MCPAUTHZ_IDENTITY_AUDIT_KEY=" + b64, "MCPAUTHZ_IDENTITY_KEK=" + b64}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cfg.Identity.AuditKey, key) {
		t.Fatal("the variable was not decoded")
	}
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		fmt.Fprintf(&out, verb+"\n", cfg)
		fmt.Fprintf(&out, verb+"\n", cfg.Identity.AuditKey)
	}
	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(cfg.Identity)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(y)
	out.Write(j)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("config", "identity", cfg.Identity, "key", cfg.Identity.KEK)
	s := out.String()
	for _, form := range []string{b64, hex.EncodeToString(key), strings.ToUpper(hex.EncodeToString(key)), string(key),
		fmt.Sprint([]byte(key))} {
		if strings.Contains(s, form) {
			t.Fatalf("the key shows as %q in:\n%s", form, s)
		}
	}
	if !strings.Contains(s, redacted) {
		t.Fatalf("no redaction marker in:\n%s", s)
	}
}

// TestTokenConfigIsAccepted checks that what tokenConfig builds is what
// identity.NewTokens accepts.
func TestTokenConfigIsAccepted(t *testing.T) {
	_, b64 := testKey(t, 32)
	cfg := Defaults()
	cfg.Identity.Store = filepath.Join(t.TempDir(), "id.db")
	if err := applyEnv(&cfg, []string{"MCPAUTHZ_IDENTITY_AUDIT_KEY=" + b64, "MCPAUTHZ_IDENTITY_KEK=" + b64,
		"MCPAUTHZ_IDENTITY_TOKENS_ISSUER=https://id.example.com", "MCPAUTHZ_IDENTITY_TOKENS_AUDIENCE=https://mcp.example.com"}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	svc, _ := newTestService(t, cfg.Identity, time.Now)
	tc, err := cfg.Identity.tokenConfig()
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := identity.NewTokens(svc, tc)
	if err != nil {
		t.Fatal(err)
	}
	if err := tokens.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
}
