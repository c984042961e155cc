package quotatest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/internal/testclock"
	"github.com/mcpauthz/mcpauthz/quotas"
)

// PersistentLimiter is a Limiter whose quota counters can be read out and
// put back.
type PersistentLimiter interface {
	quotas.Limiter
	quotas.UsageSnapshotter
}

// Persistence is a limiter backend that can lose its state, with the store
// its usage is kept in; fresh and empty for each test.
type Persistence struct {
	// Limiter returns a limiter over the backend's shared state that reads
	// the time from now.
	Limiter func(now func() time.Time) PersistentLimiter
	// Flush loses every counter of the backend, as a Redis restarted
	// without persistence does.
	Flush func(t *testing.T)
	// Store keeps usage across the flush.
	Store quotas.UsageStore
}

// RunPersistence runs the contract of a limiter whose usage is persisted:
// what it reads out, saved and restored into it after it lost its state,
// counts on from where it was, and restoring never lowers a counter.
func RunPersistence(t *testing.T, newBackend func(t *testing.T) Persistence) {
	tests := []struct {
		name string
		run  func(t *testing.T, b Persistence)
	}{
		{"ok/usage lists every quota counter", usageLists},
		{"ok/persistence across a flush", acrossFlush},
		{"ok/a spent quota stays spent across a flush", spentStaysSpent},
		{"ok/restore never lowers a higher counter", neverLowers},
		{"ok/restore raises a counter that restarted", raisesRestarted},
		{"ok/restore twice is restore once", restoreTwice},
		{"ok/restore keeps tenants apart", restoreApart},
		{"ok/expired periods are not restored", expiredNotRestored},
		{"fail/invalid usage", restoreInvalid},
		{"fail/cancelled context", persistCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newBackend(t)) })
	}
}

var (
	persistMonthly = quotas.Quota{Name: "monthly", Key: "tenant:acme:requests", Limit: 100, Period: quotas.Month}
	persistDaily   = quotas.Quota{Name: "daily", Key: "key:k-1:calls", Limit: 100, Period: quotas.Day}
)

// takeQuotas takes qs n times, all admitted.
func takeQuotas(t *testing.T, l quotas.Limiter, n int, qs ...quotas.Quota) quotas.Result {
	t.Helper()
	var res quotas.Result
	for range n {
		if res = take(t, l, quotas.Request{Quotas: qs}); !res.Allowed {
			t.Fatalf("refused within the quota: %+v", res)
		}
	}
	return res
}

// persistSave snapshots l's usage into the store.
func persistSave(t *testing.T, b Persistence, l PersistentLimiter) []quotas.Usage {
	t.Helper()
	ctx := context.Background()
	usage, err := l.Usage(ctx)
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	if err := b.Store.Save(ctx, usage); err != nil {
		t.Fatalf("Save: %v", err)
	}
	return usage
}

// persistRestore loads the store's usage at now and restores it into l.
func persistRestore(t *testing.T, b Persistence, l PersistentLimiter, now time.Time) {
	t.Helper()
	ctx := context.Background()
	usage, err := b.Store.Load(ctx, now)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := l.Restore(ctx, usage); err != nil {
		t.Fatalf("Restore: %v", err)
	}
}

// persistFlush loses the backend's state and checks it is gone.
func persistFlush(t *testing.T, b Persistence, l PersistentLimiter) {
	t.Helper()
	b.Flush(t)
	if usage, err := l.Usage(context.Background()); err != nil || len(usage) != 0 {
		t.Fatalf("after the flush the limiter holds %+v (%v)", usage, err)
	}
}

