package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/password"
	"github.com/mcpauthz/mcpauthz/identity/postgres"
	"github.com/mcpauthz/mcpauthz/identity/redisfeed"
	"github.com/mcpauthz/mcpauthz/identity/sqlite"
	"github.com/mcpauthz/mcpauthz/identity/sqlstore"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

// IdentityConfig is the identity service's configuration (YAML
// `identity`), also read by the commands that work on its store
// (migrate, audit).
//
// Its two secrets, the audit key and the key-encryption key (KEK) of the
// token signing keys, are never read from the YAML file: each comes from a
// file named in the configuration (audit_key_file, kek_file) or from the
// environment (MCPAUTHZ_IDENTITY_AUDIT_KEY, MCPAUTHZ_IDENTITY_KEK), one
// or the other, not both. Both forms hold the key base64-encoded
// (standard or URL alphabet, padding optional, surrounding white space
// ignored), as `openssl rand -base64 32` writes it. The sidecar needs
// neither: only the commands that use a secret fail when it is missing.
type IdentityConfig struct {
	// Addr is the identity HTTP API's listen address.
	Addr string `yaml:"addr"`
	// AdminAddr serves /healthz, /readyz (the store answers) and /metrics
	// for `mcpauthz identity`; empty turns it off. (`mcpauthz dev` serves
	// the identity service's metrics on the sidecar's admin listener.)
	AdminAddr string `yaml:"admin_addr"`
	// Store is where the identity store lives: a postgres:// or
	// postgresql:// URL, or the path of a SQLite file, created if missing.
	// A Postgres password is better left out of the URL, in PGPASSWORD or
	// a .pgpass file, which the driver reads.
	Store    string         `yaml:"store"`
	Postgres PostgresConfig `yaml:"postgres"`

	// AuditKeyFile holds the audit key (at least identity.MinAuditKeyBytes
	// bytes), which keys the audit log's hash chain and pseudonyms.
	AuditKeyFile string `yaml:"audit_key_file"`
	// AuditKey is the audit key from MCPAUTHZ_IDENTITY_AUDIT_KEY; the file
	// cannot set it.
	AuditKey Secret `yaml:"audit_key"`
	// KEKFile holds the 32-byte key that encrypts token signing keys at
	// rest.
	KEKFile string `yaml:"kek_file"`
	// KEK is the key-encryption key from MCPAUTHZ_IDENTITY_KEK; the file
	// cannot set it.
	KEK Secret `yaml:"kek"`

	Tokens   TokensConfig   `yaml:"tokens"`
	Sessions SessionsConfig `yaml:"sessions"`
	Password PasswordConfig `yaml:"password"`
	// Redis is a redis://, rediss:// or unix:// URL for the session cache
	// and revocation events; empty means none.
	Redis string `yaml:"redis"`
	// RedisPrefix starts every key and the events channel in Redis; the
	// sidecars' credentials.redis_prefix must be the same.
	RedisPrefix string `yaml:"redis_prefix"`
	// TrustedProxies are the peers whose X-Forwarded-For the identity API
	// believes.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// API tunes the HTTP API.
	API APIConfig `yaml:"api"`
	// TLS serves the API over TLS (the session cookie is Secure: without
	// it, put a TLS-terminating proxy in front).
	TLS TLSConfig `yaml:"tls"`
}

// APIConfig tunes the identity HTTP API; zero values take httpapi's
// defaults.
type APIConfig struct {
	// CookieName is the session cookie's name (__Host-mcpauthz_session,
	// or mcpauthz_session with a cookie_domain).
	CookieName string `yaml:"cookie_name"`
	// CookieDomain is the cookie's Domain; empty scopes it to the API's
	// host.
	CookieDomain string `yaml:"cookie_domain"`
	// MaxBodyBytes bounds a request body (64 KiB).
	MaxBodyBytes ByteSize `yaml:"max_body_bytes"`
}

