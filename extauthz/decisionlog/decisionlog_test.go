package decisionlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz"
)

// jsonDoc is a Document over a JSON object, honouring top-level masks only.
type jsonDoc map[string]string

func (d jsonDoc) AppendJSON(dst []byte, mask *extauthz.Mask) ([]byte, []string) {
	out := map[string]string{}
	var erased []string
	for k, v := range d {
		if mask.Child(k).Selected() {
			erased = append(erased, "/"+k)
			continue
		}
		out[k] = v
	}
	b, _ := json.Marshal(out)
	return append(dst, b...), erased
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newLogger(t *testing.T, w *syncBuffer, cfg Config) *Logger {
	t.Helper()
	l, err := New(w, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestEventShape(t *testing.T) {
	var out syncBuffer
	l := newLogger(t, &out, Config{Labels: map[string]string{"app": "mcpauthz", "id": "node-1"}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()
	l.LogDecision(extauthz.DecisionEvent{
		DecisionID: "d-1",
		Time:       time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		Duration:   1500 * time.Microsecond,
		Path:       "data.mcpauthz.authz.decision",
		Revision:   "rev-7",
		Input:      jsonDoc{"method": "POST", "secret": "s3cr3t"},
		Result:     jsonDoc{"allowed": "no"},
		Status:     403,
		Reason:     "policy_denied",
		Err:        errors.New("boom"),
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Run drains on shutdown, so the event is written even though the
	// context was cancelled right after it was queued.
	var ev map[string]any
	if err := json.Unmarshal([]byte(out.String()), &ev); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out.String())
	}
	want := map[string]any{
		"decision_id": "d-1",
		"labels":      map[string]any{"app": "mcpauthz", "id": "node-1"},
		"bundles":     map[string]any{"mcpauthz": map[string]any{"revision": "rev-7"}},
		"path":        "mcpauthz/authz/decision",
		"input":       map[string]any{"method": "POST", "secret": "s3cr3t"},
		"result":      map[string]any{"allowed": "no"},
		"timestamp":   "2026-01-02T03:04:05.000000006Z",
		"metrics":     map[string]any{"timer_server_handler_ns": float64(1500000)},
		"mcpauthz":    map[string]any{"allowed": false, "status": float64(403), "reason": "policy_denied", "error": "boom"},
	}
	for k, v := range want {
		got, _ := json.Marshal(ev[k])
		exp, _ := json.Marshal(v)
		if string(got) != string(exp) {
			t.Errorf("%s = %s, want %s", k, got, exp)
		}
	}
	if l.Written() != 1 || l.Dropped() != 0 {
		t.Errorf("written %d dropped %d", l.Written(), l.Dropped())
	}
}

func TestMask(t *testing.T) {
	tests := []struct {
		name   string
		mask   []string
		doc    jsonDoc
		absent []string
		erased []string
	}{
		{
			name:   "ok/configured input mask",
			mask:   []string{"/input/secret"},
			doc:    jsonDoc{"secret": "s3cr3t", "keep": "x"},
			absent: []string{"s3cr3t"},
			erased: []string{"/input/secret"},
		},
		{
			name: "ok/nothing masked",
			doc:  jsonDoc{"keep": "x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out syncBuffer
			l := newLogger(t, &out, Config{Mask: tt.mask})
			line := string(l.appendEvent(nil, &extauthz.DecisionEvent{DecisionID: "d", Input: tt.doc}))
			for _, s := range tt.absent {
				if strings.Contains(line, s) {
					t.Errorf("%q written: %s", s, line)
				}
			}
			var ev struct {
				Erased []string `json:"erased"`
			}
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatal(err)
			}
			if strings.Join(ev.Erased, ",") != strings.Join(tt.erased, ",") {
				t.Errorf("erased = %v, want %v", ev.Erased, tt.erased)
			}
		})
	}
}

func TestNewRejectsBadMask(t *testing.T) {
	if _, err := New(&syncBuffer{}, Config{Mask: []string{"/attributes/x"}}, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a mask outside /input and /result was accepted")
	}
}

// TestFullBufferDropsAndNeverBlocks: with no writer running, events beyond
// the buffer are dropped and counted, and LogDecision returns at once.
func TestFullBufferDropsAndNeverBlocks(t *testing.T) {
	l := newLogger(t, &syncBuffer{}, Config{Buffer: 4})
	done := make(chan struct{})
	go func() {
		for range 10 {
			l.LogDecision(extauthz.DecisionEvent{DecisionID: "d"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("LogDecision blocked on a full buffer")
	}
	if got := l.Dropped(); got != 6 {
		t.Fatalf("dropped %d, want 6", got)
	}
}

func TestSlashPath(t *testing.T) {
	for in, want := range map[string]string{
		"data.mcpauthz.authz.decision": "mcpauthz/authz/decision",
		"data.envoy.authz.allow":       "envoy/authz/allow",
	} {
		if got := slashPath(in); got != want {
			t.Errorf("slashPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// failingOnce fails its first write, as a full disk or a broken pipe
// might for a moment.
type failingOnce struct {
	syncBuffer
	failed bool
}

func (f *failingOnce) Write(p []byte) (int, error) {
	f.mu.Lock()
	failed := f.failed
	f.failed = true
	f.mu.Unlock()
	if !failed {
		return 0, errors.New("no space left on device")
	}
	return f.syncBuffer.Write(p)
}

// eventually waits for cond, failing the test after 5 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestWriteFailureIsNotForever: a failed write loses its batch, counted,
// and the events after it are written.
func TestWriteFailureIsNotForever(t *testing.T) {
	var out failingOnce
	l, err := New(&out, Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()
	l.LogDecision(extauthz.DecisionEvent{DecisionID: "d-lost"})
	eventually(t, "the first event to be lost", func() bool { return l.Lost() == 1 })
	l.LogDecision(extauthz.DecisionEvent{DecisionID: "d-kept"})
	eventually(t, "the second event to be written", func() bool { return l.Written() == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, `"d-kept"`) || strings.Contains(s, `"d-lost"`) || strings.Count(s, "\n") != 1 {
		t.Fatalf("log %q", s)
	}
}
