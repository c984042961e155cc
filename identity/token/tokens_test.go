package token

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/big"
	"strings"
	"testing"
)

func TestNewParseRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		kind   Kind
		prefix string
	}{
		{"ok/api key", KindAPIKey, "mcpk_"},
		{"ok/session", KindSession, "mcps_"},
		{"ok/invitation", KindInvitation, "mcpi_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 100 {
				s, err := New(tt.kind, rand.Reader)
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if len(s) != Len || !strings.HasPrefix(s, tt.prefix) {
					t.Fatalf("New = %q (len %d), want %s… of length %d", s, len(s), tt.prefix, Len)
				}
				got, err := Parse(s)
				if err != nil || got != tt.kind {
					t.Fatalf("Parse(New) = %v, %v; want %v", got, err, tt.kind)
				}
			}
		})
	}
}

// oracle spells a token with math/big and a string CRC, independently of
// encodeBody and encodeChecksum.
func oracle(kind Kind, b []byte) string {
	body := new(big.Int).SetBytes(b).Text(62)
	head := kind.Prefix() + strings.Repeat("0", bodyLen-len(body)) + body
	sum := big.NewInt(int64(crc32.ChecksumIEEE([]byte(head)))).Text(62)
	return head + strings.Repeat("0", checksumLen-len(sum)) + sum
}

func TestNewDeterministic(t *testing.T) {
	counting := make([]byte, RandomBytes)
	for i := range counting {
		counting[i] = byte(i)
	}
	tests := []struct {
		name   string
		kind   Kind
		random func() io.Reader
		want   string
	}{
		{"ok/zeros", KindAPIKey, func() io.Reader { return repeatReader(0) }, oracle(KindAPIKey, make([]byte, RandomBytes))},
		{"ok/ones", KindSession, func() io.Reader { return repeatReader(0xff) }, oracle(KindSession, bytes.Repeat([]byte{0xff}, RandomBytes))},
		{"ok/counting", KindInvitation, func() io.Reader { return &countReader{} }, oracle(KindInvitation, counting)},
		// Goldens: the format is stored and shown to users; it must not drift.
		{"ok/golden zeros", KindAPIKey, func() io.Reader { return repeatReader(0) }, "mcpk_000000000000000000000000000000000000000000038rAdO"},
		{"ok/golden counting", KindSession, func() io.Reader { return &countReader{} }, "mcps_003AuLtjc7TJLctqJ2Unu3mfAGcxg9lrkrCWgKbidLF3xMpW0"},
		{"ok/golden ones", KindInvitation, func() io.Reader { return repeatReader(0xff) }, "mcpi_YHJSKWDa6oz1al1yMhwzwM8llg7hJNUca2J5RoW8xP12qg7aE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(tt.kind, tt.random())
			if err != nil {
				t.Fatal(err)
			}
			b, err := New(tt.kind, tt.random())
			if err != nil {
				t.Fatal(err)
			}
			if a != b || a != tt.want {
				t.Fatalf("New = %q then %q, want %q both times", a, b, tt.want)
			}
			if _, err := Parse(a); err != nil {
				t.Fatalf("Parse: %v", err)
			}
		})
	}
}

// TestBase62MatchesMathBig checks encodeBody and decodeBody against
// math/big on random values.
func TestBase62MatchesMathBig(t *testing.T) {
	for range 2000 {
		var b [RandomBytes]byte
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		var got [bodyLen]byte
		encodeBody(&got, &b)
		want := oracle(KindAPIKey, b[:])[prefixLen : prefixLen+bodyLen]
		if string(got[:]) != want {
			t.Fatalf("encodeBody(%x) = %s, want %s", b, got, want)
		}
		back, ok := decodeBody(want)
		if !ok || back != b {
			t.Fatalf("decodeBody(%s) = %x, %v; want %x", want, back, ok, b)
		}
	}
}

func TestNewFails(t *testing.T) {
	tests := []struct {
		name    string
		kind    Kind
		random  io.Reader
		wantErr error
	}{
		{"fail/zero kind", 0, rand.Reader, ErrUnknownKind},
		{"fail/unknown kind", KindInvitation + 1, rand.Reader, ErrUnknownKind},
		{"fail/short random", KindAPIKey, bytes.NewReader(make([]byte, RandomBytes-1)), io.ErrUnexpectedEOF},
		{"fail/empty random", KindAPIKey, bytes.NewReader(nil), io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.kind, tt.random)
			if !errors.Is(err, tt.wantErr) || s != "" {
				t.Fatalf("New = %q, %v; want error %v", s, err, tt.wantErr)
			}
		})
	}
}

// replaceAt returns s with s[i] replaced by c.
func replaceAt(s string, i int, c byte) string {
	b := []byte(s)
	b[i] = c
	return string(b)
}

// nextDigit returns a base-62 digit other than c.
func nextDigit(c byte) byte {
	i := strings.IndexByte(base62Alphabet, c)
	return base62Alphabet[(i+1)%62]
}

