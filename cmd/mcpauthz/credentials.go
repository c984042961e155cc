package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/redisfeed"
	"github.com/mcpauthz/mcpauthz/identity/sqlstore"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

// CredentialsConfig is what the sidecar verifies. API keys and sessions
// are read from the identity store (identity.store), through the identity
// service's Redis write-through when redis is set.
type CredentialsConfig struct {
	// APIKeys verifies API keys (x-api-key, Authorization: Bearer mcpk_…).
	APIKeys bool `yaml:"api_keys"`
	// Sessions verifies the identity service's session cookie.
	Sessions      bool   `yaml:"sessions"`
	SessionCookie string `yaml:"session_cookie"`
	// Redis is the identity service's Redis (identity.redis): the
	// write-through read before the store, and the revocation events.
	Redis       string `yaml:"redis"`
	RedisPrefix string `yaml:"redis_prefix"`
	// CacheSize bounds the credentials kept in memory, per kind.
	CacheSize int `yaml:"cache_size"`
	// LiveMaxAge is how long a credential is trusted from memory while
	// revocation events arrive; DegradedMaxAge while they may be missed
	// (and always without Redis).
	LiveMaxAge     Duration `yaml:"live_max_age"`
	DegradedMaxAge Duration `yaml:"degraded_max_age"`
	// JWT verifies bearer JWTs from the issuers listed.
	JWT JWTConfig `yaml:"jwt"`
	// SessionCache, with a key_file, hands browsers a signed cache of their
	// verified session that any sidecar sharing the key takes without a
	// lookup for its max age (still refused on revocation events).
	SessionCache SessionCacheConfig `yaml:"session_cache"`
	// UpstreamToken, with a key_file, sends the upstream a signed token of
	// the verified identity with every authenticated allow.
	UpstreamToken UpstreamTokenConfig `yaml:"upstream_token"`
}

// SessionCacheConfig configures the signed session cache cookie.
type SessionCacheConfig struct {
	KeyFile string   `yaml:"key_file"` // base64, at least 32 bytes, the same on every sidecar
	Cookie  string   `yaml:"cookie"`   // default __Host-mcpauthz_sc
	MaxAge  Duration `yaml:"max_age"`  // default 60s, at most 5m
}

// cache loads the key and returns the cache, or nil without a key file.
func (c SessionCacheConfig) cache() (*credentials.SignedSessionCache, error) {
	if c.KeyFile == "" {
		return nil, nil
	}
	data, err := os.ReadFile(c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("credentials.session_cache.key_file: %w", err)
	}
	key, err := decodeSecret(string(data))
	clear(data)
	if err != nil {
		return nil, fmt.Errorf("credentials.session_cache.key_file: %w", err)
	}
	sc, err := credentials.NewSignedSessionCache(key, c.Cookie, time.Duration(c.MaxAge))
	if err != nil {
		return nil, fmt.Errorf("credentials.session_cache: %w", err)
	}
	return sc, nil
}

// UpstreamTokenConfig configures the upstream identity token.
type UpstreamTokenConfig struct {
	KeyFile  string   `yaml:"key_file"` // from mcpauthz keygen
	Header   string   `yaml:"header"`   // default x-mcpauthz-identity
	Issuer   string   `yaml:"issuer"`   // default mcpauthz
	Audience string   `yaml:"audience"` // the upstream
	TTL      Duration `yaml:"ttl"`      // default 60s
}

// signer loads the key and returns the signer, or nil without a key file.
func (u UpstreamTokenConfig) signer() (*credentials.UpstreamTokens, error) {
	if u.KeyFile == "" {
		return nil, nil
	}
	data, err := os.ReadFile(u.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("credentials.upstream_token.key_file: %w", err)
	}
	key, err := token.UnmarshalPrivate(data)
	clear(data)
	if err != nil {
		return nil, fmt.Errorf("credentials.upstream_token.key_file: %w", err)
	}
	return credentials.NewUpstreamTokens(key, u.Issuer, u.Audience, time.Duration(u.TTL))
}

// JWTConfig lists the issuers whose tokens are accepted.
type JWTConfig struct {
	Issuers []JWTIssuerConfig `yaml:"issuers"`
	// MaxTokenLifetime is the longest exp − iat accepted (1h; Entra ID
	// needs 90m).
	MaxTokenLifetime Duration `yaml:"max_token_lifetime"`
}

// JWTIssuerConfig is one issuer: credentials.JWTIssuer in YAML.
type JWTIssuerConfig struct {
	Issuer         string         `yaml:"issuer"`
	JWKSURL        string         `yaml:"jwks_url"`
	JWKSFile       string         `yaml:"jwks_file"`
	AllowHTTP      bool           `yaml:"allow_http"`
	Algorithms     []string       `yaml:"algorithms"`
	Audiences      []string       `yaml:"audiences"`
	RequiredClaims []string       `yaml:"required_claims"`
	Leeway         Duration       `yaml:"leeway"`
	Claims         JWTClaimConfig `yaml:"claims"`
	Refresh        Duration       `yaml:"refresh"`
}

