// Package clientip owns resolving a request's client address from trusted
// proxy hops: the TCP peer, or — only when the peer is one of the
// configured trusted proxies — the address those proxies forward in
// X-Forwarded-For, walked from the right past the proxies' own hops, with
// X-Real-IP as the fallback. Every address it returns is canonical: IPv4
// rather than IPv4-mapped IPv6, and without a zone, so one host has one
// spelling for audit records and per-IP limits.
package clientip

import (
	"net/http"
	"net/netip"
	"strings"
)

// Header names in http.CanonicalHeaderKey form.
const (
	forwardedForHeader = "X-Forwarded-For"
	realIPHeader       = "X-Real-Ip"
)

// Resolver resolves client addresses behind a set of trusted proxies. It
// is immutable and safe for concurrent use; the zero value trusts no
// proxy.
type Resolver struct {
	trusted []netip.Prefix // masked; IPv4-mapped prefixes as IPv4
}

// New returns a Resolver trusting the peers inside the given prefixes.
// Prefixes are masked, IPv4-mapped IPv6 prefixes become IPv4 ones, and
// invalid prefixes are dropped. The slice is not retained.
func New(trusted []netip.Prefix) Resolver {
	out := make([]netip.Prefix, 0, len(trusted))
	for _, p := range trusted {
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return Resolver{trusted: out}
}

// Trusted reports whether a is inside one of the trusted prefixes. An
// invalid address (a peer that is not an IP address) is never trusted.
func (r Resolver) Trusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = canonical(a)
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP returns the client address of a request received from
// req.RemoteAddr: the peer itself, unless the peer is a trusted proxy that
// forwards a client address (see Forwarded). It is invalid when the peer
// is not an IP address, such as a Unix socket.
func (r Resolver) ClientIP(req *http.Request) netip.Addr {
	peer, _ := ParsePeer(req.RemoteAddr)
	if r.Trusted(peer) {
		if a, ok := r.Forwarded(req.Header); ok {
			return a
		}
	}
	return peer
}

// Forwarded returns the client address the forwarding headers name. It
// walks X-Forwarded-For from the right — across all its header lines,
// last line first — past the hops that are trusted proxies themselves, to
// the first address that is not: the last hop a trusted proxy vouches
// for. Entries that are not addresses are skipped. Without one it falls
// back to the last X-Real-IP. The result is never a trusted address;
// ok is false when the headers name no other.
//
// Forwarded believes the headers: call it only for a request whose peer
// is Trusted, as ClientIP does.
func (r Resolver) Forwarded(h http.Header) (netip.Addr, bool) {
	lines := h.Values(forwardedForHeader)
	for i := len(lines) - 1; i >= 0; i-- {
		rest := lines[i]
		for rest != "" {
			entry := rest
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				entry, rest = rest[j+1:], rest[:j]
			} else {
				rest = ""
			}
			if a, ok := parseIP(entry); ok && !r.Trusted(a) {
				return a, true
			}
		}
	}
	if vals := h.Values(realIPHeader); len(vals) > 0 {
		// One of our own proxies here is not the client either: the
		// proxy setting the header had another of ours as its peer.
		if a, ok := parseIP(vals[len(vals)-1]); ok && !r.Trusted(a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// ParsePeer parses http.Request.RemoteAddr ("192.0.2.1:443",
// "[2001:db8::1%eth0]:443", or an address without a port) into a canonical
// address and its port. A peer that is not an IP address (a Unix socket, a
// pipe) is returned invalid, and so is never trusted.
func ParsePeer(remoteAddr string) (netip.Addr, uint16) {
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		return canonical(ap.Addr()), ap.Port()
	}
	if a, err := netip.ParseAddr(remoteAddr); err == nil {
		return canonical(a), 0
	}
	return netip.Addr{}, 0
}

// parseIP parses one forwarded address: "192.0.2.1", "2001:db8::1",
// "192.0.2.1:443", "[2001:db8::1]:443" or "[2001:db8::1]", with spaces
// around it.
func parseIP(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return canonical(a), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return canonical(ap.Addr()), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() {
			return canonical(a), true
		}
	}
	return netip.Addr{}, false
}

// canonical drops the zone and turns IPv4-mapped IPv6 addresses into IPv4,
// so one address has one spelling and matches IPv4 prefixes.
func canonical(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}
