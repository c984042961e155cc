package forwardauth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz"
)

var (
	testTime    = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	testTrusted = []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8::/32"),
	}
)

// fakeChecker records the request it is asked about and answers with a
// scripted decision (or panics with panicWith).
type fakeChecker struct {
	decision  extauthz.Decision
	err       error
	panicWith any

	mu    sync.Mutex
	got   *extauthz.Request
	calls int
}

func (f *fakeChecker) Check(_ context.Context, req *extauthz.Request) (extauthz.Decision, error) {
	f.mu.Lock()
	f.got, f.calls = req, f.calls+1
	f.mu.Unlock()
	if f.panicWith != nil {
		panic(f.panicWith)
	}
	return f.decision, f.err
}

func (f *fakeChecker) last() (*extauthz.Request, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got, f.calls
}

// call describes one forward-auth call as the proxy makes it.
type call struct {
	method  string // default GET
	target  string // default "/"
	remote  string // default an untrusted IPv4 peer
	headers [][2]string
	tls     bool
	body    io.Reader
}

const untrustedPeer = "203.0.113.9:5555"

func (c call) request() *http.Request {
	method, target, remote := c.method, c.target, c.remote
	if method == "" {
		method = http.MethodGet
	}
	if target == "" {
		target = "/"
	}
	if remote == "" {
		remote = untrustedPeer
	}
	r := httptest.NewRequest(method, target, c.body)
	r.Host = "mcp.example"
	r.RemoteAddr = remote
	r.TLS = nil
	if c.tls {
		r.TLS = &tls.ConnectionState{}
	}
	for _, kv := range c.headers {
		r.Header.Add(kv[0], kv[1])
	}
	return r
}