// JWTClaimConfig says which claims carry the identity (empty: defaults).
type JWTClaimConfig struct {
	Subject string `yaml:"subject"`
	UserID  string `yaml:"user_id"`
	Tenant  string `yaml:"tenant"`
	Roles   string `yaml:"roles"`
	Scopes  string `yaml:"scopes"`
	// Tier and TimeZone: the organization's plan and IANA time zone
	// (default "tier" and "tz", as the identity service issues them).
	Tier     string `yaml:"tier"`
	TimeZone string `yaml:"time_zone"`
}

func (c JWTConfig) verifierConfig() credentials.JWTConfig {
	out := credentials.JWTConfig{MaxTokenLifetime: time.Duration(c.MaxTokenLifetime)}
	for _, i := range c.Issuers {
		out.Issuers = append(out.Issuers, credentials.JWTIssuer{
			Issuer: i.Issuer, JWKSURL: i.JWKSURL, JWKSFile: i.JWKSFile, AllowHTTP: i.AllowHTTP,
			Algorithms: i.Algorithms, Audiences: i.Audiences, RequiredClaims: i.RequiredClaims,
			Leeway: time.Duration(i.Leeway), RefreshInterval: time.Duration(i.Refresh),
			Claims: credentials.JWTClaimMap{Subject: i.Claims.Subject, UserID: i.Claims.UserID,
				Tenant: i.Claims.Tenant, Roles: i.Claims.Roles, Scopes: i.Claims.Scopes,
				Tier: i.Claims.Tier, TimeZone: i.Claims.TimeZone},
		})
	}
	return out
}

func credentialsDefaults() CredentialsConfig {
	return CredentialsConfig{
		SessionCookie:  credentials.DefaultSessionCookie,
		RedisPrefix:    redisfeed.DefaultPrefix,
		CacheSize:      100_000,
		UpstreamToken:  UpstreamTokenConfig{Header: "x-mcpauthz-identity", Issuer: "mcpauthz", TTL: Duration(time.Minute)},
		SessionCache:   SessionCacheConfig{Cookie: credentials.DefaultSessionCacheCookie, MaxAge: Duration(credentials.DefaultSessionCacheMaxAge)},
		LiveMaxAge:     Duration(credentials.DefaultLiveMaxAge),
		DegradedMaxAge: Duration(credentials.DefaultDegradedMaxAge),
	}
}

func (c CredentialsConfig) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if (&http.Cookie{Name: c.SessionCookie, Value: "v"}).Valid() != nil {
		bad("credentials.session_cookie: %q is not a cookie name", c.SessionCookie)
	}
	if c.Redis != "" {
		if _, err := redis.ParseURL(c.Redis); err != nil {
			bad("credentials.redis: not a valid Redis URL") // it may hold a password
		}
	}
	if c.CacheSize < 1 {
		bad("credentials.cache_size: must be at least 1")
	}
	if c.DegradedMaxAge <= 0 || c.LiveMaxAge < c.DegradedMaxAge {
		bad("credentials: degraded_max_age must be positive and at most live_max_age")
	}
	if len(c.JWT.Issuers) > 0 {
		if _, err := credentials.NewJWTVerifier(c.JWT.verifierConfig()); err != nil {
			bad("credentials.jwt: %v", err)
		}
	}
	if _, err := c.UpstreamToken.signer(); err != nil {
		bad("credentials.upstream_token: %v", err)
	}
	if _, err := c.SessionCache.cache(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// needsStore reports whether the credentials read the identity store
// (JWTs need only their issuers' keys).
func (c CredentialsConfig) needsStore() bool { return c.APIKeys || c.Sessions }

// localEvents hands the identity service's revocation events to the
// sidecar's caches in the same process (`mcpauthz dev`): nothing can be
// missed, so reads may be trusted for the live age.
type localEvents struct {
	mu       sync.Mutex
	evictors []credentials.Evictor
}

func (l *localEvents) Publish(_ context.Context, ev identity.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.evictors {
		e.Evict(ev)
	}
	return nil
}

func (l *localEvents) listen(es []credentials.Evictor) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evictors = append(l.evictors, es...)
}

// sidecarOption gives buildSidecar what another part of the process
// shares with it.
type sidecarOption func(*sidecar)

// withIdentity shares the identity service's store, its record of API
// key use, its metrics (served on the sidecar's admin listener) and, in
// process, its revocation events.
func withIdentity(store *sqlstore.Store, usage *identity.Usage, metrics *identityMetrics, events *localEvents) sidecarOption {
	return func(s *sidecar) { s.store, s.usage, s.identity, s.local = store, usage, metrics, events }
}