func usageLists(t *testing.T, b Persistence) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	globex := persistMonthly
	globex.Key = "tenant:globex:requests"
	takeQuotas(t, l, 3, persistMonthly, persistDaily)
	takeQuotas(t, l, 1, globex)
	take(t, l, limits(quotas.Limit{Name: "r", Key: "user:u-1", Limit: 10, Window: time.Second}))
	usage, err := l.Usage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	usage = quotas.MergeUsage(usage)
	want := []struct {
		q    quotas.Quota
		used int64
	}{{persistDaily, 3}, {persistMonthly, 3}, {globex, 1}}
	if len(usage) != len(want) {
		t.Fatalf("usage %+v, want the three quota counters and no rate limit", usage)
	}
	for i, w := range want {
		_, next, id := w.q.Period.Bounds(Start, nil)
		u := usage[i]
		if u.Key != w.q.Key || u.PeriodID != id || u.Used != w.used || u.Expires.Before(next) {
			t.Errorf("usage %+v, want %s in %s at %d, expiring after %v", u, w.q.Key, id, w.used, next)
		}
	}
}

func acrossFlush(t *testing.T, b Persistence) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	const n = 7
	takeQuotas(t, l, n, persistMonthly, persistDaily)
	persistSave(t, b, l)
	persistFlush(t, b, l)
	clock.Advance(time.Hour)
	restarted := b.Limiter(clock.Now)
	persistRestore(t, b, restarted, clock.Now())
	res := takeQuotas(t, restarted, 1, persistMonthly, persistDaily)
	for i, st := range res.Quotas {
		if st.Used != n+1 || st.Remaining != 100-n-1 {
			t.Errorf("quota %d after restoring %d: %+v, want %d used", i, n, st, n+1)
		}
	}
}

func spentStaysSpent(t *testing.T, b Persistence) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	small := persistMonthly
	small.Limit = 3
	takeQuotas(t, l, 3, small)
	persistSave(t, b, l)
	persistFlush(t, b, l)
	persistRestore(t, b, l, clock.Now())
	if res := take(t, l, quotas.Request{Quotas: []quotas.Quota{small}}); res.Allowed || res.Quotas[0].Used != 3 {
		t.Fatalf("a quota spent before the flush: %+v", res)
	}
}

func neverLowers(t *testing.T, b Persistence) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	takeQuotas(t, l, 5, persistMonthly)
	persistSave(t, b, l)
	takeQuotas(t, l, 3, persistMonthly) // another replica counts on
	persistRestore(t, b, l, clock.Now())
	if res := takeQuotas(t, l, 1, persistMonthly); res.Quotas[0].Used != 9 {
		t.Fatalf("restoring 5 over a live 8: %+v, want 9 used", res.Quotas[0])
	}
}

func raisesRestarted(t *testing.T, b Persistence) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	takeQuotas(t, l, 5, persistMonthly)
	persistSave(t, b, l)
	persistFlush(t, b, l)
	takeQuotas(t, l, 2, persistMonthly) // counted before the restore
	persistRestore(t, b, l, clock.Now())
	if res := takeQuotas(t, l, 1, persistMonthly); res.Quotas[0].Used != 6 {
		t.Fatalf("restoring 5 over a restarted 2: %+v, want 6 used", res.Quotas[0])
	}
}

func restoreTwice(t *testing.T, b Persistence) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	takeQuotas(t, l, 4, persistMonthly)
	persistSave(t, b, l)
	persistFlush(t, b, l)
	persistRestore(t, b, l, clock.Now())
	persistRestore(t, b, l, clock.Now())
	if res := takeQuotas(t, l, 1, persistMonthly); res.Quotas[0].Used != 5 {
		t.Fatalf("restoring 4 twice: %+v, want 5 used", res.Quotas[0])
	}
}

func restoreApart(t *testing.T, b Persistence) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	globex := persistMonthly
	globex.Key = "tenant:globex:requests"
	takeQuotas(t, l, 9, persistMonthly)
	persistSave(t, b, l)
	persistFlush(t, b, l)
	persistRestore(t, b, l, clock.Now())
	if res := takeQuotas(t, l, 1, globex); res.Quotas[0].Used != 1 {
		t.Fatalf("globex after restoring acme's usage: %+v, want 1 used", res.Quotas[0])
	}
}

