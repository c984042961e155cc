package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/mcpauthz/mcpauthz/identity"
)

// devDefaults is the configuration of `mcpauthz dev`: loopback listeners,
// the embedded bundle, readable logs, decisions printed to stdout, and the
// identity service on a SQLite store in dataDir with keys kept beside it.
func devDefaults(dataDir string) Config {
	cfg := Defaults()
	cfg.GRPC.Addr = "127.0.0.1:9191"
	cfg.HTTP.Addr = "127.0.0.1:9192"
	cfg.Admin.Addr = "127.0.0.1:9194"
	cfg.Log.Format = "text"
	cfg.DecisionLog.Output = "stdout"
	cfg.Identity.Addr = "127.0.0.1:9193"
	cfg.Identity.AdminAddr = "" // the sidecar's admin listener serves its metrics
	cfg.Identity.Store = filepath.Join(dataDir, "identity.db")
	cfg.Identity.AuditKeyFile = filepath.Join(dataDir, "audit.key")
	cfg.Identity.KEKFile = filepath.Join(dataDir, "kek")
	cfg.Identity.Tokens.Issuer = "http://127.0.0.1:9193"
	cfg.Identity.Tokens.Audience = "http://127.0.0.1:9192/mcp"
	cfg.Credentials.APIKeys = true
	cfg.Credentials.Sessions = true
	cfg.MCP.Resource = ResourceConfig{URL: cfg.Identity.Tokens.Audience, Name: "mcpauthz dev"}
	return cfg
}

// devDataDir is where `mcpauthz dev` keeps its state unless told.
func devDataDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "mcpauthz", "dev")
}

// prepareDevData makes the data directory and, the first time, the audit
// key and the KEK: random, base64, readable by the owner only.
func prepareDevData(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("dev data directory: %w", err)
	}
	for _, name := range []string{"audit.key", "kek"} {
		key := make([]byte, 32)
		rand.Read(key)
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("dev %s: %w", name, err)
		}
		_, err = io.WriteString(f, base64.StdEncoding.EncodeToString(key)+"\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("dev %s: %w", name, err)
		}
	}
	return nil
}

// runDev is `mcpauthz dev`: the sidecar and the identity service on
// loopback, with the embedded policy and a SQLite store, and on first run
// an admin, an organization and an API key to try them with.
func runDev(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	f, fs, err := parseFlags("dev", args, stderr, true)
	if err != nil {
		return err
	}
	dataDir := f.data
	if dataDir == "" {
		dataDir = devDataDir()
	}
	if err := prepareDevData(dataDir); err != nil {
		return err
	}
	cfg, err := loadConfig(devDefaults(dataDir), f, fs, environ)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	tuneRuntime(cfg.Runtime, os.Getenv, os.ReadFile, log)
	// One process: the sidecar reads the identity service's store, and
	// hears its revocations directly.
	events := &localEvents{}
	id, err := buildIdentity(ctx, cfg.Identity, log, identity.WithEvents(events))
	if err != nil {
		return err
	}
	store := id.shareStore()
	defer store.Close() // after both have stopped
	if err := trustDevTokens(&cfg, id, dataDir); err != nil {
		id.close()
		return err
	}
	side, err := buildSidecar(ctx, cfg, stdout, log, withIdentity(store, id.usage, id.metrics, events))
	if err != nil {
		id.close()
		return err
	}
	boot, err := bootstrapDev(ctx, id.svc, id.store)
	if err != nil {
		side.close()
		id.close()
		return err
	}
	printDevBanner(stdout, side, id, dataDir, boot)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return side.Run(ctx) })
	g.Go(func() error { return id.Run(ctx) })
	return g.Wait()
}

// trustDevTokens makes the sidecar accept the identity service's JWTs,
// its keys read from a file the identity service's keys are written to
// (the dev identity service rotates its key after 30 days: restart then).
func trustDevTokens(cfg *Config, id *identityServer, dataDir string) error {
	jwks, err := id.tokens.JWKS()
	if err != nil {
		return err
	}
	path := filepath.Join(dataDir, "jwks.json")
	if err := os.WriteFile(path, jwks, 0o600); err != nil {
		return fmt.Errorf("dev JWKS: %w", err)
	}
	cfg.Credentials.JWT.Issuers = []JWTIssuerConfig{{
		Issuer: cfg.Identity.Tokens.Issuer, JWKSFile: path,
		Algorithms: []string{string(cfg.Identity.Tokens.Alg)}, Audiences: []string{cfg.Identity.Tokens.Audience},
	}}
	return nil
}

// devBootstrap is what the first run created, secrets included: they are
// printed once and kept nowhere else.
type devBootstrap struct {
	email, password, orgID, apiKey string
}

const devAdminEmail = "admin@example.com"

