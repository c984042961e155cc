package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Alg is a JWS algorithm the identity service signs with.
type Alg string

// The supported algorithms. ES256 is the default: small keys and tokens, fast
// to sign and verify, accepted everywhere.
const (
	ES256 Alg = "ES256" // ECDSA P-256 with SHA-256
	EdDSA Alg = "EdDSA" // Ed25519
	RS256 Alg = "RS256" // RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys, for old verifiers
)

// DefaultAlg is the algorithm to use when configuration names none.
const DefaultAlg = ES256

// DefaultSigningPeriod is how long GenerateKey lets a key sign (NotAfter -
// CreatedAt). Rotate sets its own.
const DefaultSigningPeriod = 30 * 24 * time.Hour

// rsaBits is the RSA modulus size GenerateKey uses and the least
// UnmarshalPrivate accepts.
const rsaBits = 2048

var (
	// ErrUnsupportedAlg is an algorithm outside ES256, EdDSA and RS256.
	ErrUnsupportedAlg = errors.New("token: unsupported signing algorithm")
	// ErrInvalidKey is key material or a key envelope that is unusable:
	// undecodable, of the wrong type for its algorithm, too weak, with a
	// kid that does not match the key, or with impossible times.
	ErrInvalidKey = errors.New("token: invalid signing key")
)

// method returns the jwt signing method of a.
func (a Alg) method() (jwt.SigningMethod, error) {
	switch a {
	case ES256:
		return jwt.SigningMethodES256, nil
	case EdDSA:
		return jwt.SigningMethodEdDSA, nil
	case RS256:
		return jwt.SigningMethodRS256, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnsupportedAlg, string(a))
}

// SigningKey is one JWT signing key of the identity service with its
// lifecycle. It signs from CreatedAt until NotAfter; a KeySet keeps
// publishing its public half for overlap longer, so every token it signed
// can be verified until it expires.
type SigningKey struct {
	// ID is the kid: the RFC 7638 JWK thumbprint (SHA-256, base64url, 43
	// characters) of the public key, so it is derived from the key, equal
	// wherever the key is, and checked when the key is loaded.
	ID        string
	Alg       Alg
	CreatedAt time.Time
	// NotAfter is the first instant the key no longer signs.
	NotAfter time.Time

	private crypto.Signer
}

// GenerateKey returns a new key for alg that signs from now for
// DefaultSigningPeriod.
//
// random (crypto/rand.Reader in production) is used where the standard
// library lets it be: for Ed25519 keys. Since Go 1.26 ECDSA and RSA key
// generation always draw from the system CSPRNG (tests that need
// reproducible keys use testing/cryptotest.SetGlobalRandom).
func GenerateKey(alg Alg, random io.Reader, now time.Time) (*SigningKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), random)
	case EdDSA:
		_, priv, err = ed25519.GenerateKey(random)
	case RS256:
		priv, err = rsa.GenerateKey(random, rsaBits)
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedAlg, string(alg))
	}
	if err != nil {
		return nil, fmt.Errorf("token: generating %s key: %w", alg, err)
	}
	return newSigningKey(alg, priv, now, now.Add(DefaultSigningPeriod))
}

// newSigningKey checks that priv suits alg and derives the kid.
func newSigningKey(alg Alg, priv crypto.Signer, createdAt, notAfter time.Time) (*SigningKey, error) {
	if err := checkKeyType(alg, priv); err != nil {
		return nil, err
	}
	kid, err := thumbprint(priv.Public())
	if err != nil {
		return nil, err
	}
	return &SigningKey{ID: kid, Alg: alg, CreatedAt: createdAt, NotAfter: notAfter, private: priv}, nil
}

// checkKeyType reports whether priv is a private key alg signs with.
func checkKeyType(alg Alg, priv crypto.Signer) error {
	switch alg {
	case ES256:
		if k, ok := priv.(*ecdsa.PrivateKey); ok && k.Curve == elliptic.P256() {
			return nil
		}
	case EdDSA:
		if k, ok := priv.(ed25519.PrivateKey); ok && len(k) == ed25519.PrivateKeySize {
			return nil
		}
	case RS256:
		if k, ok := priv.(*rsa.PrivateKey); ok {
			if k.N.BitLen() < rsaBits {
				return fmt.Errorf("%w: RSA key of %d bits, want at least %d", ErrInvalidKey, k.N.BitLen(), rsaBits)
			}
			return nil
		}
	default:
		return fmt.Errorf("%w: %q", ErrUnsupportedAlg, string(alg))
	}
	return fmt.Errorf("%w: %T is not a %s key", ErrInvalidKey, priv, alg)
}

// Public returns the public half of the key (*ecdsa.PublicKey,
// ed25519.PublicKey or *rsa.PublicKey), or nil for a zero SigningKey.
func (k *SigningKey) Public() crypto.PublicKey {
	if k.private == nil {
		return nil
	}
	return k.private.Public()
}

// SignsAt reports whether k's signing window holds now:
// CreatedAt <= now < NotAfter.
func (k *SigningKey) SignsAt(now time.Time) bool {
	return !now.Before(k.CreatedAt) && now.Before(k.NotAfter)
}

// thumbprint returns the RFC 7638 SHA-256 thumbprint of pub, base64url
// without padding. The JWK members come from jwkset; RFC 7638 fixes which
// members count and their order (lexicographic, no whitespace), which the
// struct field order below reproduces.
func thumbprint(pub crypto.PublicKey) (string, error) {
	j, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Validate: jwkset.JWKValidateOptions{SkipAll: true}})
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	m := j.Marshal()
	var canonical any
	switch m.KTY {
	case jwkset.KtyEC:
		canonical = struct {
			Crv string `json:"crv"`
			Kty string `json:"kty"`
			X   string `json:"x"`
			Y   string `json:"y"`
		}{string(m.CRV), string(m.KTY), m.X, m.Y}
	case jwkset.KtyOKP:
		canonical = struct {
			Crv string `json:"crv"`
			Kty string `json:"kty"`
			X   string `json:"x"`
		}{string(m.CRV), string(m.KTY), m.X}
	case jwkset.KtyRSA:
		canonical = struct {
			E   string `json:"e"`
			Kty string `json:"kty"`
			N   string `json:"n"`
		}{m.E, string(m.KTY), m.N}
	default:
		return "", fmt.Errorf("%w: key type %q", ErrInvalidKey, string(m.KTY))
	}
	b, err := json.Marshal(canonical)
	if err != nil {
		return "", fmt.Errorf("token: thumbprint: %w", err)
	}
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}