func expiredNotRestored(t *testing.T, b Persistence) {
	clock := testclock.New(Start)
	l := b.Limiter(clock.Now)
	// October's counter, expired a week after October ended; November's
	// is live.
	october := quotas.Usage{Key: persistMonthly.Key, PeriodID: "2026-10", Used: 50, Expires: time.Date(2026, 11, 8, 0, 0, 0, 0, time.UTC)}
	november := quotas.Usage{Key: persistMonthly.Key, PeriodID: "2026-11", Used: 20, Expires: time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)}
	ctx := context.Background()
	if err := b.Store.Save(ctx, []quotas.Usage{october, november}); err != nil {
		t.Fatal(err)
	}
	loaded, err := b.Store.Load(ctx, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || loaded[0].PeriodID != november.PeriodID {
		t.Fatalf("the store loaded %+v, want November's counter only", loaded)
	}
	// Handed an expired record anyway, the limiter skips it.
	if err := l.Restore(ctx, []quotas.Usage{october, november}); err != nil {
		t.Fatal(err)
	}
	usage, err := l.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(usage, func(u quotas.Usage) bool { return u.PeriodID == october.PeriodID }) {
		t.Fatalf("an expired counter was restored: %+v", usage)
	}
	if res := takeQuotas(t, l, 1, persistMonthly); res.Quotas[0].Used != 21 {
		t.Fatalf("November after restoring 20: %+v, want 21 used", res.Quotas[0])
	}
}

func restoreInvalid(t *testing.T, b Persistence) {
	l := b.Limiter(testclock.New(Start).Now)
	expires := Start.Add(time.Hour)
	valid := quotas.Usage{Key: "tenant:acme:requests", PeriodID: "2026-11", Used: 1, Expires: expires}
	for name, u := range map[string]quotas.Usage{
		"no key":          {PeriodID: "2026-11", Used: 1, Expires: expires},
		"no period":       {Key: "k", Used: 1, Expires: expires},
		"colon in period": {Key: "k", PeriodID: "2026:11", Used: 1, Expires: expires},
		"negative":        {Key: "k", PeriodID: "2026-11", Used: -1, Expires: expires},
		"without expiry":  {Key: "k", PeriodID: "2026-11", Used: 1},
	} {
		if err := l.Restore(context.Background(), []quotas.Usage{valid, u}); !errors.Is(err, quotas.ErrInvalidUsage) {
			t.Errorf("%s: %v, want ErrInvalidUsage", name, err)
		}
	}
	// A refused Restore restores nothing, not even the valid records.
	if usage, err := l.Usage(context.Background()); err != nil || len(usage) != 0 {
		t.Fatalf("after refused restores the limiter holds %+v (%v)", usage, err)
	}
}

func persistCancelled(t *testing.T, b Persistence) {
	l := b.Limiter(testclock.New(Start).Now)
	takeQuotas(t, l, 1, persistMonthly)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Usage(ctx); !errors.Is(err, quotas.ErrBackendUnavailable) {
		t.Errorf("Usage with a cancelled context: %v, want ErrBackendUnavailable", err)
	}
	u := quotas.Usage{Key: persistMonthly.Key, PeriodID: "2026-11", Used: 5, Expires: Start.Add(time.Hour)}
	if err := l.Restore(ctx, []quotas.Usage{u}); !errors.Is(err, quotas.ErrBackendUnavailable) {
		t.Errorf("Restore with a cancelled context: %v, want ErrBackendUnavailable", err)
	}
}

