// Package testtoken makes tokens for tests of how guesses are refused.
package testtoken

import (
	"hash/crc32"
	"math/big"
	"strings"
	"testing"

	"github.com/mcpauthz/mcpauthz/identity/token"
)

// NearMiss is the closest well-formed guess at the API key key: its
// prefix and body but for the body's last digit, with the checksum made
// right (CRC-32 of the rest, in six base-62 digits of math/big's order).
func NearMiss(tb testing.TB, key string) string {
	tb.Helper()
	const digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	body := []byte(key[:token.Len-6])
	last := len(body) - 1
	body[last] = digits[(strings.IndexByte(digits, body[last])+1)%len(digits)]
	sum := big.NewInt(int64(crc32.ChecksumIEEE(body))).Text(62)
	guess := string(body) + strings.Repeat("0", 6-len(sum)) + sum
	if kind, err := token.Parse(guess); err != nil || kind != token.KindAPIKey {
		tb.Fatalf("near miss %q: %v", guess, err)
	}
	return guess
}
