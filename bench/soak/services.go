package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcpauthz/mcpauthz/internal/freeport"
)

// Settings of the services under test that the soak's checks depend on.
// The credential ages are shorter than the defaults (5m, 30s), so that the
// revocation bound passes within a short run.
const (
	decisionTimeout = 100 * time.Millisecond // policy.timeout
	liveMaxAge      = 60 * time.Second       // credentials.live_max_age
	degradedMaxAge  = 15 * time.Second       // credentials.degraded_max_age
	tokenTTL        = 30 * time.Second       // identity.tokens.ttl
	publishAhead    = 2 * time.Minute        // identity.tokens.publish_ahead, the least allowed
	jwksRefresh     = time.Minute            // the sidecar's scheduled JWK set reload, within publish_ahead
	audience        = "http://127.0.0.1/mcp"
)

// stack is everything the soak runs: the dependencies and the two
// services under test, with their addresses.
type stack struct {
	work    string
	bin     string
	redis   *redisProc
	pg      *pgCluster
	bundles *bundleServer

	identity, sidecar         *child
	identityAddr, identityAdm string
	grpcAddr, sidecarAdm      string
	auditKey                  []byte
	startedIdentity           time.Time
}

// buildBinary builds ./cmd/mcpauthz into dir.
func buildBinary(ctx context.Context, root, dir string) (string, error) {
	out := filepath.Join(dir, "mcpauthz")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/mcpauthz")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building mcpauthz: %w", err)
	}
	return out, nil
}

// repoRoot is the module's directory.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// writeSecret writes n random bytes, base64, to a file of the work dir.
func writeSecret(work, name string, n int) (string, []byte, error) {
	key := make([]byte, n)
	rand.Read(key)
	path := filepath.Join(work, name)
	return path, key, os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
}

const identityYAML = `identity:
  addr: "{{addr}}"
  admin_addr: "{{admin}}"
  store: "{{store}}"
  audit_key_file: "{{audit}}"
  kek_file: "{{kek}}"
  redis: "{{redis}}"
  tokens:
    issuer: "http://{{addr}}"
    audience: "{{audience}}"
    ttl: {{ttl}}
    signing_period: {{period}}
    publish_ahead: {{ahead}}
log:
  level: {{loglevel}}
`

const sidecarYAML = `grpc:
  addr: "{{grpc}}"
http:
  addr: ""
admin:
  addr: "{{admin}}"
policy:
  bundle: "{{bundle}}"
  bundle_poll: 1s
  timeout: {{timeout}}
  verification:
    public_key_file: "{{pubkey}}"
    keyid: "{{keyid}}"
identity:
  store: "{{store}}"
credentials:
  api_keys: true
  sessions: true
  redis: "{{credredis}}"
  live_max_age: {{live}}
  degraded_max_age: {{degraded}}
  jwt:
    issuers:
    - issuer: "http://{{idaddr}}"
      jwks_url: "http://{{idaddr}}/.well-known/jwks.json"
      allow_http: true
      algorithms: [ES256]
      audiences: ["{{audience}}"]
      refresh: {{refresh}}
limits:
  redis: "{{limitsredis}}"
  postgres: "{{store}}"
  persist_interval: 10s
log:
  level: {{loglevel}}
`

func render(tmpl string, vars map[string]string) string {
	pairs := make([]string, 0, 2*len(vars))
	for k, v := range vars {
		pairs = append(pairs, "{{"+k+"}}", v)
	}
	return strings.NewReplacer(pairs...).Replace(tmpl)
}

// writeConfigs writes identity.yaml and sidecar.yaml. signingPeriod is
// chosen so that a new signing key takes over during the soak.
func (s *stack) writeConfigs(signingPeriod time.Duration, logLevel string) error {
	var err error
	if s.identityAddr, err = freeport.Addr(); err != nil {
		return err
	}
	if s.identityAdm, err = freeport.Addr(); err != nil {
		return err
	}
	if s.grpcAddr, err = freeport.Addr(); err != nil {
		return err
	}
	if s.sidecarAdm, err = freeport.Addr(); err != nil {
		return err
	}
	auditFile, auditKey, err := writeSecret(s.work, "audit.key", 32)
	if err != nil {
		return err
	}
	s.auditKey = auditKey
	kekFile, _, err := writeSecret(s.work, "kek", 32)
	if err != nil {
		return err
	}
	store := s.pg.url("mcpauthz")
	id := render(identityYAML, map[string]string{
		"addr": s.identityAddr, "admin": s.identityAdm, "store": store, "audit": auditFile, "kek": kekFile,
		"redis": s.redis.url(0), "audience": audience, "ttl": tokenTTL.String(),
		"period": signingPeriod.String(), "ahead": publishAhead.String(), "loglevel": logLevel,
	})
	sc := render(sidecarYAML, map[string]string{
		"grpc": s.grpcAddr, "admin": s.sidecarAdm, "bundle": s.bundles.url, "timeout": decisionTimeout.String(),
		"pubkey": s.bundles.pubFile, "keyid": signingKeyID, "store": store, "credredis": s.redis.url(0),
		"live": liveMaxAge.String(), "degraded": degradedMaxAge.String(), "idaddr": s.identityAddr,
		"audience": audience, "refresh": jwksRefresh.String(), "limitsredis": s.redis.url(1), "loglevel": logLevel,
	})
	if err := os.WriteFile(filepath.Join(s.work, "identity.yaml"), []byte(id), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.work, "sidecar.yaml"), []byte(sc), 0o600)
}

