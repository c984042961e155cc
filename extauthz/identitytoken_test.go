package extauthz

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// stampSigner "signs" an identity as its subject and decision id.
type stampSigner struct{ err error }

func (s stampSigner) SignIdentity(id *Identity, decisionID string, _ time.Time) (string, error) {
	return "token-of-" + id.Subject + "-" + decisionID, s.err
}

func TestIdentityToken(t *testing.T) {
	alice := Identity{Authenticated: true, Method: MethodSession, Subject: "alice", UserID: "alice"}
	for _, c := range []struct {
		name   string
		id     Identity
		signer stampSigner
		status int
		token  string
	}{
		{"ok/an authenticated allow carries the token", alice, stampSigner{}, 0, "token-of-alice-dec-1"},
		{"ok/an anonymous allow carries none", Anonymous, stampSigner{}, 0, ""},
		{"fail/no token, no allow", alice, stampSigner{err: errors.New("key gone")}, http.StatusInternalServerError, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := NewAuthorizer(&fakePolicy{decide: allow}, fixedIDs(),
				WithIdentityVerifier(fakeIdentity{id: c.id}), WithIdentityToken(c.signer, "X-Mcpauthz-Identity"))
			req := &Request{Method: "GET", Path: "/x", Headers: map[string]string{"x-mcpauthz-identity": "forged"}}
			d, _ := a.Check(context.Background(), req)
			if d.Status != c.status {
				t.Fatalf("status %d, want %d", d.Status, c.status)
			}
			var got string
			for _, h := range d.Headers {
				if h.Name == "x-mcpauthz-identity" {
					got = h.Value
				}
			}
			if got != c.token {
				t.Fatalf("token header %q, want %q", got, c.token)
			}
			if d.Allowed && got == "" {
				// The client's copy must not reach the upstream.
				removed := false
				for _, n := range d.RequestHeadersToRemove {
					removed = removed || n == "x-mcpauthz-identity"
				}
				if !removed {
					t.Fatal("a forged token header goes upstream")
				}
			}
		})
	}
}
