package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"golang.org/x/sync/errgroup"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/decisionlog"
	"github.com/mcpauthz/mcpauthz/extauthz/envoygrpc"
	"github.com/mcpauthz/mcpauthz/extauthz/forwardauth"
	"github.com/mcpauthz/mcpauthz/extauthz/policy"
	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/sqlstore"
	"github.com/mcpauthz/mcpauthz/mcp"
	"github.com/mcpauthz/mcpauthz/policies"
)

// shutdownTimeout bounds the graceful stop of each listener.
const shutdownTimeout = 10 * time.Second

// sidecar is the wired ext_authz sidecar. buildSidecar binds its ports and
// loads its policy; Run serves.
type sidecar struct {
	cfg       Config
	log       *slog.Logger
	engine    *bundles.Engine
	watcher   *bundles.Watcher
	remote    *bundles.Remote      // polls policy.bundle when it is a URL
	load      []bundles.LoadOption // how the configured bundle is read
	authz     *extauthz.Authorizer
	grpc      *envoygrpc.Listener
	http      *http.Server
	httpLis   net.Listener
	decisions *decisionlog.Logger
	closers   []io.Closer

	store    *sqlstore.Store // the identity store, when credentials read it
	usage    *identity.Usage // where API key use is recorded
	local    *localEvents    // revocation events in process (dev)
	resource *extauthz.ProtectedResource

	listensForRevocations bool
	uploader              *decisionlog.Uploader
	background            []func(context.Context) error
}

