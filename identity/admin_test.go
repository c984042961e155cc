package identity_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

// promote gives a user platform roles directly in the store.
func (f *fixture) promote(t *testing.T, u *identity.User, roles ...string) *identity.Session {
	t.Helper()
	ctx := context.Background()
	stored, _ := f.store.UserByID(ctx, u.ID)
	stored.PlatformRoles = roles
	if err := f.store.UpdateUser(ctx, stored); err != nil {
		t.Fatal(err)
	}
	l, err := f.svc.Login(ctx, u.Email, goodPassword, meta)
	if err != nil {
		t.Fatal(err)
	}
	return l.Session
}

func TestAdminNeedsRoleAndFreshness(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	plain := f.signUp(t, "user@example.com")
	admin := f.signUp(t, "admin@example.com")
	ps := f.promote(t, plain)
	as := f.promote(t, admin, identity.PlatformAdmin)
	if _, err := f.svc.AdminUsers(ctx, ps, "", "", 10); !errors.Is(err, identity.ErrForbidden) {
		t.Fatalf("a plain user listed users: %v", err)
	}
	users, err := f.svc.AdminUsers(ctx, as, "example", "", 10)
	if err != nil || len(users) != 2 || users[0].PasswordHash != "" {
		t.Fatalf("users %+v %v", users, err)
	}
	f.clock.Advance(16 * time.Minute)
	if _, err := f.svc.AdminUsers(ctx, as, "", "", 10); !errors.Is(err, identity.ErrFreshAuthRequired) {
		t.Fatalf("a stale admin session: %v", err)
	}
}

func TestBan(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	org, owner, _, member, _ := f.team(t)
	root := f.signUp(t, "root@example.com")
	admin := f.signUp(t, "admin2@example.com")
	rs := f.promote(t, root, identity.PlatformSuperAdmin)
	as := f.promote(t, admin, identity.PlatformAdmin)
	k, secret, _ := f.svc.CreateAPIKey(ctx, member.ID, org.ID, identity.NewAPIKey{Name: "m"}, meta)
	l, _ := f.svc.Login(ctx, member.Email, goodPassword, meta)

	var ie *identity.InputError
	if err := f.svc.Ban(ctx, as, admin.ID, "self", time.Time{}, meta); !errors.As(err, &ie) {
		t.Fatalf("admin banned themselves: %v", err)
	}
	if err := f.svc.Ban(ctx, as, root.ID, "coup", time.Time{}, meta); !errors.Is(err, identity.ErrForbidden) {
		t.Fatalf("admin banned a super-admin: %v", err)
	}
	if err := f.svc.Ban(ctx, as, member.ID, "", time.Time{}, meta); !errors.As(err, &ie) {
		t.Fatalf("ban without reason: %v", err)
	}
	if err := f.svc.Ban(ctx, as, member.ID, "abuse", f.clock.Now().Add(24*time.Hour), meta); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.Authenticate(ctx, l.Token); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatal("a banned user's session works")
	}
	if _, err := f.svc.AuthenticateAPIKey(ctx, secret, "10.0.0.1"); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatal("a banned user's key works")
	}
	if _, err := f.svc.Login(ctx, member.Email, goodPassword, meta); !errors.Is(err, identity.ErrBanned) {
		t.Fatalf("banned login: %v", err)
	}
	evs := f.events.all()
	last := evs[len(evs)-1]
	if last.Kind != identity.EventUserBanned || last.UserID != member.ID || len(last.SessionIDs) != 1 || last.KeyIDs[0] != k.ID {
		t.Fatalf("event %+v", last)
	}
	if err := f.svc.Unban(ctx, as, member.ID, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Login(ctx, member.Email, goodPassword, meta); err != nil {
		t.Fatalf("after unban: %v", err)
	}

	if err := f.svc.SetPlatformRoles(ctx, as, owner.ID, []string{identity.PlatformAdmin}, meta); !errors.Is(err, identity.ErrForbidden) {
		t.Fatalf("an admin granted roles: %v", err)
	}
	if err := f.svc.SetPlatformRoles(ctx, rs, owner.ID, []string{"god"}, meta); !errors.As(err, &ie) {
		t.Fatalf("unknown role: %v", err)
	}
	if err := f.svc.SetPlatformRoles(ctx, rs, owner.ID, []string{identity.PlatformAdmin}, meta); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.SetPlatformRoles(ctx, rs, root.ID, nil, meta); !errors.As(err, &ie) {
		t.Fatalf("the super-admin demoted themselves: %v", err)
	}
	if err := f.svc.AdminRevokeAll(ctx, rs, owner.ID, meta); err != nil {
		t.Fatal(err)
	}
}

