// Package token owns the secrets the identity service hands out and the
// primitives that protect them: the formats of opaque bearer tokens (API keys,
// session tokens, invitations: a kind prefix, 256 random bits and a checksum
// that lets garbage be rejected without a lookup), their SHA-256 digests (the
// only form ever stored) compared in constant time, and the JWT signing keys
// of the identity service: generation, rotation, encrypted storage, the
// published JWKS, signing and strict verification.
//
// Randomness and time are always passed in (crypto/rand.Reader and the wired
// clock in production). Token values never appear in errors.
//
// The package depends on the standard library, golang-jwt/jwt/v5 and
// MicahParks/jwkset only.
package token
