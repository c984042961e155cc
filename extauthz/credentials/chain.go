// Package credentials verifies the credential a request carries — a JWT
// (jwt.go), an API key (apikey.go) or a session cookie (session.go) — and
// turns it into the identity the policy sees. Each verifier answers "mine
// and valid", "mine and invalid" (an error wrapping
// extauthz.ErrInvalidCredential, which denies with 401) or "not mine"
// (ErrNotMine); Chain asks them in turn. A request whose credential does
// not verify is never taken for anonymous, and credentials in the query
// string are refused.
//
// Verified credentials are cached in memory by the digest of the token;
// revocation events from the identity service (revocation.go) evict them by
// session id, key id or user id, never by token string.
package credentials

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

// ErrNotMine is a verifier's answer to a request that carries no
// credential of its kind.
var ErrNotMine = errors.New("credentials: not this verifier's credential")

// Verifier checks one kind of credential. Verify returns the identity of
// the request's credential of its kind; ErrNotMine when there is none; an
// error wrapping extauthz.ErrInvalidCredential when it does not verify;
// any other error when it could not tell (a backend failed), which denies
// with 503.
type Verifier interface {
	Verify(ctx context.Context, req *extauthz.Request) (extauthz.Identity, error)
}

// Chain asks its verifiers in order; the first whose credential the
// request carries decides.
type Chain struct {
	verifiers []Verifier
}

var _ extauthz.IdentityVerifier = (*Chain)(nil)

// NewChain returns a chain of verifiers, asked in the order given.
func NewChain(vs ...Verifier) *Chain { return &Chain{verifiers: vs} }

// Verify returns the identity of the request's credential, or Anonymous
// for a request that carries none. A credential in the query string, or an
// Authorization header no verifier recognizes, is invalid: a request that
// tried to authenticate is never downgraded to anonymous.
func (c *Chain) Verify(ctx context.Context, req *extauthz.Request) (extauthz.Identity, error) {
	if name, ok := queryCredential(req.Path); ok {
		return extauthz.Identity{}, fmt.Errorf("%w: a credential in the query string (%s)", extauthz.ErrInvalidCredential, name)
	}
	for _, v := range c.verifiers {
		id, err := v.Verify(ctx, req)
		if errors.Is(err, ErrNotMine) {
			continue
		}
		if err == nil && !consumesAuthorization(req, id.Method) {
			// The credential that verified is not the Authorization
			// header's: that header, unverified, would go upstream.
			return extauthz.Identity{}, fmt.Errorf("%w: an Authorization header beside another credential", extauthz.ErrInvalidCredential)
		}
		return id, err
	}
	if _, ok := req.Header("authorization"); ok {
		return extauthz.Identity{}, fmt.Errorf("%w: an Authorization header no verifier accepts", extauthz.ErrInvalidCredential)
	}
	if _, ok := req.Header("x-api-key"); ok {
		return extauthz.Identity{}, fmt.Errorf("%w: an x-api-key header no verifier accepts", extauthz.ErrInvalidCredential)
	}
	return extauthz.Anonymous, nil
}

// consumesAuthorization reports whether an identity of the method
// accounts for the request's Authorization header, if it has one: a
// Bearer API key for an API key, any other Bearer token for a JWT.
func consumesAuthorization(req *extauthz.Request, method string) bool {
	if _, present := req.Header("authorization"); !present {
		return true
	}
	tok, _, ok := Bearer(req)
	switch {
	case !ok:
		return false
	case strings.HasPrefix(tok, token.KindAPIKey.Prefix()):
		return method == extauthz.MethodAPIKey
	}
	return method == extauthz.MethodJWT
}

// queryParams are the query parameters that carry credentials by
// convention (RFC 6750 §2.3 access_token, and the usual API key names).
var queryParams = []string{"access_token", "api_key", "apikey", "api-key", "token", "key", "session", "id_token"}

// queryCredential reports whether the request target's query carries a
// credential, and names it: a parameter named like one (in any case, with
// or without a "[…]" suffix), or a value that is one of our tokens or
// looks like a JWT. Pairs are split on "&" and ";" and decoded leniently,
// so a query that a strict parser would reject cannot hide one.
func queryCredential(target string) (string, bool) {
	_, query, ok := strings.Cut(target, "?")
	if !ok {
		return "", false
	}
	for _, pair := range strings.FieldsFunc(query, func(r rune) bool { return r == '&' || r == ';' }) {
		name, value, _ := strings.Cut(pair, "=")
		name, value = lenientUnescape(name), lenientUnescape(value)
		if i := strings.IndexByte(name, '['); i >= 0 {
			name = name[:i]
		}
		for _, p := range queryParams {
			if strings.EqualFold(strings.TrimSpace(name), p) {
				return p, true
			}
		}
		for _, prefix := range []string{token.KindAPIKey.Prefix(), token.KindSession.Prefix(), "eyJ"} {
			if strings.HasPrefix(strings.TrimSpace(value), prefix) {
				return name, true
			}
		}
	}
	return "", false
}

// lenientUnescape decodes a query component, "+" as a space; where it is
// not valid percent-encoding it is taken as it is.
func lenientUnescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// Bearer returns the token of the request's Authorization header when its
// scheme is Bearer (RFC 6750 §2.1: case-insensitive scheme, one space, a
// b64token). present says whether the request has an Authorization header
// at all; ok whether it is a well-formed Bearer credential. Envoy joins
// repeated headers with ",", which a b64token cannot contain, so two
// Authorization headers are not well-formed.
func Bearer(req *extauthz.Request) (tok string, present, ok bool) {
	v, present := req.Header("authorization")
	if !present {
		return "", false, false
	}
	scheme, tok, found := strings.Cut(v, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") || !isB64Token(tok) {
		return "", true, false
	}
	return tok, true, true
}

// isB64Token reports whether s is an RFC 6750 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}
