package main

import (
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
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/httpapi"
	"github.com/mcpauthz/mcpauthz/identity/redisfeed"
	"github.com/mcpauthz/mcpauthz/identity/sqlstore"
)

// Background work of the identity service.
const (
	// Signing keys are checked every minute: a successor is published
	// identity.tokens.publish_ahead before it signs, and every replica
	// must load it within that time. The check is one locked read.
	rotateEvery   = time.Minute
	cleanupEvery  = 10 * time.Minute // expired-session sweep
	cleanupBatch  = 1000
	keyUsageEvery = 30 * time.Second // last_used_at flush
	redisTimeout  = 500 * time.Millisecond
)

// identityServer is the wired identity service. buildIdentity opens its
// store, loads its signing keys and binds its port; Run serves.
type identityServer struct {
	log      *slog.Logger
	metrics  *identityMetrics
	admin    *http.Server // nil without identity.admin_addr
	adminLis net.Listener
	store    *sqlstore.Store
	svc      *identity.Service
	tokens   *identity.Tokens
	usage    *identity.Usage
	http     *http.Server
	lis      net.Listener
	closers  []io.Closer
}

// extra options are applied last (dev hands revocation events to the
// sidecar in process).
func buildIdentity(ctx context.Context, c IdentityConfig, log *slog.Logger, extra ...identity.Option) (_ *identityServer, err error) {
	s := &identityServer{log: log, metrics: newIdentityMetrics()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	audit, err := c.auditor()
	if err != nil {
		return nil, err
	}
	tcfg, err := c.tokenConfig()
	if err != nil {
		return nil, err
	}
	proxies, err := c.trustedProxies()
	if err != nil {
		return nil, err
	}
	if s.store, err = openIdentityStore(ctx, c); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.store)
	s.usage = identity.NewKeyUsage(s.store, keyUsageEvery, log)
	opts := []identity.Option{identity.WithLogger(log), identity.WithKeyUsage(s.usage), identity.WithAuditObserver(s.metrics.observe)}
	if c.Redis != "" {
		feed, err := s.openRedis(c.Redis, c.RedisPrefix)
		if err != nil {
			return nil, err
		}
		opts = append(opts, identity.WithCache(feed), identity.WithEvents(feed))
	}
	opts = append(opts, extra...)
	if s.svc, err = identity.NewService(s.store, audit, c.serviceConfig(), rand.Reader, opts...); err != nil {
		return nil, err
	}
	if s.tokens, err = identity.NewTokens(s.svc, tcfg); err != nil {
		return nil, err
	}
	// The first rotation loads the keys, or makes the first one: nothing
	// is served before tokens can be signed and verified.
	if err := s.tokens.Rotate(ctx); err != nil {
		return nil, fmt.Errorf("identity signing keys: %w", err)
	}
	api, err := httpapi.New(s.svc, s.tokens, httpapi.Config{
		CookieName: c.API.CookieName, CookieDomain: c.API.CookieDomain, TrustedProxies: proxies,
		MaxBody: int64(c.API.MaxBodyBytes),
	}, httpapi.WithLogger(log))
	if err != nil {
		return nil, err
	}
	s.http = &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second, // audit exports extend their own
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	tlsCfg, err := serverTLS(c.TLS)
	if err != nil {
		return nil, fmt.Errorf("identity.tls: %w", err)
	}
	if s.lis, err = net.Listen("tcp", c.Addr); err != nil {
		return nil, fmt.Errorf("identity listener: %w", err)
	}
	if c.AdminAddr != "" {
		if s.adminLis, err = net.Listen("tcp", c.AdminAddr); err != nil {
			return nil, fmt.Errorf("identity.admin_addr: %w", err)
		}
		s.closers = append(s.closers, s.adminLis)
		s.admin = newHTTPServer(s.adminHandler(), log)
	}
	s.closers = append(s.closers, s.lis)
	if tlsCfg != nil {
		s.lis = tls.NewListener(s.lis, tlsCfg)
	}
	return s, nil
}

