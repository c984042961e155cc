package credentials_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

// manyKeys is a key store holding n keys of four organizations, each read
// back as a store reads it: every string freshly allocated.
type manyKeys struct {
	keys map[token.Digest]*identity.APIKey
}

func newManyKeys(tb testing.TB, n int) (*manyKeys, []string) {
	tb.Helper()
	s := &manyKeys{keys: make(map[token.Digest]*identity.APIKey, n)}
	secrets := make([]string, n)
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range n {
		seed := make([]byte, token.RandomBytes)
		binary.BigEndian.PutUint64(seed, uint64(i)+1)
		secret, err := token.New(token.KindAPIKey, bytes.NewReader(seed))
		if err != nil {
			tb.Fatal(err)
		}
		d := token.DigestOf(secret)
		s.keys[d] = &identity.APIKey{
			ID: fmt.Sprintf("key_01JD%022d", i), OrgID: fmt.Sprintf("org_01JD%022d", i%4),
			CreatedBy: fmt.Sprintf("usr_01JD%022d", i%64), Name: fmt.Sprintf("agent %d", i),
			TokenDigest: d[:], Hint: token.Hint(secret), Scopes: []string{"mcp:tools:call", "mcp:tools:list"},
			Tier: identity.TierPro, CreatedAt: created, LastUsedAt: created,
		}
		secrets[i] = secret
	}
	return s, secrets
}

func (s *manyKeys) APIKeyByDigest(_ context.Context, d []byte) (*identity.APIKey, error) {
	k, ok := s.keys[token.Digest(d)]
	if !ok {
		return nil, identity.ErrNotFound
	}
	c := *k
	c.ID, c.OrgID, c.CreatedBy, c.Name, c.Hint = strings.Clone(c.ID), strings.Clone(c.OrgID),
		strings.Clone(c.CreatedBy), strings.Clone(c.Name), strings.Clone(c.Hint)
	c.TokenDigest = bytes.Clone(c.TokenDigest)
	c.Scopes = []string{strings.Clone(c.Scopes[0]), strings.Clone(c.Scopes[1])}
	c.Tier = identity.Tier(strings.Clone(string(c.Tier)))
	return &c, nil
}

func (s *manyKeys) OrgByID(_ context.Context, id string) (*identity.Org, error) {
	return &identity.Org{ID: strings.Clone(id), Tier: identity.TierPro, TimeZone: strings.Clone("Europe/Berlin")}, nil
}

func (s *manyKeys) Membership(_ context.Context, org, user string) (*identity.Membership, error) {
	return &identity.Membership{OrgID: strings.Clone(org), UserID: strings.Clone(user), Role: identity.Role(strings.Clone("member"))}, nil
}

// BenchmarkAPIKeyMemory reports the heap an API key takes in the
// verifier's memory once verified (B/key), for 1,000 and 100,000 keys.
func BenchmarkAPIKeyMemory(b *testing.B) {
	for _, n := range []int{1000, 100_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			store, secrets := newManyKeys(b, n)
			ctx := context.Background()
			var perKey float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				v := credentials.NewAPIKeyVerifier(store, credentials.FixedFreshness(time.Hour), credentials.WithKeyCacheSize(n))
				for _, secret := range secrets {
					if _, err := v.Verify(ctx, request("192.0.2.1", "x-api-key", secret)); err != nil {
						b.Fatal(err)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perKey = float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
				runtime.KeepAlive(v)
			}
			b.ReportMetric(perKey, "B/key")
		})
	}
}
