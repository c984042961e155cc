package quotas_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/internal/testclock"
	"github.com/mcpauthz/mcpauthz/quotas"
	"github.com/mcpauthz/mcpauthz/quotas/memquota"
)

// shared is a shared limiter that fails while down is set, and otherwise
// admits everything.
type shared struct {
	down  atomic.Bool
	hang  atomic.Bool // block until the context is done
	calls atomic.Int64
}

func (s *shared) Take(ctx context.Context, req quotas.Request) (quotas.Result, error) {
	s.calls.Add(1)
	if s.hang.Load() {
		<-ctx.Done()
		return quotas.Result{}, errors.Join(quotas.ErrBackendUnavailable, ctx.Err())
	}
	if s.down.Load() {
		return quotas.Result{}, quotas.ErrBackendUnavailable
	}
	return quotas.Result{Allowed: true, Limits: make([]quotas.LimitState, len(req.Limits)), Quotas: make([]quotas.QuotaState, len(req.Quotas))}, nil
}

func newFallback(t *testing.T, replicas int) (*quotas.Fallback, *shared, *testclock.Clock) {
	t.Helper()
	clock := testclock.New(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	s := &shared{}
	f := quotas.NewFallback(s, memquota.New(memquota.WithClock(clock.Now)), func() int { return replicas },
		quotas.WithFallbackClock(clock.Now), quotas.WithRetryInterval(time.Second))
	return f, s, clock
}

func TestFallbackModes(t *testing.T) {
	local := quotas.Limit{Name: "local", Key: "user:u-1", Limit: 100, Window: time.Second}
	allow := quotas.Limit{Name: "allow", Key: "user:u-2", Limit: 1, Window: time.Hour, OnBackendError: quotas.Allow}
	deny := quotas.Limit{Name: "deny", Key: "user:u-3", Limit: 100, Window: time.Second, OnBackendError: quotas.Deny}
	quota := quotas.Quota{Name: "monthly", Key: "tenant:acme", Limit: 1, Period: quotas.Month}
	strict := quotas.Quota{Name: "strict", Key: "tenant:acme", Limit: 1000, Period: quotas.Month, OnBackendError: quotas.Deny}
	tests := []struct {
		name    string
		req     quotas.Request
		admits  int // of 200 requests at one instant
		localOf int // the local limit's units taken afterwards, of its share
	}{
		{"ok/local takes the instance share", quotas.Request{Limits: []quotas.Limit{local}}, 25, 25},
		{"ok/allow admits without counting", quotas.Request{Limits: []quotas.Limit{allow}}, 200, 0},
		{"ok/quotas admit without counting", quotas.Request{Quotas: []quotas.Quota{quota}}, 200, 0},
		{"ok/local and allow together", quotas.Request{Limits: []quotas.Limit{allow, local}}, 25, 25},
		{"fail/deny refuses", quotas.Request{Limits: []quotas.Limit{deny}}, 0, 0},
		{"fail/a deny takes nothing from the local limit", quotas.Request{Limits: []quotas.Limit{local, deny}}, 0, 0},
		{"fail/strict quota refuses", quotas.Request{Limits: []quotas.Limit{local}, Quotas: []quotas.Quota{strict}}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, s, _ := newFallback(t, 4)
			s.down.Store(true)
			admitted := 0
			for range 200 {
				res, err := f.Take(t.Context(), tt.req)
				if err != nil {
					t.Fatal(err)
				}
				if !res.Fallback {
					t.Fatal("the result does not say it fell back")
				}
				if res.Allowed {
					admitted++
				} else if res.RetryAfter <= 0 {
					t.Fatalf("refused with no Retry-After: %+v", res)
				}
			}
			if admitted != tt.admits {
				t.Errorf("admitted %d of 200, want %d", admitted, tt.admits)
			}
			// What is left of the local limit's share shows what was taken.
			res, err := f.Take(t.Context(), quotas.Request{Limits: []quotas.Limit{local}})
			if err != nil {
				t.Fatal(err)
			}
			left := 25 - tt.localOf
			if got := res.Limits[0].Remaining + 1; left > 0 && got != int64(left) {
				t.Errorf("local share left %d, want %d", got, left)
			}
			if left == 0 && res.Allowed {
				t.Error("the local share admitted past its burst")
			}
			if s.calls.Load() != 1 {
				t.Errorf("the shared limiter was called %d times within the retry interval, want 1", s.calls.Load())
			}
		})
	}
}

