package credentials

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// memo is a bounded, least-recently-used memory of lookups. Entries live
// until their own expiry and at most maxAge after they were stored, which
// the caller shortens while revocation events may be missed.
//
// Evicting bumps a generation: a lookup that started before an eviction
// does not store its (possibly revoked) result after it, so an event
// cannot be undone by a slow read racing it.
type memo[K comparable, V any] struct {
	mu  sync.Mutex
	lru *simplelru.LRU[K, memoEntry[V]]
	gen uint64
}

type memoEntry[V any] struct {
	v       V
	stored  time.Time
	expires time.Time
}

func newMemo[K comparable, V any](size int) *memo[K, V] {
	lru, err := simplelru.NewLRU[K, memoEntry[V]](max(size, 1), nil)
	if err != nil {
		panic(err) // size is at least 1
	}
	return &memo[K, V]{lru: lru}
}

// get returns the value stored for k if it is still fresh at now: before
// its expiry and younger than maxAge.
func (m *memo[K, V]) get(k K, now time.Time, maxAge time.Duration) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.lru.Get(k)
	if ok && now.Before(e.expires) && now.Sub(e.stored) < maxAge {
		return e.v, true
	}
	if ok {
		m.lru.Remove(k)
	}
	var zero V
	return zero, false
}

// generation is what put must be given: read it before the lookup whose
// result is stored.
func (m *memo[K, V]) generation() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}

// put stores v for k until expires, unless an eviction happened since gen
// was read.
func (m *memo[K, V]) put(k K, v V, gen uint64, now, expires time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if gen == m.gen {
		m.lru.Add(k, memoEntry[V]{v: v, stored: now, expires: expires})
	}
}

// evict removes the entries drop selects (every entry for a nil drop).
func (m *memo[K, V]) evict(drop func(K, V) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	if drop == nil {
		m.lru.Purge()
		return
	}
	for _, k := range m.lru.Keys() {
		if e, ok := m.lru.Peek(k); ok && drop(k, e.v) {
			m.lru.Remove(k)
		}
	}
}

func (m *memo[K, V]) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}
