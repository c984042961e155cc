package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

type publicKey interface {
	Equal(crypto.PublicKey) bool
}

func TestGenerateKey(t *testing.T) {
	tests := []struct {
		name string
		alg  Alg
		pub  func(crypto.PublicKey) bool
	}{
		{"ok/ES256", ES256, func(p crypto.PublicKey) bool { k, ok := p.(*ecdsa.PublicKey); return ok && k.Curve == elliptic.P256() }},
		{"ok/EdDSA", EdDSA, func(p crypto.PublicKey) bool { _, ok := p.(ed25519.PublicKey); return ok }},
		{"ok/RS256", RS256, func(p crypto.PublicKey) bool { k, ok := p.(*rsa.PublicKey); return ok && k.N.BitLen() == 2048 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := mustKey(t, tt.alg, t0)
			if k.Alg != tt.alg || !k.CreatedAt.Equal(t0) || !k.NotAfter.Equal(t0.Add(DefaultSigningPeriod)) {
				t.Fatalf("key = %s %v..%v", k.Alg, k.CreatedAt, k.NotAfter)
			}
			if len(k.ID) != 43 || strings.ContainsAny(k.ID, "+/=") {
				t.Fatalf("kid %q is not a base64url SHA-256 thumbprint", k.ID)
			}
			if !tt.pub(k.Public()) {
				t.Fatalf("Public() = %T", k.Public())
			}
			if kid, err := thumbprint(k.Public()); err != nil || kid != k.ID {
				t.Fatalf("thumbprint = %q, %v; want the kid", kid, err)
			}
			if other := mustKey(t, tt.alg, t0); other.ID == k.ID {
				t.Fatal("two keys share a kid")
			}
		})
	}
	t.Run("ok/EdDSA uses the given random", func(t *testing.T) {
		a, err := GenerateKey(EdDSA, repeatReader(9), t0)
		if err != nil {
			t.Fatal(err)
		}
		b, err := GenerateKey(EdDSA, repeatReader(9), t0)
		if err != nil {
			t.Fatal(err)
		}
		if a.ID != b.ID {
			t.Fatal("same seed, different keys")
		}
	})
	t.Run("fail/unsupported alg", func(t *testing.T) {
		for _, alg := range []Alg{"", "HS256", "none", "ES384", "es256", "PS256"} {
			if _, err := GenerateKey(alg, rand.Reader, t0); !errors.Is(err, ErrUnsupportedAlg) {
				t.Fatalf("GenerateKey(%q) err = %v, want ErrUnsupportedAlg", alg, err)
			}
		}
	})
}

// TestThumbprintVectors checks kids against the RFC 7638 §3.1 (RSA) and
// RFC 8037 §A.3 (Ed25519) examples.
func TestThumbprintVectors(t *testing.T) {
	b64 := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	n := "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	tests := []struct {
		name string
		pub  crypto.PublicKey
		want string
	}{
		{"ok/RFC 7638 RSA", &rsa.PublicKey{N: new(big.Int).SetBytes(b64(n)), E: 65537}, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"},
		{"ok/RFC 8037 Ed25519", ed25519.PublicKey(b64("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := thumbprint(tt.pub); err != nil || got != tt.want {
				t.Fatalf("thumbprint = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestMarshalPrivateRoundTrip(t *testing.T) {
	for _, alg := range allAlgs {
		t.Run("ok/"+string(alg), func(t *testing.T) {
			k := mustKey(t, alg, t0.Add(1500*time.Millisecond))
			data, err := MarshalPrivate(k)
			if err != nil {
				t.Fatal(err)
			}
			back, err := UnmarshalPrivate(data)
			if err != nil {
				t.Fatal(err)
			}
			if back.ID != k.ID || back.Alg != k.Alg || !back.CreatedAt.Equal(k.CreatedAt) || !back.NotAfter.Equal(k.NotAfter) {
				t.Fatalf("round trip: got %+v, want %+v", back, k)
			}
			if !k.Public().(publicKey).Equal(back.Public()) {
				t.Fatal("round trip changed the public key")
			}
			// The reloaded key signs tokens the original set verifies.
			tok, err := back.Sign(claimsAt(t0, time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(tok, mustKeySet(t, k), clock(t0)); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestUnmarshalPrivateFails(t *testing.T) {
	es := mustKey(t, ES256, t0)
	good, err := MarshalPrivate(es)
	if err != nil {
		t.Fatal(err)
	}
	// edit returns good with one member of the envelope changed.
	edit := func(member string, value any) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		m[member] = value
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pemOf := func(key any) string {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other := mustKey(t, ES256, t0)
	var envelope map[string]any
	if err := json.Unmarshal(good, &envelope); err != nil {
		t.Fatal(err)
	}
	pk := envelope["private_key"].(string)

	tests := []struct {
		name    string
		in      []byte
		wantErr error
	}{
		{"fail/empty", nil, ErrInvalidKey},
		{"fail/not json", []byte("-----BEGIN PRIVATE KEY-----"), ErrInvalidKey},
		{"fail/trailing data", append(append([]byte{}, good...), []byte(`{}`)...), ErrInvalidKey},
		{"fail/trailing bracket", append(append([]byte{}, good...), []byte(`]garbage`)...), ErrInvalidKey},
		{"fail/trailing brace", append(append([]byte{}, good...), '}'), ErrInvalidKey},
		{"fail/unknown member", edit("extra", 1), ErrInvalidKey},
		{"fail/version", edit("version", 2), ErrInvalidKey},
		{"fail/unsupported alg", edit("alg", "HS256"), ErrUnsupportedAlg},
		{"fail/alg of another key type", edit("alg", "EdDSA"), ErrInvalidKey},
		{"fail/kid of another key", edit("kid", other.ID), ErrInvalidKey},
		{"fail/empty kid", edit("kid", ""), ErrInvalidKey},
		{"fail/times reversed", edit("not_after", t0.Add(-time.Second)), ErrInvalidKey},
		{"fail/no private key", edit("private_key", ""), ErrInvalidKey},
		{"fail/pem garbage", edit("private_key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), ErrInvalidKey},
		{"fail/wrong pem type", edit("private_key", strings.ReplaceAll(pk, "PRIVATE KEY", "EC PRIVATE KEY")), ErrInvalidKey},
		{"fail/two pem blocks", edit("private_key", pk+pk), ErrInvalidKey},
		{"fail/P-384 key as ES256", edit("private_key", pemOf(p384)), ErrInvalidKey},
		{"fail/1024-bit RSA", func() []byte {
			b := edit("alg", "RS256")
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			m["private_key"] = pemOf(small)
			out, _ := json.Marshal(m)
			return out
		}(), ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := UnmarshalPrivate(tt.in)
			if !errors.Is(err, tt.wantErr) || k != nil {
				t.Fatalf("UnmarshalPrivate = %v, %v; want %v", k, err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), pk[40:80]) {
				t.Fatalf("error %q quotes key material", err)
			}
		})
	}
	t.Run("fail/marshal zero key", func(t *testing.T) {
		if _, err := MarshalPrivate(&SigningKey{Alg: ES256}); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("err = %v", err)
		}
		if _, err := MarshalPrivate(nil); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("err = %v", err)
		}
	})
}
