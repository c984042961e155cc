package password

import (
	_ "embed"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// commonPasswords is John the Ripper's password.lst (public domain), lower-
// cased and de-duplicated, most common first; its first line says so.
//
//go:embed common_passwords.txt
var commonPasswords string

// wordList is the parsed list: the words, and the longest one's length.
type wordList struct {
	words  map[string]struct{}
	maxLen int
}

// commonList parses the embedded list once, on first use.
var commonList = sync.OnceValue(func() wordList {
	l := wordList{words: make(map[string]struct{}, 4096)}
	for line := range strings.Lines(commonPasswords) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		l.words[line] = struct{}{}
		l.maxLen = max(l.maxLen, len(line))
	}
	return l
})

// isCommon reports whether the lower-cased, valid UTF-8 password s is a
// listed password with only affix characters (isAffix) before and after it:
// s = prefix + word + suffix. Words that themselves end or start with such
// characters ("abc123", "iloveyou!") match too. When s has nothing but affix
// characters ("1234567890!!") only the suffix may be added, so that a random
// string of digits is not refused for containing "1234" somewhere.
//
// The word is at most maxLen bytes, so the work is bounded by
// len(s) × maxLen map look-ups of short strings.
func isCommon(s string) bool {
	l := commonList()
	lead := 0 // s[:lead] is affix characters only
	for lead < len(s) {
		r, size := utf8.DecodeRuneInString(s[lead:])
		if !isAffix(r) {
			break
		}
		lead += size
	}
	trail := len(s) // s[trail:] is affix characters only
	for trail > 0 {
		r, size := utf8.DecodeLastRuneInString(s[:trail])
		if !isAffix(r) {
			break
		}
		trail -= size
	}
	if lead == len(s) {
		lead = 0
	}
	for j := 0; j <= lead; {
		for i := max(trail, j+1); i <= len(s) && i-j <= l.maxLen; i++ {
			if i < len(s) && !utf8.RuneStart(s[i]) {
				continue
			}
			if _, ok := l.words[s[j:i]]; ok {
				return true
			}
		}
		if j == lead {
			break
		}
		_, size := utf8.DecodeRuneInString(s[j:])
		j += size
	}
	return false
}

// isAffix reports whether r is a character people pad a common password
// with to pass a policy: a digit, punctuation, a symbol or a space.
func isAffix(r rune) bool {
	return unicode.IsDigit(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsSpace(r)
}
