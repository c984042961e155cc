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
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
	"github.com/mcpauthz/mcpauthz/extauthz/decisionlog"
	"github.com/mcpauthz/mcpauthz/extauthz/envoygrpc"
	"github.com/mcpauthz/mcpauthz/extauthz/forwardauth"
	"github.com/mcpauthz/mcpauthz/extauthz/policy"
	"github.com/mcpauthz/mcpauthz/extauthz/tracing"
	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/sqlstore"
	"github.com/mcpauthz/mcpauthz/mcp"
	"github.com/mcpauthz/mcpauthz/quotas"
	"github.com/mcpauthz/mcpauthz/quotas/memquota"
)

// shutdownTimeout bounds the graceful stop of each listener.
const shutdownTimeout = 10 * time.Second

// sidecar is the wired ext_authz sidecar. buildSidecar binds its ports and
// loads its policy; Run serves.
type sidecar struct {
	cfg       Config
	log       *slog.Logger
	engine    *bundles.Engine
	source    *policySource  // keeps engine's bundle current
	shadow    *policy.Shadow // evaluates policy.shadow.bundle, when set
	shadowSrc *policySource
	authz     *extauthz.Authorizer
	checker   tracing.Decider // authz, traced
	grpc      *envoygrpc.Listener
	http      *http.Server
	httpLis   net.Listener
	admin     *http.Server // /healthz, /readyz, /metrics
	adminLis  net.Listener
	decisions *decisionlog.Logger
	closers   []io.Closer

	metrics  *sidecarMetrics
	identity *identityMetrics             // the identity service's, when it runs in this process (dev)
	keys     *credentials.APIKeyVerifier  // nil unless credentials.api_keys
	sessions *credentials.SessionVerifier // nil unless credentials.sessions
	jwts     *credentials.JWTVerifier     // nil without JWT issuers

	limiter      *quotas.Fallback  // with limits.redis
	localLimiter *memquota.Limiter // the in-process limits, or the fallback's
	localLeases  *memquota.Leases  // without limits.redis

	store    *sqlstore.Store // the identity store, when credentials read it
	usage    *identity.Usage // where API key use is recorded
	local    *localEvents    // revocation events in process (dev)
	resource *extauthz.ProtectedResource

	listensForRevocations bool
	revocationsLive       atomic.Bool // the revocation events arrive
	uploader              *decisionlog.Uploader
	background            []func(context.Context) error
}

