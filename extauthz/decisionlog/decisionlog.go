// Package decisionlog records every decision as one JSON line in the shape
// of OPA's decision logs (decision_id, labels, bundles, path, input, result,
// erased, timestamp, metrics), asynchronously: a decision never waits for
// the log, and events that do not fit the buffer are dropped and counted.
// Secrets in the input are removed before anything is written.
package decisionlog

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/mcp"
)

// DefaultMask lists the input members a decision log never contains.
var DefaultMask = []string{
	"/input/attributes/request/http/headers/authorization",
	"/input/attributes/request/http/headers/proxy-authorization",
	"/input/attributes/request/http/headers/cookie",
	"/input/attributes/request/http/headers/x-api-key",
}

// DefaultBuffer is how many events may wait for the writer.
const DefaultBuffer = 4096

// Config configures a Logger.
type Config struct {
	// Mask lists JSON pointers, rooted at /input or /result, of members to
	// leave out. DefaultMask is always applied in addition.
	Mask []string
	// Buffer is the number of events that may wait for the writer.
	Buffer int
	// Labels are written with every event (OPA writes app, id, version).
	Labels map[string]string
	// BundleName names the bundle in the "bundles" member.
	BundleName string
}

// Logger writes decision events to w from its own goroutine (Run).
type Logger struct {
	w       io.Writer
	events  chan extauthz.DecisionEvent
	input   *extauthz.Mask
	result  *extauthz.Mask
	labels  []byte // pre-encoded "labels" member
	bundle  string
	log     *slog.Logger
	dropped atomic.Uint64
	lost    atomic.Uint64
	written atomic.Uint64
}

var _ extauthz.DecisionLogger = (*Logger)(nil)

// New returns a Logger writing to w. It starts nothing; call Run.
func New(w io.Writer, cfg Config, log *slog.Logger) (*Logger, error) {
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.BundleName == "" {
		cfg.BundleName = "mcpauthz"
	}
	var in, res []string
	for _, p := range append(append([]string(nil), DefaultMask...), cfg.Mask...) {
		if err := CheckMask(p); err != nil {
			return nil, fmt.Errorf("decision log mask: %w", err)
		}
		if rest, ok := strings.CutPrefix(p, "/input"); ok {
			in = append(in, rest)
		} else {
			res = append(res, strings.TrimPrefix(p, "/result"))
		}
	}
	l := &Logger{
		w:      w,
		events: make(chan extauthz.DecisionEvent, cfg.Buffer),
		input:  extauthz.NewMask(in...),
		result: extauthz.NewMask(res...),
		bundle: cfg.BundleName,
		log:    log,
	}
	l.labels = appendLabels(nil, cfg.Labels)
	return l, nil
}

// CheckMask checks that a mask entry is a JSON pointer into the input or
// the result.
func CheckMask(p string) error {
	if !strings.HasPrefix(p, "/input/") && !strings.HasPrefix(p, "/result/") {
		return fmt.Errorf("%q must start with /input/ or /result/", p)
	}
	return nil
}

func appendLabels(buf []byte, labels map[string]string) []byte {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	buf = append(buf, '{')
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = mcp.AppendString(buf, k)
		buf = append(buf, ':')
		buf = mcp.AppendString(buf, labels[k])
	}
	return append(buf, '}')
}

// LogDecision queues ev; when the buffer is full the event is dropped and
// counted rather than delaying the decision.
func (l *Logger) LogDecision(ev extauthz.DecisionEvent) {
	select {
	case l.events <- ev:
	default:
		l.dropped.Add(1)
	}
}

// Dropped returns the number of events dropped because the buffer was full.
func (l *Logger) Dropped() uint64 { return l.dropped.Load() }

// Written returns the number of events written.
func (l *Logger) Written() uint64 { return l.written.Load() }

// Lost returns the number of events lost because writing failed.
func (l *Logger) Lost() uint64 { return l.lost.Load() }

