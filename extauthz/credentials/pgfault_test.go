package credentials_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/password"
	"github.com/mcpauthz/mcpauthz/identity/postgres"
	"github.com/mcpauthz/mcpauthz/internal/testpg"
)

// TestPostgresStopped stops a real PostgreSQL under the verifiers: what
// memory holds still verifies; what it does not is a backend error within
// the decision budget — never an allow, never a 401; and once the server
// is back, lookups work again.
func TestPostgresStopped(t *testing.T) {
	pg := testpg.Private(t)
	ctx := context.Background()
	st, err := postgres.Open(ctx, pg.URL, postgres.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	audit, _ := identity.NewAuditor(bytes.Repeat([]byte{1}, identity.MinAuditKeyBytes))
	cfg := identity.DefaultConfig()
	cfg.Password = password.Params{Memory: 7 * 1024, Iterations: 5, Parallelism: 1, SaltLen: 16, KeyLen: 32}
	svc, err := identity.NewService(st, audit, cfg, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{svc: svc}
	u := f.signUp(t, "ada@example.com")
	org, _ := svc.CreateOrg(ctx, u.ID, "Acme", "UTC", meta)
	_, cached, err := svc.CreateAPIKey(ctx, u.ID, org.ID, identity.NewAPIKey{Name: "cached"}, meta)
	if err != nil {
		t.Fatal(err)
	}
	_, uncached, err := svc.CreateAPIKey(ctx, u.ID, org.ID, identity.NewAPIKey{Name: "uncached"}, meta)
	if err != nil {
		t.Fatal(err)
	}
	l := f.login(t, u.Email)
	keys := credentials.NewAPIKeyVerifier(st, credentials.FixedFreshness(time.Minute))
	sessions := credentials.NewSessionVerifier(st, credentials.FixedFreshness(time.Minute))
	const budget = 100 * time.Millisecond
	verify := func(v credentials.Verifier, headers ...string) (string, time.Duration) {
		cctx, cancel := context.WithTimeout(ctx, budget)
		defer cancel()
		start := time.Now()
		_, err := v.Verify(cctx, request("192.0.2.1", headers...))
		return kind(err), time.Since(start)
	}
	if got, _ := verify(keys, "x-api-key", cached); got != "ok" {
		t.Fatal(got)
	}
	pg.Stop()
	for _, c := range []struct {
		name string
		v    credentials.Verifier
		h    []string
		want string
	}{
		{"ok/a key in memory", keys, []string{"x-api-key", cached}, "ok"},
		{"fail/a key not in memory", keys, []string{"x-api-key", uncached}, "backend"},
		{"fail/a session not in memory", sessions, []string{"cookie", cookie(l.Token)}, "backend"},
	} {
		got, took := verify(c.v, c.h...)
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
		if took >= budget {
			t.Errorf("%s: took %v, over the %v budget", c.name, took, budget)
		}
	}
	pg.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := verify(keys, "x-api-key", uncached)
		if got == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a restart: %s", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
