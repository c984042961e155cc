package forwardauth

import (
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpauthz/mcpauthz/extauthz"
)

// described is the part of an extauthz.Request that reconstruction decides.
type described struct {
	Method, Path, Fragment, Host, Scheme, ClientIP string
	Source                                         string
	Port                                           uint32
}

func describe(r *extauthz.Request) described {
	return described{r.Method, r.Path, r.Fragment, r.Host, r.Scheme, r.ClientIP, r.Source.Address, r.Source.Port}
}

// forged are the headers a client sends to pass itself off as something
// else.
var forged = [][2]string{
	{"X-Original-Method", "DELETE"},
	{"X-Original-URI", "/admin"},
	{"X-Forwarded-Method", "PUT"},
	{"X-Forwarded-Uri", "/internal"},
	{"X-Forwarded-For", "192.0.2.66"},
	{"X-Real-IP", "192.0.2.67"},
	{"X-Forwarded-Host", "evil.example"},
	{"X-Forwarded-Proto", "https"},
}

func TestReconstruct(t *testing.T) {
	const trustedPeer = "10.0.0.2:40000"
	tests := []struct {
		name        string
		cfg         Config
		call        call
		want        described
		wantHeaders map[string]string
		noHeaders   []string
		wantStatus  int // non-zero: the call is denied with it before any check
	}{
		// Untrusted peers: the call's own request line, Host and connection.
		{
			name: "ok/untrusted peer",
			call: call{target: "/mcp?x=1"},
			want: described{"GET", "/mcp?x=1", "", "mcp.example", "http", "203.0.113.9", "203.0.113.9", 5555},
		},
		{
			name: "ok/untrusted peer: forged forwarded headers are ignored",
			call: call{method: "POST", target: "/mcp", headers: forged},
			want: described{"POST", "/mcp", "", "mcp.example", "http", "203.0.113.9", "203.0.113.9", 5555},
			wantHeaders: map[string]string{
				// Still headers like any other; they just decide nothing.
				"x-forwarded-host": "evil.example",
				"x-original-uri":   "/admin",
				":method":          "POST",
				":path":            "/mcp",
				":authority":       "mcp.example",
				":scheme":          "http",
			},
		},
		{
			name: "ok/untrusted peer: disagreeing forwarded headers are ignored, not rejected",
			call: call{target: "/mcp", headers: [][2]string{{"X-Original-URI", "/a"}, {"X-Forwarded-Uri", "/b"}, {"X-Original-URI", "/c"}}},
			want: described{"GET", "/mcp", "", "mcp.example", "http", "203.0.113.9", "203.0.113.9", 5555},
		},
		{
			name: "ok/untrusted ipv6 peer: forged forwarded headers are ignored",
			cfg:  Config{TrustedProxies: testTrusted},
			call: call{target: "/mcp", remote: "[2600:1f18::7]:443", headers: forged},
			want: described{"GET", "/mcp", "", "mcp.example", "http", "2600:1f18::7", "2600:1f18::7", 443},
		},
		{
			name: "ok/untrusted peer next to a trusted cidr",
			cfg:  Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}},
			call: call{target: "/mcp", remote: "10.0.1.1:80", headers: forged},
			want: described{"GET", "/mcp", "", "mcp.example", "http", "10.0.1.1", "10.0.1.1", 80},
		},
		{
			name: "ok/unix socket peer is never trusted",
			cfg:  Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}},
			call: call{target: "/mcp", remote: "@", headers: forged},
			want: described{"GET", "/mcp", "", "mcp.example", "http", "", "", 0},
		},
		{
			name: "ok/tls call",
			call: call{target: "/mcp", tls: true},
			want: described{"GET", "/mcp", "", "mcp.example", "https", "203.0.113.9", "203.0.113.9", 5555},
		},
		{
			name: "ok/absolute-form target",
			call: call{target: "http://mcp.example/admin?x=1"},
			want: described{"GET", "/admin?x=1", "", "mcp.example", "http", "203.0.113.9", "203.0.113.9", 5555},
		},

		// Envoy's HTTP ext_authz service: path_prefix + the original path.
		{
			name: "ok/path prefix removed, query kept",
			cfg:  Config{PathPrefix: "/authz"},
			call: call{method: "POST", target: "/authz/mcp?x=1&y=2"},
			want: described{"POST", "/mcp?x=1&y=2", "", "mcp.example", "http", "203.0.113.9", "203.0.113.9", 5555},
		},
		{
			name: "ok/path prefix removed, %2F and // kept as sent",
			cfg:  Config{PathPrefix: "/authz"},
			call: call{target: "/authz/a%2Fb//c/./d?q=%2F%2e"},
			want: described{"GET", "/a%2Fb//c/./d?q=%2F%2e", "", "mcp.example", "http", "203.0.113.9", "203.0.113.9", 5555},
		},
		{
			name: "ok/path prefix absent: path as is",
			cfg:  Config{PathPrefix: "/authz"},
			call: call{target: "/other?x=1"},
			want: described{"GET", "/other?x=1", "", "mcp.example", "http", "203.0.113.9", "203.0.113.9", 5555},
		},
		{
			name: "ok/path prefix alone is the root",
			cfg:  Config{PathPrefix: "/authz"},
			call: call{target: "/authz?x=1"},
			want: described{"GET", "/?x=1", "", "mcp.example", "http", "203.0.113.9", "203.0.113.9", 5555},
		},
		{
			name: "ok/path prefix with a trailing slash",
			cfg:  Config{PathPrefix: "/authz/"},
			call: call{target: "/authz/mcp"},
			want: described{"GET", "/mcp", "", "mcp.example", "http", "203.0.113.9", "203.0.113.9", 5555},
		},
		{
			name: "ok/trusted envoy without forwarded request line: prefix removed",
			cfg:  Config{PathPrefix: "/authz", TrustedProxies: testTrusted},
			call: call{method: "POST", target: "/authz/mcp", remote: trustedPeer,
				headers: [][2]string{{"X-Forwarded-For", "198.51.100.7"}, {"X-Forwarded-Proto", "https"}}},
			want: described{"POST", "/mcp", "", "mcp.example", "https", "198.51.100.7", "10.0.0.2", 40000},
		},

		// Trusted proxies.
		{
			name: "ok/trusted nginx auth_request",
			cfg:  Config{TrustedProxies: testTrusted, PathPrefix: "/authz"},
			call: call{target: "/auth", remote: trustedPeer, headers: [][2]string{
				{"X-Original-URI", "/mcp/tools?cursor=a%2Fb"},
				{"X-Original-Method", "POST"},
				{"X-Forwarded-For", "198.51.100.7"},
				{"X-Forwarded-Host", "mcp.example.com"},
				{"X-Forwarded-Proto", "https"},
			}},
			want: described{"POST", "/mcp/tools?cursor=a%2Fb", "", "mcp.example.com", "https", "198.51.100.7", "10.0.0.2", 40000},
			wantHeaders: map[string]string{
				":method":    "POST",
				":path":      "/mcp/tools?cursor=a%2Fb",
				":authority": "mcp.example.com",
				":scheme":    "https",
			},
		},
		{
			name: "ok/trusted traefik forwardAuth",
			cfg:  Config{TrustedProxies: testTrusted},
			call: call{target: "/", remote: trustedPeer, headers: [][2]string{
				{"X-Forwarded-Method", "PUT"},
				{"X-Forwarded-Uri", "/v1/x?y=%2F"},
				{"X-Forwarded-Host", "api.example"},
				{"X-Forwarded-Proto", "https"},
				{"X-Forwarded-For", "198.51.100.8"},
				{"X-Real-Ip", "198.51.100.8"},
			}},
			want: described{"PUT", "/v1/x?y=%2F", "", "api.example", "https", "198.51.100.8", "10.0.0.2", 40000},
		},
		{
			name: "ok/trusted nginx and traefik headers that agree",
			cfg:  Config{TrustedProxies: testTrusted},
			call: call{remote: trustedPeer, headers: [][2]string{
				{"X-Original-URI", "/mcp"}, {"X-Forwarded-Uri", "/mcp"},
				{"X-Original-Method", "POST"}, {"X-Forwarded-Method", "POST"},
			}},
			want: described{"POST", "/mcp", "", "mcp.example", "http", "10.0.0.2", "10.0.0.2", 40000},
		},
		{
			name: "ok/trusted absolute-form original uri",
			cfg:  Config{TrustedProxies: testTrusted},
			call: call{remote: trustedPeer, headers: [][2]string{{"X-Original-URI", "HTTPS://mcp.example/admin?x"}}},
			want: described{"GET", "/admin?x", "", "mcp.example", "http", "10.0.0.2", "10.0.0.2", 40000},
		},
		{
			name: "ok/trusted uri without a leading slash",
			cfg:  Config{TrustedProxies: testTrusted},
			call: call{remote: trustedPeer, headers: [][2]string{{"X-Forwarded-Uri", "mcp?x=1"}}},
			want: described{"GET", "/mcp?x=1", "", "mcp.example", "http", "10.0.0.2", "10.0.0.2", 40000},
		},
		{
			name: "ok/trusted uri fragment split off",
			cfg:  Config{TrustedProxies: testTrusted},
			call: call{remote: trustedPeer, headers: [][2]string{{"X-Original-URI", "/admin?x=1#frag"}}},
			want: described{"GET", "/admin?x=1", "frag", "mcp.example", "http", "10.0.0.2", "10.0.0.2", 40000},
		},
		{
			name: "ok/trusted empty forwarded headers count as absent",
			cfg:  Config{TrustedProxies: testTrusted},
			call: call{method: "POST", target: "/mcp", remote: trustedPeer, headers: [][2]string{
				{"X-Original-URI", ""}, {"X-Forwarded-Method", ""}, {"X-Forwarded-Host", ""},
			}},
			want: described{"POST", "/mcp", "", "mcp.example", "http", "10.0.0.2", "10.0.0.2", 40000},
		},
		{
			name: "ok/trusted proto: first of a list, lower-cased",
			cfg:  Config{TrustedProxies: testTrusted},
			call: call{remote: trustedPeer, headers: [][2]string{{"X-Forwarded-Proto", "HTTPS, http"}}},
			want: described{"GET", "/", "", "mcp.example", "https", "10.0.0.2", "10.0.0.2", 40000},
		},
		{
			name: "ok/trusted proto that is no scheme is ignored",
			cfg:  Config{TrustedProxies: testTrusted},
			call: call{remote: trustedPeer, tls: true, headers: [][2]string{{"X-Forwarded-Proto", "ht tp"}}},
			want: described{"GET", "/", "", "mcp.example", "https", "10.0.0.2", "10.0.0.2", 40000},
		},
		{
			name:       "fail/trusted nginx and traefik uris disagree",
			cfg:        Config{TrustedProxies: testTrusted},
			call:       call{remote: trustedPeer, headers: [][2]string{{"X-Forwarded-Uri", "/public"}, {"X-Original-URI", "/admin"}}},
			wantStatus: http.StatusBadRequest,
		},
		{
			name:       "fail/trusted nginx and traefik methods disagree",
			cfg:        Config{TrustedProxies: testTrusted},
			call:       call{remote: trustedPeer, headers: [][2]string{{"X-Forwarded-Method", "GET"}, {"X-Original-Method", "POST"}}},
			wantStatus: http.StatusBadRequest,
		},
		{
			name:       "fail/trusted original uri repeated",
			cfg:        Config{TrustedProxies: testTrusted},
			call:       call{remote: trustedPeer, headers: [][2]string{{"X-Original-URI", "/public"}, {"X-Original-URI", "/admin"}}},
			wantStatus: http.StatusBadRequest,
		},
		{
			name:       "fail/trusted method that is not a token",
			cfg:        Config{TrustedProxies: testTrusted},
			call:       call{remote: trustedPeer, headers: [][2]string{{"X-Original-Method", "GET /admin"}}},
			wantStatus: http.StatusBadRequest,
		},
		{
			name:       "fail/trusted forwarded host list",
			cfg:        Config{TrustedProxies: testTrusted},
			call:       call{remote: trustedPeer, headers: [][2]string{{"X-Forwarded-Host", "evil.example, mcp.example"}}},
			wantStatus: http.StatusBadRequest,
		},
		{
			name:       "fail/trusted forwarded host repeated",
			cfg:        Config{TrustedProxies: testTrusted},
			call:       call{remote: trustedPeer, headers: [][2]string{{"X-Forwarded-Host", "evil.example"}, {"X-Forwarded-Host", "mcp.example"}}},
			wantStatus: http.StatusBadRequest,
		},

		// Client address: X-Forwarded-For from the right, past trusted hops.
		{
			name: "ok/xff walk past several trusted hops",
			cfg:  Config{TrustedProxies: testTrusted},
			call: call{remote: trustedPeer, headers: [][2]string{{"X-Forwarded-For", "192.0.2.66, 198.51.100.7, 10.1.1.1,10.2.2.2"}}},
			want: described{"GET", "/", "", "mcp.example", "http", "198.51.100.7", "10.0.0.2", 40000},
		},
		{
			name: "ok/xff over several header lines",
			cfg:  Config{TrustedProxies: testTrusted},
			call: call{remote: trustedPeer, headers: [][2]string{
				{"X-Forwarded-For", "192.0.2.66, 198.51.100.7"},
				{"X-Forwarded-For", "10.1.1.1"},
			}},
			want: described{"GET", "/", "", "mcp.example", "http", "198.51.100.7", "10.0.0.2", 40000},
		},
		{
			name: "ok/xff garbage skipped, ports removed",
			cfg:  Config{TrustedProxies: testTrusted},
			call: call{remote: trustedPeer, headers: [][2]string{
				{"X-Forwarded-For", "192.0.2.66, 198.51.100.7:5555, unknown, , [10.3.3.3]:80, 10.2.2.2"},
			}},
			want: described{"GET", "/", "", "mcp.example", "http", "198.51.100.7", "10.0.0.2", 40000},
		},
		{
			name: "ok/xff all trusted: x-real-ip",
			cfg:  Config{TrustedProxies: testTrusted},
			call: call{remote: trustedPeer, headers: [][2]string{
				{"X-Forwarded-For", "10.1.1.1, 10.2.2.2"}, {"X-Real-IP", "198.51.100.20"},
			}},
			want: described{"GET", "/", "", "mcp.example", "http", "198.51.100.20", "10.0.0.2", 40000},
		},
		{
			name: "ok/xff all trusted, no x-real-ip: the peer",
			cfg:  Config{TrustedProxies: testTrusted},
			call: call{remote: trustedPeer, headers: [][2]string{{"X-Forwarded-For", "10.1.1.1, garbage"}}},
			want: described{"GET", "/", "", "mcp.example", "http", "10.0.0.2", "10.0.0.2", 40000},
		},
		{
			name: "ok/x-real-ip garbage: the peer",
			cfg:  Config{TrustedProxies: testTrusted},
			call: call{remote: trustedPeer, headers: [][2]string{{"X-Real-IP", "not-an-ip"}}},
			want: described{"GET", "/", "", "mcp.example", "http", "10.0.0.2", "10.0.0.2", 40000},
		},
		{
			name: "ok/ipv6 trusted peer and cidr",
			cfg:  Config{TrustedProxies: testTrusted},
			call: call{remote: "[2001:db8::5]:443", headers: [][2]string{
				{"X-Forwarded-For", "2001:db8::99, 2600:1f18::1, [2001:db8:1::6]:9000, 2001:DB8::7"},
				{"X-Forwarded-Uri", "/mcp"},
			}},
			want: described{"GET", "/mcp", "", "mcp.example", "http", "2600:1f18::1", "2001:db8::5", 443},
		},
		{
			name: "ok/ipv4-mapped peer matches an ipv4 cidr",
			cfg:  Config{TrustedProxies: testTrusted},
			call: call{remote: "[::ffff:10.0.0.3]:80", headers: [][2]string{{"X-Forwarded-For", "::ffff:198.51.100.7"}}},
			want: described{"GET", "/", "", "mcp.example", "http", "198.51.100.7", "10.0.0.3", 80},
		},
		{
			name: "ok/ipv4-mapped cidr matches an ipv4 peer",
			cfg:  Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}},
			call: call{remote: "10.0.0.3:80", headers: [][2]string{{"X-Forwarded-For", "198.51.100.7"}}},
			want: described{"GET", "/", "", "mcp.example", "http", "198.51.100.7", "10.0.0.3", 80},
		},
		{
			name: "ok/ipv6 peer with a zone",
			cfg:  Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("fe80::/10")}},
			call: call{remote: "[fe80::1%eth0]:80", headers: [][2]string{{"X-Forwarded-For", "198.51.100.7"}}},
			want: described{"GET", "/", "", "mcp.example", "http", "198.51.100.7", "fe80::1", 80},
		},

		// Headers.
		{
			name: "ok/headers lower-cased, repeats joined",
			call: call{target: "/mcp", headers: [][2]string{
				{"Content-Type", "application/json"},
				{"X-Multi", "a"}, {"X-Multi", "b, c"},
				{"Mcp-Session-Id", "s-1"},
				{"Cookie", "a=1"}, {"Cookie", "b=2"},
			}},
			want: described{"GET", "/mcp", "", "mcp.example", "http", "203.0.113.9", "203.0.113.9", 5555},
			wantHeaders: map[string]string{
				"content-type":   "application/json",
				"x-multi":        "a,b, c",
				"mcp-session-id": "s-1",
				"cookie":         "a=1; b=2",
			},
		},
		{
			name: "ok/hop-by-hop headers dropped, connection-named ones kept",
			call: call{target: "/mcp", headers: [][2]string{
				{"Connection", "keep-alive, X-Mcpauthz-User"},
				{"Keep-Alive", "timeout=5"},
				{"Proxy-Connection", "keep-alive"},
				{"TE", "trailers"},
				{"Trailer", "x-checksum"},
				{"Transfer-Encoding", "chunked"},
				{"Upgrade", "websocket"},
				{"X-Mcpauthz-User", "mallory"},
			}},
			want:        described{"GET", "/mcp", "", "mcp.example", "http", "203.0.113.9", "203.0.113.9", 5555},
			wantHeaders: map[string]string{"x-mcpauthz-user": "mallory"},
			noHeaders:   []string{"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := &fakeChecker{decision: extauthz.Decision{Allowed: true}}
			h, _ := newTestHandler(fc, tt.cfg)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tt.call.request())
			req, calls := fc.last()

			if tt.wantStatus != 0 {
				if rec.Code != tt.wantStatus || calls != 0 {
					t.Fatalf("status %d after %d checks, want %d before any", rec.Code, calls, tt.wantStatus)
				}
				return
			}
			if rec.Code != http.StatusOK || calls != 1 {
				t.Fatalf("status %d after %d checks, want 200 after 1", rec.Code, calls)
			}
			if got := describe(req); got != tt.want {
				t.Errorf("request:\n got %+v\nwant %+v", got, tt.want)
			}
			if req.Headers[":path"] != req.Path || req.Headers[":method"] != req.Method ||
				req.Headers[":authority"] != req.Host || req.Headers[":scheme"] != req.Scheme {
				t.Errorf("pseudo-headers %q %q %q %q do not match the request",
					req.Headers[":method"], req.Headers[":path"], req.Headers[":authority"], req.Headers[":scheme"])
			}
			for name, want := range tt.wantHeaders {
				if got, ok := req.Headers[name]; !ok || got != want {
					t.Errorf("header %s = %q (present %v), want %q", name, got, ok, want)
				}
			}
			for _, name := range tt.noHeaders {
				if got, ok := req.Headers[name]; ok {
					t.Errorf("header %s = %q, want none", name, got)
				}
			}
		})
	}
}