// PostgresConfig sizes the connection pool of a Postgres store.
type PostgresConfig struct {
	MaxConns     int      `yaml:"max_conns"`
	MaxIdleConns int      `yaml:"max_idle_conns"`
	ConnLifetime Duration `yaml:"conn_lifetime"`
}

// TokensConfig is the JWTs the identity service issues: the fields of
// identity.TokenConfig but the KEK.
type TokensConfig struct {
	// Issuer is the tokens' iss, the identity service's URL.
	Issuer string `yaml:"issuer"`
	// Audience is the MCP resource the tokens are for.
	Audience      string   `yaml:"audience"`
	TTL           Duration `yaml:"ttl"`
	Alg           string   `yaml:"alg"`
	SigningPeriod Duration `yaml:"signing_period"`
	// PublishAhead is how long a new signing key is published before it
	// signs, so every replica and verifier has it first.
	PublishAhead Duration `yaml:"publish_ahead"`
}

// SessionsConfig is the session rules of identity.Config.
type SessionsConfig struct {
	Idle        Duration `yaml:"idle"` // a session unused this long expires
	Max         Duration `yaml:"max"`  // absolute lifetime
	MaxSessions int      `yaml:"max_sessions"`
	FreshAuth   Duration `yaml:"fresh_auth"` // admin actions need a password this recent
}

// PasswordConfig is the argon2id cost of new password hashes. Hashes made
// with other parameters still verify and are re-made at the next login.
type PasswordConfig struct {
	Memory      ByteSize `yaml:"memory"` // a multiple of 1KiB: "19MiB"
	Iterations  uint32   `yaml:"iterations"`
	Parallelism uint8    `yaml:"parallelism"`
}

// params returns the argon2id parameters.
func (p PasswordConfig) params() password.Params {
	out := password.DefaultParams
	out.Memory, out.Iterations, out.Parallelism = uint32(p.Memory/1024), p.Iterations, p.Parallelism
	return out
}

// Identity defaults.
const (
	DefaultIdentityAddr  = ":9193"
	DefaultIdentityAdmin = ":9195"
	DefaultIdentityStore = "mcpauthz.db"
)

// Environment variables of the secrets (see envFields).
const (
	envAuditKey = EnvPrefix + "IDENTITY_AUDIT_KEY"
	envKEK      = EnvPrefix + "IDENTITY_KEK"
)

// identityDefaults returns the identity section's defaults: a SQLite file
// in the working directory, and identity.DefaultConfig's session rules.
func identityDefaults() IdentityConfig {
	svc := identity.DefaultConfig()
	return IdentityConfig{
		Addr:      DefaultIdentityAddr,
		AdminAddr: DefaultIdentityAdmin,
		Store:     DefaultIdentityStore,
		Postgres:  PostgresConfig{MaxConns: 4, MaxIdleConns: 2, ConnLifetime: Duration(30 * time.Minute)},
		Tokens: TokensConfig{
			TTL:           Duration(5 * time.Minute),
			Alg:           string(token.DefaultAlg),
			SigningPeriod: Duration(token.DefaultSigningPeriod),
			PublishAhead:  Duration(identity.DefaultPublishAhead),
		},
		Password: PasswordConfig{
			Memory:      ByteSize(password.DefaultParams.Memory) * 1024,
			Iterations:  password.DefaultParams.Iterations,
			Parallelism: password.DefaultParams.Parallelism,
		},
		Sessions: SessionsConfig{
			Idle:        Duration(svc.SessionIdle),
			Max:         Duration(svc.SessionMax),
			MaxSessions: svc.MaxSessions,
			FreshAuth:   Duration(svc.FreshAuth),
		},
		TrustedProxies: []string{"127.0.0.1/32", "::1/128"},
		RedisPrefix:    redisfeed.DefaultPrefix,
	}
}

