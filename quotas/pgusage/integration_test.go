package pgusage_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/internal/testpg"
	"github.com/mcpauthz/mcpauthz/internal/testredis"
	"github.com/mcpauthz/mcpauthz/quotas"
	"github.com/mcpauthz/mcpauthz/quotas/pgusage"
	"github.com/mcpauthz/mcpauthz/quotas/redisquota"
)

// TestSyncerWithRedis runs the Syncer between a real Redis limiter and a
// real Postgres store, on the real clock.
func TestSyncerWithRedis(t *testing.T) {
	monthly := quotas.Quota{Name: "monthly", Key: acme, Limit: 1000, Period: quotas.Month}
	tests := []struct {
		name string
		run  func(t *testing.T, h harness)
	}{
		{"ok/persistence across a Redis flush and a restart", func(t *testing.T, h harness) {
			const n = 25
			h.take(t, h.limiter, monthly, n)
			stop := run(t, pgusage.NewSyncer(h.limiter, h.store, pgusage.WithInterval(time.Hour)))
			eventually(t, "the usage saved", func() bool { return stored(h.store, acme) == n })
			stop()
			h.flush(t)
			// The sidecar restarts: a new limiter and syncer.
			restarted := redisquota.New(h.rdb, redisquota.WithPrefix(h.prefix))
			run(t, pgusage.NewSyncer(restarted, h.store, pgusage.WithInterval(time.Hour)))
			eventually(t, "the usage restored", func() bool { return h.live(restarted, acme) == n })
			if used := h.take(t, restarted, monthly, 1); used != n+1 {
				t.Fatalf("a Take after the restore counts %d, want %d", used, n+1)
			}
		}},
		{"ok/a Redis lost while running is restored", func(t *testing.T, h harness) {
			const n = 10
			h.take(t, h.limiter, monthly, n)
			run(t, pgusage.NewSyncer(h.limiter, h.store, pgusage.WithInterval(20*time.Millisecond)))
			eventually(t, "the usage saved", func() bool { return stored(h.store, acme) == n })
			h.flush(t)
			eventually(t, "the usage restored", func() bool { return h.live(h.limiter, acme) == n })
			if used := h.take(t, h.limiter, monthly, 1); used != n+1 {
				t.Fatalf("a Take after the restore counts %d, want %d", used, n+1)
			}
		}},
		{"ok/restore never lowers a higher live counter", func(t *testing.T, h harness) {
			h.take(t, h.limiter, monthly, 5)
			if _, err := pgusage.NewSyncer(h.limiter, h.store).Save(context.Background()); err != nil {
				t.Fatal(err)
			}
			h.take(t, h.limiter, monthly, 3) // counted since, by any replica
			run(t, pgusage.NewSyncer(h.limiter, h.store, pgusage.WithInterval(time.Hour)))
			eventually(t, "the live count saved", func() bool { return stored(h.store, acme) == 8 })
			if used := h.take(t, h.limiter, monthly, 1); used != 9 {
				t.Fatalf("a Take after restoring 5 over a live 8 counts %d, want 9", used)
			}
		}},
		{"ok/expired periods are neither restored nor kept", func(t *testing.T, h harness) {
			now := time.Now()
			old := quotas.Usage{Key: globex, PeriodID: "2000-01", Used: 50, Expires: now.Add(-time.Hour)}
			if err := h.store.Save(context.Background(), []quotas.Usage{old}); err != nil {
				t.Fatal(err)
			}
			h.take(t, h.limiter, monthly, 2)
			run(t, pgusage.NewSyncer(h.limiter, h.store, pgusage.WithInterval(time.Hour)))
			eventually(t, "the usage saved", func() bool { return stored(h.store, acme) == 2 })
			usage, err := h.limiter.Usage(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if slices.ContainsFunc(usage, func(u quotas.Usage) bool { return u.Key == globex }) {
				t.Fatalf("an expired period was restored: %+v", usage)
			}
			eventually(t, "the expired row pruned", func() bool {
				all, err := h.store.Load(context.Background(), time.Unix(0, 0)) // expired or not
				return err == nil && len(all) == 1 && all[0].Key == acme
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdb, p := testredis.Shared(t)
			tt.run(t, harness{rdb: rdb, prefix: p, limiter: redisquota.New(rdb, redisquota.WithPrefix(p)), store: open(t)})
		})
	}
}

// TestSyncerPostgresDown: while Postgres is down, decisions go on and the
// failed rounds are logged; once it is back, the usage is saved.
func TestSyncerPostgresDown(t *testing.T) {
	rdb, p := testredis.Shared(t)
	srv := testpg.Private(t)
	ctx := context.Background()
	store, err := pgusage.Open(ctx, srv.URL, pgusage.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	h := harness{rdb: rdb, prefix: p, limiter: redisquota.New(rdb, redisquota.WithPrefix(p)), store: store}
	monthly := quotas.Quota{Name: "monthly", Key: acme, Limit: 1000, Period: quotas.Month}
	logs := &logRecorder{}
	run(t, pgusage.NewSyncer(h.limiter, store, pgusage.WithInterval(20*time.Millisecond),
		pgusage.WithRoundTimeout(time.Second), pgusage.WithLogger(slog.New(logs))))
	h.take(t, h.limiter, monthly, 3)
	eventually(t, "the usage saved", func() bool { return stored(store, acme) == 3 })

	srv.Stop()
	if used := h.take(t, h.limiter, monthly, 4); used != 7 {
		t.Fatalf("with Postgres down a Take counts %d, want 7", used)
	}
	eventually(t, "failed saves logged", func() bool {
		return logs.count(slog.LevelWarn, "saving quota usage failed; retrying next round") > 0
	})
	srv.Start()
	eventually(t, "the usage saved once Postgres is back", func() bool { return stored(store, acme) == 7 })
}

// harness is one test's Redis limiter and Postgres store.
type harness struct {
	rdb     *redis.Client
	prefix  string
	limiter *redisquota.Limiter
	store   *pgusage.Store
}

// take takes q n times, all admitted, and returns the count after.
func (h harness) take(t *testing.T, l *redisquota.Limiter, q quotas.Quota, n int) int64 {
	t.Helper()
	var used int64
	for range n {
		res, err := l.Take(context.Background(), quotas.Request{Quotas: []quotas.Quota{q}})
		if err != nil || !res.Allowed {
			t.Fatalf("Take: %+v %v", res, err)
		}
		used = res.Quotas[0].Used
	}
	return used
}

// live returns l's count of key in Redis, -1 if it cannot tell.
func (h harness) live(l *redisquota.Limiter, key string) int64 {
	usage, err := l.Usage(context.Background())
	if err != nil {
		return -1
	}
	if i := slices.IndexFunc(usage, func(u quotas.Usage) bool { return u.Key == key }); i >= 0 {
		return usage[i].Used
	}
	return 0
}

// flush loses the test's keys, as a Redis restarted without persistence.
func (h harness) flush(t *testing.T) {
	t.Helper()
	flushPrefix(t, h.rdb, h.prefix)
	if n := h.live(h.limiter, acme); n != 0 {
		t.Fatalf("after the flush Redis counts %d", n)
	}
}
