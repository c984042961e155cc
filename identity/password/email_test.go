package password

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeEmail(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // "" means an error wrapping ErrInvalidEmail
	}{
		{name: "ok/plain", in: "alice@example.com", want: "alice@example.com"},
		{name: "ok/upper case", in: "Alice.Smith@Example.COM", want: "alice.smith@example.com"},
		{name: "ok/surrounding space", in: " \talice@example.com\n ", want: "alice@example.com"},
		{name: "ok/plus tag kept", in: "alice+mcp@example.com", want: "alice+mcp@example.com"},
		{name: "ok/atext symbols", in: "o'brien!#$%&*=?^_`{|}~-@example.com", want: "o'brien!#$%&*=?^_`{|}~-@example.com"},
		{name: "ok/subdomain", in: "ops@mail.eu.example.co.uk", want: "ops@mail.eu.example.co.uk"},
		{name: "ok/idn domain", in: "user@bücher.de", want: "user@xn--bcher-kva.de"},
		{name: "ok/idn domain upper case", in: "user@BÜCHER.DE", want: "user@xn--bcher-kva.de"},
		{name: "ok/punycode upper case", in: "user@XN--BCHER-KVA.DE", want: "user@xn--bcher-kva.de"},
		{name: "ok/idn cjk", in: "info@例え.jp", want: "info@xn--r8jz45g.jp"},
		{name: "ok/idn sharp s is not transitional", in: "max@straße.de", want: "max@xn--strae-oqa.de"},
		{name: "ok/fullwidth domain mapped", in: "a.b@ｅｘａｍｐｌｅ.com", want: "a.b@example.com"},
		{name: "ok/unicode local part lower-cased", in: "Jürgen@example.de", want: "jürgen@example.de"},
		{name: "ok/unicode local part nfd to nfc", in: "ju\u0308rgen@example.de", want: "jürgen@example.de"},
		{name: "ok/local part 64 bytes", in: strings.Repeat("a", 64) + "@example.com", want: strings.Repeat("a", 64) + "@example.com"},
		{name: "ok/label 63 bytes", in: "a@" + strings.Repeat("b", 63) + ".com", want: "a@" + strings.Repeat("b", 63) + ".com"},
		{name: "ok/254 bytes", in: long(254), want: long(254)},
		{name: "ok/digits in domain labels", in: "a@123.example.com", want: "a@123.example.com"},

		{name: "fail/empty", in: ""},
		{name: "fail/spaces only", in: "   "},
		{name: "fail/missing at", in: "alice.example.com"},
		{name: "fail/two at", in: "alice@bob@example.com"},
		{name: "fail/two addresses", in: "alice@example.com, bob@example.com"},
		{name: "fail/two addresses semicolon", in: "alice@example.com;bob@example.com"},
		{name: "fail/display name", in: "Alice <alice@example.com>"},
		{name: "fail/quoted display name", in: `"Alice Smith" <alice@example.com>`},
		{name: "fail/angle brackets only", in: "<alice@example.com>"},
		{name: "fail/comment", in: "alice@example.com (Alice)"},
		{name: "fail/quoted local part", in: `"alice smith"@example.com`},
		{name: "fail/trailing dot", in: "alice@example.com."},
		{name: "fail/ideographic trailing dot", in: "alice@example.com。"},
		{name: "fail/leading dot", in: ".alice@example.com"},
		{name: "fail/local trailing dot", in: "alice.@example.com"},
		{name: "fail/double dot local", in: "alice..smith@example.com"},
		{name: "fail/double dot domain", in: "alice@example..com"},
		{name: "fail/empty local part", in: "@example.com"},
		{name: "fail/empty domain", in: "alice@"},
		{name: "fail/inner space", in: "alice smith@example.com"},
		{name: "fail/control character", in: "alice\x00@example.com"},
		{name: "fail/newline inside", in: "alice@example.com\nbcc@evil.example"},
		{name: "fail/delete character", in: "ali\x7fce@example.com"},
		{name: "fail/right-to-left override", in: "alice\u202e@example.com"},
		{name: "fail/zero width space", in: "ali\u200bce@example.com"},
		{name: "fail/invalid utf-8", in: "al\xffice@example.com"},
		{name: "fail/single label", in: "admin@localhost"},
		{name: "fail/ip literal", in: "alice@[192.0.2.1]"},
		{name: "fail/dotted ip", in: "alice@192.0.2.1"},
		{name: "fail/underscore domain", in: "alice@ex_ample.com"},
		{name: "fail/leading hyphen label", in: "alice@-example.com"},
		{name: "fail/invalid punycode", in: "alice@xn--zz.com"},
		{name: "fail/label 64 bytes", in: "a@" + strings.Repeat("b", 64) + ".com"},
		{name: "fail/local part 65 bytes", in: strings.Repeat("a", 65) + "@example.com"},
		{name: "fail/255 bytes", in: long(255)},
		{name: "fail/huge", in: strings.Repeat("a", 1<<16) + "@example.com"},
		{name: "fail/idn too long once converted", in: strings.Repeat("a", 64) + "@" + strings.Repeat("ü"+strings.Repeat("a", 50)+".", 4) + "de"},
		{name: "fail/idn label too long once converted", in: "a@ü" + strings.Repeat("a", 60) + ".de"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeEmail(tt.in)
			if tt.want == "" {
				if !errors.Is(err, ErrInvalidEmail) {
					t.Fatalf("NormalizeEmail = %q, %v; want an error wrapping ErrInvalidEmail", got, err)
				}
				if got != "" {
					t.Errorf("NormalizeEmail = %q with an error, want \"\"", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeEmail = %q, %v; want %q", got, err, tt.want)
			}
			if again, err := NormalizeEmail(got); err != nil || again != got {
				t.Errorf("NormalizeEmail(%q) = %q, %v; want it unchanged", got, again, err)
			}
		})
	}
}

// long returns a valid ASCII address of exactly n bytes (n ≥ 72).
func long(n int) string {
	local := strings.Repeat("a", 64)
	var domain strings.Builder
	for rest := n - len(local) - len("@") - len("com"); rest > 0; {
		l := min(63, rest-1) // a label and its dot
		if rest-(l+1) == 1 {
			l-- // leave room for a label of at least one byte
		}
		domain.WriteString(strings.Repeat("d", l) + ".")
		rest -= l + 1
	}
	return local + "@" + domain.String() + "com"
}

func TestLong(t *testing.T) {
	for _, n := range []int{72, 254, 255, 300} {
		if s := long(n); len(s) != n {
			t.Fatalf("long(%d) has %d bytes", n, len(s))
		}
	}
}

func TestNormalizeEmailErrorsOmitAddress(t *testing.T) {
	_, err := NormalizeEmail("Secret Name <secret.person@example.com>")
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error %v: want one that does not repeat the address", err)
	}
}
