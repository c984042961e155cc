package extauthz

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync/atomic"
)

// DecisionIDs generates decision ids: UUID-formatted (RFC 9562 version 8)
// strings made of a random per-process prefix and a counter, so they are
// unique without a syscall per decision. They identify decisions; they are
// not secrets.
type DecisionIDs struct {
	prefix [8]byte
	n      atomic.Uint64
}

// NewDecisionIDs seeds a generator from random (crypto/rand.Reader in
// production).
func NewDecisionIDs(random io.Reader) (*DecisionIDs, error) {
	g := &DecisionIDs{}
	var seed [16]byte
	if _, err := io.ReadFull(random, seed[:]); err != nil {
		return nil, fmt.Errorf("seeding decision ids: %w", err)
	}
	copy(g.prefix[:], seed[:8])
	g.n.Store(binary.BigEndian.Uint64(seed[8:]) >> 1)
	return g, nil
}

// Next returns a new decision id.
func (g *DecisionIDs) Next() string {
	var b [16]byte
	copy(b[:8], g.prefix[:])
	binary.BigEndian.PutUint64(b[8:], g.n.Add(1))
	b[6] = b[6]&0x0f | 0x80 // version 8
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	const hexDigits = "0123456789abcdef"
	var s [36]byte
	j := 0
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j] = hexDigits[c>>4]
		s[j+1] = hexDigits[c&0xf]
		j += 2
	}
	return string(s[:])
}
