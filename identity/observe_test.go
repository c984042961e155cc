package identity_test

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"testing"

	"github.com/mcpauthz/mcpauthz/identity"
)

// TestAuditObserver: the observer sees the action of every audit event a
// committed transaction wrote, and nothing of one that failed.
func TestAuditObserver(t *testing.T) {
	f := newFixture(t)
	var seen []string
	svc, err := identity.NewService(f.store, f.audit, f.cfg, rand.Reader, identity.WithClock(f.clock.Now),
		identity.WithAuditObserver(func(action string) { seen = append(seen, action) }))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u, err := svc.SignUp(ctx, identity.SignUp{Email: "ada@example.com", Password: goodPassword, Consents: consents()}, meta)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SignUp(ctx, identity.SignUp{Email: "ada@example.com", Password: goodPassword, Consents: consents()}, meta); err == nil {
		t.Fatal("a second sign-up with the same email")
	}
	if _, err := svc.Login(ctx, u.Email, "wrong password, long enough", meta); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("a wrong password: %v", err)
	}
	if _, err := svc.Login(ctx, u.Email, goodPassword, meta); err != nil {
		t.Fatal(err)
	}
	org, err := svc.CreateOrg(ctx, u.ID, "Acme", "UTC", meta)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.CreateAPIKey(ctx, u.ID, org.ID, identity.NewAPIKey{Name: "ci"}, meta); err != nil {
		t.Fatal(err)
	}
	want := []string{"user.signup", "user.login_failed", "user.login", "org.create", "api_key.create"}
	if !slices.Equal(seen, want) {
		t.Errorf("observed %v, want %v", seen, want)
	}
	// What was observed is what the audit log holds.
	if got := f.actions(t); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Errorf("audit log %v, observed %v", got, want)
	}
}
