package token

import (
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// Sign returns claims as a compact JWS signed by k, with the header's kid
// set to k.ID and typ to "JWT". It does not check k's signing window: pick k
// with KeySet.Signer. The claims should carry iss, aud and exp, which Verify
// requires.
func (k *SigningKey) Sign(claims jwt.Claims) (string, error) {
	if k == nil || k.private == nil {
		return "", fmt.Errorf("%w: no private key", ErrInvalidKey)
	}
	method, err := k.Alg.method()
	if err != nil {
		return "", err
	}
	t := jwt.NewWithClaims(method, claims) // with typ "JWT"
	t.Header["kid"] = k.ID
	s, err := t.SignedString(k.private)
	if err != nil {
		return "", fmt.Errorf("token: signing: %w", err)
	}
	return s, nil
}
