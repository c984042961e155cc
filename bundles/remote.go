package bundles

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
)

// Defaults for a Remote.
const (
	DefaultPollInterval     = 30 * time.Second
	DefaultMaxBackoff       = 5 * time.Minute
	DefaultFetchTimeout     = 30 * time.Second
	DefaultMaxDownloadBytes = 16 << 20
)

// ErrBundleTooLarge is returned when a bundle server sends more than the
// download limit, and ErrBundleServer when it answers with a status other
// than 200 or (to a conditional request) 304.
var (
	ErrBundleTooLarge = errors.New("bundle download exceeds the size limit")
	ErrBundleServer   = errors.New("bundle server error")
)

// Remote polls a bundle server for a .tar.gz bundle and activates each new
// one in its engine. The last ETag is sent as If-None-Match, so an
// unchanged bundle costs a 304; a body identical to the active one is not
// compiled again either. A bundle that fails to download, verify or
// compile never replaces the active one: the failure is logged, and the
// next fetch waits longer (exponential backoff, capped).
type Remote struct {
	engine     *Engine
	url        string
	source     string // url without credentials, query or fragment
	client     *http.Client
	token      string
	interval   time.Duration
	maxBackoff time.Duration
	maxBytes   int64
	load       []LoadOption
	log        *slog.Logger
	now        func() time.Time
	jitter     func() float64

	fetching sync.Mutex // one fetch at a time (Run, and a reload on demand)

	mu     sync.Mutex // guards status and digest
	status RemoteStatus
	digest [sha256.Size]byte // of the body last activated
}

// RemoteStatus reports a Remote's fetches, for health and metrics.
type RemoteStatus struct {
	URL         string // without credentials or query
	ETag        string // of the bundle last activated
	Revision    string // of the bundle last activated
	Fetches     int
	NotModified int // fetches that found the active bundle current
	Activations int
	Failures    int // consecutive failed fetches; 0 after a success
	LastSuccess time.Time
	LastError   string
	LastErrorAt time.Time
	// Backoff is the wait before the next fetch, before jitter: the poll
	// interval, or after failures the grown backoff.
	Backoff time.Duration
}

// RemoteOption configures a Remote.
type RemoteOption func(*Remote)

// WithPollInterval sets how often the server is asked for a new bundle
// (default DefaultPollInterval), give or take 10%.
func WithPollInterval(d time.Duration) RemoteOption { return func(r *Remote) { r.interval = d } }

// WithMaxBackoff caps the wait after repeated failures (default
// DefaultMaxBackoff, and never below the poll interval).
func WithMaxBackoff(d time.Duration) RemoteOption { return func(r *Remote) { r.maxBackoff = d } }

// WithBearerToken sends token as an Authorization bearer token. It is never
// logged.
func WithBearerToken(token string) RemoteOption { return func(r *Remote) { r.token = token } }

// WithHTTPClient sets the client (default: one with a DefaultFetchTimeout
// timeout for the whole request, body included).
func WithHTTPClient(c *http.Client) RemoteOption { return func(r *Remote) { r.client = c } }

// WithMaxDownloadBytes caps the size of a download (default
// DefaultMaxDownloadBytes).
func WithMaxDownloadBytes(n int64) RemoteOption { return func(r *Remote) { r.maxBytes = n } }

// WithRemoteLoadOptions reads every download with opts (WithVerification:
// a bundle whose signature fails is rejected like one that does not
// compile).
func WithRemoteLoadOptions(opts ...LoadOption) RemoteOption {
	return func(r *Remote) { r.load = append(r.load, opts...) }
}

// WithRemoteLogger sets the operational logger (default: discard).
func WithRemoteLogger(l *slog.Logger) RemoteOption { return func(r *Remote) { r.log = l } }

// WithRemoteClock sets the clock the status is stamped with (default
// time.Now).
func WithRemoteClock(now func() time.Time) RemoteOption { return func(r *Remote) { r.now = now } }

// WithRemoteJitter sets the source of jitter, a function returning values
// in [0, 1) (default math/rand/v2's Float64).
func WithRemoteJitter(f func() float64) RemoteOption { return func(r *Remote) { r.jitter = f } }

