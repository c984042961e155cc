package credentials

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzJWTPreparse feeds arbitrary strings to the pre-parse. It must not
// panic; what it accepts has three canonical base64url segments (each
// decodes strictly and re-encodes to itself), a header object with an
// asymmetric alg and none of the refused parameters, and a payload object
// with the iss it reported; what it refuses, it refuses for a named
// reason. On every segment, jwtCanonical must agree with the round trip.
// The seed corpus holds real tokens and the attack shapes of TestJWTVerify.
func FuzzJWTPreparse(f *testing.F) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, name := range []string{"rsa", "ec", "ed"} {
		f.Add(jwtSign(f, jwtKey(name), jwtClaims(now)))
	}
	payload, _ := json.Marshal(jwtClaims(now))
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, h := range []string{
		`{"alg":"none"}`, `{"alg":"HS256","kid":"rsa-1"}`, `{"alg":"ES256","crit":["b64"]}`,
		`{"alg":"ES256","alg":"none"}`, `{"alg":"ES256","jwk":{}}`, `[]`, `{"alg":"ES256"}x`,
	} {
		f.Add(enc(h) + "." + enc(string(payload)) + ".AAAA")
	}
	f.Add(enc(`{"alg":"ES256","kid":"k"}`) + "." + enc(`{"iss":"a","iss":"b"}`) + ".AAAA")
	f.Add("e30=.e30=.AAAA")
	f.Add("a.b.c")
	f.Add("..")

	f.Fuzz(func(t *testing.T, tok string) {
		for _, seg := range strings.Split(tok, ".") {
			dec, err := base64.RawURLEncoding.Strict().DecodeString(seg)
			roundTrip := err == nil && len(seg) > 0 && base64.RawURLEncoding.EncodeToString(dec) == seg
			if got := jwtCanonical(seg); got != roundTrip {
				t.Fatalf("jwtCanonical(%q) = %v, round trip %v", seg, got, roundTrip)
			}
		}

		h, err := jwtPreparse(tok, DefaultMaxJWTSize)
		if err != nil {
			for _, reason := range []error{errJWTMalformed, errJWTHeader, errJWTAlg, errJWTIssuer} {
				if errors.Is(err, reason) {
					return
				}
			}
			t.Fatalf("refused for no named reason: %v", err)
		}
		if len(tok) > DefaultMaxJWTSize {
			t.Fatalf("accepted %d bytes", len(tok))
		}
		segs := strings.Split(tok, ".")
		if len(segs) != 3 {
			t.Fatalf("accepted %d segments", len(segs))
		}
		var decoded [3][]byte
		for i, seg := range segs {
			b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
			if err != nil || base64.RawURLEncoding.EncodeToString(b) != seg {
				t.Fatalf("accepted a non-canonical segment %q", seg)
			}
			decoded[i] = b
		}
		var header, claims map[string]any
		if err := json.Unmarshal(decoded[0], &header); err != nil {
			t.Fatalf("accepted a header that is not an object: %v", err)
		}
		if alg, _ := header["alg"].(string); !jwtAsymmetric[alg] || alg != h.alg {
			t.Fatalf("accepted alg %v (reported %q)", header["alg"], h.alg)
		}
		for _, p := range jwtRefusedHeaders {
			if _, ok := header[p]; ok {
				t.Fatalf("accepted header parameter %s", p)
			}
		}
		if kid, _ := header["kid"].(string); kid != h.kid {
			t.Fatalf("kid %q, reported %q", kid, h.kid)
		}
		if err := json.Unmarshal(decoded[1], &claims); err != nil {
			t.Fatalf("accepted a payload that is not an object: %v", err)
		}
		if iss, _ := claims["iss"].(string); iss == "" || iss != h.iss {
			t.Fatalf("iss %v, reported %q", claims["iss"], h.iss)
		}
	})
}
