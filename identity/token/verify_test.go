package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestSignVerify(t *testing.T) {
	for _, alg := range allAlgs {
		t.Run("ok/"+string(alg), func(t *testing.T) {
			k := mustKey(t, alg, t0)
			tok, err := k.Sign(claimsAt(t0, time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
			if err != nil {
				t.Fatal(err)
			}
			if parsed.Header["kid"] != k.ID || parsed.Header["typ"] != "JWT" || parsed.Header["alg"] != string(alg) {
				t.Fatalf("header = %v", parsed.Header)
			}
			claims, err := Verify(tok, mustKeySet(t, k), clock(t0.Add(time.Minute)), WithIssuer("https://id.example"), WithAudience("other", "mcp"))
			if err != nil {
				t.Fatal(err)
			}
			if claims["sub"] != "user-1" {
				t.Fatalf("claims = %v", claims)
			}
		})
	}
	t.Run("fail/zero key does not sign", func(t *testing.T) {
		if _, err := (&SigningKey{Alg: ES256}).Sign(claimsAt(t0, time.Hour)); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("err = %v", err)
		}
	})
}

// forge signs claims with method and key, with the given header values.
func forge(t *testing.T, method jwt.SigningMethod, key any, claims jwt.Claims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
			continue
		}
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func publicPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestVerifyAttacks(t *testing.T) {
	es := mustKey(t, ES256, t0)
	rs := mustKey(t, RS256, t0)
	ks := mustKeySet(t, es, rs)
	attackerRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	attackerEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	attackerEd := mustKey(t, EdDSA, t0)

	now := t0.Add(time.Minute)
	good := claimsAt(t0, time.Hour)
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	sign := func(k *SigningKey, c jwt.Claims) string {
		s, err := k.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := sign(es, good)
	parts := strings.Split(valid, ".")
	otherPayload := strings.Split(sign(es, with("sub", "admin")), ".")[1]
	defaults := []VerifyOption{clock(now), WithIssuer("https://id.example"), WithAudience("mcp")}
	defaults = defaults[:len(defaults):len(defaults)] // appends below copy

	tests := []struct {
		name    string
		token   string
		opts    []VerifyOption // nil: defaults
		wantErr error          // nil: must verify
	}{
		{"ok/ES256", valid, nil, nil},
		{"ok/RS256", sign(rs, good), nil, nil},
		{"ok/no iss or aud required", sign(es, with("iss", nil)), []VerifyOption{clock(now)}, nil},
		{"ok/expired within leeway", sign(es, with("exp", now.Add(-30*time.Second).Unix())), append(defaults, WithLeeway(time.Minute)), nil},

		{"fail/alg none", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good, map[string]any{"kid": es.ID}), nil, jwt.ErrTokenSignatureInvalid},
		{"fail/alg none without signature", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"`+es.ID+`"}`)) + "." + parts[1] + ".", nil, jwt.ErrTokenSignatureInvalid},
		{"fail/HS256 keyed with the EC public key", forge(t, jwt.SigningMethodHS256, publicPEM(t, es.Public()), good, map[string]any{"kid": es.ID}), nil, jwt.ErrTokenSignatureInvalid},
		{"fail/HS256 keyed with the RSA public key", forge(t, jwt.SigningMethodHS256, publicPEM(t, rs.Public()), good, map[string]any{"kid": rs.ID}), nil, jwt.ErrTokenSignatureInvalid},
		{"fail/RS256 presented for an ES256 kid", forge(t, jwt.SigningMethodRS256, attackerRSA, good, map[string]any{"kid": es.ID}), nil, ErrAlgNotAllowed},
		{"fail/EdDSA presented for an RS256 kid", forge(t, jwt.SigningMethodEdDSA, attackerEd.private, good, map[string]any{"kid": rs.ID}), nil, ErrAlgNotAllowed},
		{"fail/PS256 for an RS256 kid", forge(t, jwt.SigningMethodPS256, attackerRSA, good, map[string]any{"kid": rs.ID}), nil, jwt.ErrTokenSignatureInvalid},
		{"fail/ES256 signed by another key", forge(t, jwt.SigningMethodES256, attackerEC, good, map[string]any{"kid": es.ID}), nil, jwt.ErrTokenSignatureInvalid},
		{"fail/payload swapped", parts[0] + "." + otherPayload + "." + parts[2], nil, jwt.ErrTokenSignatureInvalid},
		{"fail/signature stripped", parts[0] + "." + parts[1] + ".", nil, jwt.ErrTokenSignatureInvalid},
		{"fail/unknown kid", sign(attackerEd, good), nil, ErrUnknownKID},
		{"fail/missing kid", forge(t, jwt.SigningMethodES256, es.private, good, nil), nil, ErrUnknownKID},
		{"fail/kid not a string", forge(t, jwt.SigningMethodES256, es.private, good, map[string]any{"kid": 1}), nil, ErrUnknownKID},
		{"fail/crit header", forge(t, jwt.SigningMethodES256, es.private, good, map[string]any{"kid": es.ID, "crit": []string{"exp"}}), nil, ErrCritHeader},
		{"fail/missing exp", sign(es, with("exp", nil)), nil, jwt.ErrTokenRequiredClaimMissing},
		{"fail/expired", sign(es, with("exp", now.Add(-time.Second).Unix())), nil, jwt.ErrTokenExpired},
		{"fail/expired beyond leeway", sign(es, with("exp", now.Add(-2*time.Minute).Unix())), append(defaults, WithLeeway(time.Minute)), jwt.ErrTokenExpired},
		{"fail/exp not a number", sign(es, with("exp", "tomorrow")), nil, jwt.ErrInvalidType},
		{"fail/not yet valid", sign(es, with("nbf", now.Add(time.Hour).Unix())), nil, jwt.ErrTokenNotValidYet},
		{"fail/issued in the future", sign(es, with("iat", now.Add(time.Hour).Unix())), nil, jwt.ErrTokenUsedBeforeIssued},
		{"fail/wrong iss", sign(es, with("iss", "https://evil.example")), nil, jwt.ErrTokenInvalidIssuer},
		{"fail/missing iss", sign(es, with("iss", nil)), nil, jwt.ErrTokenRequiredClaimMissing},
		{"fail/wrong aud", sign(es, with("aud", "billing")), nil, jwt.ErrTokenInvalidAudience},
		{"fail/missing aud", sign(es, with("aud", nil)), nil, jwt.ErrTokenRequiredClaimMissing},
		{"fail/garbage", "not.a.jwt", nil, jwt.ErrTokenMalformed},
		{"fail/empty", "", nil, jwt.ErrTokenMalformed},
		{"fail/opaque token", "mcpk_000000000000000000000000000000000000000000038rAdO", nil, jwt.ErrTokenMalformed},
		{"fail/oversize", sign(es, with("pad", strings.Repeat("x", MaxJWTLen))), nil, ErrInvalidToken},
		{"fail/leeway too large", valid, append(defaults, WithLeeway(time.Hour)), ErrVerifyOption},
		{"fail/negative leeway", valid, append(defaults, WithLeeway(-time.Second)), ErrVerifyOption},
		{"fail/nil clock", valid, append(defaults, WithClock(nil)), ErrVerifyOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if opts == nil {
				opts = defaults
			}
			claims, err := Verify(tt.token, ks, opts...)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) || !errors.Is(err, tt.wantErr) || claims != nil {
				t.Fatalf("Verify = %v, %v; want ErrInvalidToken and %v", claims, err, tt.wantErr)
			}
			if len(tt.token) > 20 && strings.Contains(err.Error(), tt.token[len(tt.token)-20:]) {
				t.Fatalf("error %q quotes the token", err)
			}
		})
	}
}

func TestVerifyEmptyKeySet(t *testing.T) {
	k := mustKey(t, ES256, t0)
	tok, err := k.Sign(claimsAt(t0, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(tok, KeySet{}, clock(t0)); !errors.Is(err, ErrUnknownKID) {
		t.Fatalf("Verify with no keys: %v, want ErrUnknownKID", err)
	}
}
