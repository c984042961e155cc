package credentials_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/redisfeed"
)

func TestSessionVerifier(t *testing.T) {
	for _, withRedis := range []bool{false, true} {
		name := "sql"
		if withRedis {
			name = "redis"
		}
		t.Run(name, func(t *testing.T) { testSessionVerifier(t, withRedis) })
	}
}

func cookie(tok string) string { return credentials.DefaultSessionCookie + "=" + tok }

func testSessionVerifier(t *testing.T, withRedis bool) {
	f := newFixture(t, withRedis)
	ctx := context.Background()
	ada := f.signUp(t, "ada@example.com")
	bob := f.signUp(t, "bob@example.com")
	root := f.signUp(t, "root@example.com")
	if _, err := f.svc.BootstrapAdmin(ctx, root.Email, meta); err != nil {
		t.Fatal(err)
	}
	org, err := f.svc.CreateOrg(ctx, ada.ID, "Acme", "UTC", meta)
	if err != nil {
		t.Fatal(err)
	}
	_, invite, err := f.svc.Invite(ctx, ada.ID, org.ID, bob.Email, "member", meta)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AcceptInvitation(ctx, bob.ID, invite, meta); err != nil {
		t.Fatal(err)
	}
	la, lb, lr := f.login(t, ada.Email), f.login(t, bob.Email), f.login(t, root.Email)
	if err := f.svc.SetActiveOrg(ctx, la.Session, org.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.SetActiveOrg(ctx, lb.Session, org.ID); err != nil {
		t.Fatal(err)
	}
	opts := []credentials.SessionOption{credentials.WithSessionClock(f.clock.Now)}
	if f.feed != nil {
		opts = append(opts, credentials.WithSessionFeed(f.feed))
	}
	v := credentials.NewSessionVerifier(f.store, credentials.FixedFreshness(time.Minute), opts...)
	f.events.evictors = append(f.events.evictors, v)
	verify := func(headers ...string) (extauthz.Identity, string) {
		id, err := v.Verify(ctx, request("192.0.2.1", headers...))
		return id, kind(err)
	}

	for _, c := range []struct {
		name    string
		headers []string
		want    string
		check   func(t *testing.T, id extauthz.Identity)
	}{
		{name: "ok/the owner's session", headers: []string{"cookie", "theme=dark; " + cookie(la.Token)}, want: "ok",
			check: func(t *testing.T, id extauthz.Identity) {
				if id.Method != extauthz.MethodSession || id.UserID != ada.ID || id.Tenant != org.ID || id.OrgRole != "owner" || id.Tier != "free" ||
					id.Session.ID != la.Session.ID || !id.Session.AuthTime.Equal(la.Session.AuthTime) || !slices.Equal(id.Roles, []string{"owner"}) {
					t.Errorf("identity %+v %+v", id, id.Session)
				}
			}},
		{name: "ok/a platform admin without an org", headers: []string{"cookie", cookie(lr.Token)}, want: "ok",
			check: func(t *testing.T, id extauthz.Identity) {
				if id.Tenant != "" || !slices.Equal(id.Roles, []string{"platform:admin", "platform:super-admin"}) {
					t.Errorf("identity %+v", id)
				}
			}},
		{name: "ok/cookies joined by a proxy", headers: []string{"cookie", "a=1, " + cookie(lb.Token) + ", b=2"}, want: "ok"},
		{name: "fail/two session cookies", headers: []string{"cookie", cookie(la.Token) + "; " + cookie(lb.Token)}, want: "invalid"},
		{name: "ok/beside malformed cookies", headers: []string{"cookie", cookie(la.Token) + `; prefs={"theme":"dark"}; flag; consent=yes; `}, want: "ok"},
		{name: "ok/quoted", headers: []string{"cookie", credentials.DefaultSessionCookie + `="` + la.Token + `"`}, want: "ok"},
		{name: "fail/a second copy behind a broken cookie", headers: []string{"cookie", cookie(la.Token) + `; broken; a="x, ` + cookie(lb.Token)}, want: "invalid"},
		{name: "ok/alone it leaves an Authorization header to the chain", headers: []string{"cookie", cookie(la.Token), "authorization", "Bearer x"}, want: "ok"},
		{name: "fail/a forged token", headers: []string{"cookie", cookie("mcps_" + strings.Repeat("A", len(la.Token)-5))}, want: "invalid"},
		{name: "fail/not a session token", headers: []string{"cookie", cookie("hello")}, want: "invalid"},
		{name: "ok/not mine without the cookie", headers: []string{"cookie", "session=" + la.Token}, want: "not mine"},
		{name: "ok/not mine without cookies", headers: nil, want: "not mine"},
	} {
		t.Run(c.name, func(t *testing.T) {
			id, got := verify(c.headers...)
			if got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
			if c.check != nil {
				c.check(t, id)
			}
		})
	}

	t.Run("ok/a removed member keeps the session, not the tenant", func(t *testing.T) {
		if id, _ := verify("cookie", cookie(lb.Token)); id.Tenant != org.ID {
			t.Fatalf("before: %+v", id)
		}
		if err := f.svc.RemoveMember(ctx, ada.ID, org.ID, bob.ID, meta); err != nil {
			t.Fatal(err)
		}
		id, got := verify("cookie", cookie(lb.Token))
		if got != "ok" || id.Tenant != "" || id.OrgRole != "" || len(id.Roles) != 0 {
			t.Fatalf("after removal: %s %+v", got, id)
		}
	})
	t.Run("fail/logged out while cached", func(t *testing.T) {
		if _, got := verify("cookie", cookie(la.Token)); got != "ok" {
			t.Fatal(got)
		}
		if err := f.svc.RevokeSession(ctx, ada.ID, la.Session.ID, meta); err != nil {
			t.Fatal(err)
		}
		if _, got := verify("cookie", cookie(la.Token)); got != "invalid" {
			t.Fatalf("a logged-out session: %s", got)
		}
	})
	t.Run("fail/banned while cached", func(t *testing.T) {
		l := f.login(t, bob.Email)
		if _, got := verify("cookie", cookie(l.Token)); got != "ok" {
			t.Fatal(got)
		}
		if err := f.svc.Ban(ctx, lr.Session, bob.ID, "abuse", time.Time{}, meta); err != nil {
			t.Fatal(err)
		}
		if _, got := verify("cookie", cookie(l.Token)); got != "invalid" {
			t.Fatalf("a banned user's session: %s", got)
		}
	})
	t.Run("ok/a tier change shows at once", func(t *testing.T) {
		l := f.login(t, ada.Email)
		if err := f.svc.SetActiveOrg(ctx, l.Session, org.ID); err != nil {
			t.Fatal(err)
		}
		if id, _ := verify("cookie", cookie(l.Token)); id.Tier != "free" {
			t.Fatalf("tier %q", id.Tier)
		}
		if err := f.svc.SetOrgTier(ctx, lr.Session, org.ID, identity.TierPro, meta); err != nil {
			t.Fatal(err)
		}
		if id, _ := verify("cookie", cookie(l.Token)); id.Tier != "pro" {
			t.Fatalf("tier after the change %q", id.Tier)
		}
	})
	t.Run("ok/platform roles change at once", func(t *testing.T) {
		l := f.login(t, ada.Email)
		roles := func() []string {
			id, got := verify("cookie", cookie(l.Token))
			if got != "ok" {
				t.Fatal(got)
			}
			return id.Roles
		}
		if slices.Contains(roles(), "platform:admin") {
			t.Fatal("an admin already")
		}
		if err := f.svc.SetPlatformRoles(ctx, lr.Session, ada.ID, []string{"admin"}, meta); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(roles(), "platform:admin") {
			t.Fatal("not an admin after the grant")
		}
		if err := f.svc.SetPlatformRoles(ctx, lr.Session, ada.ID, nil, meta); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(roles(), "platform:admin") {
			t.Fatal("still an admin after the demotion")
		}
	})
	t.Run("ok/use through the sidecar keeps a session from idling out", func(t *testing.T) {
		usage := identity.NewSessionUsage(f.store, identity.DefaultConfig().SessionIdle, time.Hour, slog.New(slog.DiscardHandler))
		uv := credentials.NewSessionVerifier(f.store, credentials.FixedFreshness(time.Hour), append(opts, credentials.WithSessionUsage(usage))...)
		l := f.login(t, ada.Email)
		f.clock.Advance(11 * time.Hour)
		if _, err := uv.Verify(ctx, request("192.0.2.1", "cookie", cookie(l.Token))); err != nil {
			t.Fatal(err)
		}
		if err := usage.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(2 * time.Hour) // 13 h after login, 2 h after its use
		if _, err := uv.Verify(ctx, request("192.0.2.1", "cookie", cookie(l.Token))); err != nil {
			t.Fatalf("a session used 2 h ago: %v", err)
		}
		f.clock.Advance(13 * time.Hour)
		if _, err := uv.Verify(ctx, request("192.0.2.1", "cookie", cookie(l.Token))); kind(err) != "invalid" {
			t.Fatalf("a session unused for 13 h: %v", err)
		}
	})
	t.Run("fail/idle too long", func(t *testing.T) {
		l := f.login(t, ada.Email)
		f.clock.Advance(13 * time.Hour)
		if _, got := verify("cookie", cookie(l.Token)); got != "invalid" {
			t.Fatalf("an idle-expired session: %s", got)
		}
	})
	t.Run("fail/the store down and nothing cached is a backend error", func(t *testing.T) {
		l := f.login(t, ada.Email)
		f.store.down.Store(true)
		defer f.store.down.Store(false)
		if _, got := verify("cookie", cookie(l.Token)); !strings.HasPrefix(got, "backend") {
			t.Fatalf("got %s", got)
		}
	})
}

// TestStaleFeedRecordIsBounded: a revocation whose Redis record could not
// be replaced (the identity service lost Redis) is honoured once the record
// outlives the feed's maximum TTL; and a session read from the store is
// written back to the feed.
func TestStaleFeedRecordIsBounded(t *testing.T) {
	f := newFixture(t, true)
	ctx := context.Background()
	feed, err := redisfeed.New(f.rdb, redisfeed.WithPrefix(f.prefix), redisfeed.WithMaxTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ada := f.signUp(t, "ada@example.com")
	l := f.login(t, ada.Email)
	v := credentials.NewSessionVerifier(f.store, credentials.FixedFreshness(0), credentials.WithSessionFeed(feed),
		credentials.WithSessionClock(f.clock.Now))
	// Written back on a store read: the record is there.
	f.rdb.Del(ctx, redisfeed.SessionKey(f.prefix, l.Session.TokenDigest))
	if _, err := v.Verify(ctx, request("192.0.2.1", "cookie", cookie(l.Token))); err != nil {
		t.Fatal(err)
	}
	if _, err := feed.Session(ctx, l.Session.TokenDigest); err != nil {
		t.Fatalf("not written back: %v", err)
	}
	// Revoked in the store only, as when the tombstone is lost.
	if err := f.store.RevokeSession(ctx, ada.ID, l.Session.ID, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, request("192.0.2.1", "cookie", cookie(l.Token))); err != nil {
		t.Fatalf("the stale record is trusted until it expires: %v", err)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, err := v.Verify(ctx, request("192.0.2.1", "cookie", cookie(l.Token))); kind(err) != "invalid" {
		t.Fatalf("after the feed's maximum TTL: %s", kind(err))
	}
}

// TestSessionChangesReachTheSidecar: switching the active organization or
// signing in again takes effect at the next request, not when the cached
// session expires.
func TestSessionChangesReachTheSidecar(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	ada := f.signUp(t, "ada@example.com")
	acme, _ := f.svc.CreateOrg(ctx, ada.ID, "Acme", "UTC", meta)
	globex, _ := f.svc.CreateOrg(ctx, ada.ID, "Globex", "Europe/Paris", meta)
	l := f.login(t, ada.Email)
	if err := f.svc.SetActiveOrg(ctx, l.Session, acme.ID); err != nil {
		t.Fatal(err)
	}
	v := credentials.NewSessionVerifier(f.store, credentials.FixedFreshness(5*time.Minute), credentials.WithSessionClock(f.clock.Now))
	f.events.evictors = append(f.events.evictors, v)
	verify := func() extauthz.Identity {
		t.Helper()
		id, err := v.Verify(ctx, request("192.0.2.1", "cookie", cookie(l.Token)))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	if id := verify(); id.Tenant != acme.ID {
		t.Fatalf("tenant %q, want acme", id.Tenant)
	}
	if err := f.svc.SetActiveOrg(ctx, l.Session, globex.ID); err != nil {
		t.Fatal(err)
	}
	if id := verify(); id.Tenant != globex.ID || id.TimeZone != "Europe/Paris" {
		t.Errorf("after switching: tenant %q zone %q, want globex in Paris", id.Tenant, id.TimeZone)
	}
	before := verify().Session.AuthTime
	f.clock.Advance(time.Minute)
	if err := f.svc.Reauth(ctx, l.Session, goodPassword, meta); err != nil {
		t.Fatal(err)
	}
	if after := verify().Session.AuthTime; !after.After(before) {
		t.Errorf("auth time %v after signing in again, was %v", after, before)
	}
}
