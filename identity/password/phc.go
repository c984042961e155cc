package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

var (
	// ErrMalformedHash is wrapped by every error Verify returns: the stored
	// value is not an argon2id PHC string this package accepts.
	ErrMalformedHash = errors.New("malformed password hash")
	// ErrUnsupportedHash is wrapped, besides ErrMalformedHash, when the
	// stored value is a PHC string of another algorithm or argon2 version.
	ErrUnsupportedHash = errors.New("unsupported password hash")
)

const algorithm = "argon2id"

// maxEncodedLen bounds the stored string before it is split: the longest
// acceptable one (64-byte salt and key, 10-digit parameters) is under 230.
const maxEncodedLen = 256

// phc is a decoded "$argon2id$v=19$m=M,t=T,p=P$salt$key" string.
type phc struct {
	memory      uint32
	iterations  uint32
	parallelism uint8
	salt, key   []byte
}

func (h phc) encode() string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$%s$%s", algorithm, argon2.Version,
		h.memory, h.iterations, h.parallelism, b64.EncodeToString(h.salt), b64.EncodeToString(h.key))
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformedHash}, args...)...)
}

// decodePHC parses s strictly: one canonical spelling per hash (decimal
// without sign or leading zeros, unpadded standard base64 with zero trailing
// bits, no optional fields), so that decodePHC(s).encode() == s. It checks
// the cost parameters against the ceilings before anything is computed.
func decodePHC(s string) (phc, error) {
	var h phc
	if len(s) > maxEncodedLen {
		return h, malformed("longer than %d bytes", maxEncodedLen)
	}
	if !strings.HasPrefix(s, "$") {
		return h, malformed("not a PHC string")
	}
	fields := strings.Split(s[1:], "$")
	if alg := fields[0]; alg != algorithm {
		if isPHCName(alg) {
			return h, fmt.Errorf("%w: %w: algorithm %q", ErrMalformedHash, ErrUnsupportedHash, alg)
		}
		return h, malformed("not a PHC string")
	}
	if len(fields) != 5 {
		return h, malformed("%d fields, want 5", len(fields))
	}
	version, params, salt, key := fields[1], fields[2], fields[3], fields[4]

	v, ok := strings.CutPrefix(version, "v=")
	if !ok {
		return h, malformed("no version field")
	}
	if n, err := parseDecimal(v); err != nil {
		return h, malformed("version: %v", err)
	} else if n != argon2.Version {
		return h, fmt.Errorf("%w: %w: argon2 version %d", ErrMalformedHash, ErrUnsupportedHash, n)
	}

	var err error
	if h.memory, h.iterations, h.parallelism, err = parseParams(params); err != nil {
		return h, err
	}
	if err := checkCost(h.memory, h.iterations, h.parallelism); err != nil {
		return h, fmt.Errorf("%w: %w", ErrMalformedHash, err)
	}

	if h.salt, err = decodeBase64(salt); err != nil {
		return h, malformed("salt: %v", err)
	}
	if n := len(h.salt); n < minStoredSaltLen || n > maxSaltLen {
		return h, malformed("salt of %d bytes, want %d to %d", n, minStoredSaltLen, maxSaltLen)
	}
	if h.key, err = decodeBase64(key); err != nil {
		return h, malformed("key: %v", err)
	}
	if n := len(h.key); n < minKeyLen || n > maxKeyLen {
		return h, malformed("key of %d bytes, want %d to %d", n, minKeyLen, maxKeyLen)
	}
	return h, nil
}

// parseParams parses "m=M,t=T,p=P", in that order, nothing else.
func parseParams(s string) (memory, iterations uint32, parallelism uint8, err error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return 0, 0, 0, malformed("parameters %q, want m=,t=,p=", clip(s))
	}
	var vals [3]uint32
	for i, name := range [3]string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(parts[i], name)
		if !ok {
			return 0, 0, 0, malformed("parameters %q, want m=,t=,p=", clip(s))
		}
		if vals[i], err = parseDecimal(v); err != nil {
			return 0, 0, 0, malformed("parameter %s %v", name[:1], err)
		}
	}
	if vals[2] > 255 {
		return 0, 0, 0, fmt.Errorf("%w: %w: parallelism %d outside [1, %d]",
			ErrMalformedHash, ErrInvalidParams, vals[2], maxParallelism)
	}
	return vals[0], vals[1], uint8(vals[2]), nil
}

// parseDecimal accepts the PHC decimal form: digits only, no leading zero.
func parseDecimal(s string) (uint32, error) {
	if s == "" || len(s) > 10 || (s[0] == '0' && len(s) > 1) || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a canonical decimal", clip(s))
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range", clip(s))
	}
	return uint32(n), nil
}

// decodeBase64 accepts unpadded standard base64 with zero trailing bits.
// The alphabet is checked first because the decoder skips CR and LF.
func decodeBase64(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return nil, errors.New("not unpadded standard base64")
		}
	}
	b, err := base64.RawStdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, errors.New("not canonical base64")
	}
	return b, nil
}

// isPHCName reports whether s has the shape of a PHC algorithm identifier
// ([a-z0-9-], at most 32 characters), so that errors can tell "another
// algorithm" (bcrypt's "2b", "argon2i", "scrypt") from garbage.
func isPHCName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// clip shortens attacker-controlled text before it goes into an error.
func clip(s string) string {
	const n = 16
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
