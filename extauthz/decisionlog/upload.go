package decisionlog

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Upload defaults, after OPA's decision-log plugin.
const (
	DefaultUploadInterval  = 5 * time.Second
	DefaultBatchEvents     = 500
	DefaultBatchBytes      = 1 << 20 // of the JSON array, before compression
	DefaultUploadQueue     = 16      // sealed batches waiting for upload
	DefaultUploadAttempts  = 5
	DefaultBackoffMin      = 500 * time.Millisecond
	DefaultBackoffMax      = 30 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
)

// Clock is the time an Uploader reads and waits on.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Uploader is the io.Writer a Logger writes to when decisions go to an HTTP
// endpoint. It splits the JSON lines it is given into batches and, from Run,
// POSTs each batch as OPA's decision-log plugin does: a gzip-compressed JSON
// array of events. Write never blocks on the network: when the queue of
// batches is full the oldest batch is dropped and counted.
type Uploader struct {
	url         string
	logURL      string // url without its password
	token       string
	client      *http.Client
	interval    time.Duration
	maxEvents   int
	maxBytes    int
	maxQueue    int
	attempts    int
	backoffMin  time.Duration
	backoffMax  time.Duration
	shutdown    time.Duration
	clock       Clock
	rand        func() float64
	log         *slog.Logger
	gz          *gzip.Writer // used by Run only
	sent        atomic.Uint64
	dropped     atomic.Uint64
	lastErrText atomic.Pointer[string]

	mu         sync.Mutex
	partial    []byte // a line not yet ended by '\n'
	discarding bool   // the current line is too large and is skipped
	cur        batch
	queue      []*batch
	closed     bool          // Run has returned
	ready      chan struct{} // a batch was sealed
}

// batch is a JSON array of events being built or waiting for upload.
type batch struct {
	buf      []byte // "[ev,ev,...]" once sealed
	n        int
	body     []byte // gzip of buf, made on the first attempt
	attempts int
}

// UploaderOption sets an optional Uploader setting.
type UploaderOption func(*Uploader)

// WithToken sends "Authorization: Bearer token" with every upload. The
// token is never logged.
func WithToken(token string) UploaderOption { return func(u *Uploader) { u.token = token } }

// WithHTTPClient sets the client (default: 30s timeout, 10s for response
// headers).
func WithHTTPClient(c *http.Client) UploaderOption { return func(u *Uploader) { u.client = c } }

// WithInterval sets how often a partly filled batch is uploaded.
func WithInterval(d time.Duration) UploaderOption { return func(u *Uploader) { u.interval = d } }

// WithBatchLimits bounds a batch by events and by bytes before compression.
func WithBatchLimits(events, bytes int) UploaderOption {
	return func(u *Uploader) { u.maxEvents, u.maxBytes = events, bytes }
}

// WithQueueLimit sets how many sealed batches may wait for upload.
func WithQueueLimit(batches int) UploaderOption { return func(u *Uploader) { u.maxQueue = batches } }

// WithRetry sets the attempts per batch and the exponential backoff bounds.
func WithRetry(attempts int, min, max time.Duration) UploaderOption {
	return func(u *Uploader) { u.attempts, u.backoffMin, u.backoffMax = attempts, min, max }
}

// WithShutdownTimeout bounds the final flush once Run's context is done.
func WithShutdownTimeout(d time.Duration) UploaderOption { return func(u *Uploader) { u.shutdown = d } }

// WithClock sets the clock (default: the system clock).
func WithClock(c Clock) UploaderOption { return func(u *Uploader) { u.clock = c } }

// WithJitter sets the source of backoff jitter, returning values in [0,1).
func WithJitter(rand func() float64) UploaderOption { return func(u *Uploader) { u.rand = rand } }

// WithLogger sets the logger (default: discard).
func WithLogger(log *slog.Logger) UploaderOption { return func(u *Uploader) { u.log = log } }

var _ io.Writer = (*Uploader)(nil)

