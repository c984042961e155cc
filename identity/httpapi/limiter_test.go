package httpapi

import (
	"net/netip"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TestLimiterMemoryIsBounded: a flood of addresses never grows the table
// past its bound and never shuts a newcomer out.
func TestLimiterMemoryIsBounded(t *testing.T) {
	l := newLimiter(Rate{Every: time.Minute, Burst: 1}, 64)
	for i := range 10000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if ok, _ := l.allow(a, t0); !ok && i%256 < aggregate {
			t.Fatalf("newcomer %v refused while the table is full", a)
		}
	}
	if n := l.buckets.Len(); n > 64 {
		t.Fatalf("%d buckets remembered, bound 64", n)
	}
	if ok, _ := l.allow(netip.MustParseAddr("192.0.2.1"), t0); !ok {
		t.Fatal("a newcomer after the flood is refused")
	}
}

// TestLimiterBlocks: rotating through addresses of one block buys the
// block's budget, no more; another block is not affected.
func TestLimiterBlocks(t *testing.T) {
	for _, c := range []struct {
		name   string
		addr   func(i int) netip.Addr
		admits int
	}{
		{"ok/one address gets the burst", func(int) netip.Addr { return netip.MustParseAddr("192.0.2.1") }, 2},
		{"ok/one IPv6 /64 is one client", func(i int) netip.Addr {
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 15: byte(i)})
		}, 2},
		{"fail/rotating addresses in a /24 gets the block's budget", func(i int) netip.Addr {
			return netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		}, 2 * aggregate},
		{"fail/rotating /64s in a /48 gets the block's budget", func(i int) netip.Addr {
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, byte(i), 15: 1})
		}, 2 * aggregate},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newLimiter(Rate{Every: time.Minute, Burst: 2}, 1024)
			admitted := 0
			for i := range 200 {
				if ok, _ := l.allow(c.addr(i), t0); ok {
					admitted++
				}
			}
			if admitted != c.admits {
				t.Fatalf("%d admitted, want %d", admitted, c.admits)
			}
			if ok, _ := l.allow(netip.MustParseAddr("203.0.113.9"), t0); !ok {
				t.Fatal("another block is refused")
			}
			// A refusal took nothing: after one interval of the block's
			// rate exactly one more is admitted.
			ok, wait := l.allow(c.addr(0), t0)
			if ok || wait <= 0 {
				t.Fatalf("over the budget: ok=%v wait=%v", ok, wait)
			}
			if ok, _ := l.allow(c.addr(0), t0.Add(wait)); !ok {
				t.Fatalf("refused after waiting the %v it was told", wait)
			}
		})
	}
}