// newTestHandler returns a handler with a fixed clock, logging as JSON into
// the returned buffer.
func newTestHandler(fc *fakeChecker, cfg Config) (*Handler, *bytes.Buffer) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testTime }
	}
	return NewHandler(fc, cfg, log), &buf
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestWrite(t *testing.T) {
	tests := []struct {
		name       string
		checker    *fakeChecker
		wantStatus int
		wantBody   string
		wantHeader map[string][]string
		noHeader   []string
	}{
		{
			name: "ok/allow sends identity headers and removals",
			checker: &fakeChecker{decision: extauthz.Decision{
				Allowed: true,
				Headers: []extauthz.Header{
					{Name: "x-mcpauthz-user", Value: "alice"},
					{Name: "x-mcpauthz-roles", Value: "admin,dev"},
				},
				RequestHeadersToRemove: []string{"x-mcpauthz-tenant", "X-Mcpauthz-Other"},
				ResponseHeadersToAdd:   []extauthz.Header{{Name: "x-ratelimit-remaining", Value: "9"}},
				DecisionID:             "d-1",
			}},
			wantStatus: http.StatusOK,
			wantHeader: map[string][]string{
				"X-Mcpauthz-User":                {"alice"},
				"X-Mcpauthz-Roles":               {"admin,dev"},
				"X-Envoy-Auth-Headers-To-Remove": {"x-mcpauthz-tenant,x-mcpauthz-other"},
				"X-Ratelimit-Remaining":          {"9"},
				"X-Mcpauthz-Decision-Id":         {"d-1"},
			},
		},
		{
			name: "ok/allow with a repeated header name adds every value",
			checker: &fakeChecker{decision: extauthz.Decision{Allowed: true, Headers: []extauthz.Header{
				{Name: "x-group", Value: "a"}, {Name: "X-Group", Value: "b"},
			}}},
			wantStatus: http.StatusOK,
			wantHeader: map[string][]string{"X-Group": {"a", "b"}},
		},
		{
			name:       "ok/allow without removals sends no removal header",
			checker:    &fakeChecker{decision: extauthz.Decision{Allowed: true}},
			wantStatus: http.StatusOK,
			noHeader:   []string{"X-Envoy-Auth-Headers-To-Remove", "Content-Type"},
		},
		{
			name:       "ok/allow ignores a status and a body",
			checker:    &fakeChecker{decision: extauthz.Decision{Allowed: true, Status: 403, Body: "no"}},
			wantStatus: http.StatusOK,
		},
		{
			name: "fail/deny sends status, headers and body",
			checker: &fakeChecker{decision: extauthz.Decision{
				Status: http.StatusUnauthorized,
				Headers: []extauthz.Header{
					{Name: "www-authenticate", Value: `Bearer resource_metadata="https://mcp.example/.well-known/oauth-protected-resource"`},
					{Name: "content-type", Value: "application/json"},
				},
				Body: `{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"Unauthorized"}}`,
			}},
			wantStatus: http.StatusUnauthorized,
			wantBody:   `{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"Unauthorized"}}`,
			wantHeader: map[string][]string{
				"Www-Authenticate": {`Bearer resource_metadata="https://mcp.example/.well-known/oauth-protected-resource"`},
				"Content-Type":     {"application/json"},
			},
		},
		{
			name: "fail/deny 429 keeps retry-after",
			checker: &fakeChecker{decision: extauthz.Decision{Status: http.StatusTooManyRequests,
				Headers: []extauthz.Header{{Name: "retry-after", Value: "30"}}}},
			wantStatus: http.StatusTooManyRequests,
			wantHeader: map[string][]string{"Retry-After": {"30"}, "X-Mcpauthz-Status": {"429"}},
		},
		{
			// Envoy's HTTP ext_authz reads a 5xx as "authorizer down", which
			// failure_mode_allow would turn into an allow.
			name:       "fail/deny 503 is sent as 403 with the decided status",
			checker:    &fakeChecker{decision: extauthz.Decision{Status: http.StatusServiceUnavailable, Reason: extauthz.ReasonDeadline}},
			wantStatus: http.StatusForbidden,
			wantHeader: map[string][]string{"X-Mcpauthz-Status": {"503"}},
		},
		{
			name:       "fail/deny with a body and no content type is plain text",
			checker:    &fakeChecker{decision: extauthz.Decision{Status: http.StatusForbidden, Body: "<html>"}},
			wantStatus: http.StatusForbidden,
			wantBody:   "<html>",
			wantHeader: map[string][]string{"Content-Type": {"text/plain; charset=utf-8"}},
		},
		{
			name: "fail/deny with status 200 is sent as 403",
			checker: &fakeChecker{decision: extauthz.Decision{Status: http.StatusOK, Body: "denied",
				Headers: []extauthz.Header{{Name: "x-reason", Value: "policy"}}}},
			wantStatus: http.StatusForbidden,
			wantBody:   "denied",
			wantHeader: map[string][]string{"X-Reason": {"policy"}},
		},
		{
			name:       "fail/deny with status 204 is sent as 403",
			checker:    &fakeChecker{decision: extauthz.Decision{Status: http.StatusNoContent}},
			wantStatus: http.StatusForbidden,
		},
		{
			name:       "fail/deny with status 0 is sent as 403",
			checker:    &fakeChecker{decision: extauthz.Decision{}},
			wantStatus: http.StatusForbidden,
		},
		{
			name:       "fail/deny with status 101 is sent as 403",
			checker:    &fakeChecker{decision: extauthz.Decision{Status: http.StatusSwitchingProtocols}},
			wantStatus: http.StatusForbidden,
		},
		{
			name:       "fail/deny with an out-of-range status is sent as 403",
			checker:    &fakeChecker{decision: extauthz.Decision{Status: 700}},
			wantStatus: http.StatusForbidden,
		},
		{
			name: "fail/deny with a redirect keeps it",
			checker: &fakeChecker{decision: extauthz.Decision{Status: http.StatusFound,
				Headers: []extauthz.Header{{Name: "location", Value: "https://login.example/?rd=%2Fmcp"}}}},
			wantStatus: http.StatusFound,
			wantHeader: map[string][]string{"Location": {"https://login.example/?rd=%2Fmcp"}},
		},
		{
			name:       "fail/deny 304 has no body",
			checker:    &fakeChecker{decision: extauthz.Decision{Status: http.StatusNotModified, Body: "x"}},
			wantStatus: http.StatusNotModified,
		},
		{
			name: "fail/checker error with a zero decision is 403",
			checker: &fakeChecker{
				err: errors.New("backend down"),
			},
			wantStatus: http.StatusForbidden,
		},
		{
			name: "fail/headers that cannot be sent are dropped",
			checker: &fakeChecker{decision: extauthz.Decision{Allowed: true, Headers: []extauthz.Header{
				{Name: "bad name", Value: "1"},
				{Name: "content-length", Value: "100"},
				{Name: "transfer-encoding", Value: "chunked"},
				{Name: "connection", Value: "close"},
				{Name: "x-split", Value: "a\r\nx-injected: 1"},
				{Name: "x-ok", Value: "yes"},
			}, RequestHeadersToRemove: []string{"x-a", "bad name"}}},
			wantStatus: http.StatusOK,
			wantHeader: map[string][]string{"X-Ok": {"yes"}, "X-Envoy-Auth-Headers-To-Remove": {"x-a"}},
			noHeader:   []string{"Bad Name", "Transfer-Encoding", "Connection", "X-Split", "X-Injected"},
		},
		{
			name:       "fail/checker panic is a 500 denial sent as 403",
			checker:    &fakeChecker{panicWith: "boom"},
			wantStatus: http.StatusForbidden,
			wantHeader: map[string][]string{"X-Mcpauthz-Status": {"500"}},
		},
		{
			name:       "fail/checker panic with an error is a 500 denial sent as 403",
			checker:    &fakeChecker{panicWith: fmt.Errorf("wrapped: %w", errors.New("x"))},
			wantStatus: http.StatusForbidden,
			wantHeader: map[string][]string{"X-Mcpauthz-Status": {"500"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newTestHandler(tt.checker, Config{})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, call{method: http.MethodPost, target: "/mcp"}.request())
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)

			if res.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if string(body) != tt.wantBody {
				t.Errorf("body = %q, want %q", body, tt.wantBody)
			}
			if got := res.Header.Values("Cache-Control"); !slices.Equal(got, []string{"no-store"}) {
				t.Errorf("cache-control = %q, want [no-store]", got)
			}
			for name, want := range tt.wantHeader {
				if got := res.Header.Values(name); !slices.Equal(got, want) {
					t.Errorf("header %s = %q, want %q", name, got, want)
				}
			}
			for _, name := range tt.noHeader {
				if got, ok := res.Header[http.CanonicalHeaderKey(name)]; ok {
					t.Errorf("header %s = %q, want none", name, got)
				}
			}
			if _, calls := tt.checker.last(); calls != 1 {
				t.Errorf("checker called %d times, want 1", calls)
			}
		})
	}
}

