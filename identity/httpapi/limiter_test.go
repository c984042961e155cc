package httpapi

import (
	"net/netip"
	"testing"
	"time"
)

// TestLimiterMemoryIsBounded: a flood of addresses never grows the table
// past its bound, and never resets a limited address's bucket.
func TestLimiterMemoryIsBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(Rate{Every: time.Minute, Burst: 1}, 4)
	victim := netip.MustParseAddr("192.0.2.1")
	if ok, _ := l.allow(victim, now); !ok {
		t.Fatal("first attempt refused")
	}
	for i := range 100 {
		l.allow(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), now.Add(time.Duration(i)*10*time.Millisecond))
	}
	if n := len(l.byKey); n > 4 {
		t.Fatalf("%d addresses remembered, bound 4", n)
	}
	if ok, _ := l.allow(victim, now.Add(2*time.Second)); ok {
		t.Fatal("the flood reset a limited address")
	}
	// Once buckets have refilled, the sweep makes room for newcomers.
	later := now.Add(2 * time.Minute)
	if ok, _ := l.allow(netip.MustParseAddr("203.0.113.1"), later); !ok {
		t.Fatal("a newcomer is refused after every bucket refilled")
	}
}

func TestClientKey(t *testing.T) {
	for _, c := range []struct {
		name, a, b string
		same       bool
	}{
		{"ok/one IPv6 /64 is one client", "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{"ok/IPv6 /64s apart are two", "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"ok/IPv4 addresses are each their own", "192.0.2.1", "192.0.2.2", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ka, kb := clientKey(netip.MustParseAddr(c.a)), clientKey(netip.MustParseAddr(c.b))
			if (ka == kb) != c.same {
				t.Errorf("key(%s)=%v key(%s)=%v", c.a, ka, c.b, kb)
			}
		})
	}
}
