package password

import (
	"crypto/rand"
	"testing"
)

// BenchmarkHash and BenchmarkVerify measure DefaultParams; VerifyDummy should
// cost the same as Verify (ratio ≈ 1), which is its whole point.
func BenchmarkHash(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Hash("correct horse battery staple", DefaultParams, rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	enc, err := Hash("correct horse battery staple", DefaultParams, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := Verify("correct horse battery staple", enc); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkVerifyDummy(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		VerifyDummy("correct horse battery staple", DefaultParams)
	}
}

// BenchmarkVerifyRejectsAbsurdParams shows the ceiling check costs nothing
// like the hash it refuses to compute.
func BenchmarkVerifyRejectsAbsurdParams(b *testing.B) {
	const enc = "$argon2id$v=19$m=1048576,t=100,p=1$c29tZXNhbHQwMTIzNDU2Nw$R66indAPvvbGnyLR7rZk80UY+cWGifuktjTMSameUiA"
	for b.Loop() {
		if _, err := Verify("x", enc); err == nil {
			b.Fatal("accepted")
		}
	}
}

func BenchmarkPolicyCheck(b *testing.B) {
	for b.Loop() {
		if err := DefaultPolicy.Check("correct horse battery staple", "alice@example.com"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalizeEmail(b *testing.B) {
	for b.Loop() {
		if _, err := NormalizeEmail("Alice.Smith@Bücher.DE"); err != nil {
			b.Fatal(err)
		}
	}
}