func buildSidecar(ctx context.Context, cfg Config, stdout io.Writer, log *slog.Logger, opts ...sidecarOption) (_ *sidecar, err error) {
	s := &sidecar{cfg: cfg, log: log}
	for _, o := range opts {
		o(s)
	}
	defer func() {
		if err != nil {
			s.close() // release the ports and files taken so far
		}
	}()

	s.engine, err = bundles.NewEngine(cfg.Policy.DecisionPath,
		bundles.WithEngineLogger(log), bundles.WithDecisionCache(cfg.Policy.DecisionCache))
	if err != nil {
		return nil, err
	}
	verify, err := cfg.Policy.Verification.verification()
	if err != nil {
		return nil, fmt.Errorf("policy.verification: %w", err)
	}
	if verify != nil {
		s.load = append(s.load, bundles.WithVerification(verify))
	}
	if cfg.Policy.remote() {
		ropts, err := cfg.Policy.remoteOptions()
		if err != nil {
			return nil, err
		}
		ropts = append(ropts, bundles.WithRemoteLoadOptions(s.load...), bundles.WithRemoteLogger(log))
		if s.remote, err = bundles.NewRemote(s.engine, cfg.Policy.Bundle, ropts...); err != nil {
			return nil, fmt.Errorf("policy.bundle: %w", err)
		}
		// loadPolicy fetches once, so the sidecar never serves without a
		// policy; Run polls from then on.
		s.background = append(s.background, s.remote.Run)
	} else if cfg.Policy.Bundle != "" && cfg.Policy.Watch {
		// Watch before the first load, so no change slips between them.
		if s.watcher, err = bundles.NewWatcher(s.engine, cfg.Policy.Bundle, 0, log, s.load...); err != nil {
			return nil, err
		}
		s.closers = append(s.closers, s.watcher)
	}
	if err := s.loadPolicy(ctx); err != nil {
		return nil, fmt.Errorf("loading the policy bundle: %w", err)
	}

	ids, err := extauthz.NewDecisionIDs(rand.Reader)
	if err != nil {
		return nil, err
	}
	verifier, err := s.buildCredentials(ctx)
	if err != nil {
		return nil, err
	}
	if s.resource, err = cfg.MCP.Resource.protectedResource(); err != nil {
		return nil, fmt.Errorf("mcp.resource: %w", err)
	}
	aopts := []extauthz.Option{
		extauthz.WithIdentityVerifier(verifier),
		extauthz.WithProtectedResource(s.resource),
		extauthz.WithTimeout(time.Duration(cfg.Policy.Timeout)),
		extauthz.WithLogger(log),
		extauthz.WithMCP(mcp.Options{AllowBatches: cfg.MCP.AllowBatches}, cfg.MCP.Paths...),
		extauthz.WithIdentityHeaders(extauthz.IdentityHeaders(cfg.Headers)),
	}
	signer, err := cfg.Credentials.UpstreamToken.signer()
	if err != nil {
		return nil, err
	}
	if signer != nil {
		aopts = append(aopts, extauthz.WithIdentityToken(signer, cfg.Credentials.UpstreamToken.Header))
	}
	if s.uploader, err = cfg.DecisionLog.uploader(log); err != nil {
		return nil, err
	}
	if cfg.DecisionLog.Output != "" || s.uploader != nil {
		var w io.Writer = io.Discard
		if cfg.DecisionLog.Output != "" {
			if w, err = s.decisionLogWriter(stdout); err != nil {
				return nil, err
			}
		}
		if s.uploader != nil {
			w = io.MultiWriter(w, s.uploader) // the uploader never blocks
		}
		host, _ := os.Hostname()
		s.decisions, err = decisionlog.New(w, decisionlog.Config{
			Mask:   cfg.DecisionLog.Mask,
			Buffer: cfg.DecisionLog.Buffer,
			Labels: map[string]string{"app": "mcpauthz", "id": host, "version": version},
		}, log)
		if err != nil {
			return nil, err
		}
		aopts = append(aopts, extauthz.WithDecisionLogger(s.decisions))
	}
	evaluator := policy.NewEvaluator(s.engine, policy.WithFullInput(cfg.Policy.FullInput))
	s.authz = extauthz.NewAuthorizer(evaluator, ids.Next, aopts...)

	grpcTLS, err := serverTLS(cfg.GRPC.TLS)
	if err != nil {
		return nil, fmt.Errorf("grpc.tls: %w", err)
	}
	lis, err := net.Listen("tcp", cfg.GRPC.Addr)
	if err != nil {
		return nil, fmt.Errorf("grpc.addr: %w", err)
	}
	s.closers = append(s.closers, lis)
	s.grpc = envoygrpc.NewListener(lis, envoygrpc.NewService(s.authz, log), envoygrpc.Config{
		MaxRecvMsgBytes: cfg.GRPC.MaxRecvMsgBytes,
		TLS:             grpcTLS,
		ShutdownTimeout: shutdownTimeout,
	}, log)
	if s.listensForRevocations {
		s.grpc.SetComponentServing(revocationsHealth, false) // until subscribed
	}

	if cfg.HTTP.Addr != "" {
		if err := s.buildHTTP(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// loadPolicy activates the configured bundle, verifying its signature when
// policy.verification is set, or the embedded one, which is trusted as part
// of the binary. A bundle URL is fetched now.
func (s *sidecar) loadPolicy(ctx context.Context) error {
	if s.remote != nil {
		return s.remote.Fetch(ctx)
	}
	if s.cfg.Policy.Bundle == "" {
		return s.engine.Load(ctx, "embedded", func() (*bundle.Bundle, error) { return bundles.LoadFS(policies.FS()) })
	}
	path := s.cfg.Policy.Bundle
	return s.engine.Load(ctx, path, func() (*bundle.Bundle, error) { return bundles.LoadPath(path, s.load...) })
}

func (s *sidecar) decisionLogWriter(stdout io.Writer) (io.Writer, error) {
	switch out := s.cfg.DecisionLog.Output; out {
	case "stdout":
		return stdout, nil
	case "stderr":
		return os.Stderr, nil
	default:
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("decision_log.output: %w", err)
		}
		s.closers = append(s.closers, f)
		return f, nil
	}
}

func (s *sidecar) buildHTTP() error {
	cfg := s.cfg.HTTP
	proxies, err := s.cfg.trustedProxies()
	if err != nil {
		return err
	}
	tlsCfg, err := serverTLS(cfg.TLS)
	if err != nil {
		return fmt.Errorf("http.tls: %w", err)
	}
	handler := forwardauth.NewHandler(s.authz, forwardauth.Config{
		PathPrefix:     cfg.PathPrefix,
		TrustedProxies: proxies,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		// The proxy logs it; an empty setting turns it off.
		DecisionIDHeader:  cmp.Or(s.cfg.Headers.DecisionID, "-"),
		ProtectedResource: s.resource,
	}, s.log)
	s.http = &http.Server{
		Handler:           handler,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.httpLis, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("http.addr: %w", err)
	}
	s.closers = append(s.closers, s.httpLis)
	if tlsCfg != nil {
		s.httpLis = tls.NewListener(s.httpLis, tlsCfg)
	}
	return nil
}

func (s *sidecar) close() {
	for _, c := range s.closers {
		c.Close()
	}
}

// Run serves until ctx is done or a component fails, then shuts everything
// down gracefully. SIGHUP reloads the policy bundle.
func (s *sidecar) Run(ctx context.Context) error {
	defer s.close()
	g, ctx := errgroup.WithContext(ctx)
	s.grpc.SetServing(true)
	g.Go(func() error { return s.grpc.Run(ctx) })
	if s.http != nil {
		g.Go(func() error { return s.runHTTP(ctx) })
	}
	if s.watcher != nil {
		g.Go(func() error { return s.watcher.Run(ctx) })
	}
	decisionsDone := make(chan struct{})
	if s.decisions != nil {
		// The decision log outlives the listeners so decisions made during
		// the graceful stop are written too.
		logCtx, stopLog := context.WithCancel(context.WithoutCancel(ctx))
		go func() {
			defer close(decisionsDone)
			_ = s.decisions.Run(logCtx)
		}()
		uploadDone := make(chan struct{})
		stopUpload := func() {}
		if s.uploader != nil {
			var upCtx context.Context
			upCtx, stopUpload = context.WithCancel(context.WithoutCancel(ctx))
			go func() {
				defer close(uploadDone)
				_ = s.uploader.Run(upCtx)
			}()
		} else {
			close(uploadDone)
		}
		// The logger stops first, so its last events reach the uploader's
		// final flush.
		defer func() { stopLog(); <-decisionsDone; stopUpload(); <-uploadDone }()
	}
	for _, run := range s.background {
		g.Go(func() error { return run(ctx) })
	}
	g.Go(func() error { return s.reloadOnHangup(ctx) })
	return g.Wait()
}

func (s *sidecar) runHTTP(ctx context.Context) error {
	return serveHTTP(ctx, s.http, s.httpLis, "forward-auth server", s.log)
}

// serveHTTP serves srv on lis until ctx is done, then shuts it down
// gracefully within shutdownTimeout, closing it if that runs out.
func serveHTTP(ctx context.Context, srv *http.Server, lis net.Listener, name string, log *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s: %w", name, err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		log.Warn(name+" graceful shutdown", slog.Any("error", err))
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (s *sidecar) reloadOnHangup(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			if err := s.loadPolicy(ctx); err != nil {
				s.log.Error("policy reload rejected; the active policy stays in force", slog.Any("error", err))
			}
		}
	}
}
