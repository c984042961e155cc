package token

import (
	"errors"
	"fmt"
	"io"
)

// Len is the length in bytes of every opaque token, 54: a 5-byte kind
// prefix, 43 base-62 digits holding 32 random bytes (left-padded with '0'),
// and 6 base-62 digits holding the CRC-32 (IEEE) of everything before them.
// All of it is ASCII letters, digits and '_', safe in headers, cookies and
// URLs.
const Len = prefixLen + bodyLen + checksumLen

const prefixLen = 5

// RandomBytes is how many bytes of randomness each token carries.
const RandomBytes = 32

var (
	// ErrMalformed is a token or digest that is not well-formed. Parse
	// reports it without any lookup; callers answer it like an unknown
	// credential.
	ErrMalformed = errors.New("token: malformed")
	// ErrUnknownKind is a Kind New does not know.
	ErrUnknownKind = errors.New("token: unknown kind")

	// Parse's reasons, made once so that rejecting garbage allocates
	// nothing.
	errLength   = fmt.Errorf("%w: wrong length", ErrMalformed)
	errPrefix   = fmt.Errorf("%w: unknown prefix", ErrMalformed)
	errBody     = fmt.Errorf("%w: body is not 43 base-62 digits below 2^256", ErrMalformed)
	errChecksum = fmt.Errorf("%w: checksum mismatch", ErrMalformed)
)

// Kind is what an opaque token grants; its prefix tells it apart.
type Kind uint8

// The kinds of opaque token.
const (
	KindAPIKey     Kind = iota + 1 // "mcpk_": an API key
	KindSession                    // "mcps_": a session token (cookie)
	KindInvitation                 // "mcpi_": an invitation to join an organization
)

func (k Kind) String() string {
	switch k {
	case KindAPIKey:
		return "api_key"
	case KindSession:
		return "session"
	case KindInvitation:
		return "invitation"
	}
	return "invalid"
}

// Prefix returns the prefix every token of kind k starts with, or "" for an
// unknown kind.
func (k Kind) Prefix() string {
	switch k {
	case KindAPIKey:
		return "mcpk_"
	case KindSession:
		return "mcps_"
	case KindInvitation:
		return "mcpi_"
	}
	return ""
}

// kindOf returns the kind whose prefix s starts with.
func kindOf(s string) (Kind, bool) {
	if len(s) < prefixLen {
		return 0, false
	}
	for _, k := range [...]Kind{KindAPIKey, KindSession, KindInvitation} {
		if s[:prefixLen] == k.Prefix() {
			return k, true
		}
	}
	return 0, false
}

// New returns a fresh token of the given kind drawn from random
// (crypto/rand.Reader in production). It is exactly Len bytes long.
func New(kind Kind, random io.Reader) (string, error) {
	if kind.Prefix() == "" {
		return "", fmt.Errorf("%w: %d", ErrUnknownKind, kind)
	}
	var b [RandomBytes]byte
	if _, err := io.ReadFull(random, b[:]); err != nil {
		return "", fmt.Errorf("token: reading random: %w", err)
	}
	return encode(kind, &b), nil
}

// encode spells kind and 32 bytes as a token.
func encode(kind Kind, b *[RandomBytes]byte) string {
	var out [Len]byte
	copy(out[:], kind.Prefix())
	encodeBody((*[bodyLen]byte)(out[prefixLen:prefixLen+bodyLen]), b)
	encodeChecksum((*[checksumLen]byte)(out[prefixLen+bodyLen:]), checksum(out[:prefixLen+bodyLen]))
	return string(out[:])
}

// Parse checks that s is a well-formed token (known prefix, exact length,
// base-62 digits, canonical body, matching checksum) and returns its kind.
// It does no lookup and never includes s in its error, so a caller can
// reject garbage cheaply and log the error. Errors wrap ErrMalformed.
//
// A well-formed token is not a valid credential: only finding its Digest in
// a store makes it one.
func Parse(s string) (Kind, error) {
	if len(s) != Len {
		return 0, errLength
	}
	kind, ok := kindOf(s)
	if !ok {
		return 0, errPrefix
	}
	if _, ok := decodeBody(s[prefixLen : prefixLen+bodyLen]); !ok {
		return 0, errBody
	}
	var want [checksumLen]byte
	encodeChecksum(&want, checksum(s[:prefixLen+bodyLen]))
	if string(want[:]) != s[prefixLen+bodyLen:] {
		return 0, errChecksum
	}
	return kind, nil
}

// Hint returns what a listing may show of a token: its prefix, an ellipsis
// and its last 4 characters, e.g. "mcpk_…Ab3x". Those are checksum digits:
// about 24 bits derived from the body, leaving over 230 of its 256 random
// bits unknown. It returns "" for anything Parse rejects, so a hint never
// echoes arbitrary input.
func Hint(s string) string {
	if _, err := Parse(s); err != nil {
		return ""
	}
	return s[:prefixLen] + "…" + s[len(s)-4:]
}
