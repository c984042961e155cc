package credentials_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
)

func TestSignedSessionCache(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	ada := f.signUp(t, "ada@example.com")
	org, err := f.svc.CreateOrg(ctx, ada.ID, "Acme", "UTC", meta)
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{5}, 32)
	newVerifier := func(key []byte) *credentials.SessionVerifier {
		c, err := credentials.NewSignedSessionCache(key, credentials.DefaultSessionCacheCookie, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		v := credentials.NewSessionVerifier(f.store, credentials.FixedFreshness(time.Minute), credentials.WithSessionClock(f.clock.Now),
			credentials.WithSignedSessionCache(c))
		f.events.evictors = append(f.events.evictors, v)
		return v
	}
	// Two replicas sharing the key; the second never looked the session up.
	one, two := newVerifier(key), newVerifier(key)
	other := newVerifier(bytes.Repeat([]byte{6}, 32))
	l := f.login(t, ada.Email)
	if err := f.svc.SetActiveOrg(ctx, l.Session, org.ID); err != nil {
		t.Fatal(err)
	}
	// A cookie issued with the switch's event (at its instant) is refused;
	// the request after it comes later.
	f.clock.Advance(time.Millisecond)
	first, err := one.Verify(ctx, request("192.0.2.1", "cookie", cookie(l.Token)))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := http.ParseSetCookie(first.SetCookie)
	if err != nil || sc.Name != credentials.DefaultSessionCacheCookie || !sc.Secure || !sc.HttpOnly || sc.MaxAge != 60 {
		t.Fatalf("Set-Cookie %q: %v", first.SetCookie, err)
	}
	both := cookie(l.Token) + "; " + sc.Name + "=" + sc.Value
	// verify reports the outcome and whether the cache cookie answered: a
	// lookup (memory or store) issues a new one, the cookie does not.
	verify := func(v *credentials.SessionVerifier, header string) (string, bool) {
		t.Helper()
		before := f.store.reads.Load()
		id, err := v.Verify(ctx, request("192.0.2.1", "cookie", header))
		fromCookie := err == nil && id.SetCookie == ""
		if fromCookie && (id.Tenant != org.ID || id.OrgRole != "owner" || f.store.reads.Load() != before) {
			t.Fatalf("identity %+v from the cookie, store reads %d", id, f.store.reads.Load()-before)
		}
		return kind(err), fromCookie
	}
	if got, fromCookie := verify(two, both); got != "ok" || !fromCookie {
		t.Fatalf("another replica with the cache cookie: %s, from the cookie %v", got, fromCookie)
	}
	for _, c := range []struct{ name, header string }{
		{"a tampered cookie", cookie(l.Token) + "; " + sc.Name + "=" + strings.Replace(sc.Value, "A", "B", 1) + "x"},
		{"another session's token", cookie(f.login(t, ada.Email).Token) + "; " + sc.Name + "=" + sc.Value},
		{"two cache cookies", both + "; " + sc.Name + "=" + sc.Value},
		{"the MAC spelt with other trailing bits", cookie(l.Token) + "; " + sc.Name + "=" + otherTrailingBits(sc.Value)},
		{"the MAC with a line break", cookie(l.Token) + "; " + sc.Name + "=" + sc.Value[:len(sc.Value)-2] + "\n" + sc.Value[len(sc.Value)-2:]},
	} {
		if _, fromCookie := verify(two, c.header); fromCookie {
			t.Errorf("%s: taken without a lookup", c.name)
		}
	}
	if _, fromCookie := verify(other, both); fromCookie {
		t.Error("a replica with another key took the cookie")
	}
	t.Run("fail/a revocation event refuses the cookie", func(t *testing.T) {
		if err := f.svc.RevokeSession(ctx, ada.ID, l.Session.ID, meta); err != nil {
			t.Fatal(err)
		}
		if got, _ := verify(two, both); got != "invalid" {
			t.Fatalf("got %s", got)
		}
	})
	t.Run("fail/an old cookie is looked past", func(t *testing.T) {
		l2 := f.login(t, ada.Email)
		id, err := one.Verify(ctx, request("192.0.2.1", "cookie", cookie(l2.Token)))
		if err != nil {
			t.Fatal(err)
		}
		sc2, _ := http.ParseSetCookie(id.SetCookie)
		f.clock.Advance(time.Minute)
		if _, fromCookie := verify(two, cookie(l2.Token)+"; "+sc2.Name+"="+sc2.Value); fromCookie {
			t.Fatal("a cookie a minute old was taken")
		}
	})
	t.Run("fail/after a purge the cookies issued before are looked past", func(t *testing.T) {
		l3 := f.login(t, ada.Email)
		id, _ := one.Verify(ctx, request("192.0.2.1", "cookie", cookie(l3.Token)))
		sc3, _ := http.ParseSetCookie(id.SetCookie)
		f.clock.Advance(time.Second)
		two.Purge()
		if _, fromCookie := verify(two, cookie(l3.Token)+"; "+sc3.Name+"="+sc3.Value); fromCookie {
			t.Fatal("taken after a purge")
		}
	})
	t.Run("fail/settings", func(t *testing.T) {
		for _, c := range []struct {
			key    []byte
			cookie string
			age    time.Duration
		}{{key[:16], "sc", time.Minute}, {key, "a b", time.Minute}, {key, "sc", time.Hour}} {
			if _, err := credentials.NewSignedSessionCache(c.key, c.cookie, c.age); err == nil {
				t.Errorf("accepted %d-byte key, %q, %v", len(c.key), c.cookie, c.age)
			}
		}
	})
}

// otherTrailingBits respells a base64url value ending in a 32-byte MAC:
// the last digit's two low bits are padding, which a lenient decoder
// ignores.
func otherTrailingBits(v string) string {
	const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(digits, v[len(v)-1])
	return v[:len(v)-1] + string(digits[i^1])
}
