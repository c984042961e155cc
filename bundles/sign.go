package bundles

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/open-policy-agent/opa/v1/bundle"
)

// ErrSignature wraps every reason a bundle fails signature verification:
// it is unsigned, a file was changed, added or removed after signing, it
// was signed by another key, or its signature names no or another key id.
var ErrSignature = errors.New("bundle signature rejected")

// Signing algorithms Sign accepts.
const (
	RS256 = "RS256"
	ES256 = "ES256"
)

// Sign signs every file of b (modules, data, manifest) with the PEM private
// key and names keyID in the signature, replacing any signature b had. The
// algorithm is RS256 (an RSA key) or ES256 (a P-256 key); "" means RS256.
// Write the bundle with Write so the signed paths match the archive.
func Sign(b *bundle.Bundle, privateKeyPEM []byte, keyID, alg string) error {
	if keyID == "" {
		return errors.New("signing a bundle: a key id is required")
	}
	if alg == "" {
		alg = RS256
	}
	key := strings.TrimSpace(string(privateKeyPEM))
	if !strings.HasPrefix(key, "-----BEGIN") {
		return errors.New("signing a bundle: the private key is not PEM")
	}
	sc := bundle.NewSigningConfig(key, alg, "")
	priv, err := sc.GetPrivateKey()
	if err != nil {
		return fmt.Errorf("signing a bundle: %w", err)
	}
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		if alg != RS256 {
			return fmt.Errorf("signing a bundle: an RSA key signs RS256, not %s", alg)
		}
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("signing a bundle: the RSA key has %d bits, fewer than 2048", k.N.BitLen())
		}
	case *ecdsa.PrivateKey:
		if alg != ES256 || k.Curve != elliptic.P256() {
			return fmt.Errorf("signing a bundle: a %s key cannot sign %s (ES256 needs P-256)", k.Curve.Params().Name, alg)
		}
	default:
		return fmt.Errorf("signing a bundle: unsupported private key type %T (want RSA or P-256 ECDSA)", priv)
	}
	b.Signatures = bundle.SignaturesConfig{}
	if err := b.GenerateSignature(sc, keyID, true); err != nil {
		return fmt.Errorf("signing a bundle: %w", err)
	}
	return nil
}

// Verification is what a bundle must be signed with to load: one public key
// under one key id, and optionally a scope. With a Verification, an
// unsigned bundle is rejected, and so is a signature whose header names no
// key id or another one, even if it was made with the same key.
type Verification struct {
	keyID string
	alg   string
	cfg   *bundle.VerificationConfig
}

// NewVerification returns the verification for bundles signed with the
// private half of publicKeyPEM (a PKIX or PKCS#1 public key, or a
// certificate) as keyID. The algorithm follows from the key: RS256 for
// RSA, ES256 for P-256. keyID is required: a key without one could not
// tell a signature naming another key from its own.
func NewVerification(publicKeyPEM []byte, keyID, scope string) (*Verification, error) {
	if keyID == "" {
		return nil, errors.New("bundle verification: a key id is required")
	}
	alg, err := publicKeyAlg(publicKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("bundle verification: %w", err)
	}
	keys := map[string]*bundle.KeyConfig{keyID: {Key: string(publicKeyPEM), Algorithm: alg, Scope: scope}}
	// An empty KeyID makes OPA pick the key by the signature's own "kid":
	// only keyID is known, so a signature naming any other (or none) fails.
	// A configured KeyID would instead be used whatever the signature says.
	cfg := bundle.NewVerificationConfig(keys, "", scope, nil)
	if !cfg.SignatureRequired() {
		return nil, errors.New("bundle verification: signatures would be optional")
	}
	return &Verification{keyID: keyID, alg: alg, cfg: cfg}, nil
}

// KeyID returns the key id signatures must name.
func (v *Verification) KeyID() string { return v.keyID }

// Algorithm returns the signature algorithm the key verifies.
func (v *Verification) Algorithm() string { return v.alg }

func publicKeyAlg(data []byte) (string, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return "", errors.New("the public key is not PEM")
	}
	var pub any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		return "", fmt.Errorf("a PEM %q block is not a public key", block.Type)
	}
	if err != nil {
		return "", fmt.Errorf("parsing the public key: %w", err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return "", fmt.Errorf("the RSA key has %d bits, fewer than 2048", k.N.BitLen())
		}
		return RS256, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("a %s key is not supported (ES256 needs P-256)", k.Curve.Params().Name)
		}
		return ES256, nil
	}
	return "", fmt.Errorf("unsupported public key type %T (want RSA or P-256 ECDSA)", pub)
}

// SignatureInfo is what a bundle's signature claims, read without
// verifying it: for display only.
type SignatureInfo struct {
	KeyID     string   // the header's "kid", or the payload's "keyid"
	Algorithm string   // the header's "alg"
	Scope     string   // the payload's "scope"
	Files     []string // the files the signature covers
}

// parseSignatures decodes a .signatures.json file without verifying it.
func parseSignatures(data []byte) (*SignatureInfo, error) {
	var sc bundle.SignaturesConfig
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&sc); err != nil {
		return nil, fmt.Errorf(".signatures.json: %w", err)
	}
	if len(sc.Signatures) != 1 {
		return nil, fmt.Errorf(".signatures.json: %d signatures, want exactly one", len(sc.Signatures))
	}
	parts := strings.Split(sc.Signatures[0], ".")
	if len(parts) != 3 {
		return nil, errors.New(".signatures.json: the signature is not a compact JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf(".signatures.json: %w", err)
	}
	alg, kid, err := signatureHeader(raw)
	if err != nil {
		return nil, fmt.Errorf(".signatures.json: %w", err)
	}
	// The payload is read as OPA's verifier reads it. Its keyid is OPA's
	// older claim, from before the header's kid.
	var payload bundle.DecodedSignature
	if raw, err = base64.RawURLEncoding.DecodeString(parts[1]); err != nil {
		return nil, fmt.Errorf(".signatures.json: %w", err)
	}
	if err := json.Unmarshal(raw, &payload); err != nil {
		return nil, fmt.Errorf(".signatures.json: %w", err)
	}
	info := &SignatureInfo{KeyID: kid, Algorithm: alg, Scope: payload.Scope}
	if info.KeyID == "" {
		info.KeyID = payload.KeyID
	}
	for _, f := range payload.Files {
		info.Files = append(info.Files, f.Name)
	}
	return info, nil
}

// signatureHeader returns the alg and kid of a signature's JSON header.
// OPA's verifier takes the kid by its exact name, where encoding/json
// would also take "KID"; a member given twice is refused, since the
// verifier and a decoder may each take another copy.
func signatureHeader(raw []byte) (alg, kid string, err error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", "", errors.New("the signature header is not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", "", fmt.Errorf("the signature header: %w", err)
		}
		name, _ := tok.(string)
		if seen[name] {
			return "", "", fmt.Errorf("the signature header repeats %q", name)
		}
		seen[name] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return "", "", fmt.Errorf("the signature header: %w", err)
		}
		var dst *string
		switch name {
		case "alg":
			dst = &alg
		case "kid":
			dst = &kid
		default:
			continue
		}
		if err := json.Unmarshal(value, dst); err != nil {
			return "", "", fmt.Errorf("the signature header's %q is not a string", name)
		}
	}
	if _, err := dec.Token(); err != nil {
		return "", "", fmt.Errorf("the signature header: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "", "", errors.New("the signature header has data after its object")
	}
	return alg, kid, nil
}
