package identity_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

func TestCreateAPIKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	org, owner, _, member, viewer := f.team(t)
	tests := []struct {
		name  string
		actor *identity.User
		in    identity.NewAPIKey
		field string // InputError field; "forbidden" for ErrForbidden
	}{
		{name: "ok/member creates a key", actor: member, in: identity.NewAPIKey{Name: "ci", Scopes: []string{"mcp:tools:call"},
			AllowedTools: []string{"search"}, IPAllowlist: []string{"10.0.0.0/8", "192.0.2.1"}, ExpiresAt: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{name: "fail/viewer", actor: viewer, in: identity.NewAPIKey{Name: "x"}, field: "forbidden"},
		{name: "fail/no name", actor: owner, in: identity.NewAPIKey{}, field: "name"},
		{name: "fail/bad scope", actor: owner, in: identity.NewAPIKey{Name: "x", Scopes: []string{"MCP tools"}}, field: "scopes"},
		{name: "fail/bad tool", actor: owner, in: identity.NewAPIKey{Name: "x", AllowedTools: []string{"rm -rf"}}, field: "allowed_tools"},
		{name: "fail/bad address", actor: owner, in: identity.NewAPIKey{Name: "x", IPAllowlist: []string{"10.0.0.0/33"}}, field: "ip_allowlist"},
		{name: "fail/expired", actor: owner, in: identity.NewAPIKey{Name: "x", ExpiresAt: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}, field: "expires_at"},
		{name: "fail/tier above the org's", actor: owner, in: identity.NewAPIKey{Name: "x", Tier: identity.TierEnterprise}, field: "tier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, secret, err := f.svc.CreateAPIKey(ctx, tt.actor.ID, org.ID, tt.in, meta)
			switch tt.field {
			case "":
				if err != nil {
					t.Fatal(err)
				}
			case "forbidden":
				if !errors.Is(err, identity.ErrForbidden) {
					t.Fatalf("got %v", err)
				}
				return
			default:
				var ie *identity.InputError
				if !errors.As(err, &ie) || ie.Field != tt.field {
					t.Fatalf("got %v, want an InputError on %s", err, tt.field)
				}
				return
			}
			if kind, err := token.Parse(secret); err != nil || kind != token.KindAPIKey {
				t.Fatalf("secret: %v", err)
			}
			if k.Tier != identity.TierFree || k.IPAllowlist[1] != "192.0.2.1/32" || !strings.HasPrefix(k.Hint, "mcpk_") || !strings.HasSuffix(secret, strings.TrimPrefix(k.Hint, "mcpk_…")) {
				t.Fatalf("key %+v", k)
			}
			stored, err := f.store.APIKeyByDigest(ctx, k.TokenDigest)
			if err != nil || stored.ID != k.ID {
				t.Fatalf("lookup by digest: %v", err)
			}
			listed, err := f.svc.APIKeys(ctx, viewer.ID, org.ID)
			if err != nil || len(listed) != 1 || listed[0].TokenDigest != nil {
				t.Fatalf("listing %+v %v", listed, err)
			}
		})
	}
}

func TestRotateAndRevokeAPIKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	org, owner, admin, member, _ := f.team(t)
	k, _, err := f.svc.CreateAPIKey(ctx, member.ID, org.ID, identity.NewAPIKey{Name: "ci", Scopes: []string{"mcp:tools:call"}}, meta)
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := f.svc.CreateAPIKey(ctx, admin.ID, org.ID, identity.NewAPIKey{Name: "admin key"}, meta)
	if err := f.svc.RevokeAPIKey(ctx, member.ID, org.ID, other.ID, meta); !errors.Is(err, identity.ErrForbidden) {
		t.Fatalf("member revoked an admin's key: %v", err)
	}

	nk, _, err := f.svc.RotateAPIKey(ctx, member.ID, org.ID, k.ID, time.Hour, meta)
	if err != nil {
		t.Fatal(err)
	}
	if nk.ID == k.ID || nk.Scopes[0] != "mcp:tools:call" || nk.Name != "ci" {
		t.Fatalf("rotated key %+v", nk)
	}
	old, _ := f.store.APIKey(ctx, org.ID, k.ID)
	if !old.Usable(f.clock.Now().Add(59*time.Minute)) || old.Usable(f.clock.Now().Add(time.Hour)) {
		t.Fatalf("grace period wrong: %+v", old)
	}
	var ie *identity.InputError
	if _, _, err := f.svc.RotateAPIKey(ctx, member.ID, org.ID, k.ID, time.Hour, meta); !errors.As(err, &ie) {
		t.Fatalf("rotated twice: %v", err)
	}

	if err := f.svc.RevokeAPIKey(ctx, owner.ID, org.ID, nk.ID, meta); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.store.APIKey(ctx, org.ID, nk.ID); got.Usable(f.clock.Now()) {
		t.Fatal("a revoked key is usable")
	}
	evs := f.events.all()
	if last := evs[len(evs)-1]; last.Kind != identity.EventAPIKeysRevoked || last.KeyIDs[0] != nk.ID {
		t.Fatalf("event %+v", last)
	}

	// Another organization's owner cannot touch these keys.
	stranger := f.signUp(t, "stranger@example.com")
	so, _ := f.svc.CreateOrg(ctx, stranger.ID, "Elsewhere", "UTC", meta)
	if err := f.svc.RevokeAPIKey(ctx, stranger.ID, org.ID, other.ID, meta); !errors.Is(err, identity.ErrForbidden) {
		t.Fatalf("stranger revoked a key: %v", err)
	}
	if err := f.svc.RevokeAPIKey(ctx, stranger.ID, so.ID, other.ID, meta); !errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("a key answered through another org: %v", err)
	}
}
