package credentials

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

// Limits and defaults of the JWT verifier.
const (
	// DefaultMaxJWTSize is the longest token parsed unless configured;
	// longer ones are refused before any decoding.
	DefaultMaxJWTSize = 8 << 10
	// MaxJWTSize is the most MaxTokenSize may be set to.
	MaxJWTSize = 64 << 10
	// MaxJWTLeeway is the largest clock skew an issuer may tolerate.
	MaxJWTLeeway = 5 * time.Minute
	// DefaultMaxJWTLifetime is the longest exp − iat accepted unless
	// configured; revocations are kept this long.
	DefaultMaxJWTLifetime = time.Hour
	// MaxJWTLifetime is the most MaxTokenLifetime may be set to.
	MaxJWTLifetime = 24 * time.Hour
	// DefaultJWTCacheSize and DefaultJWTCacheTTL bound the cache of
	// verified tokens unless configured.
	DefaultJWTCacheSize = 10_000
	DefaultJWTCacheTTL  = 5 * time.Minute
)

// ErrJWTConfig is the error of a configuration NewJWTVerifier refuses;
// the message names the setting.
var ErrJWTConfig = errors.New("credentials: invalid JWT verifier configuration")

// Why a token is refused; each is wrapped, with
// extauthz.ErrInvalidCredential, in the error Verify returns.
var (
	errJWTMalformed = errors.New("malformed token")          // size, segments, encoding, JSON
	errJWTHeader    = errors.New("refused header parameter") // crit, jwk, jku, x5u, x5c
	errJWTAlg       = errors.New("algorithm not allowed")
	errJWTIssuer    = errors.New("unknown issuer")
	errJWTKID       = errors.New("unknown kid")
	errJWTKey       = errors.New("key does not fit the algorithm")
	errJWTClaims    = errors.New("claims refused") // after the signature: iat, lifetime, required, mapping
	errJWTRevoked   = errors.New("token revoked")
)

// jwtAsymmetric is every algorithm an issuer may allow. HMAC is not among
// them: a verifier holds no shared secrets, and an HS256 token "signed"
// with a public key is the classic key-confusion attack.
var jwtAsymmetric = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

// jwtDefaultAlgs are an issuer's algorithms unless configured.
var jwtDefaultAlgs = []string{"RS256", "ES256", "EdDSA"}

// jwtRefusedHeaders are header parameters a token must not carry: crit
// asks for extensions this verifier does not implement; the others would
// let the token name its own key.
var jwtRefusedHeaders = []string{"crit", "jwk", "jku", "x5u", "x5c"}

// JWTConfig configures a JWTVerifier. Zero values take the defaults.
type JWTConfig struct {
	Issuers []JWTIssuer
	// MaxTokenSize is the longest token accepted, in bytes (default
	// DefaultMaxJWTSize, at most MaxJWTSize).
	MaxTokenSize int
	// MaxTokenLifetime is the longest exp − iat accepted (default
	// DefaultMaxJWTLifetime, at most MaxJWTLifetime). Revocations are kept
	// this long, after which every token they refuse has expired. Entra ID
	// issues tokens for 60–90 minutes: raise it to 90m for Entra.
	MaxTokenLifetime time.Duration
	// CacheSize is how many verified tokens are remembered (default
	// DefaultJWTCacheSize); CacheTTL how long at most (default
	// DefaultJWTCacheTTL), and never past the token's exp.
	CacheSize int
	CacheTTL  time.Duration
	// FetchTimeout bounds one fetch of a JWK set (default
	// DefaultJWKSFetchTimeout, at most a minute).
	FetchTimeout time.Duration
}

// JWTIssuer is one issuer whose tokens are accepted.
type JWTIssuer struct {
	// Issuer is the iss claim, compared exactly.
	Issuer string
	// Exactly one source of keys: a JWK set URL (https; http only to a
	// loopback host or with AllowHTTP), a JWK set file, or a JWK set
	// document.
	JWKSURL  string
	JWKSFile string
	JWKS     []byte
	// AllowHTTP permits an http JWKSURL to a non-loopback host, for an
	// identity service on a private network.
	AllowHTTP bool
	// Algorithms allowed (default RS256, ES256, EdDSA); asymmetric only.
	Algorithms []string
	// Audiences: the token's aud must contain one. At least one.
	Audiences []string
	// RequiredClaims are claims (paths, as in Claims) a token must carry.
	RequiredClaims []string
	// Leeway is the clock skew tolerated on exp, nbf and iat (at most
	// MaxJWTLeeway; zero is none).
	Leeway time.Duration
	// Claims says where the identity is found in the claims.
	Claims JWTClaimMap
	// RefreshInterval is how often the JWK set is loaded again (default
	// DefaultJWKSRefresh, from 1s to 24h).
	RefreshInterval time.Duration
	// KIDRefreshInterval is the least time between two fetches of the JWK
	// set URL triggered by a token with an unknown kid (default
	// DefaultKIDRefreshInterval, from 1s to 24h).
	KIDRefreshInterval time.Duration
}

