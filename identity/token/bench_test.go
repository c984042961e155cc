package token

import (
	"crypto/rand"
	"testing"
	"time"
)

// BenchmarkRandRead is the baseline for New: reading its 32 random bytes.
func BenchmarkRandRead(b *testing.B) {
	var buf [RandomBytes]byte
	for b.Loop() {
		if _, err := rand.Read(buf[:]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(KindAPIKey, rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	s, err := New(KindAPIKey, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	garbage := replaceAt(s, Len-1, nextDigit(s[Len-1]))
	b.Run("valid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Parse(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bad checksum", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Parse(garbage); err == nil {
				b.Fatal("accepted")
			}
		}
	})
}

func BenchmarkDigestOf(b *testing.B) {
	s, err := New(KindAPIKey, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = DigestOf(s)
	}
}

func BenchmarkSign(b *testing.B) {
	for _, alg := range allAlgs {
		b.Run(string(alg), func(b *testing.B) {
			k := mustKey(b, alg, t0)
			c := claimsAt(t0, time.Hour)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.Sign(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, alg := range allAlgs {
		b.Run(string(alg), func(b *testing.B) {
			k := mustKey(b, alg, t0)
			// Three keys, as during a rotation with an algorithm change.
			ks := mustKeySet(b, mustKey(b, ES256, t0), mustKey(b, EdDSA, t0), k)
			tok, err := k.Sign(claimsAt(t0, time.Hour))
			if err != nil {
				b.Fatal(err)
			}
			opts := []VerifyOption{clock(t0), WithIssuer("https://id.example"), WithAudience("mcp")}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Verify(tok, ks, opts...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