// bootstrapDev creates, in an empty store, a super-admin with a random
// password, an organization it owns and an API key of it. In a store that
// has users it does nothing and returns nil.
func bootstrapDev(ctx context.Context, svc *identity.Service, users interface {
	ListUsers(ctx context.Context, query, after string, limit int) ([]identity.User, error)
}) (*devBootstrap, error) {
	existing, err := users.ListUsers(ctx, "", "", 1)
	if err != nil || len(existing) > 0 {
		return nil, err
	}
	pw := make([]byte, 18)
	rand.Read(pw)
	b := &devBootstrap{email: devAdminEmail, password: base64.RawURLEncoding.EncodeToString(pw)}
	m := identity.Meta{UserAgent: "mcpauthz dev"}
	required, _ := svc.ConsentTerms()
	su := identity.SignUp{Email: b.email, Password: b.password, DisplayName: "Dev admin"}
	for kind, v := range required {
		su.Consents = append(su.Consents, identity.Consent{Kind: kind, Version: v, Granted: true})
	}
	u, err := svc.SignUp(ctx, su, m)
	if err != nil {
		return nil, fmt.Errorf("dev admin: %w", err)
	}
	if _, err := svc.BootstrapAdmin(ctx, b.email, m); err != nil {
		return nil, fmt.Errorf("dev admin: %w", err)
	}
	org, err := svc.CreateOrg(ctx, u.ID, "dev", "UTC", m)
	if err != nil {
		return nil, fmt.Errorf("dev organization: %w", err)
	}
	b.orgID = org.ID
	_, b.apiKey, err = svc.CreateAPIKey(ctx, u.ID, org.ID, identity.NewAPIKey{
		Name: "dev", Scopes: []string{"mcp:tools:call", "mcp:tools:list", "mcp:resources:read", "mcp:prompts:get"},
	}, m)
	if err != nil {
		return nil, fmt.Errorf("dev API key: %w", err)
	}
	return b, nil
}

const devBanner = `mcpauthz dev — the ext_authz sidecar with the default policy (revision {{revision}}) and the identity service

  Envoy ext_authz gRPC   {{grpc}}
  HTTP forward-auth      {{http}}
  Identity API           http://{{identity}}   (OpenAPI document: /openapi.json)
  Health and metrics     http://{{admin}}/readyz, /metrics
  Data                   {{data}}

{{bootstrap}}
Ask the sidecar for a decision as Envoy would (grpcurl: go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3):

  # allowed: an API key of an owner, with the mcp:tools:call scope, calls the read-only "echo" tool
  grpcurl -plaintext -d '{"attributes":{"request":{"http":{"method":"POST","path":"/mcp","headers":{"content-type":"application/json","x-api-key":"{{key}}"},"body":"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}"}}}}' {{grpc}} envoy.service.auth.v3.Authorization/Check

  # denied (403 with a JSON-RPC error): a tool not declared is destructive, which needs a fresh session
  grpcurl -plaintext -d '{"attributes":{"request":{"http":{"method":"POST","path":"/mcp","headers":{"content-type":"application/json","x-api-key":"{{key}}"},"body":"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"delete_files\"}}"}}}}' {{grpc}} envoy.service.auth.v3.Authorization/Check

Or over HTTP forward-auth (without a credential: 401 and a challenge naming the resource metadata):

  curl -i -X POST http://{{http}}/mcp -H 'x-api-key: {{key}}' -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}'

Decisions are logged below as JSON lines. Ctrl-C stops.
`

const devFirstRun = `First run: the identity store was created with a platform admin, an organization and an API key.
The password and the key are shown this once; only their hashes are kept.

  Admin          {{email}}   password {{password}}
  Organization   dev ({{org}})
  API key        {{key}}

  # sign in (the session token is in the body and in a cookie)
  curl -s http://{{identity}}/v1/sessions -H 'content-type: application/json' -d '{"email":"{{email}}","password":"{{password}}"}'
  # exchange the API key for a short-lived JWT, verifiable with http://{{identity}}/.well-known/jwks.json
  curl -s -X POST http://{{identity}}/v1/token -H 'x-api-key: {{key}}'
`

const devLaterRun = `The identity store in {{data}} is set up; its admin ({{email}}) and API key were printed on the
first run (below, {{key}} stands for the key). Remove the directory to start over.
`

func printDevBanner(w io.Writer, s *sidecar, id *identityServer, dataDir string, boot *devBootstrap) {
	r := []string{
		"{{grpc}}", s.grpc.Addr().String(),
		"{{http}}", httpAddr(s),
		"{{admin}}", adminAddr(s),
		"{{identity}}", id.Addr(),
		"{{data}}", dataDir,
		"{{revision}}", s.engine.Status().Revision,
		"{{email}}", devAdminEmail,
	}
	tail, key := devLaterRun, "$MCPAUTHZ_API_KEY"
	if boot != nil {
		tail, key = devFirstRun, boot.apiKey
		r = append(r, "{{password}}", boot.password, "{{org}}", boot.orgID)
	}
	r = append(r, "{{key}}", key)
	rep := strings.NewReplacer(r...)
	fmt.Fprint(w, rep.Replace(strings.Replace(devBanner, "{{bootstrap}}", tail, 1)))
}