// NewUploader returns an Uploader posting to rawURL (OPA posts to
// <service>/logs). It starts nothing; call Run.
func NewUploader(rawURL string, opts ...UploaderOption) (*Uploader, error) {
	u := &Uploader{
		url:        rawURL,
		interval:   DefaultUploadInterval,
		maxEvents:  DefaultBatchEvents,
		maxBytes:   DefaultBatchBytes,
		maxQueue:   DefaultUploadQueue,
		attempts:   DefaultUploadAttempts,
		backoffMin: DefaultBackoffMin,
		backoffMax: DefaultBackoffMax,
		shutdown:   DefaultShutdownTimeout,
		clock:      realClock{},
		rand:       rand.Float64,
		log:        slog.New(slog.DiscardHandler),
		ready:      make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(u)
	}
	if u.client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = 10 * time.Second
		u.client = &http.Client{Timeout: 30 * time.Second, Transport: t}
	}
	p, err := url.Parse(rawURL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("decision log upload url: %w", err)
	case p.Scheme != "http" && p.Scheme != "https" || p.Host == "":
		return nil, fmt.Errorf("decision log upload url %q: want http(s)://host/path", p.Redacted())
	case strings.ContainsAny(u.token, "\r\n"):
		return nil, errors.New("decision log upload token contains a line break")
	case u.interval <= 0 || u.shutdown <= 0 || u.backoffMin <= 0 || u.backoffMax < u.backoffMin:
		return nil, errors.New("decision log upload: interval, shutdown timeout and backoff must be positive")
	case u.maxEvents <= 0 || u.maxBytes < 64 || u.maxQueue <= 0 || u.attempts <= 0:
		return nil, errors.New("decision log upload: batch limits, queue and attempts must be positive")
	}
	u.url, u.logURL = p.String(), p.Redacted()
	return u, nil
}

// Sent returns the number of events uploaded.
func (u *Uploader) Sent() uint64 { return u.sent.Load() }

// Dropped returns the number of events dropped: too large for a batch,
// pushed out of a full queue, rejected, out of attempts or left at shutdown.
func (u *Uploader) Dropped() uint64 { return u.dropped.Load() }

// Write takes JSON lines, possibly split across calls, and adds each to the
// current batch. It never blocks on the network and never fails.
func (u *Uploader) Write(p []byte) (int, error) {
	n := len(p)
	u.mu.Lock()
	defer u.mu.Unlock()
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if !u.discarding && len(u.partial)+len(p) <= u.maxBytes {
				u.partial = append(u.partial, p...)
			} else {
				u.discarding, u.partial = true, u.partial[:0]
			}
			break
		}
		line := p[:i]
		p = p[i+1:]
		switch {
		case u.discarding:
			u.discarding = false
			u.dropped.Add(1)
			continue
		case len(u.partial) > 0:
			u.partial = append(u.partial, line...)
			line = u.partial
		}
		u.addLocked(bytes.TrimSpace(line))
		u.partial = u.partial[:0]
	}
	return n, nil
}

// addLocked adds one event to the current batch, sealing it when full.
func (u *Uploader) addLocked(ev []byte) {
	switch {
	case len(ev) == 0:
		return
	case u.closed || len(ev)+2 > u.maxBytes:
		u.dropped.Add(1)
		return
	case u.cur.n > 0 && len(u.cur.buf)+1+len(ev)+1 > u.maxBytes:
		u.sealLocked()
	}
	if u.cur.n == 0 {
		u.cur.buf = append(u.cur.buf, '[')
	} else {
		u.cur.buf = append(u.cur.buf, ',')
	}
	u.cur.buf = append(u.cur.buf, ev...)
	u.cur.n++
	if u.cur.n >= u.maxEvents {
		u.sealLocked()
	}
}

// sealLocked moves the current batch to the queue, dropping the oldest
// waiting batch when the queue is full, as OPA does.
func (u *Uploader) sealLocked() {
	if u.cur.n == 0 {
		return
	}
	b := &batch{buf: append(u.cur.buf, ']'), n: u.cur.n}
	u.cur = batch{buf: make([]byte, 0, min(len(b.buf), u.maxBytes))}
	if len(u.queue) >= u.maxQueue {
		u.dropped.Add(uint64(u.queue[0].n))
		u.queue[0] = nil
		u.queue = u.queue[1:]
	}
	u.queue = append(u.queue, b)
	select {
	case u.ready <- struct{}{}:
	default:
	}
}

// next takes the oldest waiting batch, or nil.
func (u *Uploader) next() *batch {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.queue) == 0 {
		return nil
	}
	b := u.queue[0]
	u.queue[0] = nil
	u.queue = u.queue[1:]
	return b
}

// requeue puts an interrupted batch back at the front of the queue.
func (u *Uploader) requeue(b *batch) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.queue = append([]*batch{b}, u.queue...)
}

