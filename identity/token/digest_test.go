package token

import (
	"errors"
	"strings"
	"testing"
)

func TestDigest(t *testing.T) {
	a, err := New(KindAPIKey, repeatReader(1))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(KindAPIKey, repeatReader(2))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		x, y  string
		equal bool
	}{
		{"ok/same token", a, a, true},
		{"ok/different tokens", a, b, false},
		{"ok/same body other kind", a, "mcps_" + a[prefixLen:], false},
		{"ok/empty", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Equal(DigestOf(tt.x), DigestOf(tt.y)); got != tt.equal {
				t.Fatalf("Equal = %v, want %v", got, tt.equal)
			}
		})
	}
}

func TestDigestString(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		// FIPS 180-2 / well-known SHA-256 vectors.
		{"ok/empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"ok/abc", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"ok/longer than a token", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := DigestOf(tt.in)
			if d.String() != tt.want {
				t.Fatalf("DigestOf(%q) = %s, want %s", tt.in, d, tt.want)
			}
			back, err := ParseDigest(d.String())
			if err != nil || !Equal(back, d) {
				t.Fatalf("ParseDigest(String) = %v, %v", back, err)
			}
		})
	}
}

func TestParseDigest(t *testing.T) {
	good := DigestOf("x").String()
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"ok/lower hex", good, true},
		{"ok/upper hex", strings.ToUpper(good), true},
		{"fail/empty", "", false},
		{"fail/short", good[:63], false},
		{"fail/long", good + "0", false},
		{"fail/not hex", "g" + good[1:], false},
		{"fail/unicode", "é" + good[2:], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDigest(tt.in)
			if tt.ok {
				if err != nil || d.String() != good {
					t.Fatalf("ParseDigest = %s, %v", d, err)
				}
				return
			}
			if !errors.Is(err, ErrMalformed) || d != (Digest{}) {
				t.Fatalf("ParseDigest = %s, %v; want ErrMalformed", d, err)
			}
		})
	}
}
