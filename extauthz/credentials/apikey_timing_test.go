package credentials_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/bits"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/redisfeed"
	"github.com/mcpauthz/mcpauthz/identity/token"
	"github.com/mcpauthz/mcpauthz/internal/testtoken"
)

// digestStore is a key store and feed that knows keys by digest alone,
// with every lookup it is asked for. Asked by anything but a digest of a
// key it holds, it finds nothing; loose, it answers every digest with its
// first key, as a store matching carelessly would.
type digestStore struct {
	keys    map[token.Digest]*identity.APIKey
	loose   *identity.APIKey
	lookups []string
}

func (s *digestStore) note(what, arg string) {
	s.lookups = append(s.lookups, what+" "+arg)
}

func (s *digestStore) APIKeyByDigest(_ context.Context, d []byte) (*identity.APIKey, error) {
	s.note("store", hex.EncodeToString(d))
	if s.loose != nil {
		k := *s.loose
		return &k, nil
	}
	if len(d) != sha256.Size {
		return nil, identity.ErrNotFound
	}
	k, ok := s.keys[token.Digest(d)]
	if !ok {
		return nil, identity.ErrNotFound
	}
	c := *k
	return &c, nil
}

func (s *digestStore) OrgByID(_ context.Context, id string) (*identity.Org, error) {
	s.note("org", id)
	return &identity.Org{ID: id, Tier: identity.TierPro, TimeZone: "UTC"}, nil
}

func (s *digestStore) Membership(_ context.Context, org, user string) (*identity.Membership, error) {
	s.note("member", org+"/"+user)
	return &identity.Membership{OrgID: org, UserID: user, Role: identity.RoleAdmin}, nil
}

// APIKey and PutAPIKey make it a feed that holds nothing.
func (s *digestStore) APIKey(_ context.Context, d []byte) (*identity.APIKey, error) {
	s.note("feed", hex.EncodeToString(d))
	return nil, redisfeed.ErrMiss
}

func (s *digestStore) PutAPIKey(_ context.Context, k *identity.APIKey) error {
	s.note("put", hex.EncodeToString(k.TokenDigest))
	return nil
}