// Secrets in a request must reach no log line, whichever path logs.
func TestLogsCarryNoSecrets(t *testing.T) {
	secrets := [][2]string{
		{"Authorization", "Bearer secret-bearer-token"},
		{"Cookie", "mcpauthz_session=secret-session-cookie"},
		{"X-Api-Key", "mcpk_secretapikey"},
	}
	tests := []struct {
		name       string
		checker    *fakeChecker
		headers    [][2]string
		wantStatus int
	}{
		{
			name:       "fail/panic whose value carries the token",
			checker:    &fakeChecker{panicWith: "cannot verify Bearer secret-bearer-token"},
			wantStatus: http.StatusForbidden,
		},
		{
			name:       "fail/panic with an error carrying the cookie",
			checker:    &fakeChecker{panicWith: errors.New("session secret-session-cookie")},
			wantStatus: http.StatusForbidden,
		},
		{
			name:    "fail/forwarded headers disagree",
			checker: &fakeChecker{decision: extauthz.Decision{Allowed: true}},
			headers: [][2]string{
				{"X-Original-URI", "/secret-bearer-token"},
				{"X-Forwarded-Uri", "/mcpk_secretapikey"},
			},
			wantStatus: http.StatusBadRequest,
		},
		{
			name: "fail/header value that cannot be sent",
			checker: &fakeChecker{decision: extauthz.Decision{Allowed: true,
				Headers: []extauthz.Header{{Name: "x-token", Value: "secret-bearer-token\r\n"}}}},
			wantStatus: http.StatusOK,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, logs := newTestHandler(tt.checker, Config{TrustedProxies: testTrusted})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, call{remote: "10.0.0.2:1234", headers: slices.Concat(secrets, tt.headers)}.request())
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if logs.Len() == 0 {
				t.Fatal("nothing was logged")
			}
			for _, s := range []string{"secret-bearer-token", "secret-session-cookie", "mcpk_secretapikey"} {
				if strings.Contains(logs.String(), s) {
					t.Errorf("log carries %q:\n%s", s, logs)
				}
			}
		})
	}
}

// rewritingPolicy allows with a query rewrite, which forward-auth cannot
// carry out.
type rewritingPolicy struct{}

func (rewritingPolicy) Evaluate(context.Context, *extauthz.PolicyInput) (extauthz.PolicyResult, error) {
	return extauthz.PolicyResult{Decision: extauthz.Decision{Allowed: true, Status: http.StatusOK,
		QueryParametersToRemove: []string{"admin"}, QueryParametersToSet: []extauthz.Header{{Name: "k", Value: "v"}}}}, nil
}

type alice struct{}

