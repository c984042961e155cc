package identity_test

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

// touches records batches; fail makes the next write fail.
type touches struct {
	mu      sync.Mutex
	batches []map[string]time.Time
	fail    bool
}

func (s *touches) TouchAPIKeys(_ context.Context, m map[string]time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		s.fail = false
		return errors.New("database down")
	}
	s.batches = append(s.batches, maps.Clone(m))
	return nil
}

func TestKeyUsage(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := &touches{fail: true}
	u := identity.NewKeyUsage(st, time.Hour, slog.New(slog.DiscardHandler))
	for i := range 1000 {
		u.Record("k1", t0.Add(time.Duration(i)*time.Second))
	}
	u.Record("k2", t0)
	u.Record("k2", t0.Add(-time.Hour)) // older: ignored
	if err := u.Flush(context.Background()); err == nil {
		t.Fatal("the failing write was not reported")
	}
	u.Record("k3", t0)
	if err := u.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"k1": t0.Add(999 * time.Second), "k2": t0, "k3": t0}
	if len(st.batches) != 1 || !maps.Equal(st.batches[0], want) {
		t.Fatalf("batches %v, want one: %v", st.batches, want)
	}
	if err := u.Flush(context.Background()); err != nil || len(st.batches) != 1 {
		t.Fatalf("an empty flush wrote: %v %v", err, st.batches)
	}
}

func TestKeyUsageRunFlushesAtShutdown(t *testing.T) {
	st := &touches{}
	u := identity.NewKeyUsage(st, time.Hour, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- u.Run(ctx) }()
	u.Record("k1", time.Now())
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(st.batches) != 1 || len(st.batches[0]) != 1 {
		t.Fatalf("batches at shutdown: %v", st.batches)
	}
}

// TestKeyUseIsRecorded: authenticating a key records its use, written on
// the next flush; a refused key records nothing.
func TestKeyUseIsRecorded(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	usage := identity.NewKeyUsage(f.store, time.Hour, slog.New(slog.DiscardHandler))
	svc, err := identity.NewService(f.store, f.audit, f.cfg, rand.Reader, identity.WithClock(f.clock.Now), identity.WithKeyUsage(usage))
	if err != nil {
		t.Fatal(err)
	}
	u := f.signUp(t, "ada@example.com")
	org, err := svc.CreateOrg(ctx, u.ID, "Ada's", "", meta)
	if err != nil {
		t.Fatal(err)
	}
	k, secret, err := svc.CreateAPIKey(ctx, u.ID, org.ID, identity.NewAPIKey{Name: "ci", IPAllowlist: []string{"10.0.0.0/8"}}, meta)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AuthenticateAPIKey(ctx, secret, "192.0.2.1"); err == nil {
		t.Fatal("a key used from outside its allowlist authenticated")
	}
	if err := usage.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.store.APIKey(ctx, org.ID, k.ID); !got.LastUsedAt.IsZero() {
		t.Fatalf("a refused use was recorded: %v", got.LastUsedAt)
	}
	if _, err := svc.AuthenticateAPIKey(ctx, secret, "10.1.2.3"); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.store.APIKey(ctx, org.ID, k.ID); !got.LastUsedAt.IsZero() {
		t.Fatal("authenticating wrote at once")
	}
	if err := usage.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.store.APIKey(ctx, org.ID, k.ID); !got.LastUsedAt.Equal(f.clock.Now()) {
		t.Fatalf("last used %v, want %v", got.LastUsedAt, f.clock.Now())
	}
}
