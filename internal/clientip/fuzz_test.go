package clientip

import (
	"net/http"
	"net/netip"
	"testing"
)

// FuzzForwarded feeds arbitrary X-Forwarded-For lines, X-Real-IP values and
// peers through the resolver. It never panics; what Forwarded returns, when
// ok, is a valid canonical address (unmapped, without a zone) that is not
// a trusted proxy; and a peer that is not trusted is the client whatever
// the headers say.
func FuzzForwarded(f *testing.F) {
	f.Add("192.0.2.66, 198.51.100.7", "10.1.1.1", "198.51.100.20", "10.0.0.2:40000")
	f.Add("10.1.1.1, 10.2.2.2", "", "::ffff:10.9.9.9", "[::ffff:10.0.0.3]:80")
	f.Add("unknown, , [10.3.3.3]:80, [2600::1]:9000", "[2600::2]", "not-an-ip", "[2001:db8::5]:443")
	f.Add("fe80::1%eth0, ::ffff:198.51.100.7", ",,,", "[fe80::2%25lo]:1", "[fe80::1%eth0]:80")
	f.Add("", "", "", "@")
	f.Add("[::ffff:1.2.3.4]", "1.2.3.4:99999", "[1.2.3.4]", "203.0.113.9:5555")

	r := New([]netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("::ffff:192.168.0.0/112"),
		netip.MustParsePrefix("fe80::/10"),
	})
	f.Fuzz(func(t *testing.T, xff1, xff2, realIP, remote string) {
		h := http.Header{}
		h.Add("X-Forwarded-For", xff1)
		h.Add("X-Forwarded-For", xff2)
		h.Add("X-Real-IP", realIP)

		a, ok := r.Forwarded(h)
		if ok {
			if !a.IsValid() || a.Is4In6() || a.Zone() != "" {
				t.Fatalf("Forwarded = %v: not a canonical address", a)
			}
			if r.Trusted(a) {
				t.Fatalf("Forwarded = %v: a trusted proxy", a)
			}
		} else if a.IsValid() {
			t.Fatalf("Forwarded = %v with ok false", a)
		}

		peer, _ := ParsePeer(remote)
		got := r.ClientIP(&http.Request{RemoteAddr: remote, Header: h})
		if got.IsValid() && (got.Is4In6() || got.Zone() != "") {
			t.Fatalf("ClientIP = %v: not a canonical address", got)
		}
		switch {
		case !r.Trusted(peer) && got != peer:
			t.Fatalf("untrusted peer %q: ClientIP = %v, want the peer %v", remote, got, peer)
		case r.Trusted(peer) && ok && got != a:
			t.Fatalf("trusted peer %q: ClientIP = %v, want the forwarded %v", remote, got, a)
		case r.Trusted(peer) && !ok && got != peer:
			t.Fatalf("trusted peer %q, nothing forwarded: ClientIP = %v, want the peer %v", remote, got, peer)
		}
	})
}