// JWTClaimMap names the claims the identity is read from. Each is a claim
// name, or a dotted path into nested objects ("realm_access.roles"); a
// claim whose whole name matches (a namespaced "https://x.example/roles")
// wins over a path. Roles and Scopes may be arrays of strings or
// space-separated strings.
type JWTClaimMap struct {
	Subject string // default "sub"
	UserID  string // default "sub"
	Tenant  string // default "tid"
	Roles   string // default "roles"
	Scopes  string // default "scope", or "scp" when there is no "scope"
	// Tier and TimeZone carry the organization's plan and IANA time zone
	// (default "tier" and "tz", as the identity service issues them); a
	// token without them has neither. A time zone that is not a known
	// IANA name refuses the token: its quotas would count on no calendar.
	Tier     string
	TimeZone string
}

func (m JWTClaimMap) withDefaults() JWTClaimMap {
	if m.Subject == "" {
		m.Subject = "sub"
	}
	if m.UserID == "" {
		m.UserID = "sub"
	}
	if m.Tenant == "" {
		m.Tenant = "tid"
	}
	if m.Roles == "" {
		m.Roles = "roles"
	}
	if m.Tier == "" {
		m.Tier = "tier"
	}
	if m.TimeZone == "" {
		m.TimeZone = "tz"
	}
	return m
}

// JWTOption sets an optional collaborator of a JWTVerifier.
type JWTOption func(*JWTVerifier)

// WithJWTClock makes the verifier read the time from now (default
// time.Now).
func WithJWTClock(now func() time.Time) JWTOption { return func(v *JWTVerifier) { v.now = now } }

// WithJWTHTTPClient sets the client JWK sets are fetched with (default: a
// client that follows no redirects).
func WithJWTHTTPClient(c *http.Client) JWTOption { return func(v *JWTVerifier) { v.client = c } }

// WithJWTLogger sets the logger (default: discard).
func WithJWTLogger(l *slog.Logger) JWTOption { return func(v *JWTVerifier) { v.log = l } }

// JWTVerifier verifies bearer JWTs of the configured issuers against their
// published keys. Verified tokens are cached by their SHA-256 digest;
// revocations (by subject, tenant or jti) refuse cached and new tokens
// alike.
type JWTVerifier struct {
	cfg       JWTConfig
	issuers   map[string]*jwtIssuer
	order     []*jwtIssuer
	maxLeeway time.Duration
	cache     *lru.Cache[[sha256.Size]byte, *jwtCached]
	revoked   jwtRevocations
	now       func() time.Time
	client    *http.Client
	log       *slog.Logger

	hits   atomic.Uint64
	checks atomic.Uint64
}

var (
	_ Verifier = (*JWTVerifier)(nil)
	_ Evictor  = (*JWTVerifier)(nil)
)

// jwtIssuer is an issuer's configuration compiled.
type jwtIssuer struct {
	cfg    JWTIssuer
	algs   map[string]bool
	parser *jwt.Parser
	src    *jwksSource
}

// jwtCached is a verified token as the cache keeps it.
type jwtCached struct {
	id       extauthz.Identity
	src      *jwksSource
	kid, alg string
	key      crypto.PublicKey // that verified it
	rev      jwtRevKey
	until    time.Time
}

