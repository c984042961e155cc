package token

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
)

// Digest is the SHA-256 of a whole token string: the only form of an opaque
// token a store keeps and looks up. The token has 256 random bits, so an
// unsalted fast hash is enough to make the stored form useless to a thief.
type Digest [sha256.Size]byte

// DigestOf returns the digest of token s. (It cannot be named Digest: that
// is the type.)
func DigestOf(s string) Digest {
	if len(s) <= Len {
		// A token fits on the stack; []byte(s) would allocate past 32 bytes.
		var buf [Len]byte
		return sha256.Sum256(buf[:copy(buf[:], s)])
	}
	return sha256.Sum256([]byte(s))
}

// String returns the digest as 64 lowercase hex digits.
func (d Digest) String() string {
	return hex.EncodeToString(d[:])
}

// ParseDigest parses the 64 hex digits String returns. Errors wrap
// ErrMalformed.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if len(s) != 2*len(d) {
		return Digest{}, fmt.Errorf("%w: digest is %d characters, want %d", ErrMalformed, len(s), 2*len(d))
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return Digest{}, fmt.Errorf("%w: digest is not hex", ErrMalformed)
	}
	return d, nil
}

// Equal reports whether a and b are the same digest, in time independent of
// where they differ.
func Equal(a, b Digest) bool {
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
