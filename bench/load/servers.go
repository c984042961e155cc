package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mcpauthz/mcpauthz/internal/freeport"
)

// audience is the MCP resource the identity service's tokens are for and
// the sidecar accepts them for: the host of bench/rbac/checkrequest.json.
const audience = "https://mcp.example.com/mcp"

// server is a process the run started: a target, or the identity service.
type server struct {
	cmd   *exec.Cmd
	addr  string // gRPC for a target, HTTP for the identity service
	admin string // mcpauthz serve's /readyz and /metrics
}

// startServer runs bin with GOGC set and without the caller's MCPAUTHZ_*
// variables, which would override the configuration the run wrote.
func startServer(o options, addr, admin, bin string, args ...string) (*server, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MCPAUTHZ_") && !strings.HasPrefix(kv, "GOGC=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "GOGC="+o.gogc)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &server{cmd: cmd, addr: addr, admin: admin}, nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop stops the server gracefully, or kills it after 15 s.
func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// startSidecar runs `mcpauthz serve` with the configuration file and
// waits until it is ready and hears the revocation events, so credentials
// are trusted from memory for live_max_age from the start.
func startSidecar(o options, bin, config string) (*server, error) {
	addr, err := freeport.Addr()
	if err != nil {
		return nil, err
	}
	admin, err := freeport.Addr()
	if err != nil {
		return nil, err
	}
	s, err := startServer(o, addr, admin, bin, "serve", "--config", config,
		"--grpc-addr", addr, "--admin-addr", admin, "--http-addr", "off", "--log-level", "error")
	if err != nil {
		return nil, err
	}
	var ready struct {
		Ready       bool   `json:"ready"`
		Revocations string `json:"revocations"`
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err := getJSON("http://"+admin+"/readyz", &ready); err == nil && ready.Ready && ready.Revocations == "live" {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("the sidecar is not ready (revocation events %q)", ready.Revocations)
		}
	}
}

// getJSON decodes the body of a GET, whatever its status.
func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// sidecarConfig is what differs between the sidecars of a run. Every one
// runs the run's bundle, verifies the three kinds of credential as a
// deployment does, and reads the identity service's Redis (its
// write-through of keys and sessions, and the revocation events).
type sidecarConfig struct {
	store        string // the identity store
	sessionCache string // key file of the signed session cache; "" for none
	cacheSize    int    // credentials.cache_size; 0 for the default
	limitsRedis  bool   // limits in Redis, else in process
}

func (b *bench) writeSidecarConfig(path string, c sidecarConfig) error {
	creds := map[string]any{
		"api_keys": true,
		"sessions": true,
		"redis":    b.redis.url,
		"jwt": map[string]any{"issuers": []any{map[string]any{
			"issuer":     b.identity.issuer(),
			"jwks_url":   b.identity.issuer() + "/.well-known/jwks.json",
			"algorithms": []string{"ES256"},
			"audiences":  []string{audience},
		}}},
	}
	if c.sessionCache != "" {
		creds["session_cache"] = map[string]any{"key_file": c.sessionCache, "max_age": sessionCacheMaxAge.String()}
	}
	if c.cacheSize > 0 {
		creds["cache_size"] = c.cacheSize
	}
	cfg := map[string]any{
		"policy":      map[string]any{"bundle": b.bundle},
		"identity":    map[string]any{"store": c.store},
		"credentials": creds,
	}
	if c.limitsRedis {
		// One sidecar shares the limits. Said so, it need not count the
		// replicas through Redis heartbeats, and a Redis stall before its
		// first count cannot leave its in-process fallback refusing every
		// request (its share unknown).
		cfg["limits"] = map[string]any{"redis": b.redis.url, "replicas": 1}
	}
	return writeYAML(path, cfg)
}

// sessionCacheMaxAge is the signed session cache's longest max age: the
// cache cookies a run takes at a target's start must last its warm-up and
// measurement.
const sessionCacheMaxAge = 5 * time.Minute

func writeYAML(path string, v any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// identityService is `mcpauthz identity` on the run's store and Redis: it
// serves the JWKS and issues JWTs, and publishes revocation events.
type identityService struct{ *server }

func (s identityService) issuer() string { return "http://" + s.addr }

func startIdentity(o options, bin, config, store, auditKey, kek, redisURL string) (identityService, error) {
	addr, err := freeport.Addr()
	if err != nil {
		return identityService{}, err
	}
	cfg := map[string]any{"identity": map[string]any{
		"addr":           addr,
		"admin_addr":     "",
		"store":          store,
		"audit_key_file": auditKey,
		"kek_file":       kek,
		"redis":          redisURL,
		"tokens":         map[string]any{"issuer": "http://" + addr, "audience": audience, "ttl": "30m", "alg": "ES256"},
	}}
	if err := writeYAML(config, cfg); err != nil {
		return identityService{}, err
	}
	s, err := startServer(o, addr, "", bin, "identity", "--config", config, "--log-level", "error")
	if err != nil {
		return identityService{}, err
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return identityService{s}, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return identityService{}, errors.New("the identity service did not start")
		}
	}
}

// token exchanges a session for a JWT through the identity service's API
// (POST /v1/token), as a client does.
func (s identityService) token(session string) (string, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+s.addr+"/v1/token", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+session)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return "", fmt.Errorf("POST /v1/token: %s: %s", resp.Status, body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

// counters are a Prometheus scrape's counters: series name → labels →
// value.
type counters map[string][]sample

type sample struct {
	labels map[string]string
	value  float64
}

// scrape reads the sidecar's /metrics (the text format).
func (s *server) scrape() (counters, error) {
	resp, err := http.Get("http://" + s.admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	c := counters{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		series, value, ok := cutLast(line, ' ')
		v, err := strconv.ParseFloat(value, 64)
		if !ok || err != nil {
			continue
		}
		name, labels, _ := strings.Cut(series, "{")
		smp := sample{labels: map[string]string{}, value: v}
		for pair := range strings.SplitSeq(strings.TrimSuffix(labels, "}"), ",") {
			if k, v, ok := strings.Cut(pair, "="); ok {
				smp.labels[k] = strings.Trim(v, `"`)
			}
		}
		c[name] = append(c[name], smp)
	}
	return c, sc.Err()
}

func cutLast(s string, sep byte) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// sum adds the series of the name whose labels match the "k=v" pairs.
func (c counters) sum(name string, match ...string) float64 {
	total := 0.0
	for _, s := range c[name] {
		ok := true
		for _, m := range match {
			k, v, _ := strings.Cut(m, "=")
			ok = ok && s.labels[k] == v
		}
		if ok {
			total += s.value
		}
	}
	return total
}