// validate checks the section. Messages name settings, never a secret
// and never the store or Redis URL, which may hold a password.
func (c IdentityConfig) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.AdminAddr != "" {
		if err := checkAddr(c.AdminAddr); err != nil {
			bad("identity.admin_addr: %v", err)
		}
	}
	if err := checkAddr(c.Addr); err != nil {
		bad("identity.addr: %v", err)
	}
	if _, err := parseStore(c.Store); err != nil {
		bad("identity.store: %v", err)
	}
	if c.Postgres.MaxConns < 1 || c.Postgres.MaxConns > 1000 {
		bad("identity.postgres.max_conns: %d is outside [1, 1000]", c.Postgres.MaxConns)
	}
	if c.Postgres.MaxIdleConns < 1 {
		bad("identity.postgres.max_idle_conns: must be at least 1")
	}
	if c.Postgres.ConnLifetime <= 0 {
		bad("identity.postgres.conn_lifetime: must be positive")
	}
	for _, s := range c.secrets() {
		if _, err := s.load(); err != nil && !errors.Is(err, errNoSecret) {
			errs = append(errs, err)
		}
	}

	t := c.Tokens
	if t.Issuer != "" {
		if u, err := url.Parse(t.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("identity.tokens.issuer: %q is not an http(s) URL", t.Issuer)
		}
	}
	if ttl := time.Duration(t.TTL); ttl <= 0 || ttl > time.Hour {
		bad("identity.tokens.ttl: %s is outside (0, 1h]", ttl)
	}
	if !slices.Contains(tokenAlgs, token.Alg(t.Alg)) {
		bad("identity.tokens.alg: %q is not one of %v", t.Alg, tokenAlgs)
	}
	if t.PublishAhead < Duration(2*rotateEvery) {
		bad("identity.tokens.publish_ahead: must be at least %s, two key checks", 2*rotateEvery)
	}
	if t.SigningPeriod <= 2*t.TTL+t.PublishAhead {
		bad("identity.tokens.signing_period: %s must be longer than two token lifetimes and publish_ahead", time.Duration(t.SigningPeriod))
	}

	if c.Password.Memory%1024 != 0 || c.Password.Memory > 1<<30 {
		bad("identity.password.memory: must be a whole number of KiB, at most 1GiB")
	} else if err := c.Password.params().Validate(); err != nil {
		bad("identity.password: %v", err)
	}

	s := c.Sessions
	if s.Idle <= 0 {
		bad("identity.sessions.idle: must be positive")
	}
	if s.Max < s.Idle {
		bad("identity.sessions.max: %s is shorter than identity.sessions.idle", time.Duration(s.Max))
	}
	if s.MaxSessions < 1 {
		bad("identity.sessions.max_sessions: must be at least 1")
	}
	if s.FreshAuth <= 0 {
		bad("identity.sessions.fresh_auth: must be positive")
	}

	if c.RedisPrefix == "" || strings.ContainsAny(c.RedisPrefix, " {}") {
		bad("identity.redis_prefix: must be set, without spaces or braces")
	}
	if c.Redis != "" {
		if u, err := url.Parse(c.Redis); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			bad("identity.redis: not a redis://, rediss:// or unix:// URL")
		}
	}
	if _, err := parsePrefixes(c.TrustedProxies); err != nil {
		bad("identity.trusted_proxies: %v", err)
	}
	if c.API.CookieName != "" && (&http.Cookie{Name: c.API.CookieName, Value: "v"}).Valid() != nil {
		bad("identity.api.cookie_name: %q is not a cookie name", c.API.CookieName)
	}
	if err := c.TLS.check(); err != nil {
		bad("identity.tls: %v", err)
	}
	if c.API.MaxBodyBytes < 0 || c.API.MaxBodyBytes > 16<<20 {
		bad("identity.api.max_body_bytes: outside [0, 16MiB]")
	}
	return errors.Join(errs...)
}

// tokenAlgs are the signing algorithms identity/token supports.
var tokenAlgs = []token.Alg{token.ES256, token.EdDSA, token.RS256}

// The kinds of identity store.
const (
	storeSQLite   = "sqlite"
	storePostgres = "postgres"
)

