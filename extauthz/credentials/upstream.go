package credentials

import (
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

// UpstreamTokens signs, for each allowed request, a short-lived JWT of the
// verified identity, for upstreams that want to verify what the identity
// headers say rather than trust the network. The upstream verifies it with
// the key's JWK set (`mcpauthz keygen` writes both).
type UpstreamTokens struct {
	key      *token.SigningKey
	issuer   string
	audience string
	ttl      time.Duration
}

var _ extauthz.IdentitySigner = (*UpstreamTokens)(nil)

// MaxUpstreamTokenTTL bounds an upstream token's lifetime: it is meant for
// one request.
const MaxUpstreamTokenTTL = 5 * time.Minute

// NewUpstreamTokens returns a signer with key, for the audience (the
// upstream), valid for ttl.
func NewUpstreamTokens(key *token.SigningKey, issuer, audience string, ttl time.Duration) (*UpstreamTokens, error) {
	switch {
	case key == nil:
		return nil, fmt.Errorf("%w: no signing key", ErrJWTConfig)
	case issuer == "" || audience == "":
		return nil, fmt.Errorf("%w: an upstream token needs an issuer and an audience", ErrJWTConfig)
	case ttl <= 0 || ttl > MaxUpstreamTokenTTL:
		return nil, fmt.Errorf("%w: an upstream token's lifetime must be in (0, %v]", ErrJWTConfig, MaxUpstreamTokenTTL)
	}
	return &UpstreamTokens{key: key, issuer: issuer, audience: audience, ttl: ttl}, nil
}

// upstreamClaims are the claims of an upstream token.
type upstreamClaims struct {
	jwt.RegisteredClaims
	UserID  string   `json:"uid,omitempty"`
	Tenant  string   `json:"tid,omitempty"`
	OrgRole string   `json:"org_role,omitempty"`
	Roles   []string `json:"roles,omitempty"`
	Scope   string   `json:"scope,omitempty"`
	// Method is how the caller authenticated: session, jwt or api_key.
	Method     string `json:"auth_method"`
	DecisionID string `json:"decision_id,omitempty"`
}

// SignIdentity implements extauthz.IdentitySigner.
func (u *UpstreamTokens) SignIdentity(id *extauthz.Identity, decisionID string, now time.Time) (string, error) {
	return u.key.Sign(upstreamClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: u.issuer, Subject: id.Subject, Audience: jwt.ClaimStrings{u.audience},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(u.ttl)),
			ID: decisionID,
		},
		UserID: id.UserID, Tenant: id.Tenant, OrgRole: id.OrgRole, Roles: id.Roles,
		Scope: strings.Join(id.Scopes, " "), Method: id.Method, DecisionID: decisionID,
	})
}