// NewRemote returns a poller of the http or https bundle at rawURL for
// engine. It starts no goroutine and makes no request: Run (or Fetch) does.
func NewRemote(engine *Engine, rawURL string, opts ...RemoteOption) (*Remote, error) {
	if engine == nil {
		return nil, errors.New("bundle server: no engine")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// The parse error quotes the URL, which may hold a secret.
		return nil, errors.New("bundle server: the URL does not parse")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("bundle server: the URL must be http:// or https:// with a host")
	}
	clean := *u
	clean.User, clean.RawQuery, clean.ForceQuery, clean.Fragment, clean.RawFragment = nil, "", false, "", ""
	r := &Remote{
		engine:     engine,
		url:        rawURL,
		source:     clean.String(),
		client:     &http.Client{Timeout: DefaultFetchTimeout},
		interval:   DefaultPollInterval,
		maxBackoff: DefaultMaxBackoff,
		maxBytes:   DefaultMaxDownloadBytes,
		log:        slog.New(slog.DiscardHandler),
		now:        time.Now,
		jitter:     rand.Float64,
	}
	for _, o := range opts {
		o(r)
	}
	if r.interval <= 0 || r.maxBackoff <= 0 || r.maxBytes <= 0 {
		return nil, errors.New("bundle server: poll interval, backoff and download limit must be positive")
	}
	if r.client == nil || r.log == nil || r.now == nil || r.jitter == nil {
		return nil, errors.New("bundle server: nil option")
	}
	r.status = RemoteStatus{URL: r.source, Backoff: r.interval}
	return r, nil
}

// Status returns the fetch history.
func (r *Remote) Status() RemoteStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Run fetches the bundle at once and then every poll interval, backing off
// after failures, until ctx is done. A failed fetch is logged and does not
// end Run.
func (r *Remote) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		wait, err := r.poll(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.LogAttrs(ctx, slog.LevelWarn, "policy bundle fetch failed; the active policy stays in force",
				slog.String("url", r.source), slog.Any("error", err),
				slog.Int("failures", r.Status().Failures), slog.Duration("retry_in", wait))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	return nil
}

// Fetch asks the server for the bundle once and activates it if it is new.
// On error the active policy is unchanged.
func (r *Remote) Fetch(ctx context.Context) error {
	_, err := r.poll(ctx)
	return err
}

// poll fetches once, records the outcome and returns the jittered wait
// before the next fetch.
func (r *Remote) poll(ctx context.Context) (time.Duration, error) {
	r.fetching.Lock()
	defer r.fetching.Unlock()
	activated, err := r.fetch(ctx)

	r.mu.Lock()
	defer r.mu.Unlock()
	st := &r.status
	st.Fetches++
	if err != nil {
		st.Failures++
		st.LastError = err.Error()
		st.LastErrorAt = r.now()
		st.Backoff = r.backoff(st.Failures)
	} else {
		st.Failures = 0
		st.LastSuccess = r.now()
		st.Backoff = r.interval
		if activated {
			st.Activations++
		} else {
			st.NotModified++
		}
	}
	// ±10%, so a fleet of sidecars does not poll in step.
	return time.Duration(float64(st.Backoff) * (0.9 + 0.2*r.jitter())), err
}

// backoff is the wait after n consecutive failures: the poll interval,
// doubled for each failure after the first, capped at the larger of the
// maximum backoff and the interval.
func (r *Remote) backoff(n int) time.Duration {
	limit := max(r.maxBackoff, r.interval)
	d := r.interval
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// fetch downloads the bundle and activates it, reporting whether it did;
// a 304 or the bytes of the active bundle are not activated again.
func (r *Remote) fetch(ctx context.Context) (bool, error) {
	r.mu.Lock()
	etag := r.status.ETag
	r.mu.Unlock()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return false, fmt.Errorf("bundle server %s: %w", r.source, r.redact(err))
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("bundle server %s: %w", r.source, r.redact(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && etag != "":
		return false, nil
	case resp.StatusCode != http.StatusOK:
		return false, fmt.Errorf("%w: %s answered %s", ErrBundleServer, r.source, resp.Status)
	case resp.ContentLength > r.maxBytes:
		return false, fmt.Errorf("%w: %s sends %d bytes, the limit is %d", ErrBundleTooLarge, r.source, resp.ContentLength, r.maxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.maxBytes+1))
	if err != nil {
		return false, fmt.Errorf("bundle server %s: reading the bundle: %w", r.source, r.redact(err))
	}
	if int64(len(body)) > r.maxBytes {
		return false, fmt.Errorf("%w: %s sends more than %d bytes", ErrBundleTooLarge, r.source, r.maxBytes)
	}

	digest := sha256.Sum256(body)
	r.mu.Lock()
	same := r.status.Activations > 0 && digest == r.digest
	if same {
		r.status.ETag = resp.Header.Get("ETag")
	}
	r.mu.Unlock()
	if same {
		return false, nil
	}
	var revision string
	err = r.engine.Load(ctx, r.source, func() (*bundle.Bundle, error) {
		b, err := read(tarball(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }), r.load)
		if err != nil {
			return nil, fmt.Errorf("bundle from %s: %w", r.source, err)
		}
		revision = Revision(b)
		return b, nil
	})
	if err != nil {
		return false, err
	}
	r.mu.Lock()
	r.status.ETag = resp.Header.Get("ETag")
	r.status.Revision = revision
	r.digest = digest
	r.mu.Unlock()
	return true, nil
}

// redact drops the URL, which may carry credentials in its query, from the
// client's errors; the callers name the server by its clean URL.
func (r *Remote) redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
