package identity_test

import (
	"context"
	"testing"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/password"
)

// BenchmarkLogin measures a login with the default argon2id parameters
// against the password verification alone, which dominates it.
func BenchmarkLogin(b *testing.B) {
	f := newBenchFixture(b)
	ctx := context.Background()
	if _, err := f.svc.SignUp(ctx, identity.SignUp{Email: "ada@example.com", Password: goodPassword, Consents: consents()}, meta); err != nil {
		b.Fatal(err)
	}
	u, _ := f.store.UserByEmail(ctx, "ada@example.com")
	b.Run("verify-only", func(b *testing.B) {
		for b.Loop() {
			if ok, err := password.Verify(goodPassword, u.PasswordHash); !ok || err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("login", func(b *testing.B) {
		for b.Loop() {
			if _, err := f.svc.Login(ctx, "ada@example.com", goodPassword, meta); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCreateAPIKey measures issuing a key: token, digest, insert and
// audit event in one transaction.
func BenchmarkCreateAPIKey(b *testing.B) {
	f := newBenchFixture(b)
	ctx := context.Background()
	u, err := f.svc.SignUp(ctx, identity.SignUp{Email: "ada@example.com", Password: goodPassword, Consents: consents()}, meta)
	if err != nil {
		b.Fatal(err)
	}
	org, err := f.svc.CreateOrg(ctx, u.ID, "Acme", "UTC", meta)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := f.svc.CreateAPIKey(ctx, u.ID, org.ID, identity.NewAPIKey{Name: "bench"}, meta); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTokenExchange measures issuing a JWT for a session and for an
// API key (ES256).
func BenchmarkTokenExchange(b *testing.B) {
	f := newBenchFixture(b)
	ctx := context.Background()
	u, _ := f.svc.SignUp(ctx, identity.SignUp{Email: "ada@example.com", Password: goodPassword, Consents: consents()}, meta)
	org, _ := f.svc.CreateOrg(ctx, u.ID, "Acme", "UTC", meta)
	l, err := f.svc.Login(ctx, "ada@example.com", goodPassword, meta)
	if err != nil {
		b.Fatal(err)
	}
	k, secret, _ := f.svc.CreateAPIKey(ctx, u.ID, org.ID, identity.NewAPIKey{Name: "bench", Scopes: []string{"mcp:tools:call"}}, meta)
	tk, err := identity.NewTokens(f.svc, identity.TokenConfig{Issuer: "https://id.example.com", Audience: "https://mcp.example.com/mcp", KEK: kek})
	if err != nil {
		b.Fatal(err)
	}
	if err := tk.Rotate(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("session", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tk.ForSession(ctx, l.Session, org.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("api-key", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			key, err := f.svc.AuthenticateAPIKey(ctx, secret, "10.0.0.1")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := tk.ForAPIKey(ctx, key); err != nil {
				b.Fatal(err)
			}
		}
	})
	_ = k
}