// NewJWTVerifier checks cfg and returns a verifier for its issuers. JWK set
// files and documents are read now; URLs are fetched by Run, Refresh, or
// on demand by Verify — construction does no network I/O.
func NewJWTVerifier(cfg JWTConfig, opts ...JWTOption) (*JWTVerifier, error) {
	v := &JWTVerifier{now: time.Now, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(v)
	}
	if v.now == nil || v.log == nil {
		return nil, fmt.Errorf("%w: nil clock or logger", ErrJWTConfig)
	}
	cfg, err := jwtValidate(cfg)
	if err != nil {
		return nil, err
	}
	v.cfg = cfg
	if v.client == nil {
		v.client = &http.Client{
			Timeout:       cfg.FetchTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if v.cache, err = lru.New[[sha256.Size]byte, *jwtCached](cfg.CacheSize); err != nil {
		return nil, fmt.Errorf("%w: cache size: %w", ErrJWTConfig, err)
	}
	v.issuers = make(map[string]*jwtIssuer, len(cfg.Issuers))
	for i, ic := range cfg.Issuers {
		iss := &jwtIssuer{cfg: ic, algs: map[string]bool{}}
		for _, a := range ic.Algorithms {
			iss.algs[a] = true
		}
		iss.parser = jwt.NewParser(
			jwt.WithValidMethods(ic.Algorithms),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithIssuer(ic.Issuer),
			jwt.WithAudience(ic.Audiences...),
			jwt.WithLeeway(ic.Leeway),
			jwt.WithTimeFunc(v.now),
			jwt.WithStrictDecoding(),
		)
		iss.src = &jwksSource{
			issuer: ic.Issuer, url: ic.JWKSURL, file: ic.JWKSFile,
			client: v.client, timeout: cfg.FetchTimeout, interval: ic.RefreshInterval,
			limiter: rate.NewLimiter(rate.Every(ic.KIDRefreshInterval), 1),
			now:     v.now, log: v.log,
		}
		switch {
		case ic.JWKSFile != "":
			if err := iss.src.load(context.Background()); err != nil {
				return nil, fmt.Errorf("%w: issuers[%d] (%s): jwks_file: %w", ErrJWTConfig, i, ic.Issuer, err)
			}
		case ic.JWKS != nil:
			set, err := jwksParse(ic.JWKS, v.now())
			if err != nil {
				return nil, fmt.Errorf("%w: issuers[%d] (%s): jwks: %w", ErrJWTConfig, i, ic.Issuer, err)
			}
			iss.src.keys.Store(set)
		}
		v.issuers[ic.Issuer] = iss
		v.order = append(v.order, iss)
		v.maxLeeway = max(v.maxLeeway, ic.Leeway)
	}
	return v, nil
}

// jwtValidate applies the defaults and checks every setting.
func jwtValidate(cfg JWTConfig) (JWTConfig, error) {
	bad := func(format string, args ...any) (JWTConfig, error) {
		return cfg, fmt.Errorf("%w: "+format, append([]any{ErrJWTConfig}, args...)...)
	}
	cfg.MaxTokenSize = jwtOr(cfg.MaxTokenSize, DefaultMaxJWTSize)
	cfg.MaxTokenLifetime = jwtOr(cfg.MaxTokenLifetime, DefaultMaxJWTLifetime)
	cfg.CacheSize = jwtOr(cfg.CacheSize, DefaultJWTCacheSize)
	cfg.CacheTTL = jwtOr(cfg.CacheTTL, DefaultJWTCacheTTL)
	cfg.FetchTimeout = jwtOr(cfg.FetchTimeout, DefaultJWKSFetchTimeout)
	switch {
	case len(cfg.Issuers) == 0:
		return bad("issuers: at least one is required")
	case cfg.MaxTokenSize < 0 || cfg.MaxTokenSize > MaxJWTSize:
		return bad("max_token_size %d outside (0, %d]", cfg.MaxTokenSize, MaxJWTSize)
	case cfg.MaxTokenLifetime < 0 || cfg.MaxTokenLifetime > MaxJWTLifetime:
		return bad("max_token_lifetime %v outside (0, %v]", cfg.MaxTokenLifetime, MaxJWTLifetime)
	case cfg.CacheSize < 0:
		return bad("cache_size %d is negative", cfg.CacheSize)
	case cfg.CacheTTL < 0:
		return bad("cache_ttl %v is negative", cfg.CacheTTL)
	case cfg.FetchTimeout < 0 || cfg.FetchTimeout > time.Minute:
		return bad("fetch_timeout %v outside (0, 1m]", cfg.FetchTimeout)
	}
	issuers := make([]JWTIssuer, len(cfg.Issuers))
	seen := map[string]bool{}
	for i, ic := range cfg.Issuers {
		at := fmt.Sprintf("issuers[%d] (%s)", i, ic.Issuer)
		if len(ic.Algorithms) == 0 {
			ic.Algorithms = jwtDefaultAlgs
		}
		ic.Algorithms = slices.Clone(ic.Algorithms)
		ic.Audiences = slices.Clone(ic.Audiences)
		ic.RequiredClaims = slices.Clone(ic.RequiredClaims)
		ic.JWKS = slices.Clone(ic.JWKS)
		ic.Claims = ic.Claims.withDefaults()
		ic.RefreshInterval = jwtOr(ic.RefreshInterval, DefaultJWKSRefresh)
		ic.KIDRefreshInterval = jwtOr(ic.KIDRefreshInterval, DefaultKIDRefreshInterval)
		sources := 0
		for _, set := range []bool{ic.JWKSURL != "", ic.JWKSFile != "", ic.JWKS != nil} {
			if set {
				sources++
			}
		}
		switch {
		case ic.Issuer == "":
			return bad("%s: issuer is required", at)
		case seen[ic.Issuer]:
			return bad("%s: issuer configured twice", at)
		case sources != 1:
			return bad("%s: exactly one of jwks_url, jwks_file and jwks is required", at)
		case len(ic.Audiences) == 0 || slices.Contains(ic.Audiences, ""):
			return bad("%s: audiences: at least one non-empty audience is required", at)
		case ic.Leeway < 0 || ic.Leeway > MaxJWTLeeway:
			return bad("%s: leeway %v outside [0, %v]", at, ic.Leeway, MaxJWTLeeway)
		case ic.RefreshInterval < time.Second || ic.RefreshInterval > 24*time.Hour:
			return bad("%s: refresh_interval %v outside [1s, 24h]", at, ic.RefreshInterval)
		case ic.KIDRefreshInterval < time.Second || ic.KIDRefreshInterval > 24*time.Hour:
			return bad("%s: kid_refresh_interval %v outside [1s, 24h]", at, ic.KIDRefreshInterval)
		}
		seen[ic.Issuer] = true
		for _, a := range ic.Algorithms {
			if !jwtAsymmetric[a] {
				return bad("%s: algorithms: %q is not an allowed algorithm (asymmetric only: RS256..512, PS256..512, ES256..512, EdDSA)", at, a)
			}
		}
		if ic.JWKSURL != "" {
			if err := jwtCheckURL(ic.JWKSURL, ic.AllowHTTP); err != nil {
				return bad("%s: jwks_url: %w", at, err)
			}
		}
		for _, p := range append(slices.Clone(ic.RequiredClaims),
			ic.Claims.Subject, ic.Claims.UserID, ic.Claims.Tenant, ic.Claims.Roles) {
			if p == "" {
				return bad("%s: required_claims: an empty claim name", at)
			}
		}
		issuers[i] = ic
	}
	cfg.Issuers = issuers
	return cfg, nil
}

// jwtOr returns v unless it is the zero value, else def.
func jwtOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// jwtCheckURL accepts https URLs, and http ones to a loopback host or when
// allowed.
func jwtCheckURL(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); allowHTTP || h == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return errors.New("http to a non-loopback host needs allow_http")
	}
	return fmt.Errorf("scheme %q (want https)", u.Scheme)
}

