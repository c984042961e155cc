package bundles_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/elliptic"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/bundles"
)

// remoteBundle is the archive of a bundle with roleRego at revision,
// signed with key as "k1" unless key is nil.
func remoteBundle(tb testing.TB, revision string, key *testKey) []byte {
	tb.Helper()
	path := buildBundle(tb, filepath.Join(tb.TempDir(), "b.tar.gz"),
		map[string]string{"authz.rego": roleRego, "data.json": roleData}, revision, key, "k1")
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// bundleServer is a fake bundle server: it serves body with etag (and
// answers 304 to a matching If-None-Match), or status when it is set.
type bundleServer struct {
	mu       sync.Mutex
	body     []byte
	etag     string
	status   int  // answer this instead of the bundle
	chunked  bool // send no Content-Length
	stall    bool // send a part of the body, then stall
	requests []*http.Request
	times    []time.Time
}

func (s *bundleServer) set(f func(s *bundleServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *bundleServer) seen() ([]*http.Request, []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.requests...), append([]time.Time(nil), s.times...)
}

func (s *bundleServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Clone(context.Background()))
	s.times = append(s.times, time.Now())
	body, etag, status, chunked, stall := s.body, s.etag, s.status, s.chunked, s.stall
	s.mu.Unlock()
	switch {
	case status != 0:
		w.WriteHeader(status)
	case etag != "" && r.Header.Get("If-None-Match") == etag:
		w.WriteHeader(http.StatusNotModified)
	case stall:
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	default:
		if etag != "" {
			w.Header().Set("ETag", etag)
		}
		if chunked {
			w.(http.Flusher).Flush()
		}
		w.Write(body)
	}
}

