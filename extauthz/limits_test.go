package extauthz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/internal/testclock"
	"github.com/mcpauthz/mcpauthz/mcp"
	"github.com/mcpauthz/mcpauthz/quotas"
	"github.com/mcpauthz/mcpauthz/quotas/memquota"
)

// limiterFunc is a Limiter from a function.
type limiterFunc func(ctx context.Context, req quotas.Request) (quotas.Result, error)

func (f limiterFunc) Take(ctx context.Context, req quotas.Request) (quotas.Result, error) {
	return f(ctx, req)
}

func allowTaking(req quotas.Request, headers bool) func(context.Context, *PolicyInput) (Decision, error) {
	return func(context.Context, *PolicyInput) (Decision, error) {
		return Decision{Allowed: true, Take: req, RateLimitHeaders: headers}, nil
	}
}

var (
	perUser = quotas.Limit{Name: "user_requests", Key: "user:u-1", Limit: 2, Window: 10 * time.Second}
	monthly = quotas.Quota{Name: "monthly", Key: "tenant:acme", Limit: 100, Period: quotas.Month, Location: time.UTC}
)

func TestLimits(t *testing.T) {
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		req     *Request
		take    quotas.Request
		headers bool
		limiter func(now func() time.Time) quotas.Limiter
		calls   int // the last one is checked
		status  int
		reason  string
		err     error
		check   func(t *testing.T, d Decision)
	}{
		{name: "ok/limits taken", req: mcpRequest(toolsCall), take: quotas.Request{Limits: []quotas.Limit{perUser}}, calls: 2,
			check: func(t *testing.T, d Decision) {
				if HasHeader(d.ResponseHeadersToAdd, "ratelimit") {
					t.Error("RateLimit headers the policy did not ask for")
				}
			}},
		{name: "ok/remaining on the allowed response", req: mcpRequest(toolsCall),
			take: quotas.Request{Limits: []quotas.Limit{perUser}, Quotas: []quotas.Quota{monthly}}, headers: true, calls: 1,
			check: func(t *testing.T, d Decision) {
				want := map[string]string{
					"ratelimit-policy":      `"user_requests";q=2;w=10, "monthly";q=100`,
					"ratelimit":             `"user_requests";r=1;t=5, "monthly";r=99;t=658800`, // to 1 December
					"x-ratelimit-limit":     "2",
					"x-ratelimit-remaining": "1",
					"x-ratelimit-reset":     "5",
				}
				for name, v := range want {
					if got, _ := header(d.ResponseHeadersToAdd, name); got != v {
						t.Errorf("%s = %q, want %q", name, got, v)
					}
				}
			}},
		{name: "fail/the third request within the window", req: mcpRequest(toolsCall), take: quotas.Request{Limits: []quotas.Limit{perUser}},
			calls: 3, status: http.StatusTooManyRequests, reason: ReasonRateLimited,
			check: func(t *testing.T, d Decision) {
				want := map[string]string{
					"retry-after":           "5",
					"ratelimit-policy":      `"user_requests";q=2;w=10`,
					"ratelimit":             `"user_requests";r=0;t=5`,
					"x-ratelimit-remaining": "0",
					"content-type":          "application/json",
				}
				for name, v := range want {
					if got, _ := header(d.Headers, name); got != v {
						t.Errorf("%s = %q, want %q", name, got, v)
					}
				}
				var reply struct {
					ID    int `json:"id"`
					Error struct {
						Code int `json:"code"`
						Data struct {
							RetryAfter int    `json:"retry_after"`
							Limit      string `json:"limit"`
						} `json:"data"`
					} `json:"error"`
				}
				if err := json.Unmarshal([]byte(d.Body), &reply); err != nil {
					t.Fatalf("body %q: %v", d.Body, err)
				}
				if reply.ID != 7 || reply.Error.Code != -32029 || reply.Error.Data.RetryAfter != 5 || reply.Error.Data.Limit != "user_requests" {
					t.Errorf("reply %+v", reply)
				}
			}},
		{name: "fail/a plain HTTP request gets no JSON-RPC body", req: &Request{Method: "GET", Path: "/api/v1/orgs"},
			take: quotas.Request{Limits: []quotas.Limit{perUser}}, calls: 3, status: http.StatusTooManyRequests, reason: ReasonRateLimited,
			check: func(t *testing.T, d Decision) {
				if d.Body != "" || HasHeader(d.Headers, "content-type") {
					t.Errorf("body %q headers %v", d.Body, d.Headers)
				}
			}},
		{name: "fail/an exhausted quota says when the period ends", req: mcpRequest(toolsCall),
			take:  quotas.Request{Quotas: []quotas.Quota{{Name: "daily", Key: "tenant:acme", Limit: 1, Period: quotas.Day, Location: time.UTC}}},
			calls: 2, status: http.StatusTooManyRequests, reason: ReasonRateLimited,
			check: func(t *testing.T, d Decision) {
				if got, _ := header(d.Headers, "retry-after"); got != "54000" { // 09:00 to midnight
					t.Errorf("Retry-After %q", got)
				}
				if got, _ := header(d.Headers, "ratelimit-policy"); got != `"daily";q=1;w=86400` {
					t.Errorf("RateLimit-Policy %q", got)
				}
			}},
		{name: "fail/without a limiter", req: mcpRequest(toolsCall), take: quotas.Request{Limits: []quotas.Limit{perUser}},
			limiter: func(func() time.Time) quotas.Limiter { return NoLimiter{} },
			calls:   1, status: http.StatusServiceUnavailable, reason: ReasonBackendFailure, err: quotas.ErrBackendUnavailable},
		{name: "fail/the limiter cannot tell", req: mcpRequest(toolsCall), take: quotas.Request{Limits: []quotas.Limit{perUser}},
			limiter: func(func() time.Time) quotas.Limiter {
				return limiterFunc(func(context.Context, quotas.Request) (quotas.Result, error) {
					return quotas.Result{}, quotas.ErrBackendUnavailable
				})
			},
			calls: 1, status: http.StatusServiceUnavailable, reason: ReasonBackendFailure, err: quotas.ErrBackendUnavailable},
		{name: "fail/a limit that cannot be enforced", req: mcpRequest(toolsCall),
			take:  quotas.Request{Limits: []quotas.Limit{{Name: "broken", Key: "k", Limit: 1}}},
			calls: 1, status: http.StatusInternalServerError, reason: ReasonLimitInvalid, err: quotas.ErrInvalidLimit},
		{name: "fail/the limiter outlasts the budget", req: mcpRequest(toolsCall), take: quotas.Request{Limits: []quotas.Limit{perUser}},
			limiter: func(func() time.Time) quotas.Limiter {
				return limiterFunc(func(ctx context.Context, _ quotas.Request) (quotas.Result, error) {
					<-ctx.Done()
					return quotas.Result{}, errors.Join(quotas.ErrBackendUnavailable, ctx.Err())
				})
			},
			calls: 1, status: http.StatusServiceUnavailable, reason: ReasonDeadline, err: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := testclock.New(start)
			var l quotas.Limiter = memquota.New(memquota.WithClock(clock.Now))
			if tt.limiter != nil {
				l = tt.limiter(clock.Now)
			}
			a := NewAuthorizer(&fakePolicy{decide: allowTaking(tt.take, tt.headers)}, fixedIDs(),
				WithLimiter(l), WithClock(clock.Now), WithTimeout(50*time.Millisecond))
			var d Decision
			var err error
			for range tt.calls {
				d, err = a.Check(t.Context(), tt.req)
			}
			if tt.err == nil && err != nil || tt.err != nil && !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if tt.status == 0 && !d.Allowed || tt.status != 0 && (d.Allowed || d.Status != tt.status || d.Reason != tt.reason) {
				t.Fatalf("decision %+v, want status %d %s", d, tt.status, tt.reason)
			}
			if tt.check != nil {
				tt.check(t, d)
			}
		})
	}
}