// Verify verifies the request's bearer JWT. A request without an
// Authorization header, with one that is not a well-formed Bearer
// credential, or with a bearer token that is not JWT-shaped (an API key,
// a session token, anything without a dot) is not this verifier's
// (ErrNotMine). A JWT that does not verify is invalid; one whose issuer's
// keys cannot be fetched is ErrJWKSUnavailable.
//
// The returned identity shares its slices and Claims map with the cache:
// callers must not modify them.
func (v *JWTVerifier) Verify(ctx context.Context, req *extauthz.Request) (extauthz.Identity, error) {
	tok, _, ok := Bearer(req)
	if !ok || !jwtShaped(tok) {
		return extauthz.Identity{}, ErrNotMine
	}
	return v.verify(ctx, tok)
}

// jwtShaped tells a bearer token that may be a JWT from the opaque tokens
// of the identity service, which other verifiers own.
func jwtShaped(tok string) bool {
	return !strings.HasPrefix(tok, token.KindAPIKey.Prefix()) &&
		!strings.HasPrefix(tok, token.KindSession.Prefix()) &&
		strings.IndexByte(tok, '.') >= 0
}

// verify answers from the cache when it can — a cached token is still
// refused once revoked, expired, or its key is withdrawn — and verifies
// the token otherwise.
func (v *JWTVerifier) verify(ctx context.Context, tok string) (extauthz.Identity, error) {
	if len(tok) > v.cfg.MaxTokenSize { // before hashing it
		return extauthz.Identity{}, jwtInvalid(errJWTMalformed, "longer than %d bytes", v.cfg.MaxTokenSize)
	}
	now := v.now()
	sum := sha256.Sum256([]byte(tok))
	if c, ok := v.cache.Get(sum); ok {
		if now.Before(c.until) && c.src.still(c.kid, c.alg, c.key) {
			if err := v.revoked.check(&c.rev, now); err != nil {
				return extauthz.Identity{}, err
			}
			v.hits.Add(1)
			return c.id, nil
		}
		v.cache.Remove(sum)
	}
	c, err := v.verifyToken(ctx, tok, now)
	if err != nil {
		return extauthz.Identity{}, err
	}
	if now.Before(c.until) {
		v.cache.Add(sum, c)
	}
	return c.id, nil
}

