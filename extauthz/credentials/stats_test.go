package credentials_test

import (
	"context"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
	"github.com/mcpauthz/mcpauthz/identity"
)

// TestLookupStats: the verifiers count where each credential was found.
func TestLookupStats(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	owner := f.signUp(t, "owner@example.com")
	org, err := f.svc.CreateOrg(ctx, owner.ID, "Acme", "UTC", meta)
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := f.svc.CreateAPIKey(ctx, owner.ID, org.ID, identity.NewAPIKey{Name: "ci"}, meta)
	if err != nil {
		t.Fatal(err)
	}
	keys := credentials.NewAPIKeyVerifier(f.store, credentials.FixedFreshness(time.Minute), credentials.WithKeyClock(f.clock.Now))
	sessions := credentials.NewSessionVerifier(f.store, credentials.FixedFreshness(time.Minute), credentials.WithSessionClock(f.clock.Now))
	l := f.login(t, owner.Email)
	for range 3 {
		if _, err := keys.Verify(ctx, request("192.0.2.1", "x-api-key", secret)); err != nil {
			t.Fatal(err)
		}
		if _, err := sessions.Verify(ctx, request("192.0.2.1", "cookie", cookie(l.Token))); err != nil {
			t.Fatal(err)
		}
	}
	want := credentials.LookupStats{Memory: 2, Store: 1}
	if got := keys.Stats(); got != want {
		t.Errorf("API keys: %+v, want %+v", got, want)
	}
	if got := sessions.Stats(); got != want {
		t.Errorf("sessions: %+v, want %+v", got, want)
	}
}
