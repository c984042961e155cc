package password

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Reasons a password is refused, as PolicyError.Reason carries them.
const (
	ReasonInvalidUTF8   = "not valid UTF-8"
	ReasonTooLong       = "too long"
	ReasonWhitespace    = "only whitespace"
	ReasonTooShort      = "too short"
	ReasonCommon        = "too common"
	ReasonContainsEmail = "contains the email address"
)

var (
	// ErrPolicy is what every PolicyError unwraps to.
	ErrPolicy = errors.New("password refused by policy")
	// ErrInvalidPolicy is wrapped by the errors of Policy.Validate.
	ErrInvalidPolicy = errors.New("invalid password policy")
)

// PolicyError says why Policy.Check refused a password. Reason is one of the
// Reason constants; it is safe to show to the user.
type PolicyError struct {
	Reason string
}

func (e *PolicyError) Error() string { return "password " + e.Reason }

// Unwrap makes errors.Is(err, ErrPolicy) true for every PolicyError.
func (e *PolicyError) Unwrap() error { return ErrPolicy }

// Policy is what a new password must satisfy.
type Policy struct {
	// MinLength counts Unicode code points of the NFC form, as NIST SP
	// 800-63B counts characters: an emoji such as 😀 is one, a family emoji
	// joined with ZWJ is several.
	MinLength int
	// MaxBytes bounds the UTF-8 length, before and after NFC (which can
	// lengthen some scripts), and so what argon2 is given to hash.
	MaxBytes int
}

// DefaultPolicy asks for 12 characters and allows up to 1024 bytes.
var DefaultPolicy = Policy{MinLength: 12, MaxBytes: 1024}

// minEmailPart is the shortest local part (in code points) that Check looks
// for inside a password; shorter ones ("al", "bob") occur in too many
// unrelated words.
const minEmailPart = 4

// Validate reports whether p is usable: MinLength at least 8 (NIST SP
// 800-63B's floor), MaxBytes from 64 (and room for MinLength four-byte
// characters) up to 4096.
func (p Policy) Validate() error {
	switch {
	case p.MinLength < 8:
		return fmt.Errorf("%w: minimum length %d is below 8", ErrInvalidPolicy, p.MinLength)
	case p.MaxBytes < max(64, 4*p.MinLength) || p.MaxBytes > 4096:
		return fmt.Errorf("%w: maximum of %d bytes outside [%d, 4096]", ErrInvalidPolicy, p.MaxBytes, max(64, 4*p.MinLength))
	}
	return nil
}

// Check returns nil when password may be set for the account with the given
// email address, and a *PolicyError otherwise. The password is judged in its
// NFC form (see the package doc), in this order: valid UTF-8 and at most
// MaxBytes; not only whitespace; at least MinLength code points; not a
// common password, ignoring case, nor one with digits, punctuation, symbols
// or spaces added before or after it ("Password1234!", "2024monkey"); not
// containing the local part of email, ignoring case (when that has at least
// four characters; with and without a "+tag"). An empty email skips the
// last check.
//
// An invalid p (the zero Policy, say) refuses every password with
// Validate's error, which wraps ErrInvalidPolicy and is not a PolicyError.
func (p Policy) Check(password, email string) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if len(password) > p.MaxBytes {
		return &PolicyError{Reason: ReasonTooLong}
	}
	if !utf8.ValidString(password) {
		return &PolicyError{Reason: ReasonInvalidUTF8}
	}
	pw := norm.NFC.String(password)
	if len(pw) > p.MaxBytes {
		return &PolicyError{Reason: ReasonTooLong}
	}
	if pw != "" && strings.TrimFunc(pw, unicode.IsSpace) == "" {
		return &PolicyError{Reason: ReasonWhitespace}
	}
	if utf8.RuneCountInString(pw) < p.MinLength {
		return &PolicyError{Reason: ReasonTooShort}
	}
	lower := strings.ToLower(pw)
	if isCommon(lower) {
		return &PolicyError{Reason: ReasonCommon}
	}
	for _, part := range emailParts(email) {
		if strings.Contains(lower, part) {
			return &PolicyError{Reason: ReasonContainsEmail}
		}
	}
	return nil
}

// emailParts returns the lower-cased NFC local part of email, and that part
// without its "+tag" when it has one, keeping those of at least minEmailPart
// code points. It takes the text before the last "@" and expects an address
// NormalizeEmail accepted, but does not require one.
func emailParts(email string) []string {
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return nil
	}
	local := strings.ToLower(norm.NFC.String(strings.TrimSpace(email[:at])))
	parts := []string{local}
	if base, _, ok := strings.Cut(local, "+"); ok {
		parts = append(parts, base)
	}
	kept := parts[:0]
	for _, s := range parts {
		if utf8.RuneCountInString(s) >= minEmailPart {
			kept = append(kept, s)
		}
	}
	return kept
}
