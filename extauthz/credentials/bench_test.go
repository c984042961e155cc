package credentials_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
	"github.com/mcpauthz/mcpauthz/identity"
)

// BenchmarkAPIKey verifies one key from memory, from Redis (memory off)
// and from the SQL store (memory and Redis off).
func BenchmarkAPIKey(b *testing.B) {
	for _, c := range []struct {
		name         string
		redis, cache bool
	}{{"memory", false, true}, {"redis", true, false}, {"sql", false, false}} {
		b.Run(c.name, func(b *testing.B) {
			f := newFixture(b, c.redis)
			ctx := context.Background()
			owner := f.signUp(b, "owner@example.com")
			org, _ := f.svc.CreateOrg(ctx, owner.ID, "Acme", "UTC", meta)
			_, secret, err := f.svc.CreateAPIKey(ctx, owner.ID, org.ID, identity.NewAPIKey{Name: "ci"}, meta)
			if err != nil {
				b.Fatal(err)
			}
			age := time.Minute
			if !c.cache {
				age = 0
			}
			opts := []credentials.KeyOption{}
			if c.redis {
				opts = append(opts, credentials.WithKeyFeed(f.feed))
			}
			v := credentials.NewAPIKeyVerifier(f.store, credentials.FixedFreshness(age), opts...)
			benchVerify(b, v, request("192.0.2.1", "x-api-key", secret))
		})
	}
}

// BenchmarkSession verifies one session cookie from memory, from Redis and
// the store (the user and membership are read from the store when memory
// is off), and from the store alone.
func BenchmarkSession(b *testing.B) {
	for _, c := range []struct {
		name         string
		redis, cache bool
	}{{"memory", false, true}, {"redis", true, false}, {"sql", false, false}} {
		b.Run(c.name, func(b *testing.B) {
			f := newFixture(b, c.redis)
			ctx := context.Background()
			u := f.signUp(b, "ada@example.com")
			org, _ := f.svc.CreateOrg(ctx, u.ID, "Acme", "UTC", meta)
			l := f.login(b, u.Email)
			if err := f.svc.SetActiveOrg(ctx, l.Session, org.ID); err != nil {
				b.Fatal(err)
			}
			age := time.Minute
			if !c.cache {
				age = 0
			}
			opts := []credentials.SessionOption{}
			if c.redis {
				opts = append(opts, credentials.WithSessionFeed(f.feed))
			}
			v := credentials.NewSessionVerifier(f.store, credentials.FixedFreshness(age), opts...)
			benchVerify(b, v, request("192.0.2.1", "cookie", cookie(l.Token)))
		})
	}
}

func benchVerify(b *testing.B, v credentials.Verifier, req *extauthz.Request) {
	ctx := context.Background()
	if _, err := v.Verify(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionSignedCookie verifies a session from its signed cache
// cookie, as a replica that never looked it up does.
func BenchmarkSessionSignedCookie(b *testing.B) {
	f := newFixture(b, false)
	ctx := context.Background()
	u := f.signUp(b, "ada@example.com")
	l := f.login(b, u.Email)
	sc, err := credentials.NewSignedSessionCache(make([]byte, 32), credentials.DefaultSessionCacheCookie, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	issuer := credentials.NewSessionVerifier(f.store, credentials.FixedFreshness(time.Minute), credentials.WithSignedSessionCache(sc))
	id, err := issuer.Verify(ctx, request("192.0.2.1", "cookie", cookie(l.Token)))
	if err != nil {
		b.Fatal(err)
	}
	c, err := http.ParseSetCookie(id.SetCookie)
	if err != nil {
		b.Fatal(err)
	}
	replica := credentials.NewSessionVerifier(f.store, credentials.FixedFreshness(time.Minute), credentials.WithSignedSessionCache(sc))
	benchVerify(b, replica, request("192.0.2.1", "cookie", cookie(l.Token)+"; "+c.Name+"="+c.Value))
}
