package clientip

import (
	"net/http"
	"net/netip"
	"testing"
)

var testTrusted = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// header builds a Header from name/value pairs, each pair one header line.
func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestClientIP(t *testing.T) {
	tests := []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		header  http.Header
		want    string // "" for an invalid address
	}{
		{
			name:   "ok/untrusted peer ignores forwarded headers",
			remote: "203.0.113.9:5555",
			header: header("X-Forwarded-For", "192.0.2.66", "X-Real-IP", "192.0.2.67"),
			want:   "203.0.113.9",
		},
		{
			name:    "ok/untrusted peer next to a trusted prefix",
			trusted: testTrusted,
			remote:  "11.0.0.1:80",
			header:  header("X-Forwarded-For", "192.0.2.66"),
			want:    "11.0.0.1",
		},
		{
			name:   "ok/zero resolver trusts no proxy",
			remote: "10.0.0.2:40000",
			header: header("X-Forwarded-For", "192.0.2.66"),
			want:   "10.0.0.2",
		},
		{
			name:    "ok/trusted peer: rightmost untrusted entry past trusted hops",
			trusted: testTrusted,
			remote:  "10.0.0.2:40000",
			header:  header("X-Forwarded-For", "192.0.2.66, 198.51.100.7, 10.1.1.1,10.2.2.2"),
			want:    "198.51.100.7",
		},
		{
			name:    "ok/trusted peer: rightmost untrusted entry across header lines",
			trusted: testTrusted,
			remote:  "10.0.0.2:40000",
			header: header(
				"X-Forwarded-For", "192.0.2.66, 198.51.100.7",
				"X-Forwarded-For", "10.1.1.1",
				"X-Forwarded-For", "10.2.2.2, 2001:db8::9",
			),
			want: "198.51.100.7",
		},
		{
			name:    "ok/trusted peer: the last line wins over earlier ones",
			trusted: testTrusted,
			remote:  "10.0.0.2:40000",
			header:  header("X-Forwarded-For", "192.0.2.66", "X-Forwarded-For", "198.51.100.8"),
			want:    "198.51.100.8",
		},
		{
			name:    "ok/garbage entries skipped, ports removed",
			trusted: testTrusted,
			remote:  "10.0.0.2:40000",
			header:  header("X-Forwarded-For", "192.0.2.66, 198.51.100.7:5555, unknown, , [10.3.3.3]:80, 10.2.2.2"),
			want:    "198.51.100.7",
		},
		{
			name:    "ok/garbage only: the peer",
			trusted: testTrusted,
			remote:  "10.0.0.2:40000",
			header:  header("X-Forwarded-For", "unknown, ,, _hidden, 999.1.1.1, [192.0.2.1], [::1"),
			want:    "10.0.0.2",
		},
		{
			name:    "ok/all-trusted chain: x-real-ip",
			trusted: testTrusted,
			remote:  "10.0.0.2:40000",
			header:  header("X-Forwarded-For", "10.1.1.1, 10.2.2.2", "X-Real-IP", "198.51.100.20"),
			want:    "198.51.100.20",
		},
		{
			name:    "ok/all-trusted chain, no x-real-ip: the peer",
			trusted: testTrusted,
			remote:  "10.0.0.2:40000",
			header:  header("X-Forwarded-For", "10.1.1.1, garbage"),
			want:    "10.0.0.2",
		},
		{
			name:    "ok/x-real-ip without x-forwarded-for",
			trusted: testTrusted,
			remote:  "10.0.0.2:40000",
			header:  header("X-Real-IP", " 198.51.100.21 "),
			want:    "198.51.100.21",
		},
		{
			name:    "ok/x-real-ip: the last value",
			trusted: testTrusted,
			remote:  "10.0.0.2:40000",
			header:  header("X-Real-IP", "198.51.100.21", "X-Real-IP", "198.51.100.22"),
			want:    "198.51.100.22",
		},
		{
			name:    "ok/x-real-ip with a port",
			trusted: testTrusted,
			remote:  "10.0.0.2:40000",
			header:  header("X-Real-IP", "[2600::5]:443"),
			want:    "2600::5",
		},
		{
			name:    "ok/x-forwarded-for wins over x-real-ip",
			trusted: testTrusted,
			remote:  "10.0.0.2:40000",
			header:  header("X-Forwarded-For", "198.51.100.7", "X-Real-IP", "198.51.100.20"),
			want:    "198.51.100.7",
		},
		{
			name:    "fail/x-real-ip garbage: the peer",
			trusted: testTrusted,
			remote:  "10.0.0.2:40000",
			header:  header("X-Real-IP", "not-an-ip"),
			want:    "10.0.0.2",
		},
		{
			name:    "fail/x-real-ip naming a trusted proxy: the peer",
			trusted: testTrusted,
			remote:  "10.0.0.2:40000",
			header:  header("X-Real-IP", "::ffff:10.9.9.9"),
			want:    "10.0.0.2",
		},
		{
			name:    "ok/ipv6 trusted peer and prefix, bracketed entry with a port",
			trusted: testTrusted,
			remote:  "[2001:db8::5]:443",
			header:  header("X-Forwarded-For", "2001:db8::99, 2600:1f18::1, [2001:db8:1::6]:9000, 2001:DB8::7"),
			want:    "2600:1f18::1",
		},
		{
			name:    "ok/bracketed ipv6 with a port is the client",
			trusted: testTrusted,
			remote:  "[2001:db8::5]:443",
			header:  header("X-Forwarded-For", "[2600:1f18::2]:9000"),
			want:    "2600:1f18::2",
		},
		{
			name:    "ok/bracketed ipv6 without a port",
			trusted: testTrusted,
			remote:  "[2001:db8::5]:443",
			header:  header("X-Forwarded-For", "[2600:1f18::3]"),
			want:    "2600:1f18::3",
		},
		{
			name:    "fail/bracketed ipv4 is not an address",
			trusted: testTrusted,
			remote:  "10.0.0.2:40000",
			header:  header("X-Forwarded-For", "198.51.100.7, [192.0.2.1]"),
			want:    "198.51.100.7",
		},
		{
			name:    "ok/ipv4-mapped peer matches an ipv4 prefix; mapped entry unmapped",
			trusted: testTrusted,
			remote:  "[::ffff:10.0.0.3]:80",
			header:  header("X-Forwarded-For", "::ffff:198.51.100.7"),
			want:    "198.51.100.7",
		},
		{
			name:    "ok/ipv4-mapped prefix matches an ipv4 peer",
			trusted: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")},
			remote:  "10.0.0.3:80",
			header:  header("X-Forwarded-For", "198.51.100.7, ::ffff:10.4.4.4"),
			want:    "198.51.100.7",
		},
		{
			name:    "ok/untrusted ipv4-mapped peer is unmapped",
			trusted: testTrusted,
			remote:  "[::ffff:203.0.113.9]:80",
			header:  header("X-Forwarded-For", "198.51.100.7"),
			want:    "203.0.113.9",
		},
		{
			name:    "ok/zoned peer matches; zone dropped",
			trusted: []netip.Prefix{netip.MustParsePrefix("fe80::/10")},
			remote:  "[fe80::1%eth0]:80",
			header:  header("X-Forwarded-For", "198.51.100.7"),
			want:    "198.51.100.7",
		},
		{
			name:    "ok/zoned entry: zone dropped",
			trusted: testTrusted,
			remote:  "10.0.0.2:40000",
			header:  header("X-Forwarded-For", "fe80::9%eth1"),
			want:    "fe80::9",
		},
		{
			name:   "ok/untrusted zoned peer: zone dropped",
			remote: "[fe80::1%25eth0]:80",
			want:   "fe80::1",
		},
		{
			name:    "ok/peer without a port",
			trusted: testTrusted,
			remote:  "10.0.0.2",
			header:  header("X-Forwarded-For", "198.51.100.7"),
			want:    "198.51.100.7",
		},
		{
			name:    "ok/unmasked trusted prefix is masked",
			trusted: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")},
			remote:  "10.200.0.1:80",
			header:  header("X-Forwarded-For", "198.51.100.7"),
			want:    "198.51.100.7",
		},
		{
			name:    "fail/invalid trusted prefix is dropped",
			trusted: []netip.Prefix{{}, netip.PrefixFrom(netip.MustParseAddr("10.0.0.0"), 33)},
			remote:  "10.0.0.2:40000",
			header:  header("X-Forwarded-For", "198.51.100.7"),
			want:    "10.0.0.2",
		},
		{
			name:    "fail/unix socket peer is never trusted",
			trusted: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
			remote:  "@",
			header:  header("X-Forwarded-For", "198.51.100.7", "X-Real-IP", "198.51.100.8"),
			want:    "",
		},
		{
			name:    "fail/unix socket path peer is never trusted",
			trusted: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
			remote:  "/run/mcpauthz.sock",
			header:  header("X-Forwarded-For", "198.51.100.7"),
			want:    "",
		},
		{
			name:    "fail/empty remote address",
			trusted: testTrusted,
			header:  header("X-Forwarded-For", "198.51.100.7"),
			want:    "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(tt.trusted)
			req := &http.Request{RemoteAddr: tt.remote, Header: tt.header}
			if req.Header == nil {
				req.Header = http.Header{}
			}
			got := r.ClientIP(req)
			if tt.want == "" {
				if got.IsValid() {
					t.Fatalf("ClientIP = %v, want an invalid address", got)
				}
				return
			}
			if want := netip.MustParseAddr(tt.want); got != want {
				t.Fatalf("ClientIP = %v, want %v", got, want)
			}
		})
	}
}

