package pgusage_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/internal/testpg"
	"github.com/mcpauthz/mcpauthz/internal/testredis"
	"github.com/mcpauthz/mcpauthz/quotas"
	"github.com/mcpauthz/mcpauthz/quotas/pgusage"
	"github.com/mcpauthz/mcpauthz/quotas/quotatest"
	"github.com/mcpauthz/mcpauthz/quotas/redisquota"
)

// open returns a migrated store in a schema of the test's own.
func open(t *testing.T) *pgusage.Store {
	t.Helper()
	s, err := pgusage.Open(context.Background(), testpg.Schema(t), pgusage.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestUsageStoreContract(t *testing.T) {
	quotatest.RunUsageStore(t, func(t *testing.T) quotas.UsageStore { return open(t) })
}

// TestPersistence is the Redis limiter's persistence contract with its
// usage kept in Postgres: what was counted before a Redis flush counts on
// after it.
func TestPersistence(t *testing.T) {
	quotatest.RunPersistence(t, func(t *testing.T) quotatest.Persistence {
		rdb, p := testredis.Shared(t)
		return quotatest.Persistence{
			Limiter: func(now func() time.Time) quotatest.PersistentLimiter {
				return redisquota.New(rdb, redisquota.WithPrefix(p), redisquota.WithFixedClock(now))
			},
			Flush: func(t *testing.T) { flushPrefix(t, rdb, p) },
			Store: open(t),
		}
	})
}

// flushPrefix deletes every key under prefix, as a Redis that lost its
// data would hold none.
func flushPrefix(t *testing.T, rdb *redis.Client, prefix string) {
	t.Helper()
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		if err := rdb.Del(ctx, iter.Val()).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		url     func(t testing.TB) string
		opts    pgusage.Options
		wantErr error
	}{
		{"ok/migrates", testpg.Schema, pgusage.Options{Migrate: true}, nil},
		{"ok/migrated before", func(t testing.TB) string {
			url := testpg.Schema(t)
			if err := pgusage.Migrate(ctx, sqlDB(t, url)); err != nil {
				t.Fatal(err)
			}
			return url
		}, pgusage.Options{}, nil},
		{"fail/not migrated", testpg.Schema, pgusage.Options{}, pgusage.ErrNotMigrated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := pgusage.Open(ctx, tt.url(t), tt.opts)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open: %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				s.Close()
			}
		})
	}
	t.Run("fail/the connection string's password stays out of the error", func(t *testing.T) {
		_, err := pgusage.Open(ctx, "postgres://user:s3cret-pw@[bad", pgusage.Options{})
		if err == nil || strings.Contains(err.Error(), "s3cret-pw") {
			t.Fatalf("err %v", err)
		}
	})
}

// TestVersionTableIsItsOwn: the usage schema's version lives apart from
// the identity store's goose table, so migrating one never reads as the
// other being done.
func TestVersionTableIsItsOwn(t *testing.T) {
	ctx := context.Background()
	db := sqlDB(t, testpg.Schema(t))
	if v, err := pgusage.Version(ctx, db); err != nil || v != 0 {
		t.Fatalf("version before migrating: %d %v", v, err)
	}
	if err := pgusage.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := pgusage.Migrate(ctx, db); err != nil {
		t.Fatalf("migrating again: %v", err)
	}
	if v, err := pgusage.Version(ctx, db); err != nil || v != 1 {
		t.Fatalf("version after migrating: %d %v", v, err)
	}
	var identity bool
	if err := db.QueryRowContext(ctx, `SELECT to_regclass('goose_db_version') IS NOT NULL`).Scan(&identity); err != nil {
		t.Fatal(err)
	}
	if identity {
		t.Fatal("migrating the usage store wrote the identity store's version table")
	}
	if pending, err := pgusage.Pending(ctx, db); err != nil || pending {
		t.Fatalf("pending after migrating: %v %v", pending, err)
	}
}

// TestConcurrentMigrations: replicas starting at once all open the store.
func TestConcurrentMigrations(t *testing.T) {
	url := testpg.Schema(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			s, err := pgusage.Open(context.Background(), url, pgusage.Options{Migrate: true})
			if err == nil {
				s.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestPrune(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	now := quotatest.Start
	usage := []quotas.Usage{
		{Key: "a", PeriodID: "2026-10", Used: 5, Expires: now.Add(-time.Hour)},
		{Key: "b", PeriodID: "2026-10", Used: 5, Expires: now},
		{Key: "c", PeriodID: "2026-11", Used: 5, Expires: now.Add(time.Second)},
	}
	if err := s.Save(ctx, usage); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Prune(ctx, now); err != nil || n != 2 {
		t.Fatalf("pruned %d (%v), want the 2 expired", n, err)
	}
	got, err := s.Load(ctx, now.Add(-24*time.Hour))
	if err != nil || len(got) != 1 || got[0].Key != "c" {
		t.Fatalf("left %+v (%v), want c only", got, err)
	}
}

// TestConcurrentSaves: replicas saving overlapping counters in different
// orders neither deadlock nor lose the greatest count.
func TestConcurrentSaves(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	expires := quotatest.Start.Add(time.Hour)
	const replicas, counters = 6, 300
	var wg sync.WaitGroup
	errs := make(chan error, replicas)
	for r := range replicas {
		wg.Go(func() {
			usage := make([]quotas.Usage, counters)
			for i := range usage {
				j := i
				if r%2 == 1 {
					j = counters - 1 - i // the other order
				}
				usage[i] = quotas.Usage{Key: fmt.Sprintf("tenant:t-%03d", j), PeriodID: "2026-11", Used: int64(j + r), Expires: expires}
			}
			for range 5 {
				if err := s.Save(ctx, usage); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := s.Load(ctx, quotatest.Start)
	if err != nil || len(got) != counters {
		t.Fatalf("loaded %d (%v), want %d", len(got), err, counters)
	}
	for j, u := range got {
		if u.Used != int64(j+replicas-1) {
			t.Fatalf("counter %d: %+v, want the greatest, %d", j, u, j+replicas-1)
		}
	}
}

// sqlDB opens url with database/sql, as mcpauthz migrate does.
func sqlDB(t testing.TB, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
