package token

import (
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, and that whatever it accepts has
// the exact length, a known prefix and a canonical body: spelling its kind
// and decoded body again gives back the same string, checksum included.
func FuzzParse(f *testing.F) {
	for _, k := range []Kind{KindAPIKey, KindSession, KindInvitation} {
		s, err := New(k, &countReader{n: byte(k)})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s)
		f.Add(s[:Len-1])
		f.Add(s + "0")
		f.Add(replaceAt(s, Len-1, nextDigit(s[Len-1])))
		f.Add(strings.ToUpper(s))
	}
	f.Add("")
	f.Add("mcpk_")
	f.Add("mcpk_" + strings.Repeat("Z", Len-prefixLen))
	f.Add(strings.Repeat("é", Len/2))
	f.Add("mcpk_\x00\xff")
	f.Fuzz(func(t *testing.T, s string) {
		kind, err := Parse(s)
		if err != nil {
			if kind != 0 {
				t.Fatalf("Parse failed but returned kind %v", kind)
			}
			if Hint(s) != "" {
				t.Fatal("Hint of a malformed token is not empty")
			}
			return
		}
		if len(s) != Len || !strings.HasPrefix(s, kind.Prefix()) {
			t.Fatalf("Parse accepted %q (len %d) as %v", s, len(s), kind)
		}
		body, ok := decodeBody(s[prefixLen : prefixLen+bodyLen])
		if !ok {
			t.Fatalf("Parse accepted an undecodable body in %q", s)
		}
		if again := encode(kind, &body); again != s {
			t.Fatalf("Parse accepted %q, which re-encodes as %q", s, again)
		}
	})
}
