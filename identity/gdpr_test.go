package identity_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

func TestExportUserData(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	org, _, _, member, _ := f.team(t)
	_, secret, _ := f.svc.CreateAPIKey(ctx, member.ID, org.ID, identity.NewAPIKey{Name: "mine"}, meta)
	l, _ := f.svc.Login(ctx, member.Email, goodPassword, meta)
	x, err := f.svc.ExportUserData(ctx, l.Session, meta)
	if err != nil {
		t.Fatal(err)
	}
	if x.User.Email != member.Email || len(x.Consents) != 3 || len(x.Memberships) != 1 || len(x.Sessions) != 1 ||
		len(x.APIKeys) != 1 || len(x.Audit) < 3 {
		t.Fatalf("export %+v", x)
	}
	b, _ := json.Marshal(x)
	stored, _ := f.store.UserByID(ctx, member.ID)
	for _, secretish := range []string{stored.PasswordHash, secret, l.Token} {
		if strings.Contains(string(b), secretish) {
			t.Fatal("the export holds a secret")
		}
	}

	// Having left the organization, they still get the key they created
	// there: it still names them.
	if err := f.svc.RemoveMember(ctx, member.ID, org.ID, member.ID, meta); err != nil {
		t.Fatal(err)
	}
	x, err = f.svc.ExportUserData(ctx, l.Session, meta)
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Memberships) != 0 || len(x.APIKeys) != 1 || x.APIKeys[0].OrgID != org.ID {
		t.Fatalf("export after leaving %+v", x)
	}
}

func TestDeleteAccount(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	org, owner, _, member, _ := f.team(t)
	key, _, _ := f.svc.CreateAPIKey(ctx, member.ID, org.ID, identity.NewAPIKey{Name: "mine"}, meta)

	lo, _ := f.svc.Login(ctx, owner.Email, goodPassword, meta)
	if err := f.svc.DeleteAccount(ctx, lo.Session, meta); !errors.Is(err, identity.ErrLastOwner) {
		t.Fatalf("the last owner deleted their account: %v", err)
	}
	lm, _ := f.svc.Login(ctx, member.Email, goodPassword, meta)
	f.clock.Advance(16 * time.Minute)
	if err := f.svc.DeleteAccount(ctx, lm.Session, meta); !errors.Is(err, identity.ErrFreshAuthRequired) {
		t.Fatalf("a stale session deleted the account: %v", err)
	}
	sess, _, _ := f.svc.Authenticate(ctx, lm.Token)
	if err := f.svc.Reauth(ctx, sess, goodPassword, meta); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DeleteAccount(ctx, sess, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.UserByID(ctx, member.ID); !errors.Is(err, identity.ErrNotFound) {
		t.Fatal("the user remains")
	}
	if _, _, err := f.svc.Authenticate(ctx, lm.Token); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatal("the session still works")
	}
	if _, err := f.store.APIKey(ctx, org.ID, key.ID); !errors.Is(err, identity.ErrNotFound) {
		t.Fatal("the user's key remains")
	}
	// The audit log keeps the events, pseudonymous: the user id, address
	// and agent appear nowhere in it.
	evs, _ := f.store.AuditEvents(ctx, identity.AuditFilter{Limit: 1000})
	ref := f.audit.Ref(member.ID)
	seen := 0
	for _, e := range evs {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), member.ID) {
			t.Fatalf("event %d still names the user: %s", e.Seq, b)
		}
		if e.ActorRef == ref || e.TargetRef == ref {
			seen++
			if e.IP != "" && e.ActorRef == ref {
				t.Fatalf("event %d keeps the user's address", e.Seq)
			}
		}
	}
	if seen < 3 {
		t.Fatalf("only %d events about the user remain", seen)
	}
	evsPub := f.events.all()
	if last := evsPub[len(evsPub)-1]; last.Kind != identity.EventUserDeleted || last.KeyIDs[0] != key.ID {
		t.Fatalf("event %+v", last)
	}
	// The fixture verifies the chain when the test ends.
}
