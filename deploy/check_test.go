package deploy

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// What check finds wrong with a compose project.
var (
	errLoad            = errors.New("compose-go refuses the file")
	errMissingFile     = errors.New("file neither in the repository nor made by gen-secrets.sh")
	errDependency      = errors.New("dependency cannot be met")
	errUnmountedSecret = errors.New("secret path the service does not mount")
	errUnknownHost     = errors.New("URL names no service the service can reach")
	errHealthcheck     = errors.New("health check cannot run in the image")
	errConfigRejected  = errors.New("mcpauthz rejects the configuration")
)

// imageBinaries are the executables of the repository's image (Dockerfile):
// distroless, so a health check can run only these.
var imageBinaries = []string{"/usr/local/bin/mcpauthz", "/usr/local/bin/mcp-echo"}

// secretsDir is where docker-compose.yml finds the files gen-secrets.sh
// makes, relative to the repository root.
const secretsDir = "deploy/secrets"

// checker checks a compose project against the repository.
type checker struct {
	root string // the repository root
	// generated are the files gen-secrets.sh made in a scratch directory,
	// by name; they stand in for the files of secretsDir, which are not
	// in the repository.
	generated map[string]string
	// mcpauthz is a built mcpauthz binary; "" skips running it.
	mcpauthz string
	scratch  string // a directory for mcpauthz's runs
}

// load parses a compose file the way `docker compose` does, with the
// repository root as the project directory and no environment variables,
// so that ${VAR:-default} takes its default.
func load(ctx context.Context, root, filename string, content []byte) (*types.Project, error) {
	return loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, filename), Content: content}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) {
		o.SetProjectName("mcpauthz", true)
		o.ResolvePaths = true
	})
}

// loadAndCheck loads a compose file and checks it.
func (c *checker) loadAndCheck(ctx context.Context, filename string, content []byte) (*types.Project, error) {
	p, err := load(ctx, c.root, filename, content)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errLoad, err)
	}
	return p, c.check(ctx, p)
}