// TestBatchTakesEveryMessage: a batch of three tool calls takes three
// units, and is refused whole when they do not all fit.
func TestBatchTakesEveryMessage(t *testing.T) {
	l := memquota.New()
	lim := quotas.Limit{Name: "calls", Key: "user:u-1", Limit: 4, Window: time.Hour}
	a := NewAuthorizer(&fakePolicy{decide: allowTaking(quotas.Request{Limits: []quotas.Limit{lim}}, false)}, fixedIDs(),
		WithLimiter(l), WithMCP(mcp.Options{AllowBatches: true}, "/mcp"))
	batch := `[` + strings.Repeat(toolsCall+",", 2) + toolsCall + `]`
	d, err := a.Check(t.Context(), mcpRequest(batch))
	if err != nil || !d.Allowed {
		t.Fatalf("first batch: %+v %v", d, err)
	}
	d, err = a.Check(t.Context(), mcpRequest(batch))
	if err != nil || d.Status != http.StatusTooManyRequests {
		t.Fatalf("second batch: %+v %v; want 429", d, err)
	}
	if !strings.HasPrefix(d.Body, `[{"jsonrpc":"2.0","id":7,"error":{"code":-32029`) {
		t.Errorf("batch reply %s", d.Body)
	}
	// The refused batch took nothing: one unit is left.
	res, err := l.Take(t.Context(), quotas.Request{Limits: []quotas.Limit{lim}})
	if err != nil || !res.Allowed || res.Limits[0].Remaining != 0 {
		t.Errorf("after the refused batch: %+v %v; want the last unit", res, err)
	}
}

