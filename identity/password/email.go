package password

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// ErrInvalidEmail is wrapped by every error of NormalizeEmail. The errors
// name what is wrong, never the address itself, so they can be logged.
var ErrInvalidEmail = errors.New("invalid email address")

const (
	maxEmailLen = 254 // RFC 5321 path limit less the angle brackets
	maxLocalLen = 64  // RFC 5321 §4.5.3.1.1
	maxLabelLen = 63  // RFC 1035
	// maxRawEmailLen bounds the input before any parsing. It is larger than
	// maxEmailLen because an internationalised domain can be longer in
	// UTF-8 than in its ASCII form.
	maxRawEmailLen = 4 * maxEmailLen
)

func invalidEmail(why string) error { return fmt.Errorf("%w: %s", ErrInvalidEmail, why) }

// NormalizeEmail returns the canonical form of a user's email address, the
// form the identity service stores, looks up and compares: one bare
// addr-spec, local part lower-cased and in NFC, domain in lower-case ASCII
// (internationalised domains converted to their "xn--" form with IDNA's
// lookup profile).
//
// The service treats addresses case-insensitively, local part included:
// RFC 5321 lets a mail server tell "Alice" from "alice", but none that
// matters does, and two accounts that differ only in case would be a trap.
//
// Surrounding white space is trimmed. Refused, with an error wrapping
// ErrInvalidEmail: display-name and angle-bracket forms ("Alice
// <alice@example.com>"), comments, lists of addresses, quoted local parts,
// control characters anywhere and format characters (such as U+202E) in the
// local part, a missing or second "@", what net/mail.ParseAddress refuses
// (leading, trailing or doubled dots, spaces, …), domains IDNA refuses or
// that are not a host name of at least two labels (so no "localhost", no IP
// literals, no all-digit top-level label), a local part over 64 bytes, and
// a result over 254 bytes.
//
// NormalizeEmail(NormalizeEmail(s)) is NormalizeEmail(s).
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", invalidEmail("empty")
	case len(s) > maxRawEmailLen:
		return "", invalidEmail("too long")
	case !utf8.ValidString(s):
		return "", invalidEmail("not valid UTF-8")
	case strings.ContainsFunc(s, unicode.IsControl):
		return "", invalidEmail("contains control characters")
	case strings.ContainsAny(s, "<>"):
		return "", invalidEmail("not a bare address (display name or angle brackets)")
	case strings.ContainsRune(s, '"'):
		return "", invalidEmail("quoted local parts are not accepted")
	}
	switch strings.Count(s, "@") {
	case 0:
		return "", invalidEmail("missing @")
	case 1:
	default:
		return "", invalidEmail("more than one @")
	}
	addr, err := mail.ParseAddress(s)
	if err != nil {
		return "", invalidEmail("not an RFC 5322 address")
	}
	if addr.Name != "" || addr.Address != s {
		return "", invalidEmail("not a bare address (comment or display name)")
	}
	rawLocal, rawDomain, _ := strings.Cut(s, "@")

	if strings.ContainsFunc(rawLocal, func(r rune) bool { return unicode.Is(unicode.Cf, r) }) {
		return "", invalidEmail("local part contains format characters")
	}
	local := norm.NFC.String(strings.ToLower(norm.NFC.String(rawLocal)))
	if len(local) > maxLocalLen {
		return "", invalidEmail("local part too long")
	}

	domain, err := idna.Lookup.ToASCII(rawDomain)
	if err != nil {
		return "", invalidEmail("domain is not a valid internationalised host name")
	}
	domain = strings.ToLower(domain)
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return "", invalidEmail("domain has a single label")
	}
	for _, l := range labels {
		if l == "" || len(l) > maxLabelLen {
			return "", invalidEmail("domain label empty or too long")
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "", invalidEmail("domain is an IP address or has an all-digit top-level label")
	}

	out := local + "@" + domain
	if len(out) > maxEmailLen {
		return "", invalidEmail("too long")
	}
	return out, nil
}
