package identity_test

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/sqlstore"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

var kek = []byte("kek-kek-kek-kek-kek-kek-kek-kek!")

func (f *fixture) tokens(t *testing.T) *identity.Tokens {
	t.Helper()
	tk, err := identity.NewTokens(f.svc, identity.TokenConfig{Issuer: "https://id.example.com", Audience: "https://mcp.example.com/mcp",
		KEK: kek, SigningPeriod: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return tk
}

func verify(t *testing.T, tk *identity.Tokens, f *fixture, jwt string) (map[string]any, error) {
	t.Helper()
	claims, err := token.Verify(jwt, tk.KeySet(), token.WithIssuer("https://id.example.com"),
		token.WithAudience("https://mcp.example.com/mcp"), token.WithClock(f.clock.Now))
	return claims, err
}

func TestTokenConfig(t *testing.T) {
	f := newFixture(t)
	for name, cfg := range map[string]identity.TokenConfig{
		"fail/no issuer":     {Audience: "a", KEK: kek},
		"fail/short KEK":     {Issuer: "i", Audience: "a", KEK: kek[:16]},
		"fail/long lifetime": {Issuer: "i", Audience: "a", KEK: kek, TTL: 2 * time.Hour},
		"fail/short period":  {Issuer: "i", Audience: "a", KEK: kek, TTL: time.Hour, SigningPeriod: time.Hour},
	} {
		if _, err := identity.NewTokens(f.svc, cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestTokenForSession(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	org, owner, _, _, viewer := f.team(t)
	tk := f.tokens(t)
	l, _ := f.svc.Login(ctx, owner.Email, goodPassword, meta)
	iss, err := tk.ForSession(ctx, l.Session, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := verify(t, tk, f, iss.Token)
	if err != nil {
		t.Fatal(err)
	}
	if claims["sub"] != owner.ID || claims["tid"] != org.ID || claims["roles"].([]any)[0] != "owner" ||
		claims["auth_time"].(float64) != float64(l.Session.AuthTime.Unix()) || claims["jti"] == "" || claims["amr"].([]any)[0] != "pwd" ||
		claims["sid"] != l.Session.ID || claims["tier"] != "free" || claims["tz"] != org.TimeZone || org.TimeZone == "" {
		t.Fatalf("claims %v", claims)
	}
	if !iss.ExpiresAt.Equal(f.clock.Now().Add(5 * time.Minute)) {
		t.Fatalf("expires %v", iss.ExpiresAt)
	}
	other, _ := tk.ForSession(ctx, l.Session, org.ID)
	c2, _ := verify(t, tk, f, other.Token)
	if c2["jti"] == claims["jti"] {
		t.Fatal("two tokens share a jti")
	}
	stranger := f.signUp(t, "stranger@example.com")
	ls, _ := f.svc.Login(ctx, stranger.Email, goodPassword, meta)
	if _, err := tk.ForSession(ctx, ls.Session, org.ID); !errors.Is(err, identity.ErrForbidden) {
		t.Fatalf("a token for an org the user is not in: %v", err)
	}
	f.clock.Advance(6 * time.Minute)
	if _, err := verify(t, tk, f, iss.Token); err == nil {
		t.Fatal("an expired token verified")
	}
	_ = viewer
}

func TestTokenForAPIKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	org, owner, _, _, _ := f.team(t)
	tk := f.tokens(t)
	k, secret, err := f.svc.CreateAPIKey(ctx, owner.ID, org.ID, identity.NewAPIKey{Name: "ci",
		Scopes: []string{"mcp:tools:list", "mcp:tools:call"}, IPAllowlist: []string{"10.0.0.0/8"}}, meta)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ secret, ip string }{{secret, "192.0.2.1"}, {secret, "not-an-ip"}, {"mcpk_nope", "10.0.0.1"}, {strings.Replace(secret, "mcpk_", "mcps_", 1), "10.0.0.1"}} {
		if _, err := f.svc.AuthenticateAPIKey(ctx, c.secret, c.ip); !errors.Is(err, identity.ErrUnauthenticated) {
			t.Errorf("%s from %s: %v", c.secret[:8], c.ip, err)
		}
	}
	got, err := f.svc.AuthenticateAPIKey(ctx, secret, "10.1.2.3")
	if err != nil || got.ID != k.ID {
		t.Fatalf("authenticate: %v", err)
	}
	if _, err := tk.ForAPIKey(ctx, got); !errors.Is(err, identity.ErrRestrictedKey) {
		t.Fatalf("a token for a key with an allowlist: %v", err)
	}
	open, _, err := f.svc.CreateAPIKey(ctx, owner.ID, org.ID, identity.NewAPIKey{Name: "open",
		Scopes: []string{"mcp:tools:list", "mcp:tools:call"}}, meta)
	if err != nil {
		t.Fatal(err)
	}
	k = open
	iss, err := tk.ForAPIKey(ctx, open)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := verify(t, tk, f, iss.Token)
	if err != nil || claims["sub"] != "key:"+k.ID || claims["tid"] != org.ID || claims["scope"] != "mcp:tools:call mcp:tools:list" ||
		claims["roles"].([]any)[0] != "owner" || claims["tier"] != "free" || claims["tz"] != org.TimeZone {
		t.Fatalf("claims %v %v", claims, err)
	}
	if err := f.svc.RevokeAPIKey(ctx, owner.ID, org.ID, got.ID, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AuthenticateAPIKey(ctx, secret, "10.1.2.3"); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatalf("a revoked key authenticated: %v", err)
	}
}

func TestSigningKeyRotation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	org, owner, _, _, _ := f.team(t)
	tk := f.tokens(t)
	l, _ := f.svc.Login(ctx, owner.Email, goodPassword, meta)
	first, _ := tk.ForSession(ctx, l.Session, org.ID)

	// Keys are sealed at rest: the stored bytes are not a PEM key.
	stored, err := f.store.SigningKeys(ctx)
	if err != nil || len(stored) != 1 || strings.Contains(string(stored[0].Sealed), "PRIVATE KEY") {
		t.Fatalf("stored keys %v %v", len(stored), err)
	}
	// A replica with the same KEK signs with the same key.
	replica := f.tokens(t)
	if s1, _ := tk.KeySet().Signer(f.clock.Now()); s1 == nil {
		t.Fatal("no signer")
	} else if s2, _ := replica.KeySet().Signer(f.clock.Now()); s2.ID != s1.ID {
		t.Fatal("replicas sign with different keys")
	}

	// A quarter of an hour before the signing period ends (a token
	// lifetime and the publishing lead), a successor is published; it
	// signs ten minutes later, once every replica has loaded it.
	f.clock.Advance(24*time.Hour - 15*time.Minute)
	if err := tk.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if tk.KeySet().Len() != 2 {
		t.Fatalf("%d keys after rotation", tk.KeySet().Len())
	}
	second, _ := tk.ForSession(ctx, l.Session, org.ID)
	if kid(t, second.Token) != kid(t, first.Token) {
		t.Fatal("the successor signs before every replica can know it")
	}
	if err := replica.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	jwks, _ := replica.JWKS()
	if strings.Count(string(jwks), `"kid"`) != 2 {
		t.Fatalf("the replica does not publish the successor: %s", jwks)
	}
	f.clock.Advance(identity.DefaultPublishAhead - time.Minute)
	last, _ := tk.ForSession(ctx, l.Session, org.ID) // the old key's last
	f.clock.Advance(time.Minute)
	third, _ := tk.ForSession(ctx, l.Session, org.ID)
	if kid(t, third.Token) == kid(t, first.Token) {
		t.Fatal("the successor does not sign after the lead")
	}
	if _, err := verify(t, replica, f, third.Token); err != nil {
		t.Fatalf("the replica cannot verify the successor's token: %v", err)
	}
	if _, err := verify(t, tk, f, last.Token); err != nil || kid(t, last.Token) != kid(t, first.Token) {
		t.Fatalf("a token of the old key, still alive: %v", err)
	}
	// The old key is dropped once its last tokens have expired.
	f.clock.Advance(11 * time.Minute)
	if err := tk.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if tk.KeySet().Len() != 1 {
		t.Fatalf("the old key was not dropped: %d keys", tk.KeySet().Len())
	}
	fourth, err := tk.ForSession(ctx, l.Session, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify(t, tk, f, fourth.Token); err != nil {
		t.Fatalf("a token of the remaining key: %v", err)
	}
	if kid(t, fourth.Token) != kid(t, third.Token) {
		t.Fatal("the remaining key is not the new one")
	}

	// Another KEK cannot read the keys.
	wrong, _ := identity.NewTokens(f.svc, identity.TokenConfig{Issuer: "i", Audience: "a", KEK: []byte("another-kek-of-thirty-two-bytes!")})
	if err := wrong.Rotate(ctx); err == nil {
		t.Fatal("keys opened with the wrong KEK")
	}
}

// failingCommit runs every transaction's work and then fails it.
type failingCommit struct{ *sqlstore.Store }

var errCommit = errors.New("commit failed")

func (s failingCommit) Tx(ctx context.Context, fn func(identity.Tx) error) error {
	return s.Store.Tx(ctx, func(tx identity.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errCommit
	})
}

// TestRotationThatFailsToCommit: a key whose storing failed never signs,
// as no other replica would publish it.
func TestRotationThatFailsToCommit(t *testing.T) {
	f := newFixture(t)
	svc, err := identity.NewService(failingCommit{f.store}, f.audit, f.cfg, rand.Reader, identity.WithClock(f.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	tk, err := identity.NewTokens(svc, identity.TokenConfig{Issuer: "i", Audience: "a", KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Rotate(context.Background()); !errors.Is(err, errCommit) {
		t.Fatalf("rotate: %v", err)
	}
	if n := tk.KeySet().Len(); n != 0 {
		t.Fatalf("%d keys in use that were never stored", n)
	}
	if jwks, err := tk.JWKS(); err != nil || strings.Contains(string(jwks), "kid") {
		t.Fatalf("JWKS %s %v", jwks, err)
	}
}

// kid returns a JWT's header (which names its key) without verifying it.
func kid(t *testing.T, jwt string) string {
	t.Helper()
	header := strings.Split(jwt, ".")[0]
	return header
}