func TestRenderLimitStates(t *testing.T) {
	tests := []struct {
		name   string
		states []limitState
		want   map[string]string
	}{
		{"ok/none", nil, nil},
		{"ok/fewest left is the legacy one", []limitState{
			{name: "a", quota: 10, window: 1, remaining: 5, reset: 1},
			{name: "b", quota: 100, window: 60, remaining: 2, reset: 59},
		}, map[string]string{
			"ratelimit-policy": `"a";q=10;w=1, "b";q=100;w=60`, "ratelimit": `"a";r=5;t=1, "b";r=2;t=59`,
			"x-ratelimit-limit": "100", "x-ratelimit-remaining": "2", "x-ratelimit-reset": "59",
		}},
		{"ok/longest refusal is the legacy one", []limitState{
			{name: "a", quota: 10, window: 1, remaining: 0, reset: 1, refused: true, wait: time.Second},
			{name: "b", quota: 100, window: 60, remaining: 0, reset: 30, refused: true, wait: 30 * time.Second},
			{name: "c", quota: 5, window: 60, remaining: 0, reset: 3},
		}, map[string]string{"x-ratelimit-limit": "100", "x-ratelimit-reset": "30"}},
		{"ok/names are escaped", []limitState{{name: `a"b\c` + "\n", quota: 1, window: 1}},
			map[string]string{"ratelimit-policy": `"a\"b\\c?";q=1;w=1`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := renderLimitStates(tt.states)
			if tt.want == nil && hs != nil {
				t.Fatalf("headers %v for no states", hs)
			}
			for name, v := range tt.want {
				if got, _ := header(hs, name); got != v {
					t.Errorf("%s = %q, want %q", name, got, v)
				}
			}
		})
	}
}

