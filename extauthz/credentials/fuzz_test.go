package credentials_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

// unknownStore knows no key and no session, and records the digests it
// is asked for.
type unknownStore struct {
	mu      sync.Mutex
	lookups []token.Digest
}

func (s *unknownStore) lookup(d []byte) {
	s.mu.Lock()
	s.lookups = append(s.lookups, token.Digest(d))
	s.mu.Unlock()
}

func (s *unknownStore) take() []token.Digest {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lookups
	s.lookups = nil
	return l
}

func (s *unknownStore) APIKeyByDigest(_ context.Context, d []byte) (*identity.APIKey, error) {
	s.lookup(d)
	return nil, identity.ErrNotFound
}

func (s *unknownStore) SessionByDigest(_ context.Context, d []byte) (*identity.Session, error) {
	s.lookup(d)
	return nil, identity.ErrNotFound
}

func (s *unknownStore) UserByID(context.Context, string) (*identity.User, error) {
	return nil, identity.ErrNotFound
}

func (s *unknownStore) OrgByID(context.Context, string) (*identity.Org, error) {
	return nil, identity.ErrNotFound
}

func (s *unknownStore) Membership(context.Context, string, string) (*identity.Membership, error) {
	return nil, identity.ErrNotFound
}

// FuzzCredentialHeaders feeds arbitrary Authorization, x-api-key and Cookie
// headers to the verifiers: no panic, never an identity from a store that
// knows no credential, and the store asked only for the digest of a
// well-formed token the headers carry. The checksum is no secret (the
// fuzzer forges it from the comparison), so a forged token does reach the
// store, and is refused there.
func FuzzCredentialHeaders(f *testing.F) {
	for _, s := range [][3]string{
		{"Bearer mcpk_abc", "", ""},
		{"", "mcpk_" + strings.Repeat("A", 48), ""},
		{"", "", credentials.DefaultSessionCookie + `="mcps_x"; a=b, c="d,e"`},
		{"bearer a=b=", "x", "=;;,,\""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	store := &unknownStore{}
	keys := credentials.NewAPIKeyVerifier(store, credentials.FixedFreshness(0))
	sessions := credentials.NewSessionVerifier(store, credentials.FixedFreshness(0))
	chain := credentials.NewChain(keys, sessions)
	f.Fuzz(func(t *testing.T, authz, apiKey, cookie string) {
		var headers []string
		for _, h := range [][2]string{{"authorization", authz}, {"x-api-key", apiKey}, {"cookie", cookie}} {
			if h[1] != "" {
				headers = append(headers, h[0], h[1])
			}
		}
		id, err := chain.Verify(context.Background(), request("192.0.2.1", headers...))
		if err == nil && !id.IsAnonymous() {
			t.Fatalf("an identity from %q %q %q: %+v", authz, apiKey, cookie, id)
		}
		for _, d := range store.take() {
			if !carriesToken(d, authz, apiKey, cookie) {
				t.Fatalf("store asked for a digest of no well-formed token in %q %q %q", authz, apiKey, cookie)
			}
		}
	})
}

// carriesToken reports whether one of the header values holds, anywhere,
// a well-formed token whose digest is d.
func carriesToken(d token.Digest, values ...string) bool {
	for _, v := range values {
		for i := 0; i+token.Len <= len(v); i++ {
			s := v[i : i+token.Len]
			if _, err := token.Parse(s); err == nil && token.DigestOf(s) == d {
				return true
			}
		}
	}
	return false
}
