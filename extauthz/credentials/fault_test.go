package credentials_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/password"
	"github.com/mcpauthz/mcpauthz/identity/redisfeed"
	"github.com/mcpauthz/mcpauthz/identity/sqlite"
	"github.com/mcpauthz/mcpauthz/internal/testredis"
)

// TestRedisFaults: with Redis paused or killed, keys and sessions still
// verify from the store within the decision budget; with the store down
// too, the answer is a backend error, never an allow.
func TestRedisFaults(t *testing.T) {
	cmd, addr := testredis.Start(t)
	const budget = 100 * time.Millisecond
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1,
		DialTimeout: 30 * time.Millisecond, ReadTimeout: 30 * time.Millisecond, WriteTimeout: 30 * time.Millisecond})
	defer rdb.Close()
	feed, err := redisfeed.New(rdb, redisfeed.WithTimeout(30*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "id.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	audit, _ := identity.NewAuditor(bytes.Repeat([]byte{1}, identity.MinAuditKeyBytes))
	cfg := identity.DefaultConfig()
	cfg.Password = password.Params{Memory: 7 * 1024, Iterations: 5, Parallelism: 1, SaltLen: 16, KeyLen: 32}
	svc, err := identity.NewService(st, audit, cfg, rand.Reader, identity.WithCache(feed))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{svc: svc, store: &store{Store: st}}
	u := f.signUp(t, "ada@example.com")
	org, _ := svc.CreateOrg(ctx, u.ID, "Acme", "UTC", meta)
	_, secret, err := svc.CreateAPIKey(ctx, u.ID, org.ID, identity.NewAPIKey{Name: "ci"}, meta)
	if err != nil {
		t.Fatal(err)
	}
	l := f.login(t, u.Email)
	keys := credentials.NewAPIKeyVerifier(f.store, credentials.FixedFreshness(0), credentials.WithKeyFeed(feed))
	sessions := credentials.NewSessionVerifier(f.store, credentials.FixedFreshness(0), credentials.WithSessionFeed(feed))
	check := func(name, want string) {
		t.Helper()
		for _, c := range []struct {
			v   credentials.Verifier
			req []string
		}{{keys, []string{"x-api-key", secret}}, {sessions, []string{"cookie", cookie(l.Token)}}} {
			cctx, cancel := context.WithTimeout(ctx, budget)
			start := time.Now()
			_, err := c.v.Verify(cctx, request("192.0.2.1", c.req...))
			took := time.Since(start)
			cancel()
			if got := kind(err); !strings.HasPrefix(got, want) {
				t.Errorf("%s: got %s, want %s", name, got, want)
			}
			if took >= budget {
				t.Errorf("%s: took %v, over the %v budget", name, took, budget)
			}
		}
	}
	check("redis up", "ok")
	cmd.Process.Signal(syscall.SIGSTOP)
	check("redis paused", "ok")
	f.store.down.Store(true)
	check("redis paused, store down", "backend")
	f.store.down.Store(false)
	cmd.Process.Signal(syscall.SIGCONT)
	cmd.Process.Kill()
	cmd.Wait()
	check("redis killed", "ok")
}