// TestLeases: a concurrency cap holds a slot per allowed request, named in
// the dynamic metadata for the proxy to report back; a request over the
// cap is a 429, and a request a limit refuses gives its slot back.
func TestLeases(t *testing.T) {
	clock := testclock.New(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	leases := memquota.NewLeases(memquota.WithLeaseClock(clock.Now))
	streams := quotas.Lease{Name: "streams", Key: "tenant:acme:streams", Limit: 1, TTL: time.Minute}
	tight := quotas.Limit{Name: "tight", Key: "user:u-1", Limit: 1, Window: time.Hour}
	decide := func(limits ...quotas.Limit) *fakePolicy {
		return &fakePolicy{decide: func(context.Context, *PolicyInput) (Decision, error) {
			return Decision{Allowed: true, Leases: []quotas.Lease{streams}, Take: quotas.Request{Limits: limits}}, nil
		}}
	}
	ids := []string{"dec-1", "dec-2", "dec-3", "dec-4"}
	next := func() string { id := ids[0]; ids = ids[1:]; return id }
	a := NewAuthorizer(decide(tight), next, WithLeaser(leases), WithLimiter(memquota.New(memquota.WithClock(clock.Now))), WithClock(clock.Now))

	d, err := a.Check(t.Context(), mcpRequest(toolsCall))
	if err != nil || !d.Allowed {
		t.Fatalf("first: %+v %v", d, err)
	}
	lease, _ := d.DynamicMetadata[LeaseMetadataKey].(map[string]any)
	if lease["id"] != "dec-1" || len(lease["keys"].([]any)) != 1 || lease["keys"].([]any)[0] != streams.Key || d.DynamicMetadata["decision_id"] != "dec-1" {
		t.Fatalf("metadata %v", d.DynamicMetadata)
	}
	d, err = a.Check(t.Context(), mcpRequest(toolsCall))
	if err != nil || d.Status != http.StatusTooManyRequests {
		t.Fatalf("second, over the cap: %+v %v", d, err)
	}
	if ra, _ := header(d.Headers, "retry-after"); ra != "60" || !strings.Contains(d.Body, `"limit":"streams"`) {
		t.Errorf("over the cap: Retry-After %q body %s", ra, d.Body)
	}
	// The proxy reports the first request finished.
	if err := leases.Release(t.Context(), "dec-1", []string{streams.Key}); err != nil {
		t.Fatal(err)
	}
	// The slot is free, but the hourly limit refuses: the slot is given back.
	d, err = a.Check(t.Context(), mcpRequest(toolsCall))
	if err != nil || d.Status != http.StatusTooManyRequests || !strings.Contains(d.Body, `"limit":"tight"`) {
		t.Fatalf("third, limited: %+v %v", d, err)
	}
	res, err := leases.Acquire(t.Context(), "probe", []quotas.Lease{streams})
	if err != nil || !res.Allowed {
		t.Errorf("the refused request kept its slot: %+v %v", res, err)
	}
}

func TestLeasesWithoutALeaser(t *testing.T) {
	p := &fakePolicy{decide: func(context.Context, *PolicyInput) (Decision, error) {
		return Decision{Allowed: true, Leases: []quotas.Lease{{Name: "s", Key: "k", Limit: 1, TTL: time.Minute}}}, nil
	}}
	d, err := NewAuthorizer(p, fixedIDs()).Check(t.Context(), mcpRequest(toolsCall))
	if !errors.Is(err, quotas.ErrBackendUnavailable) || d.Allowed || d.Status != http.StatusServiceUnavailable {
		t.Errorf("Check = %+v, %v; want a 503", d, err)
	}
}

// recordingLeaser acquires (or fails to) and records releases.
type recordingLeaser struct {
	err      error
	released []string
}

func (r *recordingLeaser) Acquire(_ context.Context, _ string, leases []quotas.Lease) (quotas.LeaseResult, error) {
	if r.err != nil {
		return quotas.LeaseResult{}, r.err
	}
	return quotas.LeaseResult{Allowed: true, Leases: make([]quotas.LeaseState, len(leases))}, nil
}

func (r *recordingLeaser) Release(_ context.Context, id string, _ []string) error {
	r.released = append(r.released, id)
	return nil
}

type failingSigner struct{}

func (failingSigner) SignIdentity(*Identity, string, time.Time) (string, error) {
	return "", errors.New("no key")
}

// TestLeasesReleasedOnEveryDenial: slots taken for a request that ends
// denied are given back — when the backend failed after perhaps taking
// them, and when the allow turned into a denial after the take.
func TestLeasesReleasedOnEveryDenial(t *testing.T) {
	p := &fakePolicy{decide: func(context.Context, *PolicyInput) (Decision, error) {
		return Decision{Allowed: true, Leases: []quotas.Lease{{Name: "s", Key: "k", Limit: 1, TTL: time.Minute}}}, nil
	}}
	user := fakeIdentity{id: Identity{Authenticated: true, Method: MethodJWT, Subject: "u-1"}}
	tests := []struct {
		name   string
		leaser *recordingLeaser
		opts   []Option
		status int
	}{
		{"fail/the backend failed", &recordingLeaser{err: quotas.ErrBackendUnavailable}, nil, http.StatusServiceUnavailable},
		{"fail/no identity token after the take", &recordingLeaser{},
			[]Option{WithIdentityVerifier(user), WithIdentityToken(failingSigner{}, "x-mcpauthz-identity")}, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAuthorizer(p, fixedIDs(), append(tt.opts, WithLeaser(tt.leaser))...)
			d, _ := a.Check(t.Context(), mcpRequest(toolsCall))
			if d.Allowed || d.Status != tt.status {
				t.Fatalf("decision %+v, want %d", d, tt.status)
			}
			if len(tt.leaser.released) != 1 || tt.leaser.released[0] != "dec-1" {
				t.Errorf("released %v, want the request's lease", tt.leaser.released)
			}
		})
	}
}