// parseStore returns the kind of store s names. Its errors never quote s.
func parseStore(s string) (string, error) {
	switch {
	case s == "":
		return "", errors.New("must be set")
	case strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://"):
		if _, err := url.Parse(s); err != nil {
			return "", errors.New("the postgres URL cannot be parsed")
		}
		return storePostgres, nil
	case strings.Contains(s, "://"):
		scheme, _, _ := strings.Cut(s, "://")
		if len(scheme) > 16 {
			scheme = scheme[:16] + "…"
		}
		return "", fmt.Errorf("unsupported scheme %q: want a postgres:// URL or a SQLite file path", scheme)
	case strings.ContainsAny(s, "?#"):
		return "", errors.New("a SQLite file path may not contain ? or #")
	}
	return storeSQLite, nil
}

// describeStore names a store for messages: the kind and the path, or the
// URL without password or parameters.
func describeStore(s string) string {
	kind, err := parseStore(s)
	switch {
	case err != nil:
		return "(invalid identity.store)"
	case kind == storeSQLite:
		return "sqlite " + s
	}
	u, _ := url.Parse(s) // parseStore parsed it
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	u.RawQuery, u.Fragment = "", ""
	return "postgres " + u.String()
}

// postgresOptions are the pool options of a Postgres store. Open refuses
// a schema behind the binary: `mcpauthz migrate` moves it on.
func (c IdentityConfig) postgresOptions() postgres.Options {
	return postgres.Options{
		MaxConns:     c.Postgres.MaxConns,
		MaxIdleConns: min(c.Postgres.MaxIdleConns, c.Postgres.MaxConns),
		ConnLifetime: time.Duration(c.Postgres.ConnLifetime),
	}
}

// openIdentityStore opens the store c names. A SQLite file is created and
// migrated if need be; a Postgres database must be migrated already, or
// the error wraps postgres.ErrNotMigrated.
func openIdentityStore(ctx context.Context, c IdentityConfig) (*sqlstore.Store, error) {
	kind, err := parseStore(c.Store)
	if err != nil {
		return nil, fmt.Errorf("identity.store: %w", err)
	}
	var s *sqlstore.Store
	if kind == storePostgres {
		s, err = postgres.Open(ctx, c.Store, c.postgresOptions())
	} else {
		s, err = sqlite.Open(ctx, c.Store)
	}
	if err != nil {
		return nil, fmt.Errorf("identity store %s: %w", describeStore(c.Store), err)
	}
	return s, nil
}

// auditor returns the Auditor keyed with the audit key. It fails, naming
// the settings, when no key is configured.
func (c IdentityConfig) auditor() (*identity.Auditor, error) {
	key, err := c.secrets()[0].load()
	if err != nil {
		return nil, err
	}
	a, err := identity.NewAuditor(key)
	if err != nil {
		return nil, fmt.Errorf("identity audit key: %w", err)
	}
	return a, nil
}

// serviceConfig returns the identity service's rules: the defaults with
// the configured session settings.
func (c IdentityConfig) serviceConfig() identity.Config {
	cfg := identity.DefaultConfig()
	cfg.Password = c.Password.params()
	cfg.SessionIdle = time.Duration(c.Sessions.Idle)
	cfg.SessionMax = time.Duration(c.Sessions.Max)
	cfg.MaxSessions = c.Sessions.MaxSessions
	cfg.FreshAuth = time.Duration(c.Sessions.FreshAuth)
	return cfg
}

// tokenConfig returns the token settings with the KEK. It fails, naming
// the settings, when the issuer, the audience or the KEK is missing.
func (c IdentityConfig) tokenConfig() (identity.TokenConfig, error) {
	var errs []error
	if c.Tokens.Issuer == "" {
		errs = append(errs, errors.New("identity.tokens.issuer must be set to issue tokens"))
	}
	if c.Tokens.Audience == "" {
		errs = append(errs, errors.New("identity.tokens.audience must be set to issue tokens"))
	}
	kek, err := c.secrets()[1].load()
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return identity.TokenConfig{}, err
	}
	return identity.TokenConfig{
		Issuer:        c.Tokens.Issuer,
		Audience:      c.Tokens.Audience,
		TTL:           time.Duration(c.Tokens.TTL),
		Alg:           token.Alg(c.Tokens.Alg),
		SigningPeriod: time.Duration(c.Tokens.SigningPeriod),
		PublishAhead:  time.Duration(c.Tokens.PublishAhead),
		KEK:           kek,
	}, nil
}

