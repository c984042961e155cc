package password

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzVerifyEncoded feeds Verify arbitrary stored strings and passwords. It
// must not panic, must report every failure as ErrMalformedHash, must accept
// only canonical encodings, and must never say ok except for a hash of the
// seeds with its right password (in any Unicode normalization form).
func FuzzVerifyEncoded(f *testing.F) {
	const pw = "seed password"
	good := cheap(pw, "0123456789abcdef", 64, 1, 1, 32)
	// The hashes of the seeds (here and in testdata) and their passwords.
	other := cheap(pw, "saltsalt", 128, 2, 2, 16)
	right := map[string]string{
		good:  pw,
		other: pw,
		"$argon2id$v=19$m=32,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$vPCiYqLUEQmWC7yq3p98JA":                      "crème brûlée",
		"$argon2id$v=19$m=64,t=2,p=1$TmFDbC1zYWx0LTE2Ynl0ZQ$Xb/g005ShfXNGC+d2UPxzE9e96v5/LGWpg12EsvTv+0": "correct horse battery staple",
	}
	f.Add(good, pw)
	f.Add(good, "wrong")
	f.Add(other, "")
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQwMTIzNDU2Nw$R66indAPvvbGnyLR7rZk80UY+cWGifuktjTMSameUiA", "password")
	f.Add("$argon2id$v=19$m=4294967295,t=4294967295,p=255$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "x")
	f.Add("$argon2id$v=19$m=64,t=1,p=1$$", "")
	f.Add("$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA", "")
	f.Add("$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", "")
	f.Add("$argon2id$v=19$m=064,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA", "")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, encoded, password string) {
		if h, err := decodePHC(encoded); err == nil && uint64(h.memory)*uint64(h.iterations) > 4096 {
			// Valid but costly parameters: their bounds are tested in
			// TestVerify; keep each fuzz execution cheap.
			t.Skip()
		}
		ok, err := Verify(password, encoded)
		if err != nil {
			if ok {
				t.Fatalf("Verify = true, %v", err)
			}
			if !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("Verify error %v does not wrap ErrMalformedHash", err)
			}
			return
		}
		h, _ := decodePHC(encoded)
		if got := h.encode(); got != encoded {
			t.Fatalf("accepted a non-canonical encoding %q (canonical %q)", encoded, got)
		}
		if want, known := right[encoded]; ok && (!known || string(nfc(password)) != string(nfc(want))) {
			t.Fatalf("Verify(%q, %q) = true", password, encoded)
		}
	})
}

// FuzzNormalizeEmail checks that NormalizeEmail never panics, that its
// results are bounded bare addresses with an ASCII domain, and that it is
// idempotent.
func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{
		"alice@example.com",
		"Alice.Smith+tag@Example.COM",
		" user@bücher.de ",
		"Jürgen@BÜCHER.de",
		"ju\u0308rgen@example.de",
		"info@例え.jp",
		"a@ｅｘａｍｐｌｅ.com",
		"Alice <alice@example.com>",
		"alice@example.com.",
		"a@b@c.com",
		`"quoted"@example.com`,
		"\u0130stanbul@example.com",
		"ǅemal@example.com",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := NormalizeEmail(s)
		if err != nil {
			if out != "" || !errors.Is(err, ErrInvalidEmail) {
				t.Fatalf("NormalizeEmail(%q) = %q, %v", s, out, err)
			}
			return
		}
		if len(out) > maxEmailLen || !utf8.ValidString(out) || strings.Count(out, "@") != 1 {
			t.Fatalf("NormalizeEmail(%q) = %q", s, out)
		}
		if _, domain, _ := strings.Cut(out, "@"); strings.ToLower(domain) != domain || strings.ContainsFunc(domain, func(r rune) bool { return r >= utf8.RuneSelf }) {
			t.Fatalf("NormalizeEmail(%q) = %q: domain not lower-case ASCII", s, out)
		}
		again, err := NormalizeEmail(out)
		if err != nil || again != out {
			t.Fatalf("NormalizeEmail(%q) = %q, but NormalizeEmail(%q) = %q, %v", s, out, out, again, err)
		}
	})
}