// verifyToken checks a token in full: pre-parse, issuer, key, signature
// and claims, mapping, revocation.
func (v *JWTVerifier) verifyToken(ctx context.Context, tok string, now time.Time) (*jwtCached, error) {
	h, err := jwtPreparse(tok, v.cfg.MaxTokenSize)
	if err != nil {
		return nil, fmt.Errorf("%w: jwt: %w", extauthz.ErrInvalidCredential, err)
	}
	iss := v.issuers[h.iss]
	switch {
	case iss == nil:
		return nil, jwtInvalid(errJWTIssuer, "%s", jwtQuote(h.iss))
	case !iss.algs[h.alg]:
		return nil, jwtInvalid(errJWTAlg, "%s for issuer %s", h.alg, iss.cfg.Issuer)
	case h.kid == "":
		return nil, jwtInvalid(errJWTKID, "no kid")
	}
	key, err := iss.src.lookup(ctx, h.kid, h.alg)
	if err != nil {
		return nil, err
	}
	v.checks.Add(1)
	claims := jwt.MapClaims{}
	if _, err := iss.parser.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return key, nil }); err != nil {
		return nil, fmt.Errorf("%w: jwt: %w", extauthz.ErrInvalidCredential, err)
	}
	id, rev, exp, err := v.mapClaims(iss, claims)
	if err != nil {
		return nil, err
	}
	if err := v.revoked.check(&rev, now); err != nil {
		return nil, err
	}
	return &jwtCached{id: id, src: iss.src, kid: h.kid, alg: h.alg, key: key, rev: rev, until: jwtMinTime(exp, now.Add(v.cfg.CacheTTL))}, nil
}