// buildCredentials returns the chain of verifiers the configuration asks
// for, or the anonymous verifier when it asks for none.
func (s *sidecar) buildCredentials(ctx context.Context) (extauthz.IdentityVerifier, error) {
	c := s.cfg.Credentials
	if !c.needsStore() && len(c.JWT.Issuers) == 0 {
		return extauthz.AnonymousVerifier{}, nil
	}
	if c.needsStore() && s.store == nil {
		st, err := openIdentityStore(ctx, s.cfg.Identity)
		if err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
		s.store = st
		s.closers = append(s.closers, st)
	}
	var fresh credentials.Freshness = credentials.FixedFreshness(c.DegradedMaxAge)
	if s.local != nil {
		fresh = credentials.FixedFreshness(c.LiveMaxAge)
	}
	var feed *redisfeed.Feed
	var rdb *redis.Client
	if c.Redis != "" {
		opt, err := redis.ParseURL(c.Redis)
		if err != nil {
			return nil, errors.New("credentials.redis: not a valid Redis URL")
		}
		opt.ContextTimeoutEnabled = true
		// A decision has 100 ms by default: a paused Redis must not take
		// it all; the store is asked next.
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 50*time.Millisecond, 30*time.Millisecond, 30*time.Millisecond
		rdb = redis.NewClient(opt)
		rdb.AddHook(s.metrics.redisHook("credentials"))
		s.closers = append(s.closers, rdb)
		if feed, err = redisfeed.New(rdb, redisfeed.WithPrefix(c.RedisPrefix), redisfeed.WithTimeout(30*time.Millisecond)); err != nil {
			return nil, err
		}
	}
	var verifiers []credentials.Verifier
	var evictors []credentials.Evictor
	if len(c.JWT.Issuers) > 0 {
		v, err := credentials.NewJWTVerifier(c.JWT.verifierConfig(), credentials.WithJWTLogger(s.log))
		if err != nil {
			return nil, fmt.Errorf("credentials.jwt: %w", err)
		}
		s.background = append(s.background, v.Run)
		s.jwts = v
		verifiers, evictors = append(verifiers, v), append(evictors, v)
	}
	// Freshness is read at each lookup, so the revocation listener can be
	// made after the verifiers it evicts from.
	freshness := &freshnessRef{f: fresh}
	if c.APIKeys {
		opts := []credentials.KeyOption{credentials.WithKeyLogger(s.log), credentials.WithKeyCacheSize(c.CacheSize)}
		if feed != nil {
			opts = append(opts, credentials.WithKeyFeed(feed))
		}
		if s.usage == nil {
			s.usage = identity.NewKeyUsage(s.store, keyUsageEvery, s.log)
			s.background = append(s.background, s.usage.Run)
		}
		opts = append(opts, credentials.WithKeyUsage(s.usage))
		v := credentials.NewAPIKeyVerifier(s.metrics.timedStore(s.store), freshness, opts...)
		s.keys = v
		verifiers, evictors = append(verifiers, v), append(evictors, v)
	}
	if c.Sessions {
		opts := []credentials.SessionOption{credentials.WithSessionLogger(s.log), credentials.WithSessionCookie(c.SessionCookie),
			credentials.WithSessionCacheSize(c.CacheSize)}
		if feed != nil {
			opts = append(opts, credentials.WithSessionFeed(feed))
		}
		// Use through the sidecar keeps a session from idling out.
		usage := identity.NewSessionUsage(s.store, time.Duration(s.cfg.Identity.Sessions.Idle), keyUsageEvery, s.log)
		s.background = append(s.background, usage.Run)
		opts = append(opts, credentials.WithSessionUsage(usage))
		sc, err := c.SessionCache.cache()
		if err != nil {
			return nil, err
		}
		if sc != nil {
			opts = append(opts, credentials.WithSignedSessionCache(sc))
		}
		v := credentials.NewSessionVerifier(s.metrics.timedStore(s.store), freshness, opts...)
		s.sessions = v
		verifiers, evictors = append(verifiers, v), append(evictors, v)
	}
	switch {
	case s.local != nil:
		s.local.listen(evictors)
	case rdb != nil:
		// The subscription has a client of its own: it may take longer to
		// connect than a decision can wait, and nothing waits on it.
		sub, _ := redis.ParseURL(c.Redis) // parsed above
		sub.DialTimeout, sub.ReadTimeout, sub.WriteTimeout = 2*time.Second, 2*time.Second, 2*time.Second
		subscriber := redis.NewClient(sub)
		s.closers = append(s.closers, subscriber)
		r := credentials.NewRevocations(subscriber, c.RedisPrefix, evictors,
			credentials.WithMaxAges(time.Duration(c.LiveMaxAge), time.Duration(c.DegradedMaxAge)),
			credentials.WithRevocationLogger(s.log),
			// gRPC health reports the events under their own name: lost,
			// the sidecar is degraded (caches on the short age), not down.
			credentials.WithLiveness(func(live bool) {
				s.revocationsLive.Store(live)
				s.grpc.SetComponentServing(revocationsHealth, live)
			}))
		freshness.f = r
		s.background = append(s.background, r.Run)
		s.listensForRevocations = true
	}
	return credentials.NewChain(verifiers...), nil
}

// revocationsHealth is the gRPC health service name of the revocation
// events.
const revocationsHealth = "mcpauthz.revocations"

// freshnessRef lets the freshness be chosen after the verifiers using it
// are built; it is set before anything is served.
type freshnessRef struct{ f credentials.Freshness }

func (r *freshnessRef) MaxAge() time.Duration { return r.f.MaxAge() }
