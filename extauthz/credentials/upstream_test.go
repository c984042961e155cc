package credentials_test

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

func TestUpstreamTokens(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	key, err := token.GenerateKey(token.ES256, rand.Reader, now)
	if err != nil {
		t.Fatal(err)
	}
	key.NotAfter = now.Add(time.Hour)
	u, err := credentials.NewUpstreamTokens(key, "mcpauthz", "https://upstream.internal", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := u.SignIdentity(&extauthz.Identity{Authenticated: true, Method: extauthz.MethodAPIKey, Subject: "key:k1",
		UserID: "u1", Tenant: "o1", OrgRole: "member", Roles: []string{"member"}, Scopes: []string{"a", "b"}}, "dec-1", now)
	if err != nil {
		t.Fatal(err)
	}
	ks, _ := token.NewKeySet(key)
	claims, err := token.Verify(tok, ks, token.WithIssuer("mcpauthz"), token.WithAudience("https://upstream.internal"),
		token.WithClock(func() time.Time { return now.Add(30 * time.Second) }))
	if err != nil {
		t.Fatal(err)
	}
	if claims["sub"] != "key:k1" || claims["tid"] != "o1" || claims["auth_method"] != "api_key" || claims["scope"] != "a b" || claims["jti"] != "dec-1" {
		t.Fatalf("claims %v", claims)
	}
	if _, err := token.Verify(tok, ks, token.WithIssuer("mcpauthz"), token.WithAudience("https://upstream.internal"),
		token.WithClock(func() time.Time { return now.Add(2 * time.Minute) })); err == nil {
		t.Fatal("an upstream token outlived its minute")
	}
	for _, c := range []struct {
		name     string
		iss, aud string
		ttl      time.Duration
	}{
		{"fail/no audience", "mcpauthz", "", time.Minute},
		{"fail/no issuer", "", "x", time.Minute},
		{"fail/too long", "mcpauthz", "x", time.Hour},
	} {
		if _, err := credentials.NewUpstreamTokens(key, c.iss, c.aud, c.ttl); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}
