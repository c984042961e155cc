package deploy

import (
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

// binDir holds the mcpauthz binary built for the tests.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildMCPAuthz builds cmd/mcpauthz once per test run.
var buildMCPAuthz = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "mcpauthz-compose-test")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "mcpauthz")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/mcpauthz")
	cmd.Dir = repoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", errors.New(string(out))
	}
	return bin, nil
})

func repoRoot() string {
	root, _ := filepath.Abs("..")
	return root
}

// newChecker runs gen-secrets.sh into a scratch directory and, unless the
// tests are short, builds mcpauthz to check the services' configuration.
func newChecker(t *testing.T) *checker {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to run deploy/gen-secrets.sh")
	}
	c := &checker{root: repoRoot(), generated: map[string]string{}, scratch: t.TempDir()}
	secrets := filepath.Join(t.TempDir(), "secrets")
	if out, err := exec.Command("sh", "gen-secrets.sh", secrets).CombinedOutput(); err != nil {
		t.Fatalf("gen-secrets.sh: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(secrets)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		c.generated[e.Name()] = filepath.Join(secrets, e.Name())
	}
	if testing.Short() {
		return c
	}
	if c.mcpauthz, err = buildMCPAuthz(); err != nil {
		t.Fatalf("building mcpauthz: %v", err)
	}
	return c
}

