package identity_test

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/sqlstore"
	"github.com/mcpauthz/mcpauthz/identity/token"
	"github.com/mcpauthz/mcpauthz/internal/testtoken"
)

// keyLookups is the identity store with the digests API keys were looked
// up by.
type keyLookups struct {
	*sqlstore.Store
	digests []string
}

func (s *keyLookups) APIKeyByDigest(ctx context.Context, d []byte) (*identity.APIKey, error) {
	s.digests = append(s.digests, string(d))
	return s.Store.APIKeyByDigest(ctx, d)
}

// TestAuthenticateAPIKeyGuesses: the identity service, exchanging a key
// for a token, looks it up once by the SHA-256 of the whole secret. A
// guess sharing all but the last body digit of a real key is looked up
// the same way as a random key, and refused the same way; a malformed
// one is not looked up at all.
func TestAuthenticateAPIKeyGuesses(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	org, owner, _, _, _ := f.team(t)
	_, secret, err := f.svc.CreateAPIKey(ctx, owner.ID, org.ID, identity.NewAPIKey{Name: "ci"}, meta)
	if err != nil {
		t.Fatal(err)
	}
	random, err := token.New(token.KindAPIKey, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	st := &keyLookups{Store: f.store}
	svc, err := identity.NewService(st, f.audit, f.cfg, rand.Reader, identity.WithClock(f.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, secret string
		lookups      int
	}{
		{"ok/the key", secret, 1},
		{"fail/a near miss", testtoken.NearMiss(t, secret), 1},
		{"fail/a random well-formed key", random, 1},
		{"fail/the key with its checksum wrong", secret[:token.Len-1] + string(secret[token.Len-1]^1), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			st.digests = nil
			k, err := svc.AuthenticateAPIKey(ctx, c.secret, "192.0.2.1")
			if ok := strings.HasPrefix(c.name, "ok/"); ok != (err == nil) || !ok && (!errors.Is(err, identity.ErrUnauthenticated) || k != nil) {
				t.Fatalf("%+v, %v", k, err)
			}
			d := token.DigestOf(c.secret)
			if len(st.digests) != c.lookups || c.lookups == 1 && st.digests[0] != string(d[:]) {
				t.Fatalf("looked up %d digests, want %d: the SHA-256 of the whole secret", len(st.digests), c.lookups)
			}
		})
	}
}
