package password

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// Hash derives an argon2id key from the NFC form of password with a fresh
// salt of p.SaltLen bytes read from random (crypto/rand.Reader in
// production), and returns it in the PHC string format:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>
//
// with salt and key in unpadded standard base64. Invalid p gives an error
// wrapping ErrInvalidParams; a short read from random is an error too.
func Hash(password string, p Params, random io.Reader) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	if random == nil {
		return "", errors.New("password: no random source for the salt")
	}
	salt := make([]byte, p.SaltLen)
	if _, err := io.ReadFull(random, salt); err != nil {
		return "", fmt.Errorf("password: reading salt: %w", err)
	}
	key := argon2.IDKey(nfc(password), salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
	return phc{memory: p.Memory, iterations: p.Iterations, parallelism: p.Parallelism, salt: salt, key: key}.encode(), nil
}

// Verify reports whether password matches encoded, a string made by Hash
// (or by any argon2id v1.3 implementation writing canonical PHC strings).
// The comparison is constant-time. An error, always wrapping
// ErrMalformedHash, means the stored value is unusable: not such a string,
// another algorithm or version (also ErrUnsupportedHash), or parameters
// beyond the ceilings of Params.Validate (also ErrInvalidParams) — checked
// before any work, so a tampered row cannot make a login allocate more than
// 1 GiB or run for more than about a second. Parameters weaker than
// Validate's floor are accepted, so that old hashes keep working until
// NeedsRehash replaces them.
//
// Each call allocates the hash's memory (19 MiB with DefaultParams); callers
// bound how many run at once.
func Verify(password, encoded string) (bool, error) {
	h, err := decodePHC(encoded)
	if err != nil {
		return false, err
	}
	key := argon2.IDKey(nfc(password), h.salt, h.iterations, h.memory, h.parallelism, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(key, h.key) == 1, nil
}

// VerifyDummy spends the time and memory of verifying password against a
// hash made with p, and returns nothing. Login calls it when no user has the
// given address, so that the answer takes as long as a wrong password for a
// real user and response time does not reveal which addresses have
// accounts. Invalid p is replaced by DefaultParams rather than panicking;
// validate p at start-up.
//
// It is exact when stored hashes use p; a user whose hash still has older
// parameters (NeedsRehash) takes their time until the next login rehashes it.
func VerifyDummy(password string, p Params) {
	if p.Validate() != nil {
		p = DefaultParams
	}
	// A fixed all-zero salt: nothing is stored, and the result is discarded.
	salt := make([]byte, p.SaltLen)
	key := argon2.IDKey(nfc(password), salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
	subtle.ConstantTimeCompare(key, make([]byte, len(key)))
}

// NeedsRehash reports whether encoded should be replaced by a fresh Hash
// with p after the next successful Verify: its parameters, salt length or
// key length differ from p's, or it cannot be decoded at all.
func NeedsRehash(encoded string, p Params) bool {
	h, err := decodePHC(encoded)
	if err != nil {
		return true
	}
	return h.memory != p.Memory || h.iterations != p.Iterations || h.parallelism != p.Parallelism ||
		uint32(len(h.salt)) != p.SaltLen || uint32(len(h.key)) != p.KeyLen
}

// nfc is the byte string argon2 sees for a password. Invalid UTF-8 passes
// through unchanged, so Hash and Verify still agree on it.
func nfc(password string) []byte {
	return []byte(norm.NFC.String(password))
}