// openRedis connects the write-through cache and the revocation events.
// Every call is bounded: a paused Redis delays a change by at most the
// timeout, and Postgres stays the source of truth.
func (s *identityServer) openRedis(rawURL, prefix string) (*redisfeed.Feed, error) {
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, errors.New("identity.redis: not a valid Redis URL") // the URL may hold a password
	}
	opt.ContextTimeoutEnabled = true
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = redisTimeout, redisTimeout, redisTimeout
	rdb := redis.NewClient(opt)
	s.closers = append(s.closers, rdb)
	return redisfeed.New(rdb, redisfeed.WithTimeout(redisTimeout), redisfeed.WithPrefix(prefix))
}

func (s *identityServer) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i].Close()
	}
}

// shareStore hands the store to the caller, who closes it once everyone
// sharing it has stopped: Run no longer closes it.
func (s *identityServer) shareStore() *sqlstore.Store {
	for i, c := range s.closers {
		if c == io.Closer(s.store) {
			s.closers = append(s.closers[:i], s.closers[i+1:]...)
			break
		}
	}
	return s.store
}

// Addr is the address the API listens on.
func (s *identityServer) Addr() string { return s.lis.Addr().String() }

// Run serves the API, rotates signing keys, sweeps expired sessions and
// flushes API key use until ctx is done, then stops gracefully.
func (s *identityServer) Run(ctx context.Context) error {
	defer s.close()
	// API key use is flushed for the last time after the API has stopped,
	// so the uses of requests finishing during the graceful stop are kept.
	usageCtx, stopUsage := context.WithCancel(context.WithoutCancel(ctx))
	defer stopUsage()
	usageDone := make(chan error, 1)
	go func() { usageDone <- s.usage.Run(usageCtx) }()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveHTTP(ctx, s.http, s.lis, "identity API", s.log) })
	if s.admin != nil {
		g.Go(func() error { return serveHTTP(ctx, s.admin, s.adminLis, "identity admin", s.log) })
	}
	g.Go(func() error {
		return every(ctx, rotateEvery, func() {
			if err := s.tokens.Rotate(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("signing-key rotation failed; the current keys stay", slog.Any("error", err))
			}
		})
	})
	g.Go(func() error {
		return every(ctx, cleanupEvery, func() {
			n, err := s.svc.CleanupSessions(ctx, cleanupBatch)
			if err != nil && ctx.Err() == nil {
				s.log.Warn("expired-session cleanup failed", slog.Any("error", err))
			}
			if n > 0 {
				s.log.Info("expired sessions deleted", slog.Int("sessions", n))
			}
		})
	})
	err := g.Wait()
	stopUsage()
	if uerr := <-usageDone; err == nil && uerr != nil {
		err = fmt.Errorf("recording API key use: %w", uerr)
	}
	return err
}

// every runs fn each interval until ctx is done.
func every(ctx context.Context, interval time.Duration, fn func()) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			fn()
		}
	}
}

// runIdentity is `mcpauthz identity`: the identity service on its own.
func runIdentity(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs, f := storeFlagSet("identity", stderr)
	fs.StringVar(&f.identityAddr, "addr", "", "identity API listen `address` (identity.addr)")
	fs.StringVar(&f.logLevel, "log-level", "", "log `level`: debug, info, warn, error (log.level)")
	if err := parseCommand(fs, args, stderr); err != nil {
		return err
	}
	cfg, err := loadConfig(Defaults(), f, fs, environ)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	tuneRuntime(cfg.Runtime, os.Getenv, os.ReadFile, log)
	s, err := buildIdentity(ctx, cfg.Identity, log)
	if err != nil {
		return err
	}
	admin := "off"
	if s.adminLis != nil {
		admin = s.adminLis.Addr().String()
	}
	log.Info("mcpauthz identity serving", "version", version, "addr", s.Addr(), "admin", admin,
		"store", describeStore(cfg.Identity.Store), "redis", cfg.Identity.Redis != "")
	return s.Run(ctx)
}