func newBundleServer(t *testing.T, body []byte, etag string) (*bundleServer, *httptest.Server) {
	t.Helper()
	s := &bundleServer{body: body, etag: etag}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func newRemote(t *testing.T, e *bundles.Engine, url string, opts ...bundles.RemoteOption) *bundles.Remote {
	t.Helper()
	r, err := bundles.NewRemote(e, url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRemoteFetch activates r1 from the server, changes what the server
// answers, and fetches again.
func TestRemoteFetch(t *testing.T) {
	key := ecKey(t, elliptic.P256())
	other := ecKey(t, elliptic.P256())
	verify := func(tb testing.TB) bundles.RemoteOption {
		return bundles.WithRemoteLoadOptions(bundles.WithVerification(verification(tb, key, "k1", "")))
	}
	r1, r1signed := remoteBundle(t, "r1", nil), remoteBundle(t, "r1", &key)
	r2, r2signed := remoteBundle(t, "r2", nil), remoteBundle(t, "r2", &key)
	broken := buildBundle(t, filepath.Join(t.TempDir(), "broken.tar.gz"),
		map[string]string{"authz.rego": "package mcpauthz.authz\n\ndecision := http.send({\"method\": \"get\", \"url\": input.u})\n"}, "r9", nil, "")
	brokenBody, _ := os.ReadFile(broken)
	slowClient := &http.Client{Timeout: 200 * time.Millisecond}
	// A few hundred bytes whose one tar header declares a file no slice
	// can hold.
	var huge bytes.Buffer
	zw := gzip.NewWriter(&huge)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "/data.json", Mode: 0o644, Size: 1 << 62, Typeflag: tar.TypeReg})
	tw.Flush()
	zw.Close()

	tests := []struct {
		name         string
		first        []byte // the bundle served first; r1 by default
		opts         []bundles.RemoteOption
		next         func(s *bundleServer)
		wantErr      error // nil: any error for fail/ cases
		wantRevision string
		wantLoads    int // engine activations after both fetches
	}{
		{name: "ok/new bundle", next: func(s *bundleServer) { s.body, s.etag = r2, `"e2"` }, wantRevision: "r2", wantLoads: 2},
		{name: "ok/304 for the same etag", next: func(s *bundleServer) {}, wantRevision: "r1", wantLoads: 1},
		{name: "ok/same bytes without etag", next: func(s *bundleServer) { s.etag = "" }, wantRevision: "r1", wantLoads: 1},
		{name: "ok/signed bundle", first: r1signed, opts: []bundles.RemoteOption{verify(t)},
			next: func(s *bundleServer) { s.body, s.etag = r2signed, `"e2"` }, wantRevision: "r2", wantLoads: 2},
		{name: "fail/server error", next: func(s *bundleServer) { s.status = http.StatusInternalServerError },
			wantErr: bundles.ErrBundleServer, wantRevision: "r1", wantLoads: 1},
		{name: "fail/garbage body", next: func(s *bundleServer) { s.body, s.etag = []byte("<html>not a bundle</html>"), `"e2"` },
			wantRevision: "r1", wantLoads: 1},
		{name: "fail/a file declared larger than can be allocated", next: func(s *bundleServer) { s.body, s.etag = huge.Bytes(), `"e2"` },
			wantRevision: "r1", wantLoads: 1},
		{name: "fail/bundle does not compile", next: func(s *bundleServer) { s.body, s.etag = brokenBody, `"e2"` },
			wantRevision: "r1", wantLoads: 1},
		{name: "fail/oversize body", opts: []bundles.RemoteOption{bundles.WithMaxDownloadBytes(int64(len(r1)))},
			next:    func(s *bundleServer) { s.body, s.etag = append(bytes.Clone(r1), make([]byte, 100)...), `"e2"` },
			wantErr: bundles.ErrBundleTooLarge, wantRevision: "r1", wantLoads: 1},
		{name: "fail/oversize body without length", opts: []bundles.RemoteOption{bundles.WithMaxDownloadBytes(int64(len(r1)))},
			next: func(s *bundleServer) {
				s.body, s.etag, s.chunked = append(bytes.Clone(r1), make([]byte, 100)...), `"e2"`, true
			},
			wantErr: bundles.ErrBundleTooLarge, wantRevision: "r1", wantLoads: 1},
		{name: "fail/slow body", opts: []bundles.RemoteOption{bundles.WithHTTPClient(slowClient)},
			next: func(s *bundleServer) { s.body, s.etag, s.stall = r2, `"e2"`, true }, wantRevision: "r1", wantLoads: 1},
		{name: "fail/unsigned bundle when verifying", first: r1signed, opts: []bundles.RemoteOption{verify(t)},
			next:    func(s *bundleServer) { s.body, s.etag = r2, `"e2"` },
			wantErr: bundles.ErrSignature, wantRevision: "r1", wantLoads: 1},
		{name: "fail/bundle signed with another key", first: r1signed, opts: []bundles.RemoteOption{verify(t)},
			next:    func(s *bundleServer) { s.body, s.etag = remoteBundle(t, "r2", &other), `"e2"` },
			wantErr: bundles.ErrSignature, wantRevision: "r1", wantLoads: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			first := tt.first
			if first == nil {
				first = r1
			}
			s, srv := newBundleServer(t, first, `"e1"`)
			e := newEngine(t)
			r := newRemote(t, e, srv.URL+"/bundle.tar.gz", tt.opts...)
			if err := r.Fetch(ctx); err != nil {
				t.Fatalf("first Fetch: %v", err)
			}
			s.set(tt.next)
			err := r.Fetch(ctx)
			t.Logf("Fetch: %v", err)
			if strings.HasPrefix(tt.name, "ok/") && err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if strings.HasPrefix(tt.name, "fail/") && (err == nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("Fetch: %v, want %v", err, tt.wantErr)
			}
			st, rst := e.Status(), r.Status()
			if st.Revision != tt.wantRevision || st.Activations != tt.wantLoads || rst.Revision != tt.wantRevision {
				t.Fatalf("engine %+v, remote %+v; want revision %s after %d loads", st, rst, tt.wantRevision, tt.wantLoads)
			}
			if err != nil && (rst.Failures != 1 || rst.LastError == "" || rst.ETag != `"e1"`) {
				t.Fatalf("remote status after a failure: %+v", rst)
			}
			if err == nil && tt.wantLoads == 1 && rst.NotModified != 1 {
				t.Fatalf("remote status after an unchanged fetch: %+v", rst)
			}
			reqs, _ := s.seen()
			if got := reqs[1].Header.Get("If-None-Match"); got != `"e1"` {
				t.Fatalf("second request If-None-Match %q", got)
			}
			if got := reqs[0].Header.Get("If-None-Match") + reqs[0].Header.Get("Authorization"); got != "" {
				t.Fatalf("first request sent %q", got)
			}
		})
	}
}

