package token

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

var (
	// ErrNoSigner is a KeySet with no key whose signing window holds now.
	ErrNoSigner = errors.New("token: no signing key is current")
	// ErrDuplicateKID is a KeySet given two keys with the same kid.
	ErrDuplicateKID = errors.New("token: duplicate kid")
	// ErrRotationPeriod is a signing period that is not positive, or an
	// overlap that is negative or not shorter than the signing period.
	ErrRotationPeriod = errors.New("token: invalid rotation periods")
)

// KeySet is an immutable set of signing keys: the ones that sign and the
// ones kept only so tokens they signed still verify. Methods never modify a
// KeySet; Rotate returns a new one. The zero KeySet is empty and usable.
type KeySet struct {
	keys []SigningKey // ordered by CreatedAt, then ID
}

// NewKeySet returns a KeySet of copies of keys (for example as loaded from
// storage). Every key must have a private half and a distinct kid.
func NewKeySet(keys ...*SigningKey) (KeySet, error) {
	ks := KeySet{keys: make([]SigningKey, 0, len(keys))}
	for _, k := range keys {
		if k == nil || k.private == nil {
			return KeySet{}, fmt.Errorf("%w: no private key", ErrInvalidKey)
		}
		if err := checkKeyType(k.Alg, k.private); err != nil {
			return KeySet{}, err
		}
		if ks.lookup(k.ID) != nil {
			return KeySet{}, ErrDuplicateKID
		}
		ks.keys = append(ks.keys, *k)
	}
	ks.sort()
	return ks, nil
}

func (ks *KeySet) sort() {
	// Kids are distinct, so the order is total.
	slices.SortFunc(ks.keys, func(a, b SigningKey) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
}

// Len returns the number of keys in the set.
func (ks KeySet) Len() int { return len(ks.keys) }

// Keys returns copies of the keys, oldest first: what the identity service
// stores and what JWKS publishes.
func (ks KeySet) Keys() []*SigningKey {
	out := make([]*SigningKey, len(ks.keys))
	for i := range ks.keys {
		k := ks.keys[i]
		out[i] = &k
	}
	return out
}

// Key returns a copy of the key with the given kid.
func (ks KeySet) Key(kid string) (*SigningKey, bool) {
	k := ks.lookup(kid)
	if k == nil {
		return nil, false
	}
	c := *k
	return &c, true
}

func (ks *KeySet) lookup(kid string) *SigningKey {
	for i := range ks.keys {
		if ks.keys[i].ID == kid {
			return &ks.keys[i]
		}
	}
	return nil
}

// Signer returns a copy of the newest key whose signing window holds now
// (CreatedAt <= now < NotAfter), or ErrNoSigner.
func (ks KeySet) Signer(now time.Time) (*SigningKey, error) {
	for i := len(ks.keys) - 1; i >= 0; i-- {
		if ks.keys[i].SignsAt(now) {
			k := ks.keys[i]
			return &k, nil
		}
	}
	return nil, ErrNoSigner
}

// Rotate returns the set as it should be at now. Call it on a timer well
// shorter than overlap and lead (and at start-up), then store and publish
// the result.
//
//   - Keys are dropped once now > NotAfter + overlap.
//   - When the current signer's NotAfter is within overlap + lead of now,
//     a successor is added that is published at once and signs from
//     now + lead (not after the current signer's NotAfter), until
//     signingPeriod later. lead is the time every replica and verifier has
//     to learn the new key before a token signed by it reaches them.
//   - When no key signs at now, or the signer uses another algorithm (how
//     an algorithm change takes effect), a new key signs at once.
//   - The newest key whose window holds now signs. The previous key stops
//     signing when its successor starts and stays published until its
//     NotAfter + overlap, so with overlap at least the longest token
//     lifetime every token it signed verifies until it expires.
//
// overlap and lead must be at least zero, and together shorter than
// signingPeriod, or a new key would be due the moment it is made.
func (ks KeySet) Rotate(now time.Time, random io.Reader, alg Alg, signingPeriod, overlap, lead time.Duration) (KeySet, error) {
	if _, err := alg.method(); err != nil {
		return KeySet{}, err
	}
	if signingPeriod <= 0 || overlap < 0 || lead < 0 || overlap+lead >= signingPeriod {
		return KeySet{}, fmt.Errorf("%w: signing period %v, overlap %v, lead %v", ErrRotationPeriod, signingPeriod, overlap, lead)
	}
	next := KeySet{keys: make([]SigningKey, 0, len(ks.keys)+1)}
	for _, k := range ks.keys {
		if !now.After(k.NotAfter.Add(overlap)) {
			next.keys = append(next.keys, k)
		}
	}
	start := now
	if cur, err := next.Signer(now); err == nil && cur.Alg == alg {
		if now.Before(cur.NotAfter.Add(-overlap-lead)) || next.pending(now, alg) {
			return next, nil
		}
		if start = now.Add(lead); start.After(cur.NotAfter) {
			start = cur.NotAfter
		}
	}
	k, err := GenerateKey(alg, random, start)
	if err != nil {
		return KeySet{}, err
	}
	k.NotAfter = start.Add(signingPeriod)
	if next.lookup(k.ID) != nil {
		return KeySet{}, ErrDuplicateKID
	}
	next.keys = append(next.keys, *k)
	next.sort()
	return next, nil
}

// pending reports whether a key of alg is published and not yet signing.
func (ks KeySet) pending(now time.Time, alg Alg) bool {
	for _, k := range ks.keys {
		if k.Alg == alg && k.CreatedAt.After(now) {
			return true
		}
	}
	return false
}