// migrate runs `mcpauthz migrate` for the identity store and the quota
// usage tables.
func (s *stack) migrate(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, s.bin, "migrate", "--config", filepath.Join(s.work, "sidecar.yaml"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mcpauthz migrate: %w: %s", err, out)
	}
	return nil
}

func (s *stack) startIdentity(ctx context.Context) error {
	s.startedIdentity = time.Now()
	p, err := startChild("identity", filepath.Join(s.work, "identity.log"), s.bin,
		[]string{"identity", "--config", filepath.Join(s.work, "identity.yaml")}, nil)
	if err != nil {
		return err
	}
	s.identity = p
	return waitFor(ctx, 30*time.Second, "the identity service", func() error {
		if !p.running() {
			return fmt.Errorf("it exited: %v (see %s)", p.err, p.log)
		}
		return httpOK("http://" + s.identityAdm + "/readyz")
	})
}

func (s *stack) startSidecar(ctx context.Context) error {
	p, err := startChild("sidecar", filepath.Join(s.work, "sidecar.log"), s.bin,
		[]string{"serve", "--config", filepath.Join(s.work, "sidecar.yaml")}, nil)
	if err != nil {
		return err
	}
	s.sidecar = p
	// The first bundle activation runs the bundle's Rego tests.
	return waitFor(ctx, 90*time.Second, "the sidecar", func() error {
		if !p.running() {
			return fmt.Errorf("it exited: %v (see %s)", p.err, p.log)
		}
		return httpOK("http://" + s.sidecarAdm + "/readyz")
	})
}

// start builds mcpauthz unless bin names one, starts the dependencies,
// writes the configurations, migrates the store and starts both services.
func (s *stack) start(ctx context.Context, root, bin string, signingPeriod time.Duration, logLevel string) error {
	var err error
	if s.bin = bin; s.bin == "" {
		fmt.Println("building mcpauthz …")
		if s.bin, err = buildBinary(ctx, root, s.work); err != nil {
			return err
		}
	}
	fmt.Println("starting Redis, PostgreSQL and the bundle server …")
	if s.redis, err = startRedis(ctx, filepath.Join(s.work, "redis")); err != nil {
		return err
	}
	if s.pg, err = startPostgres(ctx, filepath.Join(s.work, "pg")); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if s.bundles, err = newBundleServer(filepath.Join(root, "policies"), s.work); err != nil {
		return err
	}
	if err := s.bundles.start(); err != nil {
		return err
	}
	if err := s.writeConfigs(signingPeriod, logLevel); err != nil {
		return err
	}
	fmt.Println("migrating, starting the identity service and the sidecar …")
	if err := s.migrate(ctx); err != nil {
		return err
	}
	if err := s.startIdentity(ctx); err != nil {
		return err
	}
	return s.startSidecar(ctx)
}

// stop ends the services, then the dependencies. It is safe to call on a
// partly started stack.
func (s *stack) stop() {
	for _, c := range []*child{s.sidecar, s.identity} {
		if c != nil {
			c.stop(15 * time.Second)
		}
	}
	if s.bundles != nil {
		s.bundles.close()
	}
	if s.redis != nil && s.redis.proc != nil {
		s.redis.proc.stop(5 * time.Second)
	}
	if s.pg != nil {
		s.pg.kill()
	}
}

var probeClient = &http.Client{Timeout: 2 * time.Second}

func httpOK(url string) error {
	resp, err := probeClient.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// readiness is the part of the sidecar's /readyz the soak reads.
type readiness struct {
	Ready  bool `json:"ready"`
	Policy struct {
		Revision  string `json:"revision"`
		Failures  int    `json:"failures"`
		LastError string `json:"last_error"`
	} `json:"policy"`
	Revocations string `json:"revocations"`
	Store       string `json:"store"`
	Limits      struct {
		State string `json:"state"`
	} `json:"limits"`
}

func (s *stack) readyz() (readiness, error) {
	var r readiness
	resp, err := probeClient.Get("http://" + s.sidecarAdm + "/readyz")
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&r)
	return r, err
}