func (alice) Verify(context.Context, *extauthz.Request) (extauthz.Identity, error) {
	return extauthz.Identity{Authenticated: true, Method: extauthz.MethodJWT, Subject: "alice"}, nil
}

type decisionEvents struct {
	mu  sync.Mutex
	evs []extauthz.DecisionEvent
}

func (d *decisionEvents) LogDecision(ev extauthz.DecisionEvent) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.evs = append(d.evs, ev)
}

// TestQueryRewriteIsRefused: an allow that rewrites the query is a 500
// denial (sent as 403), recorded as the denial it is, with no identity
// headers and no secret in any log.
func TestQueryRewriteIsRefused(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	events := &decisionEvents{}
	authz := extauthz.NewAuthorizer(rewritingPolicy{}, func() string { return "d-1" },
		extauthz.WithIdentityVerifier(alice{}), extauthz.WithDecisionLogger(events), extauthz.WithLogger(log))
	h := NewHandler(authz, Config{Now: func() time.Time { return testTime }}, log)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, call{method: http.MethodGet, target: "/mcp?admin=0", headers: [][2]string{
		{"Authorization", "Bearer secret-bearer-token"}, {"Cookie", "mcpauthz_session=secret-session-cookie"},
	}}.request())
	res := rec.Result()
	if res.StatusCode != http.StatusForbidden || res.Header.Get("X-Mcpauthz-Status") != "500" || res.Header.Get("X-Mcpauthz-User") != "" {
		t.Fatalf("answer %d %v", res.StatusCode, res.Header)
	}
	if len(events.evs) != 1 || events.evs[0].Allowed || events.evs[0].Reason != extauthz.ReasonInternal || events.evs[0].Err == nil {
		t.Fatalf("decision log %+v", events.evs)
	}
	if logs.Len() == 0 || strings.Contains(logs.String(), "secret-") {
		t.Fatalf("log:\n%s", logs.String())
	}
}

// TestServer drives the handler through a real HTTP server with a raw
// request line, so the path is checked exactly as it crossed the wire.
func TestServer(t *testing.T) {
	tests := []struct {
		name       string
		raw        string
		cfg        Config
		decision   extauthz.Decision
		wantStatus int
		wantPath   string
		wantMethod string
		wantBody   string
	}{
		{
			name: "ok/envoy http service with path prefix",
			raw: "POST /authz/mcp/a%2Fb//c?x=1&y=%2F HTTP/1.1\r\nHost: mcp.example\r\n" +
				"Content-Length: 5\r\nX-Forwarded-For: 198.51.100.7\r\n\r\nhello",
			cfg:        Config{PathPrefix: "/authz"},
			decision:   extauthz.Decision{Allowed: true},
			wantStatus: http.StatusOK,
			wantPath:   "/mcp/a%2Fb//c?x=1&y=%2F",
			wantMethod: http.MethodPost,
			wantBody:   "hello",
		},
		{
			name: "ok/loopback trusted: nginx headers",
			raw: "GET /auth HTTP/1.1\r\nHost: auth.internal\r\nX-Original-URI: /mcp/%7Euser\r\n" +
				"X-Original-Method: DELETE\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n",
			cfg:        Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}},
			decision:   extauthz.Decision{Allowed: true},
			wantStatus: http.StatusOK,
			wantPath:   "/mcp/%7Euser",
			wantMethod: http.MethodDelete,
		},
		{
			name: "fail/untrusted loopback: forged headers ignored",
			raw: "GET /authz/public HTTP/1.1\r\nHost: auth.internal\r\nX-Original-URI: /admin\r\n" +
				"X-Forwarded-Method: DELETE\r\n\r\n",
			cfg:        Config{PathPrefix: "/authz"},
			decision:   extauthz.Decision{Status: http.StatusForbidden},
			wantStatus: http.StatusForbidden,
			wantPath:   "/public",
			wantMethod: http.MethodGet,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := &fakeChecker{decision: tt.decision}
			h, _ := newTestHandler(fc, tt.cfg)
			srv := httptest.NewServer(h)
			defer srv.Close()

			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tt.raw); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			req, calls := fc.last()
			if calls != 1 {
				t.Fatalf("checker called %d times, want 1", calls)
			}
			if req.Path != tt.wantPath || req.Method != tt.wantMethod || req.Body != tt.wantBody {
				t.Errorf("method, path, body = %q, %q, %q; want %q, %q, %q",
					req.Method, req.Path, req.Body, tt.wantMethod, tt.wantPath, tt.wantBody)
			}
		})
	}
}