func TestMergeTake(t *testing.T) {
	a := quotas.Limit{Name: "a", Key: "user:u-1", Limit: 10, Window: time.Second}
	b := quotas.Limit{Name: "b", Key: "tool:x", Limit: 10, Window: time.Second, Cost: 3, Share: &quotas.Share{Pool: "p"}}
	q := quotas.Quota{Name: "q", Key: "tenant:acme", Limit: 5, Period: quotas.Day}
	first := quotas.Request{Limits: []quotas.Limit{a, b}, Quotas: []quotas.Quota{q}}
	second := quotas.Request{Limits: []quotas.Limit{a, {Name: "b", Key: "tool:x", Limit: 10, Window: time.Second, Cost: 2, Share: &quotas.Share{Pool: "p"}}}, Quotas: []quotas.Quota{q}}
	got := mergeTake(first, second)
	if len(got.Limits) != 2 || got.Limits[0].Cost != 2 || got.Limits[1].Cost != 5 || len(got.Quotas) != 2 {
		t.Errorf("merged %+v", got)
	}
	if first.Limits[0].Cost != 0 || first.Limits[1].Cost != 3 {
		t.Errorf("the first message's take was modified: %+v", first)
	}
	other := a
	other.Limit = 20
	if got := mergeTake(first, quotas.Request{Limits: []quotas.Limit{other}}); len(got.Limits) != 3 {
		t.Errorf("a different limit on the same key merged: %+v", got)
	}
}

// TestBatchTooManyLimits: a batch whose messages ask for more limits and
// quotas than one take may hold is refused before anything is taken.
func TestBatchTooManyLimits(t *testing.T) {
	n := 0
	p := &fakePolicy{decide: func(context.Context, *PolicyInput) (Decision, error) {
		n++ // a quota per message, each counted
		return Decision{Allowed: true, Take: quotas.Request{Quotas: []quotas.Quota{{Name: "q", Key: fmt.Sprint("k", n), Limit: 5, Period: quotas.Day}}}}, nil
	}}
	var taken bool
	l := limiterFunc(func(context.Context, quotas.Request) (quotas.Result, error) {
		taken = true
		return quotas.Result{Allowed: true}, nil
	})
	a := NewAuthorizer(p, fixedIDs(), WithLimiter(l), WithMCP(mcp.Options{AllowBatches: true}, "/mcp"))
	batch := `[` + strings.Repeat(toolsCall+",", maxBatchTake) + toolsCall + `]`
	d, _ := a.Check(t.Context(), mcpRequest(batch))
	if d.Allowed || d.Status != http.StatusRequestEntityTooLarge || taken {
		t.Errorf("decision %+v (taken %v); want a 413 taking nothing", d, taken)
	}
}