// TestFallbackWithoutAReplicaCount: before any replica count was read,
// this instance's share is unknown: Local limits refuse, Allow ones admit.
func TestFallbackWithoutAReplicaCount(t *testing.T) {
	f, s, _ := newFallback(t, 0)
	s.down.Store(true)
	local := quotas.Limit{Name: "local", Key: "k", Limit: 100, Window: time.Second}
	if res, err := f.Take(t.Context(), quotas.Request{Limits: []quotas.Limit{local}}); err != nil || res.Allowed {
		t.Errorf("a local limit with no replica count: %+v %v; want a refusal", res, err)
	}
	local.OnBackendError = quotas.Allow
	if res, err := f.Take(t.Context(), quotas.Request{Limits: []quotas.Limit{local}}); err != nil || !res.Allowed {
		t.Errorf("an allow limit with no replica count: %+v %v", res, err)
	}
}

// TestFallbackShareOverTime: over ten seconds of steady traffic one of four
// instances admits its quarter of the rate, and no more.
func TestFallbackShareOverTime(t *testing.T) {
	f, s, clock := newFallback(t, 4)
	s.down.Store(true)
	l := quotas.Request{Limits: []quotas.Limit{{Name: "l", Key: "tenant:acme", Limit: 100, Window: time.Second}}}
	admitted := 0
	for range 10000 { // 1000 per second for 10 s
		clock.Advance(time.Millisecond)
		s.down.Store(true)
		res, err := f.Take(t.Context(), l)
		if err != nil {
			t.Fatal(err)
		}
		if res.Allowed {
			admitted++
		}
	}
	// The share: a burst of 25 and 25 per second.
	if max := 25 + 10*25; admitted > max || admitted < max-2 {
		t.Errorf("admitted %d in 10 s, want at most %d and about that", admitted, max)
	}
}

