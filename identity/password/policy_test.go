package password

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"
)

func TestPolicyCheck(t *testing.T) {
	const email = "alice.smith+mcp@example.com"
	eAcute := norm.NFC.String("e\u0301") // é, one code point
	tests := []struct {
		name     string
		policy   Policy
		password string
		email    string
		reason   string // "" means accepted
	}{
		{name: "ok/twelve ascii", password: "vK3#pq9!xZ2m", email: email},
		{name: "ok/passphrase", password: "correct horse battery staple", email: email},
		{name: "ok/unicode letters", password: "ключ-от-двери-42", email: email},
		{name: "ok/cjk twelve", password: "東京特許許可局長今日急遽休暇", email: email},
		{name: "ok/twelve emoji", password: strings.Repeat("😀", 12), email: email},
		{name: "ok/two family emoji and two letters are twelve code points", password: strings.Repeat("👨‍👩‍👧", 2) + "ab", email: email},
		{name: "ok/nfc twelve", password: strings.Repeat(eAcute, 12), email: email},
		{name: "ok/nfd twelve counts as twelve", password: norm.NFD.String(strings.Repeat(eAcute, 12)), email: email},
		{name: "ok/exactly max bytes", password: strings.Repeat("ab", 512), email: email},
		{name: "ok/common word inside a phrase", password: "my dragon eats baseball bats", email: email},
		{name: "ok/common word with letters added", password: "passwordsmithery", email: email},
		{name: "ok/random digits", password: "839201748362", email: email},
		{name: "ok/short local part ignored", password: "bob-the-builder-rocks", email: "bob@example.com"},
		{name: "ok/no email", password: "alice.smith-is-great", email: ""},
		{name: "ok/other local part", password: "carol-and-dave-2024", email: email},
		{name: "ok/custom policy", policy: Policy{MinLength: 8, MaxBytes: 64}, password: "k9#Lm2!q", email: email},

		{name: "fail/empty", password: "", email: email, reason: ReasonTooShort},
		{name: "fail/eleven ascii", password: "vK3#pq9!xZ2", email: email, reason: ReasonTooShort},
		{name: "fail/eleven emoji", password: strings.Repeat("😀", 11), email: email, reason: ReasonTooShort},
		{name: "fail/two family emoji and a letter are eleven code points", password: strings.Repeat("👨‍👩‍👧", 2) + "a", email: email, reason: ReasonTooShort},
		{name: "fail/nfd eleven is eleven", password: norm.NFD.String(strings.Repeat(eAcute, 11)), email: email, reason: ReasonTooShort},
		{name: "fail/one byte over max", password: strings.Repeat("ab", 512) + "c", email: email, reason: ReasonTooLong},
		{name: "fail/too long after nfc", password: strings.Repeat("\u0958", 200), email: email, reason: ReasonTooLong},
		{name: "fail/huge", password: strings.Repeat("x", 1<<20), email: email, reason: ReasonTooLong},
		{name: "fail/invalid utf-8", password: "valid prefix \xff\xfe then", email: email, reason: ReasonInvalidUTF8},
		{name: "fail/spaces only", password: strings.Repeat(" ", 16), email: email, reason: ReasonWhitespace},
		{name: "fail/mixed whitespace only", password: " \t\n\u00a0\u3000\u2003 \t\n\u00a0\u3000\u2003", email: email, reason: ReasonWhitespace},
		{name: "fail/short whitespace only", password: "   ", email: email, reason: ReasonWhitespace},
		{name: "fail/common long", password: "winniethepooh", email: email, reason: ReasonCommon},
		{name: "fail/common any case", password: "WinnieThePooh", email: email, reason: ReasonCommon},
		{name: "fail/common plus digits and punctuation", password: "password1234!", email: email, reason: ReasonCommon},
		{name: "fail/common capitalised plus digits", password: "Password2024!", email: email, reason: ReasonCommon},
		{name: "fail/common with prefix", password: "2024!Password", email: email, reason: ReasonCommon},
		{name: "fail/common both sides", password: "!!monkey123456", email: email, reason: ReasonCommon},
		{name: "fail/common with spaces", password: "  qwertyuiop  1", email: email, reason: ReasonCommon},
		{name: "fail/common that ends in digits", password: "abc1234567890", email: email, reason: ReasonCommon},
		{name: "fail/common digits plus punctuation", password: "1234567890!!", email: email, reason: ReasonCommon},
		{name: "fail/common with unicode symbols", password: "iloveyou€€€€", email: email, reason: ReasonCommon},
		{name: "fail/common fullwidth digits", password: "dragon１２３４５６", email: email, reason: ReasonCommon},
		{name: "fail/contains local part", password: "alice.smith-rocks", email: email, reason: ReasonContainsEmail},
		{name: "fail/contains local part any case", password: "xx-ALICE.SMITH-xx", email: email, reason: ReasonContainsEmail},
		{name: "fail/contains tagged local part", password: "alice.smith+mcp rules", email: email, reason: ReasonContainsEmail},
		{name: "fail/contains unicode local part", password: "über-jürgen-passwort", email: "Jürgen@example.de", reason: ReasonContainsEmail},
		{name: "fail/contains whole address", password: "alice.smith+mcp@example.com", email: email, reason: ReasonContainsEmail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.policy
			if p == (Policy{}) {
				p = DefaultPolicy
			}
			err := p.Check(tt.password, tt.email)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("Check = %v, want a *PolicyError", err)
			}
			if pe.Reason != tt.reason {
				t.Errorf("Reason = %q, want %q", pe.Reason, tt.reason)
			}
			if !errors.Is(err, ErrPolicy) {
				t.Errorf("Check = %v, want it to wrap ErrPolicy", err)
			}
		})
	}
}