// mapClaims checks what the parser does not — iat present, lifetime,
// required claims — and maps the claims to the identity.
func (v *JWTVerifier) mapClaims(iss *jwtIssuer, claims jwt.MapClaims) (extauthz.Identity, jwtRevKey, time.Time, error) {
	var none extauthz.Identity
	iat, err := claims.GetIssuedAt()
	if err != nil || iat == nil {
		return none, jwtRevKey{}, time.Time{}, jwtInvalid(errJWTClaims, "no iat")
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil { // the parser requires it; checked again for safety
		return none, jwtRevKey{}, time.Time{}, jwtInvalid(errJWTClaims, "no exp")
	}
	if exp.Sub(iat.Time) > v.cfg.MaxTokenLifetime {
		return none, jwtRevKey{}, time.Time{}, jwtInvalid(errJWTClaims, "lifetime %v exceeds %v", exp.Sub(iat.Time), v.cfg.MaxTokenLifetime)
	}
	for _, name := range iss.cfg.RequiredClaims {
		if _, ok := jwtClaim(claims, name); !ok {
			return none, jwtRevKey{}, time.Time{}, jwtInvalid(errJWTClaims, "required claim %q missing", name)
		}
	}
	m := iss.cfg.Claims
	id := extauthz.Identity{Authenticated: true, Method: extauthz.MethodJWT, Claims: claims}
	var errs [7]error
	id.Tier, errs[5] = jwtClaimString(claims, m.Tier)
	id.TimeZone, errs[6] = jwtClaimString(claims, m.TimeZone)
	if errs[6] == nil && id.TimeZone != "" {
		if _, err := time.LoadLocation(id.TimeZone); err != nil || id.TimeZone == "Local" {
			errs[6] = fmt.Errorf("%s: %q is not an IANA time zone", m.TimeZone, id.TimeZone)
		}
	}
	id.Subject, errs[0] = jwtClaimString(claims, m.Subject)
	id.UserID, errs[1] = jwtClaimString(claims, m.UserID)
	id.Tenant, errs[2] = jwtClaimString(claims, m.Tenant)
	id.Roles, errs[3] = jwtClaimList(claims, m.Roles)
	if m.Scopes != "" {
		id.Scopes, errs[4] = jwtClaimList(claims, m.Scopes)
	} else if _, ok := claims["scope"]; ok {
		id.Scopes, errs[4] = jwtClaimList(claims, "scope")
	} else {
		id.Scopes, errs[4] = jwtClaimList(claims, "scp")
	}
	if err := errors.Join(errs[:]...); err != nil {
		return none, jwtRevKey{}, time.Time{}, jwtInvalid(errJWTClaims, "%v", err)
	}
	// Platform roles come from the identity service's sessions alone: no
	// token, ours or an IdP's, can claim one.
	id.Roles = slices.DeleteFunc(id.Roles, func(r string) bool { return strings.HasPrefix(r, "platform:") })
	if id.Subject == "" {
		return none, jwtRevKey{}, time.Time{}, jwtInvalid(errJWTClaims, "no subject (%s)", m.Subject)
	}
	jti, _ := claims["jti"].(string)
	sid, _ := claims["sid"].(string) // the identity service's session id (OIDC "sid")
	rev := jwtRevKey{sub: id.Subject, user: id.UserID, tenant: id.Tenant, jti: jti, sid: sid, iat: iat.Time}
	return id, rev, exp.Time, nil
}

// jwtClaim finds a claim by its whole name, or by a dotted path into
// nested objects.
func jwtClaim(claims map[string]any, path string) (any, bool) {
	if v, ok := claims[path]; ok {
		return v, true
	}
	if !strings.Contains(path, ".") {
		return nil, false
	}
	var cur any = claims
	for part := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func jwtClaimString(claims map[string]any, path string) (string, error) {
	v, ok := jwtClaim(claims, path)
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("claim %q is not a string", path)
	}
	return s, nil
}

func jwtClaimList(claims map[string]any, path string) ([]string, error) {
	v, ok := jwtClaim(claims, path)
	if !ok {
		return nil, nil
	}
	switch v := v.(type) {
	case string:
		return strings.Fields(v), nil
	case []any:
		out := make([]string, len(v))
		for i, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("claim %q holds a non-string", path)
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("claim %q is neither a string nor an array", path)
}

// jwtInvalid returns an invalid-credential error for reason.
func jwtInvalid(reason error, format string, args ...any) error {
	return fmt.Errorf("%w: jwt: %w: %s", extauthz.ErrInvalidCredential, reason, fmt.Sprintf(format, args...))
}

// jwtQuote quotes a value taken from an unverified token for a message,
// cut to a length a log line can carry.
func jwtQuote(s string) string {
	const n = 64
	if len(s) > n {
		return fmt.Sprintf("%q…", s[:n])
	}
	return fmt.Sprintf("%q", s)
}

// JWTStats counts what the verifier did, for metrics and tests.
type JWTStats struct {
	CacheHits       uint64 // tokens answered from the cache
	SignatureChecks uint64 // tokens whose signature was checked
	JWKSFetches     uint64 // JWK set URL fetches
	JWKSFailures    uint64 // failed JWK set loads (URL or file)
	KIDRefreshCaps  uint64 // unknown-kid fetches refused by the rate cap
}

// Stats returns the counts so far.
func (v *JWTVerifier) Stats() JWTStats {
	s := JWTStats{CacheHits: v.hits.Load(), SignatureChecks: v.checks.Load()}
	for _, iss := range v.order {
		s.JWKSFetches += iss.src.fetches.Load()
		s.JWKSFailures += iss.src.failures.Load()
		s.KIDRefreshCaps += iss.src.capped.Load()
	}
	return s
}