func TestForwarded(t *testing.T) {
	r := New(testTrusted)
	tests := []struct {
		name   string
		header http.Header
		want   string // "" for not ok
	}{
		{name: "ok/single entry", header: header("X-Forwarded-For", "198.51.100.7"), want: "198.51.100.7"},
		{name: "ok/lower-case header name", header: http.Header{"X-Forwarded-For": {"198.51.100.7"}}, want: "198.51.100.7"},
		{name: "fail/no headers", header: http.Header{}},
		{name: "fail/all trusted", header: header("X-Forwarded-For", "10.1.1.1, 2001:db8::1")},
		{name: "fail/empty entries", header: header("X-Forwarded-For", ", ,", "X-Real-IP", "")},
		{name: "fail/trusted x-real-ip", header: header("X-Real-IP", "10.9.9.9")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := r.Forwarded(tt.header)
			if tt.want == "" {
				if ok || got.IsValid() {
					t.Fatalf("Forwarded = %v, %v; want none", got, ok)
				}
				return
			}
			if want := netip.MustParseAddr(tt.want); !ok || got != want {
				t.Fatalf("Forwarded = %v, %v; want %v", got, ok, want)
			}
		})
	}
}

func TestTrusted(t *testing.T) {
	r := New([]netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("::ffff:192.168.0.0/112"),
		netip.MustParsePrefix("fe80::/10"),
	})
	tests := []struct {
		name string
		addr netip.Addr
		want bool
	}{
		{name: "ok/ipv4 inside", addr: netip.MustParseAddr("10.2.3.4"), want: true},
		{name: "ok/ipv4-mapped address matches an ipv4 prefix", addr: netip.MustParseAddr("::ffff:10.2.3.4"), want: true},
		{name: "ok/ipv4 matches an ipv4-mapped prefix", addr: netip.MustParseAddr("192.168.7.7"), want: true},
		{name: "ok/zoned address matches", addr: netip.MustParseAddr("fe80::1%eth0"), want: true},
		{name: "fail/ipv4 outside", addr: netip.MustParseAddr("11.0.0.1")},
		{name: "fail/ipv6 outside", addr: netip.MustParseAddr("2600::1")},
		{name: "fail/invalid address", addr: netip.Addr{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Trusted(tt.addr); got != tt.want {
				t.Fatalf("Trusted(%v) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
	if (Resolver{}).Trusted(netip.MustParseAddr("10.0.0.1")) {
		t.Error("the zero Resolver trusts an address")
	}
}

func TestParsePeer(t *testing.T) {
	tests := []struct {
		name     string
		remote   string
		wantAddr string // "" for invalid
		wantPort uint16
	}{
		{name: "ok/ipv4 with port", remote: "192.0.2.1:443", wantAddr: "192.0.2.1", wantPort: 443},
		{name: "ok/ipv6 with port", remote: "[2001:db8::1]:8443", wantAddr: "2001:db8::1", wantPort: 8443},
		{name: "ok/ipv4-mapped unmapped", remote: "[::ffff:192.0.2.1]:80", wantAddr: "192.0.2.1", wantPort: 80},
		{name: "ok/zone dropped", remote: "[fe80::1%eth0]:80", wantAddr: "fe80::1", wantPort: 80},
		{name: "ok/address without a port", remote: "192.0.2.1", wantAddr: "192.0.2.1"},
		{name: "fail/unix socket", remote: "@"},
		{name: "fail/socket path", remote: "/run/x.sock"},
		{name: "fail/empty", remote: ""},
		{name: "fail/port out of range", remote: "192.0.2.1:99999"},
		{name: "fail/host name", remote: "localhost:80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, port := ParsePeer(tt.remote)
			if tt.wantAddr == "" {
				if a.IsValid() || port != 0 {
					t.Fatalf("ParsePeer(%q) = %v, %d; want invalid, 0", tt.remote, a, port)
				}
				return
			}
			if want := netip.MustParseAddr(tt.wantAddr); a != want || port != tt.wantPort {
				t.Fatalf("ParsePeer(%q) = %v, %d; want %v, %d", tt.remote, a, port, want, tt.wantPort)
			}
		})
	}
}