func TestRemoteBearerToken(t *testing.T) {
	const token = "tok-s3cret"
	s, srv := newBundleServer(t, remoteBundle(t, "r1", nil), `"e1"`)
	e := newEngine(t)
	ctx := context.Background()
	if err := newRemote(t, e, srv.URL).Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	r := newRemote(t, e, srv.URL, bundles.WithBearerToken(token))
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	reqs, _ := s.seen()
	if got := reqs[0].Header.Get("Authorization"); got != "" {
		t.Fatalf("without a token: Authorization %q", got)
	}
	if got := reqs[1].Header.Get("Authorization"); got != "Bearer "+token {
		t.Fatalf("with a token: Authorization %q", got)
	}

	// Failures are logged without the token or the URL's query.
	s.set(func(s *bundleServer) { s.status = http.StatusUnauthorized })
	var logs syncLog
	r = newRemote(t, e, srv.URL+"/b.tar.gz?sig=query-s3cret", bundles.WithBearerToken(token),
		bundles.WithPollInterval(5*time.Millisecond), bundles.WithRemoteLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	runRemote(t, r)
	waitFor(t, "two failures", func() bool { return r.Status().Failures >= 2 })
	out := logs.String()
	if !strings.Contains(out, "policy bundle fetch failed") || !strings.Contains(out, "401") {
		t.Fatalf("log: %s", out)
	}
	if strings.Contains(out, "s3cret") || strings.Contains(r.Status().LastError+r.Status().URL, "s3cret") {
		t.Fatalf("a secret reached the log or the status: %s %+v", out, r.Status())
	}
}

// TestRemoteRun polls: a 304 loads nothing, a new bundle is activated.
func TestRemoteRun(t *testing.T) {
	s, srv := newBundleServer(t, remoteBundle(t, "r1", nil), `"e1"`)
	e := newEngine(t)
	r := newRemote(t, e, srv.URL, bundles.WithPollInterval(10*time.Millisecond))
	runRemote(t, r)
	waitFor(t, "five polls", func() bool { reqs, _ := s.seen(); return len(reqs) >= 5 })
	if st := e.Status(); st.Revision != "r1" || st.Activations != 1 {
		t.Fatalf("engine after polls answered 304: %+v", st)
	}
	if rst := r.Status(); rst.Activations != 1 || rst.NotModified < 3 || rst.ETag != `"e1"` {
		t.Fatalf("remote after polls answered 304: %+v", rst)
	}
	s.set(func(s *bundleServer) { s.body, s.etag = remoteBundle(t, "r2", nil), `"e2"` })
	waitFor(t, "r2", func() bool { return e.Status().Revision == "r2" })
	if st := e.Status(); st.Activations != 2 || st.Failures != 0 {
		t.Fatalf("engine after r2: %+v", st)
	}
}

// TestRemoteBackoff: failures keep the active bundle, and the wait before
// the next fetch doubles up to the cap; a success resets it.
func TestRemoteBackoff(t *testing.T) {
	const interval, capped = 10 * time.Millisecond, 80 * time.Millisecond
	s, srv := newBundleServer(t, remoteBundle(t, "r1", nil), `"e1"`)
	e := newEngine(t)
	r := newRemote(t, e, srv.URL, bundles.WithPollInterval(interval), bundles.WithMaxBackoff(capped),
		bundles.WithRemoteJitter(func() float64 { return 0.5 })) // no jitter
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.set(func(s *bundleServer) { s.status = http.StatusInternalServerError })
	runRemote(t, r)
	waitFor(t, "six failures", func() bool { return r.Status().Failures >= 6 })
	rst := r.Status()
	if rst.Backoff != capped {
		t.Fatalf("backoff after %d failures: %v, want %v", rst.Failures, rst.Backoff, capped)
	}
	if st := e.Status(); st.Revision != "r1" {
		t.Fatalf("engine after failures: %+v", st)
	}
	// Requests: 0 the Fetch above, 1 Run's first (failure 1), then one
	// after each wait; a timer never fires early.
	_, times := s.seen()
	for i, want := range []time.Duration{interval, 2 * interval, 4 * interval, capped, capped} {
		if gap := times[i+2].Sub(times[i+1]); gap < want {
			t.Errorf("wait after failure %d: %v, want at least %v", i+1, gap, want)
		}
	}
	s.set(func(s *bundleServer) { s.status = 0 })
	waitFor(t, "recovery", func() bool { return r.Status().Failures == 0 })
	if rst := r.Status(); rst.Backoff != interval || e.Status().Revision != "r1" {
		t.Fatalf("after recovery: %+v", rst)
	}
}

// TestRemoteSlowBody: a body slower than the client's timeout fails the
// fetch, the active bundle stays, and Run goes on to the next bundle.
func TestRemoteSlowBody(t *testing.T) {
	s, srv := newBundleServer(t, remoteBundle(t, "r1", nil), `"e1"`)
	e := newEngine(t)
	r := newRemote(t, e, srv.URL, bundles.WithPollInterval(10*time.Millisecond), bundles.WithMaxBackoff(20*time.Millisecond),
		bundles.WithHTTPClient(&http.Client{Timeout: 100 * time.Millisecond}))
	runRemote(t, r)
	waitFor(t, "r1", func() bool { return e.Status().Revision == "r1" })
	s.set(func(s *bundleServer) { s.body, s.etag, s.stall = remoteBundle(t, "r2", nil), `"e2"`, true })
	waitFor(t, "two failures", func() bool { return r.Status().Failures >= 2 })
	if st := e.Status(); st.Revision != "r1" {
		t.Fatalf("engine after slow bodies: %+v", st)
	}
	s.set(func(s *bundleServer) { s.stall = false })
	waitFor(t, "r2", func() bool { return e.Status().Revision == "r2" })
}

func TestNewRemote(t *testing.T) {
	e := newEngine(t)
	tests := []struct {
		name, url string
		opts      []bundles.RemoteOption
	}{
		{"ok/https", "https://bundles.example.com/authz.tar.gz", nil},
		{"ok/http with query", "http://127.0.0.1:8181/b?x=1", nil},
		{"fail/file path", "/etc/bundle.tar.gz", nil},
		{"fail/other scheme", "ftp://example.com/b.tar.gz", nil},
		{"fail/no host", "https:///b.tar.gz", nil},
		{"fail/zero interval", "https://example.com/b", []bundles.RemoteOption{bundles.WithPollInterval(0)}},
		{"fail/nil client", "https://example.com/b", []bundles.RemoteOption{bundles.WithHTTPClient(nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bundles.NewRemote(e, tt.url, tt.opts...)
			if (err == nil) != strings.HasPrefix(tt.name, "ok/") {
				t.Fatalf("NewRemote(%q): %v", tt.url, err)
			}
		})
	}
}

// runRemote runs r until the test ends.
func runRemote(t *testing.T, r *bundles.Remote) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context was cancelled")
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
