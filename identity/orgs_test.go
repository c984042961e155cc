package identity_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

// team signs up an owner, an admin, a member and a viewer of one org.
func (f *fixture) team(t *testing.T) (org *identity.Org, owner, admin, member, viewer *identity.User) {
	t.Helper()
	ctx := context.Background()
	owner, admin, member, viewer = f.signUp(t, "owner@example.com"), f.signUp(t, "admin@example.com"),
		f.signUp(t, "member@example.com"), f.signUp(t, "viewer@example.com")
	org, err := f.svc.CreateOrg(ctx, owner.ID, "Acme", "Europe/Berlin", meta)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		u *identity.User
		r identity.Role
	}{{admin, identity.RoleAdmin}, {member, identity.RoleMember}, {viewer, identity.RoleViewer}} {
		_, tok, err := f.svc.Invite(ctx, owner.ID, org.ID, p.u.Email, p.r, meta)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.AcceptInvitation(ctx, p.u.ID, tok, meta); err != nil {
			t.Fatal(err)
		}
	}
	return org, owner, admin, member, viewer
}

func TestCreateOrg(t *testing.T) {
	f := newFixture(t, func(c *identity.Config) { c.MaxOrgsByUser = 2 })
	ctx := context.Background()
	u := f.signUp(t, "ada@example.com")
	o, err := f.svc.CreateOrg(ctx, u.ID, "  Analytical Engines ", "", meta)
	if err != nil {
		t.Fatal(err)
	}
	if o.Name != "Analytical Engines" || o.Tier != identity.TierFree || o.TimeZone != "UTC" {
		t.Fatalf("org %+v", o)
	}
	if m, err := f.store.Membership(ctx, o.ID, u.ID); err != nil || m.Role != identity.RoleOwner {
		t.Fatalf("creator is not the owner: %+v %v", m, err)
	}
	for _, c := range []struct{ name, tz, field string }{
		{"", "UTC", "name"}, {"   ", "UTC", "name"}, {"a\x00b", "UTC", "name"}, {"a\u0085b", "UTC", "name"},
		{"\xffab", "UTC", "name"}, {strings.Repeat("é", 101), "UTC", "name"},
		{"x", "Mars/Olympus", "time_zone"}, {"x", "Local", "time_zone"},
	} {
		var ie *identity.InputError
		if _, err := f.svc.CreateOrg(ctx, u.ID, c.name, c.tz, meta); !errors.As(err, &ie) || ie.Field != c.field {
			t.Errorf("%q %q: %v", c.name, c.tz, err)
		}
	}
	if _, err := f.svc.CreateOrg(ctx, u.ID, "Second", "UTC", meta); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.CreateOrg(ctx, u.ID, "Third", "UTC", meta); !errors.Is(err, identity.ErrLimit) {
		t.Fatalf("over the limit: %v", err)
	}
}

func TestRoles(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	org, owner, admin, member, viewer := f.team(t)
	tests := []struct {
		name   string
		actor  *identity.User
		target *identity.User
		role   identity.Role
		err    error
	}{
		{"fail/viewer cannot change roles", viewer, member, identity.RoleViewer, identity.ErrForbidden},
		{"fail/member cannot change roles", member, viewer, identity.RoleMember, identity.ErrForbidden},
		{"fail/admin cannot make an admin", admin, member, identity.RoleAdmin, identity.ErrForbidden},
		{"fail/admin cannot demote an owner", admin, owner, identity.RoleMember, identity.ErrForbidden},
		{"fail/last owner cannot be demoted", owner, owner, identity.RoleAdmin, identity.ErrLastOwner},
		{"ok/admin demotes a member", admin, member, identity.RoleViewer, nil},
		{"ok/owner promotes an admin", owner, admin, identity.RoleOwner, nil},
		{"ok/an owner steps down when another remains", owner, owner, identity.RoleAdmin, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := f.svc.SetRole(ctx, tt.actor.ID, org.ID, tt.target.ID, tt.role, meta)
			if !errors.Is(err, tt.err) {
				t.Fatalf("got %v, want %v", err, tt.err)
			}
			if tt.err == nil {
				if m, _ := f.store.Membership(ctx, org.ID, tt.target.ID); m.Role != tt.role {
					t.Fatalf("role is %s", m.Role)
				}
			}
		})
	}
	if owners, _ := f.store.CountOwners(ctx, org.ID); owners != 1 {
		t.Fatalf("%d owners", owners)
	}
}

func TestLastOwnerUnderConcurrency(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	org, owner, admin, _, _ := f.team(t)
	if err := f.svc.SetRole(ctx, owner.ID, org.ID, admin.ID, identity.RoleOwner, meta); err != nil {
		t.Fatal(err)
	}
	// Two owners each try to leave at once: one must stay.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, u := range []*identity.User{owner, admin} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.svc.RemoveMember(ctx, u.ID, org.ID, u.ID, meta)
		}()
	}
	wg.Wait()
	if n, _ := f.store.CountOwners(ctx, org.ID); n != 1 {
		t.Fatalf("%d owners left (%v)", n, errs)
	}
	if (errs[0] == nil) == (errs[1] == nil) || !(errors.Is(errs[0], identity.ErrLastOwner) || errors.Is(errs[1], identity.ErrLastOwner)) {
		t.Fatalf("errors %v", errs)
	}
}

