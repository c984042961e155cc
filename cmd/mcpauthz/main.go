// Command mcpauthz is the authorization sidecar for MCP servers behind
// Envoy. Subcommands:
//
//	serve    run the ext_authz sidecar (gRPC for Envoy, HTTP forward-auth)
//	identity run the identity service's HTTP API
//	dev      run both on loopback with the embedded policy and store, no setup
//	migrate  bring the identity store's schema up to date
//	audit    verify or export the identity audit log
//	keygen   make a key for the upstream identity token
//	bundle   build, sign, verify, test and inspect policy bundles
//	version  print the version
//
// Every component is built and wired here.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	opaversion "github.com/open-policy-agent/opa/v1/version"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `mcpauthz — authorization sidecar for MCP servers behind Envoy

Usage:
  mcpauthz serve [flags]    run the sidecar (Envoy ext_authz gRPC + HTTP forward-auth)
  mcpauthz identity [flags] run the identity service (users, orgs, sessions, API keys, tokens)
  mcpauthz dev [flags]      run both on loopback with the embedded policy and store, zero setup
  mcpauthz migrate [flags]  bring the identity store's schema up to date
  mcpauthz audit verify     verify the identity audit log's hash chain
  mcpauthz audit export     export the identity audit log as JSON lines or CSV
  mcpauthz keygen           make a key for the upstream identity token, and its JWK set
  mcpauthz bundle <cmd>     build, sign, verify, test or inspect a policy bundle
  mcpauthz version          print the version

Run "mcpauthz <command> -h" for the flags of a command.
`

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], environ, stdout, stderr)
	case "dev":
		err = runDev(ctx, args[1:], environ, stdout, stderr)
	case "identity":
		err = runIdentity(ctx, args[1:], environ, stdout, stderr)
	case "keygen":
		err = runKeygen(ctx, args[1:], stdout, stderr)
	case "migrate":
		err = runMigrate(ctx, args[1:], environ, stdout, stderr)
	case "audit":
		err = runAudit(ctx, args[1:], environ, stdout, stderr)
	case "bundle":
		err = runBundle(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "mcpauthz %s (%s, opa %s)\n", version, runtime.Version(), opaversion.Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "mcpauthz: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "mcpauthz: %v\n", err)
	return 1
}

var errUsage = errors.New("usage")

// flags are the command-line overrides common to serve and dev, and the
// identity store's (-store) for migrate and audit.
type flags struct {
	config, grpcAddr, httpAddr, adminAddr, bundle, decisionPath, logLevel, decisionLog, store, identityAddr, data string
}

func parseFlags(name string, args []string, stderr io.Writer, dev bool) (*flags, *flag.FlagSet, error) {
	f := &flags{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if dev {
		fs.StringVar(&f.data, "data", "", "`directory` of the dev identity store and its keys (default: in the user cache directory)")
		fs.StringVar(&f.identityAddr, "identity-addr", "", "identity API listen `address` (identity.addr)")
	} else {
		fs.StringVar(&f.config, "config", "", "YAML configuration `file`")
	}
	fs.StringVar(&f.grpcAddr, "grpc-addr", "", "ext_authz gRPC listen `address` (grpc.addr)")
	fs.StringVar(&f.httpAddr, "http-addr", "", "forward-auth HTTP listen `address`, \"off\" to disable (http.addr)")
	fs.StringVar(&f.adminAddr, "admin-addr", "", "admin listen `address` for /healthz, /readyz and /metrics, \"off\" to disable (admin.addr)")
	fs.StringVar(&f.bundle, "bundle", "", "policy bundle `directory or .tar.gz` (policy.bundle; default: embedded)")
	fs.StringVar(&f.decisionPath, "decision-path", "", "policy decision `path` (policy.decision_path)")
	fs.StringVar(&f.logLevel, "log-level", "", "log `level`: debug, info, warn, error (log.level)")
	fs.StringVar(&f.decisionLog, "decision-log", "", "decision log `output`: stdout, stderr, a file, or off (decision_log.output)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, err
		}
		return nil, nil, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", name, fs.Arg(0))
		return nil, nil, errUsage
	}
	return f, fs, nil
}

// apply writes the flags that were set over cfg.
func (f *flags) apply(cfg *Config, fs *flag.FlagSet) {
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "grpc-addr":
			cfg.GRPC.Addr = f.grpcAddr
		case "http-addr":
			cfg.HTTP.Addr = f.httpAddr
			if f.httpAddr == "off" {
				cfg.HTTP.Addr = ""
			}
		case "admin-addr":
			cfg.Admin.Addr = f.adminAddr
			if f.adminAddr == "off" {
				cfg.Admin.Addr = ""
			}
		case "bundle":
			cfg.Policy.Bundle = f.bundle
		case "decision-path":
			cfg.Policy.DecisionPath = f.decisionPath
		case "log-level":
			cfg.Log.Level = f.logLevel
		case "decision-log":
			cfg.DecisionLog.Output = f.decisionLog
			if f.decisionLog == "off" {
				cfg.DecisionLog.Output = ""
			}
		case "store":
			cfg.Identity.Store = f.store
		case "addr", "identity-addr":
			cfg.Identity.Addr = f.identityAddr
		}
	})
}

// loadConfig builds the configuration: defaults, file, environment, flags.
func loadConfig(base Config, f *flags, fs *flag.FlagSet, environ []string) (Config, error) {
	cfg := base
	if f.config != "" {
		file, err := os.Open(f.config)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		err = decodeFile(&cfg, file, f.config)
		file.Close()
		if err != nil {
			return cfg, err
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return cfg, err
	}
	f.apply(&cfg, fs)
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

func runServe(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	f, fs, err := parseFlags("serve", args, stderr, false)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(Defaults(), f, fs, environ)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	tuneRuntime(cfg.Runtime, os.Getenv, os.ReadFile, log)
	s, err := buildSidecar(ctx, cfg, stdout, log)
	if err != nil {
		return err
	}
	log.Info("mcpauthz serving", "version", version, "grpc", s.grpc.Addr().String(),
		"http", httpAddr(s), "admin", adminAddr(s), "policy", s.engine.Status().Source, "revision", s.engine.Status().Revision)
	return s.Run(ctx)
}

func adminAddr(s *sidecar) string {
	if s.adminLis == nil {
		return "off"
	}
	return s.adminLis.Addr().String()
}

func httpAddr(s *sidecar) string {
	if s.httpLis == nil {
		return "off"
	}
	return s.httpLis.Addr().String()
}
