package pgusage_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/quotas"
	"github.com/mcpauthz/mcpauthz/quotas/pgusage"
	"github.com/mcpauthz/mcpauthz/quotas/quotatest"
)

// counters is a hand-written quotas.UsageSnapshotter: quota counters in a
// map, which Flush loses and Fail makes unreachable.
type counters struct {
	mu  sync.Mutex
	m   map[string]quotas.Usage // by key; one period
	err error
}

var expires = time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)

func newCounters() *counters { return &counters{m: map[string]quotas.Usage{}} }

func (c *counters) Usage(ctx context.Context) ([]quotas.Usage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	out := make([]quotas.Usage, 0, len(c.m))
	for _, u := range c.m {
		out = append(out, u)
	}
	return out, nil
}

func (c *counters) Restore(ctx context.Context, usage []quotas.Usage) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	for _, u := range usage {
		if u.Used > c.m[u.Key].Used {
			c.m[u.Key] = u
		}
	}
	return nil
}

// add counts n more against key.
func (c *counters) add(key string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.m[key]
	c.m[key] = quotas.Usage{Key: key, PeriodID: "2026-11", Used: u.Used + n, Expires: expires}
}

func (c *counters) used(key string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key].Used
}

func (c *counters) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = map[string]quotas.Usage{}
}

func (c *counters) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
}

// hangingStore never answers before its context ends.
type hangingStore struct{}

func (hangingStore) Save(ctx context.Context, _ []quotas.Usage) error {
	<-ctx.Done()
	return ctx.Err()
}

func (hangingStore) Load(ctx context.Context, _ time.Time) ([]quotas.Usage, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// logRecorder is a slog handler that keeps the messages logged.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Level.String()+" "+rec.Message)
	return nil
}

// count returns how many messages were logged at level with text msg.
func (r *logRecorder) count(level slog.Level, msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if m == level.String()+" "+msg {
			n++
		}
	}
	return n
}

// run runs s until the test ends or stop is called, which waits for Run
// to return and fails the test if it does not within a second.
func run(t *testing.T, s *pgusage.Syncer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(time.Second):
				t.Error("Run did not return within a second of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually waits up to five seconds for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s: %s", what)
		}
	}
}

// stored returns the store's count of key, -1 if it cannot tell.
func stored(store quotas.UsageStore, key string) int64 {
	usage, err := store.Load(context.Background(), time.Now())
	if err != nil {
		return -1
	}
	if i := slices.IndexFunc(usage, func(u quotas.Usage) bool { return u.Key == key }); i >= 0 {
		return usage[i].Used
	}
	return 0
}

const (
	acme   = "tenant:acme:requests"
	globex = "tenant:globex:requests"
)

func TestSyncer(t *testing.T) {
	errDown := errors.New("down")
	tests := []struct {
		name string
		run  func(t *testing.T, c *counters, store *quotatest.MemoryStore, logs *logRecorder, opts []pgusage.SyncOption)
	}{
		{"ok/restores on start, then saves", func(t *testing.T, c *counters, store *quotatest.MemoryStore, _ *logRecorder, opts []pgusage.SyncOption) {
			store.Save(context.Background(), []quotas.Usage{{Key: acme, PeriodID: "2026-11", Used: 5, Expires: expires}})
			c.add(acme, 2)
			c.add(globex, 1)
			run(t, pgusage.NewSyncer(c, store, opts...))
			eventually(t, "acme restored to 5 and globex saved", func() bool { return c.used(acme) == 5 && stored(store, globex) == 1 })
		}},
		{"ok/restores after the counters go back", func(t *testing.T, c *counters, store *quotatest.MemoryStore, logs *logRecorder, opts []pgusage.SyncOption) {
			c.add(acme, 7)
			run(t, pgusage.NewSyncer(c, store, opts...))
			eventually(t, "acme saved", func() bool { return stored(store, acme) == 7 })
			c.flush()
			c.add(acme, 1)
			eventually(t, "acme restored", func() bool { return c.used(acme) >= 7 })
			if logs.count(slog.LevelWarn, "quota counters went back: the limiter lost its state; restoring them") == 0 {
				t.Error("the loss was not logged")
			}
		}},
		{"ok/saves on shutdown", func(t *testing.T, c *counters, store *quotatest.MemoryStore, _ *logRecorder, opts []pgusage.SyncOption) {
			stop := run(t, pgusage.NewSyncer(c, store, append(opts, pgusage.WithInterval(time.Hour))...))
			c.add(acme, 3)
			stop()
			if n := stored(store, acme); n != 3 {
				t.Fatalf("stored %d after shutdown, want 3", n)
			}
		}},
		{"fail/store down: retried until it is back", func(t *testing.T, c *counters, store *quotatest.MemoryStore, logs *logRecorder, opts []pgusage.SyncOption) {
			store.Save(context.Background(), []quotas.Usage{{Key: acme, PeriodID: "2026-11", Used: 5, Expires: expires}})
			store.Fail(errDown)
			c.add(globex, 4)
			run(t, pgusage.NewSyncer(c, store, opts...))
			eventually(t, "failed restores logged", func() bool {
				return logs.count(slog.LevelWarn, "restoring quota usage failed; retrying next round") >= 2
			})
			store.Fail(nil)
			eventually(t, "restored and saved once the store is back", func() bool { return c.used(acme) == 5 && stored(store, globex) == 4 })
		}},
		{"fail/limiter down: retried until it is back", func(t *testing.T, c *counters, store *quotatest.MemoryStore, logs *logRecorder, opts []pgusage.SyncOption) {
			c.add(acme, 2)
			c.fail(errDown)
			run(t, pgusage.NewSyncer(c, store, opts...))
			eventually(t, "failed reads logged", func() bool {
				return logs.count(slog.LevelWarn, "restoring quota usage failed; retrying next round") >= 2
			})
			c.fail(nil)
			eventually(t, "saved once the limiter is back", func() bool { return stored(store, acme) == 2 })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logRecorder{}
			opts := []pgusage.SyncOption{pgusage.WithInterval(10 * time.Millisecond), pgusage.WithLogger(slog.New(logs))}
			tt.run(t, newCounters(), quotatest.NewMemoryStore(), logs, opts)
		})
	}
}

// TestSyncerBounded: a store that hangs holds up neither a round past its
// timeout nor shutdown past the shutdown timeout.
func TestSyncerBounded(t *testing.T) {
	c := newCounters()
	c.add(acme, 1)
	logs := &logRecorder{}
	s := pgusage.NewSyncer(c, hangingStore{},
		pgusage.WithInterval(time.Millisecond), pgusage.WithRoundTimeout(20*time.Millisecond),
		pgusage.WithShutdownTimeout(50*time.Millisecond), pgusage.WithLogger(slog.New(logs)))
	stop := run(t, s)
	eventually(t, "rounds time out and go on", func() bool {
		return logs.count(slog.LevelWarn, "restoring quota usage failed; retrying next round") >= 3
	})
	stop() // fails the test unless Run returns within a second
	if logs.count(slog.LevelWarn, "saving quota usage on shutdown failed") != 1 {
		t.Fatal("the final save's failure was not logged")
	}
}