func TestBootstrapAdmin(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ada := f.signUp(t, "ada@example.com")
	if _, err := f.svc.BootstrapAdmin(ctx, "nobody@example.com", meta); !errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("bootstrapping an unknown email: %v", err)
	}
	if _, err := f.svc.BootstrapAdmin(ctx, "not an email", meta); err == nil {
		t.Fatal("bootstrapping a malformed email")
	}
	u, err := f.svc.BootstrapAdmin(ctx, " ADA@example.com", meta)
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != ada.ID || !slices.Equal(u.PlatformRoles, []string{identity.PlatformAdmin, identity.PlatformSuperAdmin}) || u.PasswordHash != "" {
		t.Fatalf("bootstrapped %+v", u)
	}
	evs, err := f.store.AuditEvents(ctx, identity.AuditFilter{Action: "admin.bootstrap", Limit: 10})
	if err != nil || len(evs) != 1 || evs[0].TargetID != ada.ID || evs[0].ActorID != "" {
		t.Fatalf("audit: %v %+v", err, evs)
	}
}

func TestSetOrgTier(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ada := f.signUp(t, "ada@example.com")
	root := f.signUp(t, "root@example.com")
	if _, err := f.svc.BootstrapAdmin(ctx, root.Email, meta); err != nil {
		t.Fatal(err)
	}
	org, err := f.svc.CreateOrg(ctx, ada.ID, "Ada's", "", meta)
	if err != nil {
		t.Fatal(err)
	}
	login := func(email string) *identity.Session {
		l, err := f.svc.Login(ctx, email, goodPassword, meta)
		if err != nil {
			t.Fatal(err)
		}
		return l.Session
	}
	adaSess, rootSess := login("ada@example.com"), login("root@example.com")
	for _, c := range []struct {
		name string
		sess *identity.Session
		org  string
		tier identity.Tier
		want error
	}{
		{"fail/an owner cannot raise their own tier", adaSess, org.ID, identity.TierEnterprise, identity.ErrForbidden},
		{"fail/not a tier", rootSess, org.ID, "platinum", &identity.InputError{}},
		{"fail/no such org", rootSess, "nope", identity.TierPro, identity.ErrNotFound},
		{"ok/admin", rootSess, org.ID, identity.TierPro, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := f.svc.SetOrgTier(ctx, c.sess, c.org, c.tier, meta)
			var in *identity.InputError
			switch want := c.want.(type) {
			case nil:
				if err != nil {
					t.Fatal(err)
				}
			case *identity.InputError:
				if !errors.As(err, &in) {
					t.Fatalf("got %v, want an input error", err)
				}
			default:
				if !errors.Is(err, want) {
					t.Fatalf("got %v, want %v", err, want)
				}
			}
		})
	}
	o, err := f.svc.Org(ctx, ada.ID, org.ID)
	if err != nil || o.Tier != identity.TierPro {
		t.Fatalf("tier after: %v %+v", err, o)
	}
	f.clock.Advance(16 * time.Minute)
	if err := f.svc.SetOrgTier(ctx, rootSess, org.ID, identity.TierFree, meta); !errors.Is(err, identity.ErrFreshAuthRequired) {
		t.Fatalf("a stale admin session: %v", err)
	}
}