// NFC and NFD spellings of a password get the same verdict.
func TestPolicyCheckNormalizationEquivalence(t *testing.T) {
	for _, pw := range []string{
		"crème brûlée",
		"crème brûlée à la façon",
		"Ångström-Ünïcödé",
		"한국어비밀번호입니다",
		"한국어비밀번호입니다요",
	} {
		nfc, nfd := norm.NFC.String(pw), norm.NFD.String(pw)
		if nfc == nfd {
			t.Fatalf("%q: test string has no decomposition", pw)
		}
		a, b := DefaultPolicy.Check(nfc, ""), DefaultPolicy.Check(nfd, "")
		if (a == nil) != (b == nil) || a != nil && a.Error() != b.Error() {
			t.Errorf("%q: Check(NFC) = %v, Check(NFD) = %v", pw, a, b)
		}
	}
}

func TestPolicyCheckInvalidPolicy(t *testing.T) {
	for _, p := range []Policy{{}, {MinLength: 4, MaxBytes: 1024}} {
		err := p.Check("a perfectly fine passphrase", "")
		var pe *PolicyError
		if !errors.Is(err, ErrInvalidPolicy) || errors.As(err, &pe) {
			t.Errorf("%+v.Check = %v, want ErrInvalidPolicy and no PolicyError", p, err)
		}
	}
}

func TestPolicyErrorMessage(t *testing.T) {
	err := error(&PolicyError{Reason: ReasonTooShort})
	if got := err.Error(); got != "password too short" {
		t.Errorf("Error() = %q", got)
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Policy
		ok   bool
	}{
		{name: "ok/default", p: DefaultPolicy, ok: true},
		{name: "ok/nist minimum", p: Policy{MinLength: 8, MaxBytes: 64}, ok: true},
		{name: "ok/long minimum", p: Policy{MinLength: 20, MaxBytes: 4096}, ok: true},
		{name: "fail/zero", p: Policy{}},
		{name: "fail/min 7", p: Policy{MinLength: 7, MaxBytes: 1024}},
		{name: "fail/max below 64", p: Policy{MinLength: 8, MaxBytes: 63}},
		{name: "fail/max below four bytes per character", p: Policy{MinLength: 20, MaxBytes: 79}},
		{name: "fail/max above 4096", p: Policy{MinLength: 12, MaxBytes: 4097}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if tt.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("Validate() = %v, want ErrInvalidPolicy", err)
			}
		})
	}
}