// trustedProxies parses identity.trusted_proxies.
func (c IdentityConfig) trustedProxies() ([]netip.Prefix, error) {
	return parsePrefixes(c.TrustedProxies)
}

// errNoSecret is a secret that is needed and not configured.
var errNoSecret = errors.New("not set")

// secretSetting is one secret and the two places it may come from.
type secretSetting struct {
	what    string // "audit key"
	fileKey string // identity.audit_key_file
	file    string
	envKey  string // MCPAUTHZ_IDENTITY_AUDIT_KEY
	env     Secret
	check   func([]byte) error
}

func (c IdentityConfig) secrets() [2]secretSetting {
	return [2]secretSetting{
		{what: "audit key", fileKey: "identity.audit_key_file", file: c.AuditKeyFile, envKey: envAuditKey, env: c.AuditKey,
			check: func(b []byte) error {
				if len(b) < identity.MinAuditKeyBytes {
					return fmt.Errorf("the audit key must be at least %d bytes", identity.MinAuditKeyBytes)
				}
				return nil
			}},
		{what: "token key-encryption key", fileKey: "identity.kek_file", file: c.KEKFile, envKey: envKEK, env: c.KEK,
			check: func(b []byte) error {
				if len(b) != token.KEKSize {
					return fmt.Errorf("the key-encryption key must be %d bytes", token.KEKSize)
				}
				return nil
			}},
	}
}

// load returns the secret from its file or variable. Errors name the
// setting, never the value; a secret set nowhere is errNoSecret.
func (s secretSetting) load() ([]byte, error) {
	switch {
	case s.file != "" && s.env != nil:
		return nil, fmt.Errorf("%s and %s are both set: use one", s.fileKey, s.envKey)
	case s.env != nil:
		if err := s.check(s.env); err != nil {
			return nil, fmt.Errorf("%s: %w", s.envKey, err)
		}
		return s.env, nil
	case s.file != "":
		data, err := os.ReadFile(s.file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.fileKey, err)
		}
		key, err := decodeSecret(string(data))
		clear(data)
		if err == nil && key == nil {
			err = errors.New("the file is empty")
		}
		if err == nil {
			err = s.check(key)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.fileKey, err)
		}
		return key, nil
	}
	return nil, fmt.Errorf("the %s is %w: set %s (a file holding it, base64) or %s (base64)", s.what, errNoSecret, s.fileKey, s.envKey)
}

// decodeSecret decodes base64 in the standard or URL alphabet, padded or
// not, around white space. Empty is nil. Errors never quote the input.
func decodeSecret(s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	if s == "" {
		return nil, nil
	}
	s = strings.NewReplacer("-", "+", "_", "/").Replace(s)
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("not valid base64")
	}
	return b, nil
}

// Secret is key material from the environment, decoded from base64. It
// never shows: fmt, slog, YAML and JSON print "[REDACTED]", and a
// configuration file cannot set it.
type Secret []byte

func (s Secret) String() string {
	if s == nil {
		return ""
	}
	return redacted
}

// GoString hides the value from %#v.
func (s Secret) GoString() string { return s.String() }

// Format hides the value from every fmt verb.
func (s Secret) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// LogValue hides the value from slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalYAML hides the value.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON hides the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// UnmarshalYAML refuses a secret in a configuration file, where it would
// sit in plain text beside everything else.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Tag == "!!null" {
		return nil
	}
	return fmt.Errorf("line %d: secrets are not read from the configuration file: name a file with "+
		"audit_key_file or kek_file, or set %s or %s", n.Line, envAuditKey, envKEK)
}