func TestReconstructMetadata(t *testing.T) {
	fc := &fakeChecker{decision: extauthz.Decision{Allowed: true}}
	h, _ := newTestHandler(fc, Config{})
	h.ServeHTTP(httptest.NewRecorder(), call{target: "/mcp", headers: [][2]string{{"X-Request-Id", "req-42"}}}.request())
	req, _ := fc.last()
	if req.ID != "req-42" || !req.Time.Equal(testTime) || req.Transport != "forward-auth" || req.Protocol != "HTTP/1.1" {
		t.Errorf("id %q, time %v, transport %q, protocol %q", req.ID, req.Time, req.Transport, req.Protocol)
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestBody(t *testing.T) {
	tests := []struct {
		name          string
		max           int64
		body          io.Reader
		headers       [][2]string
		wantBody      string
		wantTruncated bool
		wantRaw       bool
		wantSize      int64
		wantRead      int // most bytes read from the body; 0: not checked
		wantStatus    int
	}{
		{
			name:     "ok/json body passed on",
			body:     strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`),
			headers:  [][2]string{{"Content-Type", "application/json"}},
			wantBody: `{"jsonrpc":"2.0","id":1,"method":"ping"}`,
			wantSize: 40,
		},
		{
			name:     "ok/no body",
			wantSize: 0,
		},
		{
			name:     "ok/body exactly at the limit",
			max:      8,
			body:     strings.NewReader("12345678"),
			wantBody: "12345678",
			wantSize: 8,
		},
		{
			name:     "ok/body of unknown length",
			body:     &countingReader{r: strings.NewReader("abc")},
			wantBody: "abc",
			wantSize: -1,
		},
		{
			name:     "ok/body that is not utf-8 is raw",
			body:     strings.NewReader("\xff\xfe"),
			wantBody: "\xff\xfe",
			wantRaw:  true,
			wantSize: 2,
		},
		{
			name:          "ok/envoy partial body header",
			body:          strings.NewReader("{"),
			headers:       [][2]string{{"X-Envoy-Auth-Partial-Body", "true"}},
			wantBody:      "{",
			wantTruncated: true,
			wantSize:      1,
		},
		{
			name:          "fail/body over the limit is cut and the rest left unread",
			max:           8,
			body:          &countingReader{r: strings.NewReader(strings.Repeat("x", 1<<16))},
			wantBody:      "xxxxxxxx",
			wantTruncated: true,
			wantSize:      -1,
			wantRead:      9,
		},
		{
			name:          "fail/default limit is 1 MiB",
			body:          strings.NewReader(strings.Repeat("y", DefaultMaxBodyBytes+10)),
			wantBody:      strings.Repeat("y", DefaultMaxBodyBytes),
			wantTruncated: true,
			wantSize:      DefaultMaxBodyBytes + 10,
		},
		{
			name:     "ok/largest limit still reads the body",
			max:      math.MaxInt64,
			body:     strings.NewReader("abc"),
			wantBody: "abc",
			wantSize: 3,
		},
		{
			name:       "fail/body read error is 400",
			body:       failingReader{},
			wantStatus: http.StatusBadRequest,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := &fakeChecker{decision: extauthz.Decision{Allowed: true}}
			h, _ := newTestHandler(fc, Config{MaxBodyBytes: tt.max})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, call{method: http.MethodPost, target: "/mcp", body: tt.body, headers: tt.headers}.request())
			req, calls := fc.last()
			if tt.wantStatus != 0 {
				if rec.Code != tt.wantStatus || calls != 0 {
					t.Fatalf("status %d after %d checks, want %d before any", rec.Code, calls, tt.wantStatus)
				}
				return
			}
			if calls != 1 {
				t.Fatalf("checker called %d times", calls)
			}
			if req.Body != tt.wantBody {
				t.Errorf("body = %.40q (%d bytes), want %.40q (%d bytes)", req.Body, len(req.Body), tt.wantBody, len(tt.wantBody))
			}
			if req.Truncated() != tt.wantTruncated || req.RawBody != tt.wantRaw || req.Size != tt.wantSize {
				t.Errorf("truncated %v, raw %v, size %d; want %v, %v, %d",
					req.Truncated(), req.RawBody, req.Size, tt.wantTruncated, tt.wantRaw, tt.wantSize)
			}
			if cr, ok := tt.body.(*countingReader); ok && tt.wantRead > 0 && cr.n > tt.wantRead {
				t.Errorf("read %d bytes of the body, want at most %d", cr.n, tt.wantRead)
			}
		})
	}
}

// FuzzReconstruct feeds arbitrary request lines and forwarded headers
// through reconstruction. It never panics, the path always starts with
// "/", and an untrusted peer's forwarded headers never change what the
// request is said to be.
func FuzzReconstruct(f *testing.F) {
	f.Add("GET", "/mcp?x=1", "DELETE", "/admin", "PUT", "/internal", "192.0.2.66, 10.0.0.1", "evil.example", "https", "198.51.100.1", "203.0.113.7:4444", true)
	f.Add("POST", "/authz/a%2Fb//c", "", "", "", "", "", "", "", "", "[2001:db8::1]:443", true)
	f.Add("GET", "http://h/x#f", "GET", "https://evil/y", "GET", "z", "::ffff:10.1.1.1, [2600::1]:80, junk", "a,b", "HTTPS, http", "[::1]", "[fe80::1%eth0]:1", false)
	f.Add("OPTIONS", "*", "G E T", "#", "", "?q", ",,,", "", "\x00", "", "@", false)
	f.Add("GET", "", "POST", "/authz", "POST", "/authz", "1.2.3.4:99999", "", "", "", "10.9.9.9", true)

	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	h := NewHandler(&fakeChecker{}, Config{PathPrefix: "/authz", TrustedProxies: trusted, MaxBodyBytes: 64}, nil)

	f.Fuzz(func(t *testing.T, method, target, origMethod, origURI, fwdMethod, fwdURI, xff, fwdHost, fwdProto, realIP, remote string, raw bool) {
		if !isToken(method) {
			method = http.MethodGet
		}
		build := func(remote string, forge bool) *http.Request {
			r := &http.Request{
				Method:     method,
				Host:       "mcp.example",
				RemoteAddr: remote,
				Proto:      "HTTP/1.1",
				Header:     http.Header{},
				Body:       http.NoBody,
				URL:        &url.URL{Path: "/"},
			}
			if u, err := url.ParseRequestURI(target); err == nil {
				r.URL = u
			}
			if raw {
				r.RequestURI = target
			}
			r.Header.Set("Content-Type", "application/json")
			if forge {
				r.Header.Set("X-Original-Method", origMethod)
				r.Header.Set("X-Original-URI", origURI)
				r.Header.Set("X-Forwarded-Method", fwdMethod)
				r.Header.Set("X-Forwarded-Uri", fwdURI)
				r.Header.Set("X-Forwarded-For", xff)
				r.Header.Add("X-Forwarded-For", realIP)
				r.Header.Set("X-Forwarded-Host", fwdHost)
				r.Header.Set("X-Forwarded-Proto", fwdProto)
				r.Header.Set("X-Real-IP", realIP)
			}
			return r
		}
		for _, peer := range []string{remote, "203.0.113.9:5555", "10.0.0.2:80", "[2001:db8::2]:80", "[2600::9]:80"} {
			got, err := h.reconstruct(build(peer, true))
			if err == nil && !strings.HasPrefix(got.Path, "/") {
				t.Fatalf("peer %q: path %q does not start with /", peer, got.Path)
			}
			if err == nil && got.ClientIP != "" {
				if _, perr := netip.ParseAddr(got.ClientIP); perr != nil {
					t.Fatalf("peer %q: client ip %q is not an address", peer, got.ClientIP)
				}
			}
			a, _ := parsePeer(peer)
			if h.isTrusted(a) {
				continue
			}
			if err != nil {
				t.Fatalf("untrusted peer %q: %v", peer, err)
			}
			plain, err := h.reconstruct(build(peer, false))
			if err != nil {
				t.Fatalf("untrusted peer %q without forwarded headers: %v", peer, err)
			}
			if g, p := describe(got), describe(plain); g != p {
				t.Fatalf("untrusted peer %q: forwarded headers changed the request:\n got %+v\nwant %+v", peer, g, p)
			}
		}
	})
}
