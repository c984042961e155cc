package mcp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

func TestChallengeHeader(t *testing.T) {
	const md = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
	tests := []struct {
		name string
		c    Challenge
		want string // empty means ErrInvalidChallenge is expected
	}{
		{"ok/bare", Challenge{}, "Bearer"},
		{"ok/resource metadata only", Challenge{ResourceMetadata: md}, `Bearer resource_metadata="` + md + `"`},
		{"ok/invalid token", Challenge{ResourceMetadata: md, Error: ChallengeInvalidToken, ErrorDescription: "The access token expired"},
			`Bearer error="invalid_token", error_description="The access token expired", resource_metadata="` + md + `"`},
		{"ok/insufficient scope", Challenge{ResourceMetadata: md, Error: ChallengeInsufficientScope, Scope: "files:read files:write"},
			`Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="` + md + `"`},
		{"ok/step-up with max_age", Challenge{Error: ChallengeInsufficientUserAuthentication, MaxAge: new(300)},
			`Bearer error="insufficient_user_authentication", max_age="300"`},
		{"ok/max_age zero is sent", Challenge{MaxAge: new(0)}, `Bearer max_age="0"`},
		{"ok/description with RFC 6750 punctuation", Challenge{ErrorDescription: "a!#$%&'()*+,-./:;<=>?@[]^_`{|}~ z"},
			"Bearer error_description=\"a!#$%&'()*+,-./:;<=>?@[]^_`{|}~ z\""},
		{"ok/scope with odd tokens", Challenge{Scope: "a!b c#d urn:x:y"}, `Bearer scope="a!b c#d urn:x:y"`},
		{"fail/quote in description", Challenge{ErrorDescription: `say "hi"`}, ""},
		{"fail/backslash in description", Challenge{ErrorDescription: `a\b`}, ""},
		{"fail/CRLF in description", Challenge{ErrorDescription: "a\r\nSet-Cookie: x=1"}, ""},
		{"fail/LF in error", Challenge{Error: "invalid_token\n"}, ""},
		{"fail/NUL in error", Challenge{Error: "a\x00"}, ""},
		{"fail/tab in description", Challenge{ErrorDescription: "a\tb"}, ""},
		{"fail/DEL in description", Challenge{ErrorDescription: "a\x7fb"}, ""},
		{"fail/non-ASCII description", Challenge{ErrorDescription: "café"}, ""},
		{"fail/quote in error", Challenge{Error: `x", scope="admin`}, ""},
		{"fail/quote in scope", Challenge{Scope: `a"b`}, ""},
		{"fail/double space in scope", Challenge{Scope: "a  b"}, ""},
		{"fail/leading space in scope", Challenge{Scope: " a"}, ""},
		{"fail/trailing space in scope", Challenge{Scope: "a "}, ""},
		{"fail/space only scope", Challenge{Scope: " "}, ""},
		{"fail/CR in scope", Challenge{Scope: "a\rb"}, ""},
		{"fail/negative max_age", Challenge{MaxAge: new(-1)}, ""},
		{"fail/space in resource_metadata", Challenge{ResourceMetadata: "https://x/ y"}, ""},
		{"fail/quote in resource_metadata", Challenge{ResourceMetadata: `https://x/"`}, ""},
		{"fail/CRLF in resource_metadata", Challenge{ResourceMetadata: "https://x/\r\nX: y"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.c.Header()
			if tt.want == "" {
				if !errors.Is(err, ErrInvalidChallenge) || got != "" {
					t.Fatalf("Header() = %q, %v; want ErrInvalidChallenge", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Header() = %q, %v\nwant %q", got, err, tt.want)
			}
			params, err := parseChallenge(got)
			if err != nil {
				t.Fatalf("the header does not parse back: %v", err)
			}
			if back := challengeFrom(params); !sameChallenge(back, tt.c) {
				t.Fatalf("parsed back as %+v, want %+v", back, tt.c)
			}
		})
	}
}

func TestValidScope(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"ok/one", "read", true},
		{"ok/several", "tools:read tools:call mcp", true},
		{"ok/punctuation", "https://api.example/scope!#$", true},
		{"fail/empty", "", false},
		{"fail/double space", "a  b", false},
		{"fail/tab separator", "a\tb", false},
		{"fail/backslash", `a\b`, false},
		{"fail/non-ASCII", "lecture:écrire", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidScope(tt.in); got != tt.want {
				t.Fatalf("ValidScope(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzChallenge: whatever the values, Header either refuses them or
// renders one line, with no control characters and no quote a value could
// have opened or closed, that parses back to exactly the values given.
func FuzzChallenge(f *testing.F) {
	f.Add("https://h/.well-known/oauth-protected-resource/mcp", "invalid_token", "expired", "a b", 5, true)
	f.Add("", "insufficient_scope", "", "files:read", 0, false)
	f.Add("https://h/\"", "x\", y=\"z", "a\r\nb: c", "a\\\"b", -1, true)
	f.Add("https://h/x", "e", "d", "s", 0, true)
	f.Fuzz(func(t *testing.T, md, code, desc, scope string, maxAge int, hasMaxAge bool) {
		c := Challenge{ResourceMetadata: md, Error: code, ErrorDescription: desc, Scope: scope}
		if hasMaxAge {
			c.MaxAge = &maxAge
		}
		got, err := c.Header()
		if err != nil {
			if !errors.Is(err, ErrInvalidChallenge) || got != "" {
				t.Fatalf("Header() = %q, %v", got, err)
			}
			return
		}
		for i := 0; i < len(got); i++ {
			if b := got[i]; b < ' ' || b > '~' {
				t.Fatalf("byte %#x at %d in %q", b, i, got)
			}
		}
		params, err := parseChallenge(got)
		if err != nil {
			t.Fatalf("%q does not parse: %v", got, err)
		}
		if back := challengeFrom(params); !sameChallenge(back, c) {
			t.Fatalf("%q parsed back as %+v, want %+v", got, back, c)
		}
	})
}

// parseChallenge parses a Bearer challenge strictly (RFC 9110, section
// 11.2): "Bearer", then auth-params whose values are tokens or
// quoted-strings (with quoted-pairs), separated by ", ". Names must not
// repeat.
func parseChallenge(s string) (map[string]string, error) {
	rest, ok := strings.CutPrefix(s, "Bearer")
	if !ok {
		return nil, errors.New("not a Bearer challenge")
	}
	params := map[string]string{}
	if rest == "" {
		return params, nil
	}
	rest, ok = strings.CutPrefix(rest, " ")
	if !ok {
		return nil, errors.New("no space after the scheme")
	}
	for first := true; rest != "" || first; first = false {
		if !first {
			if rest, ok = strings.CutPrefix(rest, ", "); !ok {
				return nil, fmt.Errorf("expected \", \" at %q", rest)
			}
		}
		name, after, ok := strings.Cut(rest, "=")
		if !ok || name == "" || strings.ContainsAny(name, " \",\\") {
			return nil, fmt.Errorf("bad parameter name at %q", rest)
		}
		if _, dup := params[name]; dup {
			return nil, fmt.Errorf("repeated parameter %s", name)
		}
		var value strings.Builder
		if after, ok = strings.CutPrefix(after, `"`); ok {
			i := 0
			for ; i < len(after) && after[i] != '"'; i++ {
				if after[i] == '\\' {
					i++
					if i == len(after) {
						return nil, errors.New("quoted-pair at the end")
					}
				}
				value.WriteByte(after[i])
			}
			if i == len(after) {
				return nil, errors.New("unterminated quoted-string")
			}
			rest = after[i+1:]
		} else {
			end := strings.IndexAny(after, ", ")
			if end < 0 {
				end = len(after)
			}
			value.WriteString(after[:end])
			rest = after[end:]
		}
		params[name] = value.String()
	}
	return params, nil
}

func challengeFrom(params map[string]string) Challenge {
	c := Challenge{
		ResourceMetadata: params["resource_metadata"],
		Error:            params["error"],
		ErrorDescription: params["error_description"],
		Scope:            params["scope"],
	}
	if v, ok := params["max_age"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			n = -1 << 31
		}
		c.MaxAge = &n
	}
	return c
}

func sameChallenge(a, b Challenge) bool {
	if (a.MaxAge == nil) != (b.MaxAge == nil) || a.MaxAge != nil && *a.MaxAge != *b.MaxAge {
		return false
	}
	a.MaxAge, b.MaxAge = nil, nil
	return a == b
}