// RunUsageStore runs the contract of a quotas.UsageStore. newStore returns
// a fresh, empty store.
func RunUsageStore(t *testing.T, newStore func(t *testing.T) quotas.UsageStore) {
	now := Start
	at := func(d time.Duration) time.Time { return now.Add(d) }
	u := func(key, period string, used int64, expires time.Time) quotas.Usage {
		return quotas.Usage{Key: key, PeriodID: period, Used: used, Expires: expires}
	}
	many := make([]quotas.Usage, 2500)
	for i := range many {
		many[i] = u(fmt.Sprintf("tenant:t-%04d:requests", i), "2026-11", int64(i), at(time.Hour))
	}
	tests := []struct {
		name  string
		saves [][]quotas.Usage
		want  []quotas.Usage
	}{
		{"ok/round trip", [][]quotas.Usage{{u("a", "2026-11", 5, at(time.Hour)), u("a", "2026-11-23", 2, at(time.Minute))}},
			[]quotas.Usage{u("a", "2026-11", 5, at(time.Hour)), u("a", "2026-11-23", 2, at(time.Minute))}},
		{"ok/keeps the greater count", [][]quotas.Usage{{u("a", "2026-11", 5, at(time.Hour))}, {u("a", "2026-11", 3, at(time.Hour))}},
			[]quotas.Usage{u("a", "2026-11", 5, at(time.Hour))}},
		{"ok/raises a lower count", [][]quotas.Usage{{u("a", "2026-11", 5, at(time.Hour))}, {u("a", "2026-11", 9, at(time.Hour))}},
			[]quotas.Usage{u("a", "2026-11", 9, at(time.Hour))}},
		{"ok/keeps the later expiry", [][]quotas.Usage{{u("a", "2026-11", 5, at(2*time.Hour))}, {u("a", "2026-11", 6, at(time.Hour))}},
			[]quotas.Usage{u("a", "2026-11", 6, at(2*time.Hour))}},
		{"ok/a counter twice in one save", [][]quotas.Usage{{u("a", "2026-11", 5, at(time.Hour)), u("a", "2026-11", 7, at(time.Hour))}},
			[]quotas.Usage{u("a", "2026-11", 7, at(time.Hour))}},
		{"ok/keys and periods are separate", [][]quotas.Usage{{u("a", "2026-11", 5, at(time.Hour)), u("b", "2026-11", 1, at(time.Hour))}, {u("a", "2026-12", 2, at(time.Hour))}},
			[]quotas.Usage{u("a", "2026-11", 5, at(time.Hour)), u("a", "2026-12", 2, at(time.Hour)), u("b", "2026-11", 1, at(time.Hour))}},
		{"ok/expired counters are not loaded", [][]quotas.Usage{{u("a", "2026-10", 5, at(-time.Hour)), u("b", "2026-10", 5, now), u("c", "2026-11", 1, at(time.Second))}},
			[]quotas.Usage{u("c", "2026-11", 1, at(time.Second))}},
		{"ok/nothing to save", [][]quotas.Usage{{}, nil}, nil},
		{"ok/many counters", [][]quotas.Usage{many}, many},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			ctx := context.Background()
			for _, usage := range tt.saves {
				if err := s.Save(ctx, usage); err != nil {
					t.Fatalf("Save: %v", err)
				}
			}
			got, err := s.Load(ctx, now)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			got = quotas.MergeUsage(got)
			if !slices.EqualFunc(got, tt.want, sameUsage) {
				t.Fatalf("loaded %d records %+v\nwant %d %+v", len(got), usageHead(got), len(tt.want), usageHead(tt.want))
			}
		})
	}
	t.Run("fail/invalid usage", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()
		bad := u("a", "2026-11", -1, at(time.Hour))
		if err := s.Save(ctx, []quotas.Usage{u("b", "2026-11", 1, at(time.Hour)), bad}); !errors.Is(err, quotas.ErrInvalidUsage) {
			t.Fatalf("Save of a negative count: %v, want ErrInvalidUsage", err)
		}
		if got, err := s.Load(ctx, now); err != nil || len(got) != 0 {
			t.Fatalf("a refused save stored %+v (%v)", got, err)
		}
	})
	t.Run("fail/cancelled context", func(t *testing.T) {
		s := newStore(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.Save(ctx, []quotas.Usage{u("a", "2026-11", 1, at(time.Hour))}); err == nil {
			t.Error("Save with a cancelled context succeeded")
		}
		if _, err := s.Load(ctx, now); err == nil {
			t.Error("Load with a cancelled context succeeded")
		}
	})
}

// sameUsage compares records, expiries as instants.
func sameUsage(a, b quotas.Usage) bool {
	return a.Key == b.Key && a.PeriodID == b.PeriodID && a.Used == b.Used && a.Expires.Equal(b.Expires)
}

// usageHead shortens a long list for a failure message.
func usageHead(us []quotas.Usage) []quotas.Usage { return us[:min(len(us), 5)] }
