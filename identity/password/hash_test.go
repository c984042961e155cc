package password

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// Known answers. Each "reference" string is the output of the Argon2
// reference implementation's command-line tool (Debian's argon2 package,
// e.g. `echo -n password | argon2 somesalt01234567 -id -t 2 -k 19456 -p 1
// -l 32 -e`); each test also recomputes it with the argon2 package directly.
func TestHashKnownAnswer(t *testing.T) {
	tests := []struct {
		name      string
		password  string // as given to Hash
		hashed    string // the bytes argon2 must see (NFC)
		salt      string
		p         Params
		reference string
	}{
		{
			name:     "ok/default params",
			password: "password", hashed: "password", salt: "somesalt01234567", p: DefaultParams,
			reference: "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQwMTIzNDU2Nw$R66indAPvvbGnyLR7rZk80UY+cWGifuktjTMSameUiA",
		},
		{
			name:     "ok/two lanes",
			password: "correct horse battery staple", hashed: "correct horse battery staple", salt: "0123456789abcdef",
			p:         Params{Memory: 12288, Iterations: 3, Parallelism: 2, SaltLen: 16, KeyLen: 32},
			reference: "$argon2id$v=19$m=12288,t=3,p=2$MDEyMzQ1Njc4OWFiY2RlZg$s3F4O1avt5B0pI0GF6nk468GAvDNzGsN28p3BtRpBaw",
		},
		{
			name:     "ok/nfd input is hashed as nfc",
			password: norm.NFD.String("pässwörd-ünïcödé"), hashed: "p\u00e4ssw\u00f6rd-\u00fcn\u00efc\u00f6d\u00e9", salt: "saltsaltsaltsalt",
			p:         Params{Memory: 19456, Iterations: 2, Parallelism: 1, SaltLen: 16, KeyLen: 16},
			reference: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$38jNet3mnCqK8mqZ1X1hHw",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Hash(tt.password, tt.p, strings.NewReader(tt.salt))
			if err != nil {
				t.Fatalf("Hash: %v", err)
			}
			if got != tt.reference {
				t.Errorf("Hash = %s\nwant  %s (reference implementation)", got, tt.reference)
			}
			key := argon2.IDKey([]byte(tt.hashed), []byte(tt.salt), tt.p.Iterations, tt.p.Memory, tt.p.Parallelism, tt.p.KeyLen)
			direct := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", tt.p.Memory, tt.p.Iterations, tt.p.Parallelism,
				base64.RawStdEncoding.EncodeToString([]byte(tt.salt)), base64.RawStdEncoding.EncodeToString(key))
			if got != direct {
				t.Errorf("Hash = %s\nwant  %s (argon2.IDKey)", got, direct)
			}
			if ok, err := Verify(tt.hashed, got); !ok || err != nil {
				t.Errorf("Verify(NFC password) = %v, %v; want true, nil", ok, err)
			}
		})
	}
}

