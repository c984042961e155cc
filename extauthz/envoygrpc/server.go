// Package envoygrpc serves Envoy's external authorization API (ext_authz,
// v3 gRPC): it turns CheckRequests into extauthz.Requests and Decisions into
// CheckResponses, and runs the gRPC listener with health checking and
// server reflection, so grpcurl and ghz work without proto files.
package envoygrpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/mcpauthz/mcpauthz/extauthz"
)

// Checker decides requests; *extauthz.Authorizer is one.
type Checker interface {
	Check(ctx context.Context, req *extauthz.Request) (extauthz.Decision, error)
}

// Service implements envoy.service.auth.v3.Authorization.
type Service struct {
	authv3.UnimplementedAuthorizationServer
	checker Checker
	log     *slog.Logger
}

// NewService returns the Authorization service deciding with checker.
func NewService(checker Checker, log *slog.Logger) *Service {
	return &Service{checker: checker, log: log}
}

// Check answers one CheckRequest. It never returns a gRPC error: faults,
// malformed requests and even panics become denied responses.
func (s *Service) Check(ctx context.Context, cr *authv3.CheckRequest) (resp *authv3.CheckResponse, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.LogAttrs(ctx, slog.LevelError, "panic while deciding a request; denied", extauthz.PanicAttrs(r)...)
			d := extauthz.Deny(http.StatusInternalServerError, extauthz.ReasonInternal)
			resp, err = toResponse(&d), nil
		}
	}()
	req, cerr := toRequest(cr)
	if cerr != nil {
		d := extauthz.Deny(http.StatusBadRequest, extauthz.ReasonBadRequest)
		return toResponse(&d), nil
	}
	d, _ := s.checker.Check(ctx, req) // the decision is the answer; faults are logged by the checker
	return toResponse(&d), nil
}

// Config configures the gRPC listener.
type Config struct {
	// MaxRecvMsgBytes bounds a CheckRequest (with its body); Envoy's
	// max_request_bytes plus headers must fit.
	MaxRecvMsgBytes int
	// TLS enables TLS (and mTLS when it requires client certificates).
	TLS *tls.Config
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	// StreamWorkers is the number of goroutines kept to handle checks
	// (default 64 per CPU). Policy evaluation recurses deeply; a fresh
	// goroutine per check would grow its stack by copying on every request,
	// while a kept worker's stack stays grown. Checks beyond the pool get a
	// goroutine of their own.
	StreamWorkers int
	// Releaser, when set, is handed the leases of finished requests: the
	// listener then also serves Envoy's access log service, so an HTTP
	// gRPC access logger pointed at it releases concurrency leases.
	Releaser Releaser
}

// Listener runs the ext_authz gRPC server.
type Listener struct {
	lis    net.Listener
	server *grpc.Server
	health *health.Server
	cfg    Config
	log    *slog.Logger
}

// NewListener builds the gRPC server for svc on lis. It starts nothing.
func NewListener(lis net.Listener, svc *Service, cfg Config, log *slog.Logger) *Listener {
	if cfg.MaxRecvMsgBytes <= 0 {
		cfg.MaxRecvMsgBytes = 4 << 20
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.StreamWorkers <= 0 {
		cfg.StreamWorkers = 64 * runtime.GOMAXPROCS(0)
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgBytes),
		grpc.NumStreamWorkers(uint32(cfg.StreamWorkers)),
		// Envoy keeps long-lived HTTP/2 connections to the authorizer
		// and pings them; allow that, and recycle idle ones.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 15 * time.Minute}),
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	server := grpc.NewServer(opts...)
	authv3.RegisterAuthorizationServer(server, svc)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(server, hs)
	if cfg.Releaser != nil {
		RegisterAccessLog(server, cfg.Releaser, log)
	}
	reflection.Register(server)
	return &Listener{lis: lis, server: server, health: hs, cfg: cfg, log: log}
}

// Addr is the address the listener accepts on.
func (l *Listener) Addr() net.Addr { return l.lis.Addr() }

// SetServing reports the service's health over grpc.health.v1, for the
// empty service name and for the Authorization service.
func (l *Listener) SetServing(serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	l.health.SetServingStatus("", st)
	l.health.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, st)
}

// SetComponentServing reports, under its own service name, a part whose
// loss degrades the sidecar without stopping it (the revocation events:
// "mcpauthz.revocations"). The overall status is left alone: Envoy keeps
// asking, and a degraded sidecar still fails closed.
func (l *Listener) SetComponentServing(name string, serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	l.health.SetServingStatus(name, st)
}

// Run serves until ctx is done, then stops gracefully: health turns to
// NOT_SERVING, in-flight checks finish, and after ShutdownTimeout the
// remaining connections are closed.
func (l *Listener) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- l.server.Serve(l.lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("ext_authz gRPC server: %w", err)
	case <-ctx.Done():
	}
	l.health.Shutdown()
	stopped := make(chan struct{})
	go func() {
		l.server.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(l.cfg.ShutdownTimeout):
		l.log.Warn("graceful shutdown timed out; closing connections")
		l.server.Stop()
		<-stopped
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("ext_authz gRPC server: %w", err)
	}
	return nil
}