// Run uploads batches until ctx is done: each batch when it is full, and
// whatever has been written at least every interval. Then it uploads what
// is left within the shutdown timeout, drops and counts what it could not,
// and returns. Stop the Logger writing to u before cancelling ctx, so that
// its last events are in the final flush.
func (u *Uploader) Run(ctx context.Context) error {
	var reported uint64
	report := func() {
		if d := u.dropped.Load(); d > reported {
			reported = d
			attrs := []any{slog.Uint64("dropped_total", d), slog.String("url", u.logURL)}
			if e := u.lastErrText.Load(); e != nil {
				attrs = append(attrs, slog.String("error", *e))
			}
			u.log.Warn("decision log events dropped: uploading cannot keep up or fails", attrs...)
		}
	}
	tick := u.clock.After(u.interval)
	for {
		select {
		case <-u.ready:
			u.uploadQueued(ctx)
		case <-tick:
			u.mu.Lock()
			u.sealLocked()
			u.mu.Unlock()
			u.uploadQueued(ctx)
			report()
			tick = u.clock.After(u.interval)
		case <-ctx.Done():
			// The final flush must outlive the cancelled context, or the
			// last decisions are lost; the shutdown timeout bounds it.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.shutdown)
			u.mu.Lock()
			u.sealLocked()
			u.closed = true
			u.mu.Unlock()
			u.uploadQueued(fctx)
			cancel()
			for b := u.next(); b != nil; b = u.next() {
				u.dropped.Add(uint64(b.n))
			}
			report()
			return nil
		}
	}
}

// uploadQueued uploads waiting batches, oldest first, until none is left
// or ctx is done; an interrupted batch goes back to the queue.
func (u *Uploader) uploadQueued(ctx context.Context) {
	for ctx.Err() == nil {
		b := u.next()
		if b == nil {
			return
		}
		if !u.upload(ctx, b) {
			u.requeue(b)
			return
		}
	}
}

// upload tries b until it is sent or out of attempts, returning false only
// when ctx ended first.
func (u *Uploader) upload(ctx context.Context, b *batch) bool {
	if b.body == nil {
		b.body = u.compress(b.buf)
		b.buf = nil
	}
	var err error
	var wait time.Duration
	for b.attempts < u.attempts {
		if b.attempts > 0 {
			select {
			case <-u.clock.After(max(wait, u.backoff(b.attempts))):
			case <-ctx.Done():
				return false
			}
		}
		b.attempts++
		if wait, err = u.post(ctx, b.body); err == nil {
			u.sent.Add(uint64(b.n))
			return true
		}
		if ctx.Err() != nil {
			b.attempts-- // interrupted, not failed
			return false
		}
		var se *statusError
		if errors.As(err, &se) && !se.retryable() {
			break
		}
	}
	if err == nil {
		err = errors.New("decision log upload: out of attempts")
	}
	u.dropped.Add(uint64(b.n))
	text := err.Error()
	u.lastErrText.Store(&text)
	u.log.Debug("decision log batch dropped", slog.Int("events", b.n),
		slog.Int("attempts", b.attempts), slog.String("error", text))
	return true
}

// backoff is the wait before attempt n+1: exponential from the minimum,
// capped, with the upper half jittered.
func (u *Uploader) backoff(n int) time.Duration {
	d := u.backoffMax
	if n-1 < 32 {
		d = min(u.backoffMax, u.backoffMin<<(n-1))
	}
	return d/2 + time.Duration(u.rand()*float64(d/2))
}

func (u *Uploader) compress(buf []byte) []byte {
	var out bytes.Buffer
	if u.gz == nil {
		u.gz = gzip.NewWriter(&out)
	} else {
		u.gz.Reset(&out)
	}
	_, _ = u.gz.Write(buf) // writing to a bytes.Buffer cannot fail
	_ = u.gz.Close()
	return out.Bytes()
}

// statusError is an upload answered with a non-2xx status.
type statusError struct{ code int }

func (e *statusError) Error() string {
	return "decision log upload: " + strconv.Itoa(e.code) + " " + http.StatusText(e.code)
}

func (e *statusError) retryable() bool {
	return e.code >= 500 || e.code == http.StatusTooManyRequests || e.code == http.StatusRequestTimeout
}

// post sends one compressed batch. It returns the wait the server asked
// for in Retry-After, if any.
func (u *Uploader) post(ctx context.Context, body []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("User-Agent", "mcpauthz")
	if u.token != "" {
		req.Header.Set("Authorization", "Bearer "+u.token)
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return 0, err // *url.Error; the client strips URL passwords, the token is not in it
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return 0, nil
	}
	return u.retryAfter(resp.Header.Get("Retry-After")), &statusError{code: resp.StatusCode}
}

// retryAfter reads Retry-After (seconds or an HTTP date), capped at the
// maximum backoff.
func (u *Uploader) retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(v); err == nil {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(u.clock.Now())
	}
	return min(max(d, 0), u.backoffMax)
}
