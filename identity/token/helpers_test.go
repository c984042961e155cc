package token

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// t0 is the start of every test timeline.
var t0 = time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)

// repeatReader yields b forever: a fixed "random" source.
type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// countReader yields 0, 1, 2, … (mod 256).
type countReader struct{ n byte }

func (r *countReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.n
		r.n++
	}
	return len(p), nil
}

func mustKey(t testing.TB, alg Alg, now time.Time) *SigningKey {
	t.Helper()
	k, err := GenerateKey(alg, rand.Reader, now)
	if err != nil {
		t.Fatalf("GenerateKey(%s): %v", alg, err)
	}
	return k
}

func mustKeySet(t testing.TB, keys ...*SigningKey) KeySet {
	t.Helper()
	ks, err := NewKeySet(keys...)
	if err != nil {
		t.Fatalf("NewKeySet: %v", err)
	}
	return ks
}

// claimsAt returns typical identity-service claims issued at iat and valid
// for ttl.
func claimsAt(iat time.Time, ttl time.Duration) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": "https://id.example",
		"aud": "mcp",
		"sub": "user-1",
		"iat": iat.Unix(),
		"exp": iat.Add(ttl).Unix(),
	}
}

// clock returns a WithClock option fixed at now.
func clock(now time.Time) VerifyOption {
	return WithClock(func() time.Time { return now })
}

var allAlgs = []Alg{ES256, EdDSA, RS256}
