package token

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
)

// KEKSize is the size of a key-encryption key: AES-256.
const KEKSize = 32

// sealVersion is the first byte of everything Seal returns.
const sealVersion = 1

// sealAAD binds sealed blobs to this use, so a ciphertext made under the
// same KEK for another purpose does not open here.
const sealAAD = "mcpauthz identity/token sealed v1"

const (
	nonceSize = 12
	tagSize   = 16
)

var (
	// ErrKEKSize is a key-encryption key that is not KEKSize bytes.
	ErrKEKSize = errors.New("token: key-encryption key must be 32 bytes")
	// ErrUnseal is a sealed blob that does not open: truncated, tampered
	// with, of an unknown version, or sealed under another key.
	ErrUnseal = errors.New("token: sealed data does not open")
)

// Seal encrypts plaintext (a private key from MarshalPrivate) under kek with
// AES-256-GCM and a fresh random nonce drawn from random. The result is
// version (1 byte) || nonce (12) || ciphertext || tag (16).
//
// Random 96-bit nonces stay safe for far more than the few thousand keys a
// KEK will ever seal.
func Seal(plaintext, kek []byte, random io.Reader) ([]byte, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+tagSize)
	out[0] = sealVersion
	if _, err := io.ReadFull(random, out[1:]); err != nil {
		return nil, fmt.Errorf("token: reading nonce: %w", err)
	}
	return aead.Seal(out, out[1:1+nonceSize], plaintext, []byte(sealAAD)), nil
}

// Open decrypts what Seal returned. Every failure but a bad kek size is
// ErrUnseal: GCM cannot tell a wrong key from tampering, and neither should
// the error.
func Open(sealed, kek []byte) ([]byte, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	if len(sealed) < 1+nonceSize+tagSize || sealed[0] != sealVersion {
		return nil, ErrUnseal
	}
	plain, err := aead.Open(nil, sealed[1:1+nonceSize], sealed[1+nonceSize:], []byte(sealAAD))
	if err != nil {
		return nil, ErrUnseal
	}
	return plain, nil
}

func newAEAD(kek []byte) (cipher.AEAD, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("%w (got %d)", ErrKEKSize, len(kek))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	return aead, nil
}