func TestHashFails(t *testing.T) {
	tests := []struct {
		name   string
		p      Params
		random io.Reader
		want   error
	}{
		{name: "fail/invalid params", p: Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}, random: rand.Reader, want: ErrInvalidParams},
		{name: "fail/short random", p: DefaultParams, random: strings.NewReader("only 15 bytes.."), want: io.ErrUnexpectedEOF},
		{name: "fail/empty random", p: DefaultParams, random: strings.NewReader(""), want: io.EOF},
		{name: "fail/nil random", p: DefaultParams},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Hash("a password of some length", tt.p, tt.random)
			if err == nil || got != "" {
				t.Fatalf("Hash = %q, %v; want an error", got, err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Hash error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestHashSaltsDiffer(t *testing.T) {
	a, err := Hash("same password twice", DefaultParams, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Hash("same password twice", DefaultParams, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two hashes of one password are equal: %s", a)
	}
}

// cheap builds a valid encoding with small (legacy-weak) parameters, so
// that the many Verify cases below cost little.
func cheap(password, salt string, m, t uint32, p uint8, keyLen uint32) string {
	key := argon2.IDKey([]byte(password), []byte(salt), t, m, p, keyLen)
	return phc{memory: m, iterations: t, parallelism: p, salt: []byte(salt), key: key}.encode()
}

func TestVerify(t *testing.T) {
	const pw = "tr0ub4dor&3-horse"
	good := cheap(pw, "0123456789abcdef", 64, 1, 1, 32)
	saltB64 := base64.RawStdEncoding.EncodeToString([]byte("0123456789abcdef"))
	keyB64 := good[strings.LastIndexByte(good, '$')+1:]
	withParams := func(params string) string { return "$argon2id$v=19$" + params + "$" + saltB64 + "$" + keyB64 }
	withSaltKey := func(salt, key string) string { return "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key }
	nfd := norm.NFD.String("crème brûlée à la façon")

	tests := []struct {
		name     string
		password string
		encoded  string
		ok       bool
		errs     []error // all must match; nil means no error
	}{
		{name: "ok/correct", password: pw, encoded: good, ok: true},
		{name: "ok/wrong password", password: pw + "!", encoded: good},
		{name: "ok/empty password", password: "", encoded: good},
		{name: "ok/case matters", password: strings.ToUpper(pw), encoded: good},
		{name: "ok/two lanes, 16-byte key", password: pw, encoded: cheap(pw, "saltsalt", 128, 2, 2, 16), ok: true},
		{name: "ok/nfd password against nfc hash", password: nfd, encoded: cheap(norm.NFC.String(nfd), "0123456789abcdef", 64, 1, 1, 32), ok: true},
		{name: "ok/invalid utf-8 password", password: "\xff\xfe pw", encoded: cheap("\xff\xfe pw", "0123456789abcdef", 64, 1, 1, 32), ok: true},
		{name: "ok/tampered iterations", password: pw, encoded: withParams("m=64,t=2,p=1")},
		{name: "ok/tampered memory", password: pw, encoded: withParams("m=72,t=1,p=1")},
		{name: "ok/tampered salt", password: pw, encoded: withSaltKey(base64.RawStdEncoding.EncodeToString([]byte("0123456789abcdeF")), keyB64)},
		{name: "ok/truncated key", password: pw, encoded: withSaltKey(saltB64, keyB64[:22])},

		{name: "fail/empty", encoded: "", errs: []error{ErrMalformedHash}},
		{name: "fail/no leading dollar", encoded: good[1:], errs: []error{ErrMalformedHash}},
		{name: "fail/garbage", encoded: "$$$$$", errs: []error{ErrMalformedHash}},
		{name: "fail/bcrypt", encoded: "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", errs: []error{ErrMalformedHash, ErrUnsupportedHash}},
		{name: "fail/argon2i", encoded: strings.Replace(good, "argon2id", "argon2i", 1), errs: []error{ErrMalformedHash, ErrUnsupportedHash}},
		{name: "fail/upper-case algorithm", encoded: strings.Replace(good, "argon2id", "ARGON2ID", 1), errs: []error{ErrMalformedHash}},
		{name: "fail/version 16", encoded: strings.Replace(good, "v=19", "v=16", 1), errs: []error{ErrMalformedHash, ErrUnsupportedHash}},
		{name: "fail/version missing", encoded: strings.Replace(good, "v=19$", "", 1), errs: []error{ErrMalformedHash}},
		{name: "fail/version not a number", encoded: strings.Replace(good, "v=19", "v=x", 1), errs: []error{ErrMalformedHash}},
		{name: "fail/extra field", encoded: good + "$", errs: []error{ErrMalformedHash}},
		{name: "fail/too long", encoded: good + strings.Repeat("A", 300), errs: []error{ErrMalformedHash}},
		{name: "fail/params out of order", encoded: withParams("t=1,m=64,p=1"), errs: []error{ErrMalformedHash}},
		{name: "fail/params missing", encoded: withParams("m=64,t=1"), errs: []error{ErrMalformedHash}},
		{name: "fail/params extra keyid", encoded: withParams("m=64,t=1,p=1,keyid=x"), errs: []error{ErrMalformedHash}},
		{name: "fail/leading zero", encoded: withParams("m=064,t=1,p=1"), errs: []error{ErrMalformedHash}},
		{name: "fail/plus sign", encoded: withParams("m=+64,t=1,p=1"), errs: []error{ErrMalformedHash}},
		{name: "fail/negative", encoded: withParams("m=64,t=-1,p=1"), errs: []error{ErrMalformedHash}},
		{name: "fail/space", encoded: withParams("m=64, t=1,p=1"), errs: []error{ErrMalformedHash}},
		{name: "fail/memory over uint32", encoded: withParams("m=4294967296,t=1,p=1"), errs: []error{ErrMalformedHash}},
		{name: "fail/memory over 1 GiB", encoded: withParams("m=1048577,t=1,p=1"), errs: []error{ErrMalformedHash, ErrInvalidParams}},
		{name: "fail/memory 4 GiB", encoded: withParams("m=4294967295,t=1,p=1"), errs: []error{ErrMalformedHash, ErrInvalidParams}},
		{name: "fail/iterations over 100", encoded: withParams("m=64,t=101,p=1"), errs: []error{ErrMalformedHash, ErrInvalidParams}},
		{name: "fail/work over 1 GiB pass", encoded: withParams("m=1048576,t=2,p=1"), errs: []error{ErrMalformedHash, ErrInvalidParams}},
		{name: "fail/iterations 0", encoded: withParams("m=64,t=0,p=1"), errs: []error{ErrMalformedHash, ErrInvalidParams}},
		{name: "fail/parallelism 0", encoded: withParams("m=64,t=1,p=0"), errs: []error{ErrMalformedHash, ErrInvalidParams}},
		{name: "fail/parallelism 17", encoded: withParams("m=1024,t=1,p=17"), errs: []error{ErrMalformedHash, ErrInvalidParams}},
		{name: "fail/parallelism 256", encoded: withParams("m=4096,t=1,p=256"), errs: []error{ErrMalformedHash, ErrInvalidParams}},
		{name: "fail/memory below 8 KiB per lane", encoded: withParams("m=15,t=1,p=2"), errs: []error{ErrMalformedHash, ErrInvalidParams}},
		{name: "fail/salt 7 bytes", encoded: withSaltKey("c2FsdHNhbA", keyB64), errs: []error{ErrMalformedHash}},
		{name: "fail/salt 65 bytes", encoded: withSaltKey(base64.RawStdEncoding.EncodeToString(make([]byte, 65)), keyB64), errs: []error{ErrMalformedHash}},
		{name: "fail/salt empty", encoded: withSaltKey("", keyB64), errs: []error{ErrMalformedHash}},
		{name: "fail/salt padded", encoded: withSaltKey(base64.StdEncoding.EncodeToString([]byte("0123456789abcdef")), keyB64), errs: []error{ErrMalformedHash}},
		{name: "fail/salt url alphabet", encoded: withSaltKey("____________________", keyB64), errs: []error{ErrMalformedHash}},
		{name: "fail/salt with newline", encoded: withSaltKey(saltB64[:10]+"\n"+saltB64[10:], keyB64), errs: []error{ErrMalformedHash}},
		{name: "fail/salt non-zero trailing bits", encoded: withSaltKey(saltB64[:len(saltB64)-1]+"h", keyB64), errs: []error{ErrMalformedHash}},
		{name: "fail/key 15 bytes", encoded: withSaltKey(saltB64, base64.RawStdEncoding.EncodeToString(make([]byte, 15))), errs: []error{ErrMalformedHash}},
		{name: "fail/key 65 bytes", encoded: withSaltKey(saltB64, base64.RawStdEncoding.EncodeToString(make([]byte, 65))), errs: []error{ErrMalformedHash}},
		{name: "fail/key invalid base64", encoded: withSaltKey(saltB64, "!"+keyB64[1:]), errs: []error{ErrMalformedHash}},
		{name: "fail/key impossible length", encoded: withSaltKey(saltB64, keyB64+"AA"), errs: []error{ErrMalformedHash}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := Verify(tt.password, tt.encoded)
			if ok != tt.ok {
				t.Errorf("Verify ok = %v, want %v", ok, tt.ok)
			}
			if tt.errs == nil {
				if err != nil {
					t.Errorf("Verify error = %v, want nil", err)
				}
				return
			}
			for _, want := range tt.errs {
				if !errors.Is(err, want) {
					t.Errorf("Verify error = %v, want it to wrap %v", err, want)
				}
			}
		})
	}
}

func TestVerifyHash(t *testing.T) {
	const pw = "a reasonably long passphrase"
	enc, err := Hash(pw, DefaultParams, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := Verify(pw, enc); !ok || err != nil {
		t.Errorf("Verify(right) = %v, %v; want true, nil", ok, err)
	}
	if ok, err := Verify(pw+" ", enc); ok || err != nil {
		t.Errorf("Verify(wrong) = %v, %v; want false, nil", ok, err)
	}
}

func TestNeedsRehash(t *testing.T) {
	salt16, key32 := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 32)
	enc := func(m, t uint32, p uint8, salt, key []byte) string {
		return phc{memory: m, iterations: t, parallelism: p, salt: salt, key: key}.encode()
	}
	current := enc(19456, 2, 1, salt16, key32)
	tests := []struct {
		name    string
		encoded string
		p       Params
		want    bool
	}{
		{name: "ok/same params", encoded: current, p: DefaultParams, want: false},
		{name: "ok/memory differs", encoded: enc(12288, 2, 1, salt16, key32), p: DefaultParams, want: true},
		{name: "ok/iterations differ", encoded: enc(19456, 3, 1, salt16, key32), p: DefaultParams, want: true},
		{name: "ok/parallelism differs", encoded: enc(19456, 2, 2, salt16, key32), p: DefaultParams, want: true},
		{name: "ok/salt length differs", encoded: enc(19456, 2, 1, salt16[:8], key32), p: DefaultParams, want: true},
		{name: "ok/key length differs", encoded: enc(19456, 2, 1, salt16, key32[:16]), p: DefaultParams, want: true},
		{name: "ok/stronger stored than current", encoded: current, p: Params{Memory: 12288, Iterations: 3, Parallelism: 1, SaltLen: 16, KeyLen: 32}, want: true},
		{name: "fail/malformed", encoded: "$argon2id$v=19$nonsense", p: DefaultParams, want: true},
		{name: "fail/other algorithm", encoded: "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", p: DefaultParams, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NeedsRehash(tt.encoded, tt.p); got != tt.want {
				t.Errorf("NeedsRehash = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestVerifyDummy(t *testing.T) {
	tests := []struct {
		name string
		p    Params
	}{
		{name: "ok/default params", p: DefaultParams},
		{name: "ok/other valid params", p: Params{Memory: 12288, Iterations: 3, Parallelism: 2, SaltLen: 16, KeyLen: 16}},
		{name: "fail/zero params fall back to default", p: Params{}},
		{name: "fail/absurd params fall back to default", p: Params{Memory: 1 << 30, Iterations: 1 << 20, Parallelism: 255, SaltLen: 1 << 20, KeyLen: 1 << 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			VerifyDummy("some password or other", tt.p) // must neither panic nor hang
		})
	}
}

// decodePHC is strict enough that every string it accepts is the canonical
// encoding of what it decoded.
func TestDecodeCanonical(t *testing.T) {
	for _, s := range []string{
		cheap("x", "saltsalt", 64, 1, 1, 16),
		"$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQwMTIzNDU2Nw$R66indAPvvbGnyLR7rZk80UY+cWGifuktjTMSameUiA",
	} {
		h, err := decodePHC(s)
		if err != nil {
			t.Fatalf("decodePHC(%s): %v", s, err)
		}
		if got := h.encode(); got != s {
			t.Errorf("encode(decodePHC(s)) = %s, want %s", got, s)
		}
	}
}
