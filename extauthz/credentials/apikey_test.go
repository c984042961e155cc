package credentials_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
	"github.com/mcpauthz/mcpauthz/identity"
)

func TestAPIKeyVerifier(t *testing.T) {
	for _, withRedis := range []bool{false, true} {
		name := "sql"
		if withRedis {
			name = "redis"
		}
		t.Run(name, func(t *testing.T) { testAPIKeyVerifier(t, withRedis) })
	}
}

func testAPIKeyVerifier(t *testing.T, withRedis bool) {
	f := newFixture(t, withRedis)
	ctx := context.Background()
	owner := f.signUp(t, "owner@example.com")
	org, err := f.svc.CreateOrg(ctx, owner.ID, "Acme", "UTC", meta)
	if err != nil {
		t.Fatal(err)
	}
	opts := []credentials.KeyOption{credentials.WithKeyClock(f.clock.Now)}
	if f.feed != nil {
		opts = append(opts, credentials.WithKeyFeed(f.feed))
	}
	v := credentials.NewAPIKeyVerifier(f.store, credentials.FixedFreshness(time.Minute), opts...)
	f.events.evictors = append(f.events.evictors, v)
	key := func(in identity.NewAPIKey) (*identity.APIKey, string) {
		t.Helper()
		if in.Name == "" {
			in.Name = "ci"
		}
		k, secret, err := f.svc.CreateAPIKey(ctx, owner.ID, org.ID, in, meta)
		if err != nil {
			t.Fatal(err)
		}
		return k, secret
	}
	plain, plainSecret := key(identity.NewAPIKey{Scopes: []string{"mcp:tools:call"}, AllowedTools: []string{"echo"}})
	_, fencedSecret := key(identity.NewAPIKey{IPAllowlist: []string{"10.0.0.0/8"}})
	_, expiringSecret := key(identity.NewAPIKey{ExpiresAt: f.clock.Now().Add(time.Hour)})
	revoked, revokedSecret := key(identity.NewAPIKey{})
	if err := f.svc.RevokeAPIKey(ctx, owner.ID, org.ID, revoked.ID, meta); err != nil {
		t.Fatal(err)
	}
	garbage := "mcpk_" + strings.Repeat("A", len(plainSecret)-5)

	cases := []struct {
		name  string
		req   *extauthz.Request
		want  string
		reads bool // whether the store may be read
		check func(t *testing.T, id extauthz.Identity)
	}{
		{name: "ok/x-api-key", req: request("192.0.2.1", "x-api-key", plainSecret), want: "ok", reads: true,
			check: func(t *testing.T, id extauthz.Identity) {
				if id.Method != extauthz.MethodAPIKey || id.Subject != "key:"+plain.ID || id.Tenant != org.ID || id.UserID != owner.ID ||
					id.OrgRole != "owner" || id.APIKey.Tier != "free" || id.APIKey.AllowedTools[0] != "echo" || id.Scopes[0] != "mcp:tools:call" {
					t.Errorf("identity %+v %+v", id, id.APIKey)
				}
			}},
		{name: "ok/a bearer API key, from memory", req: request("192.0.2.1", "authorization", "Bearer "+plainSecret), want: "ok"},
		{name: "ok/inside the allowlist", req: request("10.1.2.3", "x-api-key", fencedSecret), want: "ok", reads: true},
		{name: "fail/outside the allowlist", req: request("192.0.2.1", "x-api-key", fencedSecret), want: "invalid"},
		{name: "fail/no client address for an allowlisted key", req: request("", "x-api-key", fencedSecret), want: "invalid"},
		{name: "fail/a bad checksum costs no lookup", req: request("192.0.2.1", "x-api-key", garbage), want: "invalid"},
		{name: "fail/not an API key at all", req: request("192.0.2.1", "x-api-key", "hunter2"), want: "invalid"},
		{name: "fail/revoked", req: request("192.0.2.1", "x-api-key", revokedSecret), want: "invalid", reads: !withRedis},
		{name: "fail/two keys", req: request("192.0.2.1", "x-api-key", plainSecret, "authorization", "Bearer "+plainSecret), want: "invalid"},
		{name: "ok/not mine without a key", req: request("192.0.2.1", "authorization", "Bearer eyJ.x.y"), want: "not mine"},
		{name: "ok/expiring, before its expiry", req: request("192.0.2.1", "x-api-key", expiringSecret), want: "ok", reads: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := f.store.reads.Load()
			id, err := v.Verify(ctx, c.req)
			if got := kind(err); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
			if read := f.store.reads.Load() != before; read && !c.reads {
				t.Errorf("the store was read")
			}
			if c.check != nil {
				c.check(t, id)
			}
		})
	}

	t.Run("fail/expired, even from memory", func(t *testing.T) {
		f.clock.Advance(time.Hour)
		if _, err := v.Verify(ctx, request("192.0.2.1", "x-api-key", expiringSecret)); kind(err) != "invalid" {
			t.Fatalf("got %s", kind(err))
		}
	})
	t.Run("fail/revoked while cached: the event evicts it", func(t *testing.T) {
		if _, err := v.Verify(ctx, request("192.0.2.1", "x-api-key", plainSecret)); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.RevokeAPIKey(ctx, owner.ID, org.ID, plain.ID, meta); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(ctx, request("192.0.2.1", "x-api-key", plainSecret)); kind(err) != "invalid" {
			t.Fatalf("a revoked key verified: %s", kind(err))
		}
	})
	t.Run("ok/a key's tier never outranks its org's", func(t *testing.T) {
		admin := f.signUp(t, "root@example.com")
		if _, err := f.svc.BootstrapAdmin(ctx, admin.Email, meta); err != nil {
			t.Fatal(err)
		}
		sess := f.login(t, admin.Email).Session
		if err := f.svc.SetOrgTier(ctx, sess, org.ID, identity.TierEnterprise, meta); err != nil {
			t.Fatal(err)
		}
		_, pro := key(identity.NewAPIKey{Tier: identity.TierPro})
		if id, err := v.Verify(ctx, request("192.0.2.1", "x-api-key", pro)); err != nil || id.APIKey.Tier != "pro" {
			t.Fatalf("pro key in an enterprise org: %v %+v", err, id.APIKey)
		}
		if err := f.svc.SetOrgTier(ctx, sess, org.ID, identity.TierFree, meta); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(2 * time.Minute) // past the memory's freshness: no event for a tier change
		if id, err := v.Verify(ctx, request("192.0.2.1", "x-api-key", pro)); err != nil || id.APIKey.Tier != "free" {
			t.Fatalf("pro key after the org went free: %v %+v", err, id.APIKey)
		}
	})
	t.Run("fail/the store down and nothing cached is a backend error, not an allow", func(t *testing.T) {
		_, fresh := key(identity.NewAPIKey{})
		f.store.down.Store(true)
		defer f.store.down.Store(false)
		if withRedis {
			// The feed has the key: the store is still needed for its org.
			_, err := v.Verify(ctx, request("192.0.2.1", "x-api-key", fresh))
			if got := kind(err); got == "ok" || got == "invalid" {
				t.Fatalf("got %s, want a backend error", got)
			}
			return
		}
		if _, err := v.Verify(ctx, request("192.0.2.1", "x-api-key", fresh)); !strings.HasPrefix(kind(err), "backend") {
			t.Fatalf("got %s", kind(err))
		}
	})
}
