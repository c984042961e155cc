package decisionlog

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz"
)

// collector is a decision-log service: it decodes each upload and answers
// with the next scripted status (200 once the script is used up).
type collector struct {
	mu      sync.Mutex
	script  []int
	posts   int
	batches [][]map[string]any
	headers []http.Header
	hang    chan struct{} // when set, requests wait for it or their context
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c.hang != nil {
		select {
		case <-c.hang:
		case <-r.Context().Done():
		}
		return
	}
	var events []map[string]any
	zr, err := gzip.NewReader(r.Body)
	if err == nil {
		err = json.NewDecoder(zr).Decode(&events)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.posts++
	c.headers = append(c.headers, r.Header.Clone())
	if r.Method != http.MethodPost || r.URL.Path != "/logs" || err != nil {
		http.Error(w, fmt.Sprintf("%s %s: %v", r.Method, r.URL.Path, err), http.StatusBadRequest)
		return
	}
	if len(c.script) > 0 {
		code := c.script[0]
		c.script = c.script[1:]
		if code != http.StatusOK {
			w.WriteHeader(code)
			return
		}
	}
	c.batches = append(c.batches, events)
}

// ids returns the decision ids received, batch by batch.
func (c *collector) ids() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][]string
	for _, b := range c.batches {
		var ids []string
		for _, ev := range b {
			ids = append(ids, fmt.Sprint(ev["decision_id"]))
		}
		out = append(out, ids)
	}
	return out
}

// fakeClock fires backoff waits at once and records them; waits of a
// minute or more (the upload interval in these tests) never fire.
type fakeClock struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (c *fakeClock) Now() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	if d >= time.Minute {
		return nil
	}
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- c.Now()
	return ch
}

