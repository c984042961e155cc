package token

import "hash/crc32"

// base62Alphabet is the digit order of math/big's Text(62), so any base-62
// tool that follows math/big decodes our tokens.
const base62Alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

const (
	// bodyLen is the width of 256 bits in base 62: 62^42 < 2^256 < 62^43.
	bodyLen = 43
	// checksumLen is the width of 32 bits in base 62: 62^5 < 2^32 < 62^6.
	checksumLen = 6
	// chunk is how many base-62 digits one 32-bit limb step handles:
	// 62^5 < 2^30.
	chunk = 5
)

// pow62 returns 62^n for n <= chunk.
func pow62(n int) uint64 {
	p := uint64(1)
	for range n {
		p *= 62
	}
	return p
}

// base62Digit returns the value of one base-62 digit.
func base62Digit(c byte) (uint64, bool) {
	switch {
	case '0' <= c && c <= '9':
		return uint64(c - '0'), true
	case 'a' <= c && c <= 'z':
		return uint64(c-'a') + 10, true
	case 'A' <= c && c <= 'Z':
		return uint64(c-'A') + 36, true
	}
	return 0, false
}

// encodeBody writes the 256-bit big-endian number b into dst as exactly
// bodyLen base-62 digits, most significant first, left-padded with '0'.
// Each pass divides by 62^5 and emits five digits; the last pass, 62^3 and
// three digits (43 = 8*5 + 3).
func encodeBody(dst *[bodyLen]byte, b *[RandomBytes]byte) {
	var limbs [8]uint32 // big-endian 32-bit limbs of b
	for i := range limbs {
		limbs[i] = uint32(b[4*i])<<24 | uint32(b[4*i+1])<<16 | uint32(b[4*i+2])<<8 | uint32(b[4*i+3])
	}
	end := bodyLen
	for ; end > chunk; end -= chunk {
		putDigits(dst[end-chunk:end], divLimbs(&limbs, 62*62*62*62*62))
	}
	putDigits(dst[:end], divLimbs(&limbs, 62*62*62))
}

// divLimbs divides limbs by div in place and returns the remainder. Called
// with constant divisors, it inlines and the divisions become
// multiplications.
func divLimbs(limbs *[8]uint32, div uint64) uint64 {
	var rem uint64
	for j := range limbs {
		acc := rem<<32 | uint64(limbs[j])
		limbs[j] = uint32(acc / div)
		rem = acc % div
	}
	return rem
}

// putDigits writes v into dst as len(dst) base-62 digits.
func putDigits(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = base62Alphabet[v%62]
		v /= 62
	}
}

// decodeBody is the inverse of encodeBody. It fails on a non-digit and on a
// value of 2^256 or more, which encodeBody never produces, so each 256-bit
// value has exactly one accepted spelling.
func decodeBody(s string) (b [RandomBytes]byte, ok bool) {
	if len(s) != bodyLen {
		return b, false
	}
	var limbs [8]uint32 // little-endian limbs while accumulating
	for start := 0; start < len(s); start += chunk {
		n := min(chunk, len(s)-start)
		var carry uint64
		for i := start; i < start+n; i++ {
			d, ok := base62Digit(s[i])
			if !ok {
				return b, false
			}
			carry = carry*62 + d
		}
		mul := pow62(n)
		for j := range limbs {
			acc := uint64(limbs[j])*mul + carry
			limbs[j] = uint32(acc)
			carry = acc >> 32
		}
		if carry != 0 {
			return b, false
		}
	}
	for j, l := range limbs {
		k := 28 - 4*j
		b[k], b[k+1], b[k+2], b[k+3] = byte(l>>24), byte(l>>16), byte(l>>8), byte(l)
	}
	return b, true
}

// encodeChecksum writes v as exactly checksumLen base-62 digits.
func encodeChecksum(dst *[checksumLen]byte, v uint32) {
	putDigits(dst[:], uint64(v))
}

// checksum is the CRC-32 (IEEE) of s, computed in place with the standard
// library's table so that neither New nor Parse copies or allocates for it.
// Tests check it against crc32.ChecksumIEEE.
func checksum[T string | []byte](s T) uint32 {
	crc := ^uint32(0)
	for i := 0; i < len(s); i++ {
		crc = crc32.IEEETable[byte(crc)^s[i]] ^ crc>>8
	}
	return ^crc
}