func TestFallbackRecovers(t *testing.T) {
	clock := testclock.New(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	s := &shared{}
	var changes []bool
	f := quotas.NewFallback(s, memquota.New(memquota.WithClock(clock.Now)), func() int { return 2 },
		quotas.WithFallbackClock(clock.Now), quotas.WithRetryInterval(time.Second),
		quotas.WithStateChange(func(down bool) { changes = append(changes, down) }))
	req := quotas.Request{Limits: []quotas.Limit{{Name: "l", Key: "k", Limit: 10, Window: time.Second}}}
	take := func() quotas.Result {
		t.Helper()
		res, err := f.Take(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := take(); res.Fallback || f.Stats().Down {
		t.Fatal("fell back while the shared limiter answers")
	}
	s.down.Store(true)
	if res := take(); !res.Fallback || !f.Stats().Down {
		t.Fatal("did not fall back when the shared limiter failed")
	}
	s.down.Store(false)
	calls := s.calls.Load()
	if res := take(); !res.Fallback || s.calls.Load() != calls {
		t.Fatal("the shared limiter was tried again within the retry interval")
	}
	clock.Advance(time.Second)
	if res := take(); res.Fallback || f.Stats().Down {
		t.Fatal("did not go back to the shared limiter after the retry interval")
	}
	st := f.Stats()
	if st.Failures != 1 || st.Fallbacks != 2 {
		t.Errorf("stats %+v, want 1 failure and 2 fallbacks", st)
	}
	if len(changes) != 2 || !changes[0] || changes[1] {
		t.Errorf("state changes %v, want down then up", changes)
	}
}

// TestFallbackBoundsAHangingBackend: a shared limiter that never answers
// costs a request the shared timeout, and the next ones nothing.
func TestFallbackBoundsAHangingBackend(t *testing.T) {
	s := &shared{}
	s.hang.Store(true)
	f := quotas.NewFallback(s, memquota.New(), func() int { return 1 }, quotas.WithSharedTimeout(10*time.Millisecond))
	req := quotas.Request{Limits: []quotas.Limit{{Name: "l", Key: "k", Limit: 10, Window: time.Second}}}
	start := time.Now()
	res, err := f.Take(t.Context(), req)
	if err != nil || !res.Fallback || !res.Allowed {
		t.Fatalf("Take = %+v, %v; want a local admission", res, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a hanging shared limiter held the request %v", d)
	}
	for range 5 {
		f.Take(t.Context(), req)
	}
	if s.calls.Load() != 1 {
		t.Errorf("the hanging limiter was called %d times, want 1", s.calls.Load())
	}
}

func TestFallbackErrors(t *testing.T) {
	f, s, _ := newFallback(t, 1)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	s.hang.Store(true)
	req := quotas.Request{Limits: []quotas.Limit{{Name: "l", Key: "k", Limit: 10, Window: time.Second}}}
	if _, err := f.Take(ctx, req); !errors.Is(err, quotas.ErrBackendUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Take: %v", err)
	}
	if f.Stats().Down {
		t.Error("a caller giving up marked the shared limiter down")
	}
	bad := quotas.Request{Limits: []quotas.Limit{{Name: "l", Key: "k", Limit: 10, Window: time.Second, OnBackendError: "maybe"}}}
	if _, err := f.Take(t.Context(), bad); !errors.Is(err, quotas.ErrInvalidLimit) {
		t.Errorf("invalid mode: %v", err)
	}
	badQuota := quotas.Request{Quotas: []quotas.Quota{{Name: "q", Key: "k", Limit: 1, Period: quotas.Day, OnBackendError: quotas.Local}}}
	if _, err := f.Take(t.Context(), badQuota); !errors.Is(err, quotas.ErrInvalidLimit) {
		t.Errorf("local quota: %v", err)
	}
}

func TestInstanceShare(t *testing.T) {
	tests := []struct {
		name string
		in   quotas.Limit
		n    int
		want quotas.Limit
	}{
		{"ok/one instance", quotas.Limit{Limit: 100, Window: time.Second}, 1, quotas.Limit{Limit: 100, Window: time.Second}},
		{"ok/four instances", quotas.Limit{Limit: 100, Window: time.Second}, 4, quotas.Limit{Limit: 100, Window: 4 * time.Second, Burst: 25}},
		{"ok/burst divided", quotas.Limit{Limit: 100, Window: time.Second, Burst: 40}, 4, quotas.Limit{Limit: 100, Window: 4 * time.Second, Burst: 10}},
		{"ok/at least one unit", quotas.Limit{Limit: 2, Window: time.Second}, 10, quotas.Limit{Limit: 2, Window: 10 * time.Second, Burst: 1}},
		{"ok/zero stays zero", quotas.Limit{Limit: 0, Window: time.Second}, 3, quotas.Limit{Limit: 0, Window: 3 * time.Second}},
		{"ok/a costly request still fits", quotas.Limit{Limit: 100, Window: time.Second, Cost: 5}, 30,
			quotas.Limit{Limit: 100, Window: 30 * time.Second, Burst: 5, Cost: 5}},
		{"ok/a cost over the whole burst is not helped", quotas.Limit{Limit: 10, Window: time.Second, Cost: 20}, 2,
			quotas.Limit{Limit: 10, Window: 2 * time.Second, Burst: 5, Cost: 20}},
		{"ok/a long window does not overflow", quotas.Limit{Limit: 10, Window: quotas.MaxWindow}, 300,
			quotas.Limit{Limit: 10, Window: quotas.MaxWindow, Burst: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := quotas.InstanceShare(tt.in, tt.n); got != tt.want {
				t.Errorf("InstanceShare = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// gated is a shared limiter whose calls block until released, each then
// answering with the error it is released with.
type gated struct {
	started chan struct{}
	release chan error
}

func (g *gated) Take(_ context.Context, req quotas.Request) (quotas.Result, error) {
	g.started <- struct{}{}
	if err := <-g.release; err != nil {
		return quotas.Result{}, err
	}
	return quotas.Result{Allowed: true, Limits: make([]quotas.LimitState, len(req.Limits)), Quotas: make([]quotas.QuotaState, len(req.Quotas))}, nil
}

// TestFallbackLateSuccess: a call that was in flight when the shared
// limiter failed, and succeeds after, does not end the fallback — only the
// probe after the retry interval does — so a Redis that drops some calls
// does not switch the mode, and log it, with every request.
func TestFallbackLateSuccess(t *testing.T) {
	clock := testclock.New(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	g := &gated{started: make(chan struct{}), release: make(chan error)}
	var mu sync.Mutex
	var changes []bool
	f := quotas.NewFallback(g, memquota.New(memquota.WithClock(clock.Now)), func() int { return 2 },
		quotas.WithFallbackClock(clock.Now), quotas.WithRetryInterval(time.Second), quotas.WithSharedTimeout(time.Minute),
		quotas.WithStateChange(func(down bool) { mu.Lock(); changes = append(changes, down); mu.Unlock() }))
	req := quotas.Request{Limits: []quotas.Limit{{Name: "l", Key: "k", Limit: 10, Window: time.Second}}}
	results := make(chan quotas.Result, 3)
	take := func() {
		res, err := f.Take(t.Context(), req)
		if err != nil {
			t.Error(err)
		}
		results <- res
	}
	go take() // late: succeeds after the other fails
	<-g.started
	go take() // fails
	<-g.started
	g.release <- quotas.ErrBackendUnavailable
	if res := <-results; !res.Fallback {
		t.Fatal("the failed call did not fall back")
	}
	g.release <- nil
	if res := <-results; res.Fallback {
		t.Fatal("the late call's shared answer was not used")
	}
	if !f.Stats().Down {
		t.Fatal("a call in flight before the failure ended the fallback")
	}
	// The probe after the retry interval ends it.
	clock.Advance(time.Second)
	go take()
	<-g.started
	g.release <- nil
	if res := <-results; res.Fallback || f.Stats().Down {
		t.Fatal("the probe did not end the fallback")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 2 || !changes[0] || changes[1] {
		t.Errorf("state changes %v, want down then up", changes)
	}
}