func TestParse(t *testing.T) {
	valid, err := New(KindAPIKey, &countReader{n: 7})
	if err != nil {
		t.Fatal(err)
	}
	session, err := New(KindSession, repeatReader(0x42))
	if err != nil {
		t.Fatal(err)
	}
	// A body of 43 'Z's is 62^43-1 > 2^256: well-spelled but never made
	// by New. Give it a correct checksum so only the range check fails.
	head := "mcpk_" + strings.Repeat("Z", bodyLen)
	var sum [checksumLen]byte
	encodeChecksum(&sum, crc32.ChecksumIEEE([]byte(head)))
	overflow := head + string(sum[:])

	tests := []struct {
		name string
		in   string
		want Kind // 0: ErrMalformed expected
	}{
		{"ok/api key", valid, KindAPIKey},
		{"ok/session", session, KindSession},
		{"fail/empty", "", 0},
		{"fail/prefix only", "mcpk_", 0},
		{"fail/unknown prefix", "mcpx_" + valid[prefixLen:], 0},
		{"fail/upper-case prefix", "MCPK_" + valid[prefixLen:], 0},
		{"fail/prefix swapped to another kind", "mcps_" + valid[prefixLen:], 0},
		{"fail/one short", valid[:Len-1], 0},
		{"fail/one long", valid + "0", 0},
		{"fail/doubled", valid + valid, 0},
		{"fail/whitespace", " " + valid[:Len-1], 0},
		{"fail/trailing newline", valid[:Len-1] + "\n", 0},
		{"fail/dash in body", replaceAt(valid, prefixLen+3, '-'), 0},
		{"fail/underscore in body", replaceAt(valid, prefixLen+10, '_'), 0},
		{"fail/nul in body", replaceAt(valid, prefixLen+20, 0), 0},
		{"fail/bad char in checksum", replaceAt(valid, Len-1, '+'), 0},
		{"fail/body char flipped", replaceAt(valid, prefixLen+5, nextDigit(valid[prefixLen+5])), 0},
		{"fail/first body char flipped", replaceAt(valid, prefixLen, nextDigit(valid[prefixLen])), 0},
		{"fail/checksum char flipped", replaceAt(valid, Len-2, nextDigit(valid[Len-2])), 0},
		{"fail/body out of range", overflow, 0},
		{"fail/unicode same byte length", valid[:prefixLen+1] + "é" + valid[prefixLen+3:], 0},
		{"fail/unicode longer", valid[:prefixLen+1] + "é" + valid[prefixLen+2:], 0},
		{"fail/fullwidth digits", strings.Repeat("０", Len/3), 0},
		{"fail/invalid utf8", valid[:Len-1] + "\xff", 0},
		{"fail/jwt", "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.want != 0 {
				if err != nil || got != tt.want {
					t.Fatalf("Parse = %v, %v; want %v", got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse = %v, %v; want ErrMalformed", got, err)
			}
			if len(tt.in) > prefixLen && strings.Contains(err.Error(), tt.in[prefixLen:]) {
				t.Fatalf("error %q quotes the token", err)
			}
		})
	}
}

// TestParseEverySingleCharChange checks that the checksum catches every
// one-character substitution, wherever it is.
func TestParseEverySingleCharChange(t *testing.T) {
	s, err := New(KindAPIKey, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for i := prefixLen; i < Len; i++ {
		for j := range len(base62Alphabet) {
			c := base62Alphabet[j]
			if c == s[i] {
				continue
			}
			if _, err := Parse(replaceAt(s, i, c)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("changing position %d to %q: Parse err = %v", i, c, err)
			}
		}
	}
}

func TestHint(t *testing.T) {
	s, err := New(KindAPIKey, &countReader{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"ok/api key", s, "mcpk_…" + s[Len-4:]},
		{"fail/empty", "", ""},
		{"fail/malformed", s[:Len-1] + "x", ""},
		{"fail/other secret", "hunter2-password-that-must-not-be-echoed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Hint(tt.in); got != tt.want {
				t.Fatalf("Hint = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	tests := []struct {
		kind         Kind
		name, prefix string
	}{
		{KindAPIKey, "api_key", "mcpk_"},
		{KindSession, "session", "mcps_"},
		{KindInvitation, "invitation", "mcpi_"},
		{0, "invalid", ""},
		{99, "invalid", ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("ok/%d", tt.kind), func(t *testing.T) {
			if tt.kind.String() != tt.name || tt.kind.Prefix() != tt.prefix {
				t.Fatalf("Kind(%d) = %q, %q; want %q, %q", tt.kind, tt.kind, tt.kind.Prefix(), tt.name, tt.prefix)
			}
		})
	}
}

func TestUniqueness(t *testing.T) {
	const n = 20000
	seen := make(map[string]bool, n)
	digests := make(map[Digest]bool, n)
	for range n {
		s, err := New(KindSession, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if seen[s] {
			t.Fatal("duplicate token")
		}
		seen[s] = true
		digests[DigestOf(s)] = true
	}
	if len(digests) != n {
		t.Fatalf("%d distinct digests for %d tokens", len(digests), n)
	}
}

func TestChecksumMatchesCRC32(t *testing.T) {
	for _, s := range []string{"", "a", "mcpk_", "123456789", strings.Repeat("xyz", 100)} {
		if got, want := checksum(s), crc32.ChecksumIEEE([]byte(s)); got != want {
			t.Fatalf("checksum(%q) = %08x, want %08x", s, got, want)
		}
	}
}
