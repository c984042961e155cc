package token

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"time"
)

// keyFileVersion is the version of the envelope MarshalPrivate writes.
const keyFileVersion = 1

// keyFile is the stored form of a SigningKey: its metadata and the private
// key as PKCS#8 PEM.
type keyFile struct {
	Version    int       `json:"version"`
	KID        string    `json:"kid"`
	Alg        Alg       `json:"alg"`
	CreatedAt  time.Time `json:"created_at"`
	NotAfter   time.Time `json:"not_after"`
	PrivateKey string    `json:"private_key"`
}

// MarshalPrivate returns k with its private key as a small JSON document:
// version, kid, alg, created_at, not_after (RFC 3339) and private_key (PKCS#8
// PEM). The result is a secret: Seal it before storing it.
func MarshalPrivate(k *SigningKey) ([]byte, error) {
	if k == nil || k.private == nil {
		return nil, fmt.Errorf("%w: no private key", ErrInvalidKey)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.private)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding PKCS#8: %w", ErrInvalidKey, err)
	}
	return json.Marshal(keyFile{
		Version:    keyFileVersion,
		KID:        k.ID,
		Alg:        k.Alg,
		CreatedAt:  k.CreatedAt,
		NotAfter:   k.NotAfter,
		PrivateKey: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	})
}

// UnmarshalPrivate reads what MarshalPrivate wrote. It decodes strictly
// (unknown members and trailing data are errors) and checks that the key
// suits alg, that kid is the key's thumbprint and that created_at is before
// not_after. Errors wrap ErrInvalidKey or ErrUnsupportedAlg and never quote
// key material.
func UnmarshalPrivate(data []byte) (*SigningKey, error) {
	var f keyFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: decoding key envelope", ErrInvalidKey)
	}
	// More misses a stray ] or }; only the end of the input will do.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: trailing data after key envelope", ErrInvalidKey)
	}
	if f.Version != keyFileVersion {
		return nil, fmt.Errorf("%w: key envelope version %d, want %d", ErrInvalidKey, f.Version, keyFileVersion)
	}
	if _, err := f.Alg.method(); err != nil {
		return nil, err
	}
	if !f.CreatedAt.Before(f.NotAfter) {
		return nil, fmt.Errorf("%w: created_at is not before not_after", ErrInvalidKey)
	}
	block, rest := pem.Decode([]byte(f.PrivateKey))
	if block == nil || block.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: private_key is not one PKCS#8 PEM block", ErrInvalidKey)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: parsing PKCS#8", ErrInvalidKey)
	}
	priv, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %T cannot sign", ErrInvalidKey, parsed)
	}
	k, err := newSigningKey(f.Alg, priv, f.CreatedAt, f.NotAfter)
	if err != nil {
		return nil, err
	}
	if k.ID != f.KID {
		return nil, fmt.Errorf("%w: kid does not match the key's thumbprint", ErrInvalidKey)
	}
	return k, nil
}
