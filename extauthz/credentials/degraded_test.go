package credentials_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/internal/testredis"
)

// TestRevocationWithoutEvents: with the events' Redis gone, a key revoked
// in the store is refused once its memory entry outlives the degraded age
// (the live age would have kept it for a minute).
func TestRevocationWithoutEvents(t *testing.T) {
	cmd, addr := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	defer rdb.Close()
	f := newFixture(t, false) // its events reach no one: only the store knows
	ctx := context.Background()
	owner := f.signUp(t, "owner@example.com")
	org, _ := f.svc.CreateOrg(ctx, owner.ID, "Acme", "UTC", meta)
	k, secret, err := f.svc.CreateAPIKey(ctx, owner.ID, org.ID, identity.NewAPIKey{Name: "ci"}, meta)
	if err != nil {
		t.Fatal(err)
	}
	rev := credentials.NewRevocations(rdb, "test", nil, credentials.WithMaxAges(time.Minute, time.Second))
	v := credentials.NewAPIKeyVerifier(f.store, rev)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rev.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(5 * time.Second); !rev.Live(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("never live")
		}
	}
	if _, err := v.Verify(ctx, request("192.0.2.1", "x-api-key", secret)); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	for deadline := time.Now().Add(5 * time.Second); rev.Live(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("still live with Redis gone")
		}
	}
	if err := f.svc.RevokeAPIKey(ctx, owner.ID, org.ID, k.ID, meta); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	for {
		_, err := v.Verify(ctx, request("192.0.2.1", "x-api-key", secret))
		if kind(err) == "invalid" {
			break
		}
		if time.Since(revoked) > 1500*time.Millisecond {
			t.Fatalf("a revoked key still accepted %v later, past the degraded age", time.Since(revoked))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
