package token

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxJWTLen is the longest token Verify parses; longer ones are refused
// before any decoding.
const MaxJWTLen = 8 << 10

// MaxLeeway is the largest clock skew Verify tolerates on exp, nbf and iat.
const MaxLeeway = 5 * time.Minute

var (
	// ErrInvalidToken wraps every reason Verify refuses a token; the jwt
	// package's errors (jwt.ErrTokenExpired, jwt.ErrTokenInvalidIssuer, …)
	// and ErrUnknownKID / ErrAlgNotAllowed are wrapped inside it.
	ErrInvalidToken = errors.New("token: invalid JWT")
	// ErrUnknownKID is a token whose kid is missing or names no key of the
	// KeySet (never published, or dropped after its overlap).
	ErrUnknownKID = errors.New("token: unknown kid")
	// ErrAlgNotAllowed is a token whose alg is not the alg of the key its
	// kid names.
	ErrAlgNotAllowed = errors.New("token: algorithm not allowed for this key")
	// ErrCritHeader is a token with a "crit" header: it asks for
	// extensions Verify does not implement.
	ErrCritHeader = errors.New("token: crit header not supported")
	// ErrVerifyOption is a Verify option out of range.
	ErrVerifyOption = errors.New("token: invalid verify option")
)

// VerifyOption adjusts what Verify requires.
type VerifyOption func(*verifyConfig)

type verifyConfig struct {
	issuer   string
	audience []string
	leeway   time.Duration
	now      func() time.Time
}

// WithIssuer requires the iss claim to equal iss.
func WithIssuer(iss string) VerifyOption {
	return func(c *verifyConfig) { c.issuer = iss }
}

// WithAudience requires the aud claim to contain one of aud.
func WithAudience(aud ...string) VerifyOption {
	return func(c *verifyConfig) { c.audience = aud }
}

// WithLeeway tolerates clock skew of up to d (at most MaxLeeway) on exp,
// nbf and iat. The default is none.
func WithLeeway(d time.Duration) VerifyOption {
	return func(c *verifyConfig) { c.leeway = d }
}

// WithClock makes Verify read the time from now instead of time.Now.
func WithClock(now func() time.Time) VerifyOption {
	return func(c *verifyConfig) { c.now = now }
}

// Verify checks a compact JWS against the keys of ks and returns its claims.
//
// The key is found by the kid header among ks's keys only; the token's alg
// must be that key's alg (so no "none", no HMAC keyed with a public key, no
// RS256 presented for an ES256 key). Tokens with a crit header or longer
// than MaxJWTLen are refused. exp is always required; iat and nbf, when
// present, must not be in the future; iss and aud are required when
// WithIssuer / WithAudience are given. Every error wraps ErrInvalidToken.
func Verify(token string, ks KeySet, opts ...VerifyOption) (jwt.MapClaims, error) {
	cfg := verifyConfig{now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.leeway < 0 || cfg.leeway > MaxLeeway {
		return nil, fmt.Errorf("%w: %w: leeway %v outside [0, %v]", ErrInvalidToken, ErrVerifyOption, cfg.leeway, MaxLeeway)
	}
	if cfg.now == nil {
		return nil, fmt.Errorf("%w: %w: nil clock", ErrInvalidToken, ErrVerifyOption)
	}
	if len(token) > MaxJWTLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, MaxJWTLen)
	}
	popts := []jwt.ParserOption{
		// The algorithms accepted before the key is looked up; the key
		// then narrows them to its own.
		jwt.WithValidMethods([]string{string(ES256), string(EdDSA), string(RS256)}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.leeway),
		jwt.WithTimeFunc(cfg.now),
	}
	if cfg.issuer != "" {
		popts = append(popts, jwt.WithIssuer(cfg.issuer))
	}
	if len(cfg.audience) > 0 {
		popts = append(popts, jwt.WithAudience(cfg.audience...))
	}
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(popts...).ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			return nil, ErrCritHeader
		}
		kid, _ := t.Header["kid"].(string)
		k := ks.lookup(kid)
		if k == nil {
			return nil, ErrUnknownKID
		}
		if t.Method.Alg() != string(k.Alg) {
			return nil, ErrAlgNotAllowed
		}
		return k.Public(), nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return claims, nil
}