func (c *fakeClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

func newUploader(t *testing.T, url string, opts ...UploaderOption) *Uploader {
	t.Helper()
	u, err := NewUploader(url, append([]UploaderOption{
		WithInterval(time.Hour), WithJitter(func() float64 { return 0.5 }),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// start runs r until the returned stop is called; stop waits for Run.
func start(t *testing.T, r interface{ Run(context.Context) error }) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func line(id string) string { return `{"decision_id":"` + id + `"}` + "\n" }

// TestUploadFromLogger: the Logger's events reach the service as a gzip
// JSON array in OPA's shape, with the bearer token, and stopping the Logger
// then the Uploader flushes them although no interval has passed.
func TestUploadFromLogger(t *testing.T) {
	var c collector
	srv := httptest.NewServer(&c)
	defer srv.Close()
	u := newUploader(t, srv.URL+"/logs", WithToken("t0ken"))
	l, err := New(u, Config{Labels: map[string]string{"app": "mcpauthz"}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stopUpload := start(t, u)
	stopLog := start(t, l)
	for i := range 3 {
		l.LogDecision(extauthz.DecisionEvent{
			DecisionID: fmt.Sprint("d-", i),
			Time:       time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			Path:       "data.mcpauthz.authz.decision",
			Input:      jsonDoc{"method": "POST"},
			Result:     jsonDoc{"allowed": "yes"},
			Allowed:    true,
		})
	}
	stopLog()
	stopUpload()

	if got := fmt.Sprint(c.ids()); got != "[[d-0 d-1 d-2]]" {
		t.Fatalf("batches %s", got)
	}
	ev := c.batches[0][0]
	for k, want := range map[string]string{
		"labels":    `{"app":"mcpauthz"}`,
		"path":      `"mcpauthz/authz/decision"`,
		"input":     `{"method":"POST"}`,
		"result":    `{"allowed":"yes"}`,
		"timestamp": `"2026-01-02T03:04:05Z"`,
	} {
		if got, _ := json.Marshal(ev[k]); string(got) != want {
			t.Errorf("%s = %s, want %s", k, got, want)
		}
	}
	h := c.headers[0]
	for k, want := range map[string]string{
		"Content-Type":     "application/json",
		"Content-Encoding": "gzip",
		"Authorization":    "Bearer t0ken",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if u.Sent() != 3 || u.Dropped() != 0 || l.Dropped() != 0 {
		t.Errorf("sent %d dropped %d, logger dropped %d", u.Sent(), u.Dropped(), l.Dropped())
	}
}

func TestBatching(t *testing.T) {
	tests := []struct {
		name    string
		opts    []UploaderOption
		writes  []string
		want    string
		dropped uint64
	}{
		{
			name:   "ok/by count",
			opts:   []UploaderOption{WithBatchLimits(2, 1<<20)},
			writes: []string{line("a") + line("b") + line("c") + line("d") + line("e")},
			want:   "[[a b] [c d] [e]]",
		},
		{
			// Each event is 19 bytes: "[a,b,c]" is 61 bytes, "[a,b,c,d]" would be 81.
			name:   "ok/by bytes",
			opts:   []UploaderOption{WithBatchLimits(100, 64)},
			writes: []string{line("a") + line("b") + line("c") + line("d")},
			want:   "[[a b c] [d]]",
		},
		{
			name:   "ok/lines split across writes",
			writes: []string{`{"decision_id"`, `:"a"}` + "\n" + `{"deci`, `sion_id":"b"}` + "\n"},
			want:   "[[a b]]",
		},
		{
			name:    "fail/event larger than a batch is dropped",
			opts:    []UploaderOption{WithBatchLimits(100, 64)},
			writes:  []string{line("a"), `{"decision_id":"` + strings.Repeat("x", 40), strings.Repeat("x", 40) + `"}` + "\n", line("b")},
			want:    "[[a b]]",
			dropped: 1,
		},
		{
			name:    "fail/full queue drops the oldest batch",
			opts:    []UploaderOption{WithBatchLimits(1, 1<<20), WithQueueLimit(2)},
			writes:  []string{line("a") + line("b") + line("c")},
			want:    "[[b] [c]]",
			dropped: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c collector
			srv := httptest.NewServer(&c)
			defer srv.Close()
			u := newUploader(t, srv.URL+"/logs", tt.opts...)
			// Write before Run, so batching alone decides the uploads.
			for _, w := range tt.writes {
				if n, err := u.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			start(t, u)()
			if got := fmt.Sprint(c.ids()); got != tt.want {
				t.Errorf("batches %s, want %s", got, tt.want)
			}
			if u.Dropped() != tt.dropped {
				t.Errorf("dropped %d, want %d", u.Dropped(), tt.dropped)
			}
		})
	}
}

func TestRetry(t *testing.T) {
	tests := []struct {
		name    string
		script  []int
		opts    []UploaderOption
		want    string
		posts   int
		waits   []time.Duration
		dropped uint64
	}{
		{
			name:   "ok/500 then success",
			script: []int{500, 200},
			want:   "[[a b]]",
			posts:  2,
			waits:  []time.Duration{375 * time.Millisecond},
		},
		{
			name:   "ok/429 with Retry-After-less answer, 503, then success",
			script: []int{429, 503, 200},
			want:   "[[a b]]",
			posts:  3,
			waits:  []time.Duration{375 * time.Millisecond, 750 * time.Millisecond},
		},
		{
			name:    "fail/always 500 drops after the attempts",
			script:  []int{500, 500, 500, 500},
			opts:    []UploaderOption{WithRetry(4, 100*time.Millisecond, 300*time.Millisecond)},
			want:    "[]",
			posts:   4,
			waits:   []time.Duration{75 * time.Millisecond, 150 * time.Millisecond, 225 * time.Millisecond},
			dropped: 2,
		},
		{
			name:    "fail/400 is not retried",
			script:  []int{400},
			want:    "[]",
			posts:   1,
			dropped: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := collector{script: tt.script}
			srv := httptest.NewServer(&c)
			defer srv.Close()
			var clock fakeClock
			u := newUploader(t, srv.URL+"/logs", append([]UploaderOption{WithClock(&clock)}, tt.opts...)...)
			_, _ = u.Write([]byte(line("a") + line("b")))
			start(t, u)()
			if got := fmt.Sprint(c.ids()); got != tt.want {
				t.Errorf("batches %s, want %s", got, tt.want)
			}
			if c.posts != tt.posts {
				t.Errorf("posts %d, want %d", c.posts, tt.posts)
			}
			if got, want := fmt.Sprint(clock.Waits()), fmt.Sprint(tt.waits); got != want {
				t.Errorf("backoff %s, want %s", got, want)
			}
			if u.Dropped() != tt.dropped || u.Sent()+u.Dropped() != 2 {
				t.Errorf("sent %d dropped %d, want dropped %d", u.Sent(), u.Dropped(), tt.dropped)
			}
		})
	}
}

// TestIntervalFlush: a partly filled batch goes out after the interval,
// without a shutdown.
func TestIntervalFlush(t *testing.T) {
	var c collector
	srv := httptest.NewServer(&c)
	defer srv.Close()
	u := newUploader(t, srv.URL+"/logs", WithInterval(10*time.Millisecond))
	defer start(t, u)()
	_, _ = u.Write([]byte(line("a")))
	eventually(t, "the interval upload", func() bool { return u.Sent() == 1 })
}

// TestHangingServerNeverBlocksDecisions: with the service hanging,
// LogDecision still returns at once, the uploader drops and counts what its
// queue cannot hold, shutdown is bounded, and every event is accounted for.
func TestHangingServerNeverBlocksDecisions(t *testing.T) {
	c := collector{hang: make(chan struct{})}
	srv := httptest.NewServer(&c)
	defer srv.Close()
	defer close(c.hang)
	u := newUploader(t, srv.URL+"/logs",
		WithBatchLimits(10, 1<<20), WithQueueLimit(2), WithShutdownTimeout(50*time.Millisecond))
	l, err := New(u, Config{Buffer: 16}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stopUpload := start(t, u)
	stopLog := start(t, l)
	const total = 1000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range total {
			l.LogDecision(extauthz.DecisionEvent{DecisionID: fmt.Sprint(i)})
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("LogDecision blocked behind a hanging decision-log service")
	}
	stopLog()
	began := time.Now()
	stopUpload()
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if l.Written()+l.Dropped() != total {
		t.Errorf("logger wrote %d dropped %d of %d", l.Written(), l.Dropped(), total)
	}
	if u.Sent() != 0 || u.Dropped() != l.Written() || u.Dropped() == 0 {
		t.Errorf("uploader sent %d dropped %d of %d written", u.Sent(), u.Dropped(), l.Written())
	}
}

func TestNewUploaderRejects(t *testing.T) {
	tests := []struct {
		name string
		url  string
		opts []UploaderOption
	}{
		{name: "fail/not http", url: "ftp://logs.example/logs"},
		{name: "fail/no host", url: "/logs"},
		{name: "fail/token with a line break", url: "https://logs.example/logs", opts: []UploaderOption{WithToken("a\r\nX-Evil: 1")}},
		{name: "fail/zero interval", url: "https://logs.example/logs", opts: []UploaderOption{WithInterval(0)}},
		{name: "fail/zero attempts", url: "https://logs.example/logs", opts: []UploaderOption{WithRetry(0, time.Second, time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewUploader(tt.url, tt.opts...)
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), "X-Evil") {
				t.Errorf("error shows the token: %v", err)
			}
		})
	}
	if _, err := NewUploader("https://user:pw@logs.example/logs"); err != nil {
		t.Errorf("ok/https: %v", err)
	}
}

// TestSecretsNeverLogged: the token and a password in the URL stay out of
// the log when uploads fail.
func TestSecretsNeverLogged(t *testing.T) {
	c := collector{script: []int{500, 500}}
	srv := httptest.NewServer(&c)
	defer srv.Close()
	var out syncBuffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	u := newUploader(t, strings.Replace(srv.URL, "http://", "http://user:pa55word@", 1)+"/logs",
		WithToken("t0ken-s3cret"), WithLogger(log), WithClock(&fakeClock{}),
		WithRetry(2, time.Millisecond, time.Millisecond))
	_, _ = u.Write([]byte(line("a")))
	start(t, u)()
	s := out.String()
	if !strings.Contains(s, "dropped") || !strings.Contains(s, "500") {
		t.Errorf("drop not logged: %s", s)
	}
	if strings.Contains(s, "t0ken-s3cret") || strings.Contains(s, "pa55word") {
		t.Errorf("secret logged: %s", s)
	}
	if got := c.headers[0].Get("Authorization"); got != "Bearer t0ken-s3cret" {
		t.Errorf("Authorization = %q", got)
	}
}
