package token

import (
	"encoding/json"
	"testing"

	"github.com/MicahParks/jwkset"
)

func TestJWKS(t *testing.T) {
	keys := []*SigningKey{mustKey(t, ES256, t0), mustKey(t, EdDSA, t0.Add(1)), mustKey(t, RS256, t0.Add(2))}
	tests := []struct {
		name string
		ks   KeySet
	}{
		{"ok/empty", KeySet{}},
		{"ok/one per algorithm", mustKeySet(t, keys...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := tt.ks.JWKS()
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(doc) {
				t.Fatalf("invalid JSON: %s", doc)
			}

			// No private members, whatever the key type.
			var raw struct {
				Keys []map[string]json.RawMessage `json:"keys"`
			}
			if err := json.Unmarshal(doc, &raw); err != nil {
				t.Fatal(err)
			}
			if raw.Keys == nil {
				t.Fatalf(`"keys" missing or null: %s`, doc)
			}
			for _, m := range raw.Keys {
				for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
					if _, ok := m[private]; ok {
						t.Fatalf("JWKS carries private member %q: %s", private, doc)
					}
				}
			}

			// Parsed back with jwkset: every key, with its kid, alg, use and
			// public key.
			var set jwkset.JWKSMarshal
			if err := json.Unmarshal(doc, &set); err != nil {
				t.Fatal(err)
			}
			want := tt.ks.Keys()
			if len(set.Keys) != len(want) {
				t.Fatalf("%d keys published, want %d", len(set.Keys), len(want))
			}
			for i, m := range set.Keys {
				j, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
				if err != nil {
					t.Fatalf("key %d does not parse: %v", i, err)
				}
				got := j.Marshal()
				if got.KID != want[i].ID || string(got.ALG) != string(want[i].Alg) || got.USE != jwkset.UseSig {
					t.Fatalf("key %d: kid %q alg %q use %q; want %q %q sig", i, got.KID, got.ALG, got.USE, want[i].ID, want[i].Alg)
				}
				if !want[i].Public().(publicKey).Equal(j.Key()) {
					t.Fatalf("key %d: published public key differs", i)
				}
			}
		})
	}
}