// check returns every problem of p, each wrapping one of the errors above.
// The loader has already refused what the Compose Specification forbids:
// a service without image or build, a dependency or secret that is not
// defined.
func (c *checker) check(ctx context.Context, p *types.Project) error {
	var errs []error
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		errs = append(errs, c.checkService(ctx, p, s)...)
	}
	for name, cfg := range p.Configs {
		if cfg.File != "" {
			if _, err := c.hostFile(cfg.File); err != nil {
				errs = append(errs, fmt.Errorf("config %s: %w", name, err))
			}
		}
	}
	for name, sec := range p.Secrets {
		if sec.File != "" {
			if _, err := c.hostFile(sec.File); err != nil {
				errs = append(errs, fmt.Errorf("secret %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (c *checker) checkService(ctx context.Context, p *types.Project, s types.ServiceConfig) []error {
	var errs []error
	bad := func(sentinel error, format string, args ...any) {
		errs = append(errs, fmt.Errorf("service %s: %w: %s", s.Name, sentinel, fmt.Sprintf(format, args...)))
	}
	if s.Build != nil {
		if _, err := c.hostFile(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
			bad(errMissingFile, "build: %v", err)
		}
	}
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if _, err := c.hostFile(v.Source); err != nil {
			bad(errMissingFile, "volume %s: %v", v.Target, err)
		}
	}
	for dep, d := range s.DependsOn {
		target, ok := p.Services[dep]
		switch {
		case !ok:
			bad(errDependency, "depends on %s, which is not a service", dep)
		case d.Condition == types.ServiceConditionHealthy && (target.HealthCheck == nil || target.HealthCheck.Disable || len(target.HealthCheck.Test) == 0):
			bad(errDependency, "waits for %s to be healthy, which has no health check", dep)
		case d.Condition == types.ServiceConditionCompletedSuccessfully && (target.Restart == types.RestartPolicyAlways || target.Restart == types.RestartPolicyUnlessStopped):
			bad(errDependency, "waits for %s to complete, which restarts (%s)", dep, target.Restart)
		}
	}
	if hc := s.HealthCheck; s.Build != nil && hc != nil && !hc.Disable && len(hc.Test) > 0 && hc.Test[0] != "NONE" {
		if hc.Test[0] != "CMD" || len(hc.Test) < 2 || !slices.Contains(imageBinaries, hc.Test[1]) {
			bad(errHealthcheck, "%q: the image has no shell; run one of %v", hc.Test, imageBinaries)
		}
	}
	mounted := c.mountedSecrets(p, s)
	for _, k := range sortedKeys(s.Environment) {
		v := s.Environment[k]
		if v == nil {
			continue
		}
		if strings.HasPrefix(*v, "/run/secrets/") {
			if _, ok := mounted[*v]; !ok {
				bad(errUnmountedSecret, "%s=%s", k, *v)
			}
		}
		if host, ok := storeHost(*v); ok && !reaches(p, s, host) {
			bad(errUnknownHost, "%s names host %q", k, host)
		}
	}
	if err := c.runConfig(ctx, s, mounted); err != nil {
		errs = append(errs, fmt.Errorf("service %s: %w", s.Name, err))
	}
	return errs
}

// hostFile returns the file a path of the compose file stands for: the
// path itself when it exists, or for a file of secretsDir the one
// gen-secrets.sh made.
func (c *checker) hostFile(path string) (string, error) {
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	rel, err := filepath.Rel(c.root, path)
	if err == nil && filepath.ToSlash(filepath.Dir(rel)) == secretsDir {
		if f, ok := c.generated[filepath.Base(rel)]; ok {
			return f, nil
		}
	}
	return "", fmt.Errorf("%w: %s", errMissingFile, path)
}

// mountedSecrets maps the paths of the secrets s mounts to their files.
func (c *checker) mountedSecrets(p *types.Project, s types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for _, ss := range s.Secrets {
		target := ss.Target
		if target == "" {
			target = ss.Source
		}
		if !filepath.IsAbs(target) {
			target = "/run/secrets/" + target
		}
		file, _ := c.hostFile(p.Secrets[ss.Source].File)
		out[target] = file
	}
	return out
}

// storeHost returns the host of a Postgres or Redis URL.
func storeHost(v string) (string, bool) {
	u, err := url.Parse(v)
	if err != nil {
		return "", false
	}
	switch u.Scheme {
	case "postgres", "postgresql", "redis", "rediss":
		return u.Hostname(), true
	}
	return "", false
}

// reaches reports whether host is a service s shares a network with and
// starts after.
func reaches(p *types.Project, s types.ServiceConfig, host string) bool {
	target, ok := p.Services[host]
	if !ok || !dependsOn(p, s, host, map[string]bool{}) {
		return false
	}
	for n := range networks(s) {
		if networks(target)[n] {
			return true
		}
	}
	return false
}

func dependsOn(p *types.Project, s types.ServiceConfig, name string, seen map[string]bool) bool {
	for dep := range s.DependsOn {
		if dep == name {
			return true
		}
		if !seen[dep] {
			seen[dep] = true
			if d, ok := p.Services[dep]; ok && dependsOn(p, d, name, seen) {
				return true
			}
		}
	}
	return false
}

func networks(s types.ServiceConfig) map[string]bool {
	if len(s.Networks) == 0 {
		return map[string]bool{"default": true}
	}
	out := map[string]bool{}
	for n := range s.Networks {
		out[n] = true
	}
	return out
}

// runConfig has mcpauthz load the service's MCPAUTHZ_* variables: it runs
// `mcpauthz migrate`, which reads and validates the configuration exactly
// as serve and identity do (unknown variables, bad values, secrets that
// do not decode) and then migrates the identity store. The store is made
// a scratch SQLite file and limits.postgres is cleared, so nothing is
// reached over the network; secret paths point at the files the service
// mounts.
func (c *checker) runConfig(ctx context.Context, s types.ServiceConfig, mounted map[string]string) error {
	if c.mcpauthz == "" {
		return nil
	}
	env := map[string]string{}
	for k, v := range s.Environment {
		if strings.HasPrefix(k, "MCPAUTHZ_") && v != nil {
			env[k] = *v
			if f, ok := mounted[*v]; ok && f != "" {
				env[k] = f
			}
		}
	}
	if len(env) == 0 {
		return nil
	}
	dir, err := os.MkdirTemp(c.scratch, s.Name)
	if err != nil {
		return err
	}
	env["MCPAUTHZ_IDENTITY_STORE"] = filepath.Join(dir, "identity.db")
	env["MCPAUTHZ_LIMITS_POSTGRES"] = ""
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.mcpauthz, "migrate")
	cmd.Dir = dir
	for _, k := range sortedKeys(env) {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: mcpauthz migrate with the service's MCPAUTHZ_* variables: %v\n%s", errConfigRejected, err, out)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