// fixedKey is the API key drawn from 32 bytes of b.
func fixedKey(t testing.TB, b byte) string {
	t.Helper()
	k, err := token.New(token.KindAPIKey, bytes.NewReader(bytes.Repeat([]byte{b}, token.RandomBytes)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keyFixture is a verifier whose store holds one key.
type keyFixture struct {
	key   string
	store *digestStore
	v     *credentials.APIKeyVerifier
}

func newKeyFixture(t testing.TB) *keyFixture {
	key := fixedKey(t, 0x11)
	d := token.DigestOf(key)
	st := &digestStore{keys: map[token.Digest]*identity.APIKey{d: {ID: "key-1", OrgID: "org-1", CreatedBy: "user-1",
		TokenDigest: d[:], Hint: token.Hint(key)}}}
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	v := credentials.NewAPIKeyVerifier(st, credentials.FixedFreshness(time.Minute),
		credentials.WithKeyFeed(st), credentials.WithKeyClock(func() time.Time { return now }))
	return &keyFixture{key: key, store: st, v: v}
}

// verify returns the outcome and the lookups it made.
func (f *keyFixture) verify(secret string) (extauthz.Identity, []string, error) {
	f.store.lookups = nil
	id, err := f.v.Verify(context.Background(), request("192.0.2.1", "x-api-key", secret))
	return id, f.store.lookups, err
}

// TestAPIKeyGuessesGainNothing: a key is found by the SHA-256 of the
// whole token and nothing else, so a guess that shares all but the last
// digit of a real key's body takes the very path of a random well-formed
// key: one feed and one store lookup, each by its own digest, and the same
// refusal — with the real key in memory or not, and however often it is
// tried.
func TestAPIKeyGuessesGainNothing(t *testing.T) {
	f := newKeyFixture(t)
	near, random := testtoken.NearMiss(t, f.key), fixedKey(t, 0x77)
	if near[:token.Len-7] != f.key[:token.Len-7] {
		t.Fatalf("%q is not a near miss of %q", near, f.key)
	}
	digest := func(s string) string { return token.DigestOf(s).String() }

	// path replaces each guess's digest with D: what is left is the path.
	path := func(lookups []string, secret string) []string {
		out := slices.Clone(lookups)
		for i := range out {
			out[i] = strings.Replace(out[i], digest(secret), "D", 1)
		}
		return out
	}
	check := func(t *testing.T, secret string) error {
		t.Helper()
		id, lookups, err := f.verify(secret)
		if !errors.Is(err, extauthz.ErrInvalidCredential) || id.Authenticated {
			t.Fatalf("a guess: %+v, %v", id, err)
		}
		if want := []string{"feed D", "store D"}; !slices.Equal(path(lookups, secret), want) {
			t.Fatalf("lookups %q, want %q by the digest of the whole guess", lookups, want)
		}
		return err
	}
	guesses := func(t *testing.T) {
		for range 2 {
			nearErr, randomErr := check(t, near), check(t, random)
			if nearErr.Error() != randomErr.Error() {
				t.Fatalf("refusals differ: %q, %q", nearErr, randomErr)
			}
		}
	}

	t.Run("ok/the key", func(t *testing.T) {
		_, lookups, err := f.verify(f.key)
		want := []string{"feed D", "store D", "put D", "org org-1", "member org-1/user-1"}
		if err != nil || !slices.Equal(path(lookups, f.key), want) {
			t.Fatalf("lookups %q, %v; want %q", lookups, err, want)
		}
	})
	t.Run("fail/the key not in memory", func(t *testing.T) {
		f.v.Purge()
		guesses(t)
	})
	t.Run("fail/the key in memory", func(t *testing.T) {
		f.verify(f.key)
		if _, lookups, err := f.verify(f.key); err != nil || len(lookups) != 0 {
			t.Fatalf("the key from memory: %v, lookups %q", err, lookups)
		}
		guesses(t)
	})
	t.Run("ok/the near miss's digest is as far from the key's as chance makes it", func(t *testing.T) {
		a, b := token.DigestOf(f.key), token.DigestOf(near)
		differ := 0
		for i := range a {
			differ += bits.OnesCount8(a[i] ^ b[i])
		}
		if differ < 96 || differ > 160 {
			t.Fatalf("%d of 256 bits differ", differ)
		}
	})
}

// TestAPIKeyLooseStoreGrantsNothing: the digest the store answers with is
// compared again, in constant time, so a store that matched loosely (a
// prefix, a collation) cannot grant the real key to a guess.
func TestAPIKeyLooseStoreGrantsNothing(t *testing.T) {
	f := newKeyFixture(t)
	f.store.loose = f.store.keys[token.DigestOf(f.key)]
	for _, c := range []struct{ name, secret string }{
		{"fail/a near miss", testtoken.NearMiss(t, f.key)},
		{"fail/a random well-formed key", fixedKey(t, 0x77)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if id, _, err := f.verify(c.secret); !errors.Is(err, extauthz.ErrInvalidCredential) || id.Authenticated {
				t.Fatalf("%+v, %v", id, err)
			}
		})
	}
	if _, _, err := f.verify(f.key); err != nil {
		t.Fatalf("the key itself: %v", err)
	}
}

// timingRatio is the median time of b over the median time of a, each
// sample a batch of calls, the two interleaved (a b, then b a) so that
// whatever else the machine does falls on both alike.
func timingRatio(samples, batch int, a, b func()) float64 {
	ta, tb := make([]time.Duration, 0, samples), make([]time.Duration, 0, samples)
	run := func(f func(), into *[]time.Duration) {
		start := time.Now()
		for range batch {
			f()
		}
		*into = append(*into, time.Since(start))
	}
	for i := range samples {
		if i%2 == 0 {
			run(a, &ta)
			run(b, &tb)
		} else {
			run(b, &tb)
			run(a, &ta)
		}
	}
	median := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	return float64(median(tb)) / float64(median(ta))
}

// TestAPIKeyGuessTiming measures what TestAPIKeyGuessesGainNothing proves:
// refusing a near miss takes as long as refusing a random key. The bound
// is loose (a factor of 2) for a busy machine; TestTimingRatioCatchesALeak
// shows that a comparison leaking per matching byte exceeds it.
func TestAPIKeyGuessTiming(t *testing.T) {
	f := newKeyFixture(t)
	near, random := testtoken.NearMiss(t, f.key), fixedKey(t, 0x77)
	ctx := context.Background()
	verify := func(secret string) func() {
		req := request("192.0.2.1", "x-api-key", secret)
		return func() {
			f.store.lookups = f.store.lookups[:0]
			f.v.Verify(ctx, req)
		}
	}
	r := timingRatio(301, 50, verify(random), verify(near))
	if r < 0.5 || r > 2 {
		t.Fatalf("a near miss takes %.2f times as long as a random key", r)
	}
	t.Logf("a near miss takes %.2f times as long as a random key", r)
}

// TestTimingRatioCatchesALeak runs timingRatio on a comparison that
// returns at the first differing byte and spends a little time on each
// matching one: the near miss stands out far beyond the bound of
// TestAPIKeyGuessTiming.
func TestTimingRatioCatchesALeak(t *testing.T) {
	key := fixedKey(t, 0x11)
	near, random := testtoken.NearMiss(t, key), fixedKey(t, 0x77)
	leaky := func(guess string) func() {
		return func() {
			for i := 0; i < len(key) && key[i] == guess[i]; i++ {
				time.Sleep(time.Microsecond)
			}
		}
	}
	r := timingRatio(15, 1, leaky(random), leaky(near))
	if r < 4 {
		t.Fatalf("a leaky comparison: a near miss takes only %.2f times as long", r)
	}
	t.Logf("a leaky comparison: a near miss takes %.2f times as long", r)
}
