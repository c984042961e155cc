package token

import (
	"encoding/json"
	"fmt"

	"github.com/MicahParks/jwkset"
)

// JWKS returns the public keys of every key in the set as a JWK Set
// document (RFC 7517), each with kid, alg and use "sig", oldest first. It
// is built from the public halves only, so it cannot carry private
// members.
func (ks KeySet) JWKS() ([]byte, error) {
	doc := jwkset.JWKSMarshal{Keys: make([]jwkset.JWKMarshal, 0, len(ks.keys))}
	for i := range ks.keys {
		k := &ks.keys[i]
		j, err := jwkset.NewJWKFromKey(k.Public(), jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{
				ALG: jwkset.ALG(k.Alg),
				KID: k.ID,
				USE: jwkset.UseSig,
			},
		})
		if err != nil {
			return nil, fmt.Errorf("%w: publishing a key: %w", ErrInvalidKey, err)
		}
		doc.Keys = append(doc.Keys, j.Marshal())
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("token: encoding JWKS: %w", err)
	}
	return b, nil
}