// Run writes queued events until ctx is done, then writes what is still
// queued and returns. A failed write loses the events of its batch, which
// are counted; the next batch is written afresh. Drops and losses are
// logged at most every 10 seconds.
func (l *Logger) Run(ctx context.Context) error {
	bw := bufio.NewWriterSize(l.w, 64<<10)
	var buf []byte
	var lastErr error
	// writeQueued writes ev and what was queued behind it, in one flush.
	writeQueued := func(ev extauthz.DecisionEvent) {
		queued := len(l.events)
		n := uint64(1)
		buf = l.appendEvent(buf[:0], &ev)
		_, err := bw.Write(buf)
		for ; err == nil && queued > 0; queued-- {
			ev = <-l.events
			buf = l.appendEvent(buf[:0], &ev)
			n++
			_, err = bw.Write(buf)
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			// A bufio.Writer keeps its first error; start a new batch on
			// a clean one.
			bw.Reset(l.w)
			l.lost.Add(n)
			lastErr = err
			return
		}
		l.written.Add(n)
	}
	var dropped, lost uint64 // as last reported
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case ev := <-l.events:
			writeQueued(ev)
		case <-tick.C:
			if d := l.dropped.Load(); d > dropped {
				l.log.Warn("decision log events dropped: the writer cannot keep up",
					slog.Uint64("dropped_total", d))
				dropped = d
			}
			if n := l.lost.Load(); n > lost {
				l.log.Error("decision log events lost: writing failed",
					slog.Uint64("lost_total", n), slog.Any("error", lastErr))
				lost = n
			}
		case <-ctx.Done():
			if len(l.events) > 0 {
				writeQueued(<-l.events)
			}
			if n := l.lost.Load(); n > lost {
				l.log.Error("decision log events lost: writing failed",
					slog.Uint64("lost_total", n), slog.Any("error", lastErr))
			}
			return nil
		}
	}
}

// appendEvent encodes one event as a JSON line.
func (l *Logger) appendEvent(buf []byte, ev *extauthz.DecisionEvent) []byte {
	buf = append(buf, `{"decision_id":`...)
	buf = mcp.AppendString(buf, ev.DecisionID)
	buf = append(buf, `,"labels":`...)
	buf = append(buf, l.labels...)
	if ev.Revision != "" {
		buf = append(buf, `,"bundles":{`...)
		buf = mcp.AppendString(buf, l.bundle)
		buf = append(buf, `:{"revision":`...)
		buf = mcp.AppendString(buf, ev.Revision)
		buf = append(buf, "}}"...)
	}
	if ev.Path != "" {
		buf = append(buf, `,"path":`...)
		buf = mcp.AppendString(buf, slashPath(ev.Path))
	}
	var erased []string
	buf, erased = appendDoc(buf, "input", ev.Input, l.input, erased)
	buf, erased = appendDoc(buf, "result", ev.Result, l.result, erased)
	if len(erased) > 0 {
		buf = append(buf, `,"erased":[`...)
		for i, p := range erased {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = mcp.AppendString(buf, p)
		}
		buf = append(buf, ']')
	}
	buf = append(buf, `,"timestamp":`...)
	buf = mcp.AppendString(buf, ev.Time.UTC().Format(time.RFC3339Nano))
	buf = append(buf, `,"metrics":{"timer_server_handler_ns":`...)
	buf = strconv.AppendInt(buf, ev.Duration.Nanoseconds(), 10)
	buf = append(buf, `},"mcpauthz":{"allowed":`...)
	buf = strconv.AppendBool(buf, ev.Allowed)
	if !ev.Allowed {
		buf = append(buf, `,"status":`...)
		buf = strconv.AppendInt(buf, int64(ev.Status), 10)
	}
	if ev.Reason != "" {
		buf = append(buf, `,"reason":`...)
		buf = mcp.AppendString(buf, ev.Reason)
	}
	if ev.Err != nil {
		buf = append(buf, `,"error":`...)
		buf = mcp.AppendString(buf, ev.Err.Error())
	}
	return append(buf, "}}\n"...)
}

// appendDoc appends doc, masked, as the member name, if there is a doc,
// and adds the pointers of what the mask erased to erased.
func appendDoc(buf []byte, name string, doc extauthz.Document, mask *extauthz.Mask, erased []string) ([]byte, []string) {
	if doc == nil {
		return buf, erased
	}
	buf = append(buf, `,"`...)
	buf = append(buf, name...)
	buf = append(buf, `":`...)
	buf, e := doc.AppendJSON(buf, mask)
	for _, p := range e {
		erased = append(erased, "/"+name+p)
	}
	return buf, erased
}

// slashPath writes a decision path as OPA's decision logs do:
// "data.a.b" → "a/b".
func slashPath(p string) string {
	return strings.ReplaceAll(strings.TrimPrefix(p, "data."), ".", "/")
}