func buildSidecar(ctx context.Context, cfg Config, stdout io.Writer, log *slog.Logger, opts ...sidecarOption) (_ *sidecar, err error) {
	s := &sidecar{cfg: cfg, log: log, metrics: newSidecarMetrics()}
	for _, o := range opts {
		o(s)
	}
	defer func() {
		if err != nil {
			s.close() // release the ports and files taken so far
		}
	}()

	engineOpts := []bundles.EngineOption{
		bundles.WithEngineLogger(log),
		bundles.WithDecisionCache(cfg.Policy.DecisionCache),
		bundles.WithBundleTests(!cfg.Policy.SkipTests, 0),
	}
	if s.engine, err = bundles.NewEngine(cfg.Policy.DecisionPath, engineOpts...); err != nil {
		return nil, err
	}
	if s.source, err = newPolicySource(s.engine, cfg.Policy.Bundle, cfg.Policy, log); err != nil {
		return nil, fmt.Errorf("policy.bundle: %w", err)
	}
	s.closers = append(s.closers, s.source)
	// The first load happens now, so the sidecar never serves without a
	// policy; Run keeps it current from then on.
	if err := s.source.Load(ctx); err != nil {
		return nil, fmt.Errorf("loading the policy bundle: %w", err)
	}
	if cfg.Policy.Shadow.Bundle != "" {
		if err := s.buildShadow(ctx, engineOpts); err != nil {
			return nil, err
		}
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
	limiter, leaser, err := s.buildLimiter(ctx)
	if err != nil {
		return nil, err
	}
	tp, stopTracing, err := cfg.Tracing.provider(ctx, log)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, tracingCloser(stopTracing, log))
	aopts := []extauthz.Option{
		extauthz.WithIdentityVerifier(tracing.NewIdentityVerifier(verifier, tp)),
		extauthz.WithLimiter(tracing.NewLimiter(limiter, tp)),
		extauthz.WithObserver(s.metrics),
		extauthz.WithLeaser(tracing.NewLeaser(leaser, tp)),
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
	popts := []policy.Option{policy.WithFullInput(cfg.Policy.FullInput)}
	if s.shadow != nil {
		popts = append(popts, policy.WithShadow(s.shadow))
	}
	evaluator := policy.NewEvaluator(s.engine, popts...)
	s.authz = extauthz.NewAuthorizer(tracing.NewPolicyEvaluator(evaluator, tp), ids.Next, aopts...)
	s.checker = tracing.NewChecker(s.authz, tp)

	grpcTLS, err := serverTLS(cfg.GRPC.TLS)
	if err != nil {
		return nil, fmt.Errorf("grpc.tls: %w", err)
	}
	lis, err := net.Listen("tcp", cfg.GRPC.Addr)
	if err != nil {
		return nil, fmt.Errorf("grpc.addr: %w", err)
	}
	s.closers = append(s.closers, lis)
	s.grpc = envoygrpc.NewListener(lis, envoygrpc.NewService(s.checker, log), envoygrpc.Config{
		MaxRecvMsgBytes: cfg.GRPC.MaxRecvMsgBytes,
		TLS:             grpcTLS,
		ShutdownTimeout: shutdownTimeout,
		Releaser:        leaser,
	}, log)
	if s.listensForRevocations {
		s.grpc.SetComponentServing(revocationsHealth, false) // until subscribed
	}
	if s.limiter != nil {
		s.grpc.SetComponentServing(limitsHealth, true)
	}

	if cfg.HTTP.Addr != "" {
		if err := s.buildHTTP(); err != nil {
			return nil, err
		}
	}
	if cfg.Admin.Addr != "" {
		if err := s.buildAdmin(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// buildShadow loads the candidate bundle into an engine of its own. A
// candidate that does not load is logged and retried like a reload: the
// sidecar serves either way, since the candidate never decides.
func (s *sidecar) buildShadow(ctx context.Context, engineOpts []bundles.EngineOption) error {
	cfg := s.cfg.Policy.Shadow
	log := s.log.With(slog.String("policy", "shadow"))
	engine, err := bundles.NewEngine(s.cfg.Policy.DecisionPath, append(engineOpts, bundles.WithEngineLogger(log))...)
	if err != nil {
		return err
	}
	if s.shadowSrc, err = newPolicySource(engine, cfg.Bundle, s.cfg.Policy, log); err != nil {
		return fmt.Errorf("policy.shadow.bundle: %w", err)
	}
	s.closers = append(s.closers, s.shadowSrc)
	if err := s.shadowSrc.Load(ctx); err != nil {
		log.Error("the shadow bundle did not load; no decision is shadowed until it does", slog.Any("error", err))
	}
	s.shadow = policy.NewShadow(engine, policy.ShadowOptions{
		Queue:        cfg.Queue,
		LogPerSecond: cfg.LogPerSecond,
		Logger:       log,
	})
	s.background = append(s.background, s.shadowSrc.Run, s.shadow.Run)
	return nil
}

// reload loads the active and the candidate bundle again (SIGHUP).
func (s *sidecar) reload(ctx context.Context) {
	if err := s.source.Load(ctx); err != nil {
		s.log.Error("policy reload rejected; the active policy stays in force", slog.Any("error", err))
	}
	if s.shadowSrc != nil {
		if err := s.shadowSrc.Load(ctx); err != nil {
			s.log.Error("shadow policy reload rejected; the candidate stays", slog.Any("error", err))
		}
	}
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
	handler := forwardauth.NewHandler(s.checker, forwardauth.Config{
		PathPrefix:     cfg.PathPrefix,
		TrustedProxies: proxies,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		// The proxy logs it; an empty setting turns it off.
		DecisionIDHeader:  cmp.Or(s.cfg.Headers.DecisionID, "-"),
		ProtectedResource: s.resource,
	}, s.log)
	s.http = newHTTPServer(handler, s.log)
	s.http.TLSConfig = tlsCfg
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

// newHTTPServer returns a server for the sidecar's short requests: every
// phase bounded, so a slow client cannot hold a connection.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func (s *sidecar) buildAdmin() error {
	s.admin = newHTTPServer(s.adminHandler(), s.log)
	var err error
	if s.adminLis, err = net.Listen("tcp", s.cfg.Admin.Addr); err != nil {
		return fmt.Errorf("admin.addr: %w", err)
	}
	s.closers = append(s.closers, s.adminLis)
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
	if s.admin != nil {
		g.Go(func() error { return serveHTTP(ctx, s.admin, s.adminLis, "admin server", s.log) })
	}
	g.Go(func() error { return s.source.Run(ctx) })
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
			s.reload(ctx)
		}
	}
}