// TestComposeFile checks the repository's docker-compose.yml: it parses,
// every file it names is in the repository or made by gen-secrets.sh,
// every dependency can be met, and mcpauthz accepts each service's
// configuration.
func TestComposeFile(t *testing.T) {
	c := newChecker(t)
	data, err := os.ReadFile(filepath.Join(c.root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.loadAndCheck(t.Context(), "docker-compose.yml", data)
	if err != nil {
		t.Fatal(err)
	}

	want := []string{"envoy", "identity", "mcp-echo", "mcpauthz", "migrate", "postgres", "redis"}
	if got := p.ServiceNames(); !slices.Equal(got, want) {
		t.Errorf("services %v, want %v", got, want)
	}
	for _, name := range p.ServiceNames() {
		if s := p.Services[name]; s.Image == "" && s.Build == nil {
			t.Errorf("service %s: neither image nor build", name)
		}
	}
	for _, name := range []string{"redis", "postgres", "mcpauthz", "identity", "mcp-echo"} {
		if hc := p.Services[name].HealthCheck; hc == nil || hc.Disable || len(hc.Test) == 0 {
			t.Errorf("service %s: no health check", name)
		}
	}
	for _, name := range []string{"mcpauthz", "identity"} {
		if d := p.Services[name].DependsOn["migrate"]; d.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("service %s: starts before the migrations have run (depends_on migrate: %q)", name, d.Condition)
		}
	}
	for _, name := range []string{"mcpauthz", "mcp-echo"} {
		if d := p.Services["envoy"].DependsOn[name]; d.Condition != types.ServiceConditionHealthy {
			t.Errorf("envoy starts before %s is healthy (%q)", name, d.Condition)
		}
	}
	if len(p.Services["mcp-echo"].Ports) != 0 {
		t.Error("mcp-echo publishes a port: clients could bypass Envoy and mcpauthz")
	}

	ignore, err := os.ReadFile(filepath.Join(c.root, secretsDir, ".gitignore"))
	if err != nil || !slices.Contains(strings.Fields(string(ignore)), "*") {
		t.Errorf("%s/.gitignore does not ignore every file (%v): generated secrets could be committed", secretsDir, err)
	}
	dockerfile, err := os.ReadFile(filepath.Join(c.root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range imageBinaries {
		if !strings.Contains(string(dockerfile), "/out/"+filepath.Base(bin)) {
			t.Errorf("the Dockerfile does not build %s, which the health checks run", bin)
		}
	}
}

// TestCheck shows that the checks catch what they are for.
func TestCheck(t *testing.T) {
	c := newChecker(t)
	tests := []struct {
		name     string
		compose  string
		want     error // nil: no problem
		mcpauthz bool  // needs the mcpauthz binary
	}{
		{
			name:    "ok/an image and a generated secret",
			compose: "services:\n  a:\n    image: redis\n    secrets: [kek]\nsecrets:\n  kek:\n    file: ./deploy/secrets/kek\n",
		},
		{
			name: "ok/identity with its secrets",
			compose: `services:
  identity:
    build: .
    command: [identity]
    environment:
      MCPAUTHZ_IDENTITY_AUDIT_KEY_FILE: /run/secrets/audit_key
      MCPAUTHZ_IDENTITY_KEK_FILE: /run/secrets/kek
    secrets: [audit_key, kek]
secrets:
  audit_key: {file: ./deploy/secrets/audit_key}
  kek: {file: ./deploy/secrets/kek}
`,
			mcpauthz: true,
		},
		{
			name: "ok/a store on a network, started first",
			compose: `services:
  app:
    image: app
    environment: {MCPAUTHZ_LIMITS_REDIS: "redis://redis:6379/1"}
    depends_on: {redis: {condition: service_healthy}}
  redis:
    image: redis
    healthcheck: {test: ["CMD", "redis-cli", "ping"]}
`,
		},
		{
			name:    "fail/no image or build",
			compose: "services:\n  a:\n    command: [x]\n",
			want:    errLoad,
		},
		{
			name:    "fail/a dependency that is not a service",
			compose: "services:\n  a:\n    image: x\n    depends_on: [b]\n",
			want:    errLoad,
		},
		{
			name:    "fail/a bind mount of a missing file",
			compose: "services:\n  a:\n    image: x\n    volumes: [./envoy/missing.yaml:/etc/envoy/envoy.yaml:ro]\n",
			want:    errMissingFile,
		},
		{
			name:    "fail/a secret gen-secrets.sh does not make",
			compose: "services:\n  a:\n    image: x\n    secrets: [s]\nsecrets:\n  s:\n    file: ./deploy/secrets/missing\n",
			want:    errMissingFile,
		},
		{
			name:    "fail/a secret outside deploy/secrets",
			compose: "services:\n  a:\n    image: x\n    secrets: [kek]\nsecrets:\n  kek:\n    file: ./secrets/kek\n",
			want:    errMissingFile,
		},
		{
			name:    "fail/waits for the health of a service without a health check",
			compose: "services:\n  a:\n    image: x\n    depends_on: {b: {condition: service_healthy}}\n  b:\n    image: y\n",
			want:    errDependency,
		},
		{
			name:    "fail/waits for a service that restarts to complete",
			compose: "services:\n  a:\n    image: x\n    depends_on: {b: {condition: service_completed_successfully}}\n  b:\n    image: y\n    restart: unless-stopped\n",
			want:    errDependency,
		},
		{
			name:    "fail/a shell health check in the distroless image",
			compose: "services:\n  a:\n    build: .\n    healthcheck: {test: [\"CMD-SHELL\", \"curl -f http://127.0.0.1:9194/readyz\"]}\n",
			want:    errHealthcheck,
		},
		{
			name:    "fail/a health check running a binary the image lacks",
			compose: "services:\n  a:\n    build: .\n    healthcheck: {test: [\"CMD\", \"/usr/bin/wget\", \"-q\", \"http://127.0.0.1:9194/readyz\"]}\n",
			want:    errHealthcheck,
		},
		{
			name:    "fail/a secret path the service does not mount",
			compose: "services:\n  a:\n    image: x\n    environment: {MCPAUTHZ_IDENTITY_KEK_FILE: /run/secrets/kek}\n",
			want:    errUnmountedSecret,
		},
		{
			name:    "fail/a store URL naming no service",
			compose: "services:\n  a:\n    image: x\n    environment: {MCPAUTHZ_LIMITS_REDIS: \"redis://cache:6379\"}\n",
			want:    errUnknownHost,
		},
		{
			name:    "fail/a store started after the service",
			compose: "services:\n  a:\n    image: x\n    environment: {MCPAUTHZ_LIMITS_REDIS: \"redis://redis:6379\"}\n  redis:\n    image: redis\n",
			want:    errUnknownHost,
		},
		{
			name: "fail/a store on another network",
			compose: `services:
  a:
    image: x
    networks: [front]
    environment: {MCPAUTHZ_IDENTITY_STORE: "postgres://u@db/d"}
    depends_on: [db]
  db:
    image: postgres
    networks: [data]
networks:
  front: {}
  data: {}
`,
			want: errUnknownHost,
		},
		{
			name:     "fail/an unknown MCPAUTHZ variable",
			compose:  "services:\n  a:\n    build: .\n    environment: {MCPAUTHZ_GRPC_ADRESS: \":9191\"}\n",
			want:     errConfigRejected,
			mcpauthz: true,
		},
		{
			name:     "fail/a value mcpauthz refuses",
			compose:  "services:\n  a:\n    build: .\n    environment: {MCPAUTHZ_LIMITS_TIMEOUT: fast}\n",
			want:     errConfigRejected,
			mcpauthz: true,
		},
		{
			name: "fail/a secret of the wrong kind",
			compose: `services:
  identity:
    build: .
    environment: {MCPAUTHZ_IDENTITY_KEK_FILE: /run/secrets/kek}
    secrets: [{source: postgres_password, target: kek}]
secrets:
  postgres_password: {file: ./deploy/secrets/postgres_password}
`,
			want:     errConfigRejected,
			mcpauthz: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.mcpauthz && c.mcpauthz == "" {
				t.Skip("needs the mcpauthz binary (not built in -short mode)")
			}
			_, err := c.loadAndCheck(t.Context(), "compose.yml", []byte(tc.compose))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want no problem, got %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("want %v, got %v", tc.want, err)
			}
		})
	}
}

// TestGenSecrets checks that gen-secrets.sh makes every secret the compose
// file names and keeps the files it finds.
func TestGenSecrets(t *testing.T) {
	c := newChecker(t)
	data, err := os.ReadFile(filepath.Join(c.root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := load(context.Background(), c.root, "docker-compose.yml", data)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range p.Secrets {
		if filepath.Dir(s.File) != filepath.Join(c.root, secretsDir) {
			t.Errorf("secret %s: %s is not in %s", name, s.File, secretsDir)
			continue
		}
		if _, ok := c.generated[filepath.Base(s.File)]; !ok {
			t.Errorf("secret %s: gen-secrets.sh does not make %s", name, filepath.Base(s.File))
		}
	}

	dir := filepath.Dir(c.generated["kek"])
	before, err := os.ReadFile(c.generated["kek"])
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", "gen-secrets.sh", dir).CombinedOutput(); err != nil {
		t.Fatalf("gen-secrets.sh again: %v\n%s", err, out)
	}
	if after, _ := os.ReadFile(c.generated["kek"]); string(after) != string(before) {
		t.Error("gen-secrets.sh replaced an existing key")
	}
	pass, _ := os.ReadFile(c.generated["postgres_password"])
	pgpass, _ := os.ReadFile(c.generated["pgpass"])
	if want := "postgres:5432:mcpauthz:mcpauthz:" + string(pass) + "\n"; len(pass) < 32 || string(pgpass) != want {
		t.Errorf("pgpass %q does not hold the database password", pgpass)
	}

	// pgx takes the password from the pgpass line matching the URL's host,
	// port, database and user: every store URL must match it, and the
	// database must be made with that user and name.
	pg := p.Services["postgres"].Environment
	if u, db := pg["POSTGRES_USER"], pg["POSTGRES_DB"]; u == nil || *u != "mcpauthz" || db == nil || *db != "mcpauthz" {
		t.Errorf("postgres: POSTGRES_USER and POSTGRES_DB must be mcpauthz, as in pgpass")
	}
	for _, name := range p.ServiceNames() {
		for k, v := range p.Services[name].Environment {
			if v == nil || !strings.HasPrefix(*v, "postgres") {
				continue
			}
			u, err := url.Parse(*v)
			if err != nil {
				t.Errorf("%s: %s: %v", name, k, err)
				continue
			}
			_, hasPassword := u.User.Password()
			if got := u.Hostname() + ":" + u.Port() + ":" + strings.TrimPrefix(u.Path, "/") + ":" + u.User.Username(); got != "postgres:5432:mcpauthz:mcpauthz" || hasPassword {
				t.Errorf("%s: %s is %s, not the pgpass entry's postgres:5432:mcpauthz:mcpauthz, or has a password", name, k, got)
			}
		}
	}
}