func TestRemoveMember(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	org, owner, admin, member, viewer := f.team(t)
	if err := f.svc.RemoveMember(ctx, member.ID, org.ID, viewer.ID, meta); !errors.Is(err, identity.ErrForbidden) {
		t.Fatalf("member removed viewer: %v", err)
	}
	if err := f.svc.RemoveMember(ctx, admin.ID, org.ID, owner.ID, meta); !errors.Is(err, identity.ErrForbidden) {
		t.Fatalf("admin removed owner: %v", err)
	}
	if err := f.svc.RemoveMember(ctx, admin.ID, org.ID, viewer.ID, meta); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.RemoveMember(ctx, member.ID, org.ID, member.ID, meta); err != nil {
		t.Fatalf("a member could not leave: %v", err)
	}
	if err := f.svc.RemoveMember(ctx, owner.ID, org.ID, owner.ID, meta); !errors.Is(err, identity.ErrLastOwner) {
		t.Fatalf("the last owner left: %v", err)
	}
	evs := f.events.all()
	if len(evs) != 2 || evs[0].Kind != identity.EventMemberRemoved || evs[0].UserID != viewer.ID {
		t.Fatalf("events %+v", evs)
	}
	// Outsiders learn nothing: not a member looks like no organization.
	outsider := f.signUp(t, "out@example.com")
	if _, err := f.svc.Members(ctx, outsider.ID, org.ID); !errors.Is(err, identity.ErrForbidden) {
		t.Fatalf("outsider listed members: %v", err)
	}
	if _, err := f.svc.Members(ctx, outsider.ID, "no-such-org"); !errors.Is(err, identity.ErrForbidden) {
		t.Fatalf("a missing org answers differently: %v", err)
	}
}

func TestInvitations(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	org, owner, admin, member, _ := f.team(t)
	carol := f.signUp(t, "carol@example.com")
	if _, _, err := f.svc.Invite(ctx, admin.ID, org.ID, "carol@example.com", identity.RoleOwner, meta); !errors.Is(err, identity.ErrForbidden) {
		t.Fatalf("admin invited an owner: %v", err)
	}
	if _, _, err := f.svc.Invite(ctx, member.ID, org.ID, "carol@example.com", identity.RoleViewer, meta); !errors.Is(err, identity.ErrForbidden) {
		t.Fatalf("member invited: %v", err)
	}
	inv, tok, err := f.svc.Invite(ctx, owner.ID, org.ID, "Carol@Example.com", identity.RoleMember, meta)
	if err != nil {
		t.Fatal(err)
	}
	var ie *identity.InputError
	if _, err := f.svc.AcceptInvitation(ctx, member.ID, tok, meta); !errors.Is(err, identity.ErrForbidden) {
		t.Fatalf("someone else accepted carol's invitation: %v", err)
	}
	if _, err := f.svc.AcceptInvitation(ctx, carol.ID, "mcpi_garbage", meta); !errors.As(err, &ie) {
		t.Fatalf("garbage token: %v", err)
	}
	if m, err := f.svc.AcceptInvitation(ctx, carol.ID, tok, meta); err != nil || m.Role != identity.RoleMember {
		t.Fatalf("accept: %+v %v", m, err)
	}
	if _, err := f.svc.AcceptInvitation(ctx, carol.ID, tok, meta); !errors.As(err, &ie) {
		t.Fatalf("accepted twice: %v", err)
	}

	dave := f.signUp(t, "dave@example.com")
	_, tok, _ = f.svc.Invite(ctx, owner.ID, org.ID, dave.Email, identity.RoleViewer, meta)
	f.clock.Advance(identity.InvitationTTL)
	if _, err := f.svc.AcceptInvitation(ctx, dave.ID, tok, meta); !errors.As(err, &ie) {
		t.Fatalf("expired invitation accepted: %v", err)
	}
	inv2, tok2, _ := f.svc.Invite(ctx, owner.ID, org.ID, dave.Email, identity.RoleViewer, meta)
	if err := f.svc.RevokeInvitation(ctx, owner.ID, org.ID, inv2.ID, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AcceptInvitation(ctx, dave.ID, tok2, meta); !errors.As(err, &ie) {
		t.Fatalf("revoked invitation accepted: %v", err)
	}
	_ = inv
}

func TestDeleteOrgNeedsFreshOwner(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	org, owner, admin, _, _ := f.team(t)
	key, _, err := f.svc.CreateAPIKey(ctx, owner.ID, org.ID, identity.NewAPIKey{Name: "ci"}, meta)
	if err != nil {
		t.Fatal(err)
	}
	lo, _ := f.svc.Login(ctx, owner.Email, goodPassword, meta)
	la, _ := f.svc.Login(ctx, admin.Email, goodPassword, meta)
	if err := f.svc.DeleteOrg(ctx, la.Session, org.ID, meta); !errors.Is(err, identity.ErrForbidden) {
		t.Fatalf("admin deleted the org: %v", err)
	}
	f.clock.Advance(20 * time.Minute)
	if err := f.svc.DeleteOrg(ctx, lo.Session, org.ID, meta); !errors.Is(err, identity.ErrFreshAuthRequired) {
		t.Fatalf("stale session deleted the org: %v", err)
	}
	sess, _, _ := f.svc.Authenticate(ctx, lo.Token)
	if err := f.svc.Reauth(ctx, sess, goodPassword, meta); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DeleteOrg(ctx, sess, org.ID, meta); err != nil {
		t.Fatal(err)
	}
	evs := f.events.all()
	last := evs[len(evs)-1]
	if last.Kind != identity.EventOrgDeleted || len(last.KeyIDs) != 1 || last.KeyIDs[0] != key.ID {
		t.Fatalf("event %+v", last)
	}
}
