package credentials

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"testing"
	"time"
)

// FuzzJWKSParse feeds arbitrary documents to jwksParse, as an identity
// provider's JWK set endpoint might serve them. No panic. A set that
// parses holds a key, and every key it keeps has a kid the document
// names, an asymmetric alg or none, and is a public key a supported
// algorithm can use: RSA of at least 2048 bits, ECDSA on P-256, P-384 or
// P-521, Ed25519 — never a symmetric or a private key. find returns a
// kept key only for an algorithm it fits, and for at least one.
func FuzzJWKSParse(f *testing.F) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Add(jwtJWKS(f, jwtKey("rsa"), jwtKey("ec"), jwtKey("ed")))
	f.Add(jwtJWKS(f, jwtKey("rsa1k"), jwtKey("ec2")))
	f.Add([]byte(`{"keys":[{"kty":"oct","kid":"hmac","k":"c2VjcmV0"},{"kty":"EC","kid":"junk","crv":"P-256","x":"AA","y":"AA"}]}`))
	f.Add([]byte(`{"keys":[]}`))
	// A usable key beside members that are not keys.
	usable := jwtJWKS(f, jwtKey("ec"))
	f.Add(append(bytes.TrimSuffix(bytes.TrimSpace(usable), []byte("]}")), []byte(`,0,{"kid":7}]}`)...))
	f.Fuzz(func(t *testing.T, doc []byte) {
		set, err := jwksParse(doc, now)
		if err != nil {
			if set != nil {
				t.Fatalf("a set and an error: %v", err)
			}
			return
		}
		// The keys' kids, of the members that are objects with a string
		// kid: the parser skips any other member, as it skips a key it
		// cannot use.
		var named struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(doc, &named); err != nil {
			t.Fatalf("parsed a document encoding/json refuses: %v", err)
		}
		kids := map[string]bool{}
		for _, raw := range named.Keys {
			var k struct {
				KID string `json:"kid"`
			}
			if json.Unmarshal(raw, &k) == nil {
				kids[k.KID] = true
			}
		}
		if len(set.keys) == 0 {
			t.Fatal("a set without keys")
		}
		for kid, ks := range set.keys {
			if kid == "" || !kids[kid] {
				t.Fatalf("kept kid %q, which the document does not name", kid)
			}
			for _, k := range ks {
				switch pub := k.pub.(type) {
				case *rsa.PublicKey:
					if pub.N.BitLen() < jwksMinRSABits {
						t.Fatalf("kept a %d-bit RSA key", pub.N.BitLen())
					}
				case *ecdsa.PublicKey:
					if name := pub.Curve.Params().Name; name != "P-256" && name != "P-384" && name != "P-521" {
						t.Fatalf("kept an ECDSA key on %s", name)
					}
				case ed25519.PublicKey:
					if len(pub) != ed25519.PublicKeySize {
						t.Fatalf("kept a %d-byte Ed25519 key", len(pub))
					}
				default:
					t.Fatalf("kept a %T", pub)
				}
				if k.alg != "" && !jwtAsymmetric[k.alg] {
					t.Fatalf("kept a key for alg %q", k.alg)
				}
				usable := false
				for alg := range jwtAsymmetric {
					usable = usable || (k.alg == "" || k.alg == alg) && jwksKeyFits(k.pub, alg)
				}
				if !usable {
					t.Fatalf("kept a %T (alg %q) no algorithm can use", k.pub, k.alg)
				}
			}
			for alg := range jwtAsymmetric {
				pub, known := set.find(kid, alg)
				if !known || pub != nil && !jwksKeyFits(pub, alg) {
					t.Fatalf("find(%q, %s) = %T, %v", kid, alg, pub, known)
				}
			}
		}
	})
}
