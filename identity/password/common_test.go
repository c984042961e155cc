package password

import (
	"strings"
	"testing"
)

func TestCommonListFile(t *testing.T) {
	lines := strings.Split(strings.TrimSuffix(commonPasswords, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "# John the Ripper") {
		t.Errorf("first line %q is not the header naming the source", lines[0])
	}
	seen := make(map[string]bool, len(lines))
	for i, w := range lines[1:] {
		switch {
		case strings.HasPrefix(w, "#"):
			t.Errorf("line %d: %q: a second comment line", i+2, w)
		case w != strings.ToLower(w):
			t.Errorf("line %d: %q is not lower-case", i+2, w)
		case len(w) < 3:
			t.Errorf("line %d: %q is shorter than 3", i+2, w)
		case strings.TrimSpace(w) != w || w == "":
			t.Errorf("line %d: %q has surrounding space", i+2, w)
		case seen[w]:
			t.Errorf("line %d: %q is a duplicate", i+2, w)
		}
		seen[w] = true
	}
	l := commonList()
	if n := len(l.words); n != len(lines)-1 || n < 3000 || n > 5000 {
		t.Errorf("list has %d words from %d lines; want 3000–5000, one per line", n, len(lines)-1)
	}
	if l.maxLen < 8 || l.maxLen > 32 {
		t.Errorf("maxLen = %d", l.maxLen)
	}
}

func TestIsCommon(t *testing.T) {
	tests := []struct {
		name string
		s    string // lower-case, as Check passes it
		want bool
	}{
		{name: "ok/exact", s: "password", want: true},
		{name: "ok/exact short", s: "god", want: true},
		{name: "ok/exact with punctuation", s: "iloveyou!", want: true},
		{name: "ok/trailing digits", s: "password1234", want: true},
		{name: "ok/trailing mixed", s: "password1234!?#", want: true},
		{name: "ok/leading digits", s: "1999monkey", want: true},
		{name: "ok/leading and trailing", s: "__dragon__", want: true},
		{name: "ok/word ending in digits plus more digits", s: "abc123456789", want: true},
		{name: "ok/all digits common prefix", s: "123456789012", want: true},
		{name: "ok/all symbols common prefix", s: "!@#$%^&*()_+", want: true},
		{name: "ok/non-ascii affix", s: "monkey¡¡¡§§§", want: true},
		{name: "ok/long affix run", s: strings.Repeat("1", 500) + "monkey" + strings.Repeat("!", 500), want: true},
		{name: "fail/empty", s: "", want: false},
		{name: "fail/letters added", s: "monkeyz", want: false},
		{name: "fail/letters before", s: "mymonkey", want: false},
		{name: "fail/two words", s: "monkeydragon", want: false},
		{name: "fail/word between letters", s: "a1monkey1a", want: false},
		{name: "fail/random digits", s: "839201748362", want: false},
		{name: "fail/common digits inside digits", s: "9912349", want: false},
		{name: "fail/common digits after symbols", s: "!!1234567890", want: false},
		{name: "fail/passphrase", s: "correct horse battery staple", want: false},
		{name: "fail/long non-affix", s: strings.Repeat("ab", 600), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isCommon(tt.s); got != tt.want {
				t.Errorf("isCommon(%q) = %v, want %v", tt.s, got, tt.want)
			}
		})
	}
}
