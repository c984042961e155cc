package bundles

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
)

// DefaultDecisionCacheSize is the number of decisions a snapshot remembers
// unless configured.
const DefaultDecisionCacheSize = 16384

// timeDependent lists builtins whose result depends on the clock though OPA
// does not mark them nondeterministic: they verify certificates against the
// current time.
var timeDependent = map[string]bool{
	"crypto.x509.parse_and_verify_certificates":              true,
	"crypto.x509.parse_and_verify_certificates_with_options": true,
}

// pure reports whether the compiled policy is a function of its input and
// data alone: it calls no builtin that reads the clock, randomness, the
// network or the runtime. Every module counts, tests included.
func pure(c *ast.Compiler) bool {
	ok := true
	vis := ast.NewGenericVisitor(func(x any) bool {
		if !ok {
			return true
		}
		var op ast.Ref
		switch x := x.(type) {
		case *ast.Expr:
			if x.IsCall() {
				op = x.Operator()
			}
		case ast.Call: // a call nested in a term
			if len(x) > 0 {
				op, _ = x[0].Value.(ast.Ref)
			}
		}
		if op == nil {
			return false
		}
		name := op.String()
		if b, known := ast.BuiltinMap[name]; known && (b.Nondeterministic || timeDependent[name]) {
			ok = false
			return true
		}
		return false
	})
	for _, m := range c.Modules {
		vis.Walk(m)
	}
	return ok
}

// worthCaching reports whether decisions are likely to repeat: not when the
// policy reads the whole input or values unique to each request.
func worthCaching(use *InputUse) bool {
	if use.Whole() {
		return false
	}
	attrs := use.Child("attributes")
	req := attrs.Child("request")
	http := req.Child("http")
	headers := http.Child("headers")
	for _, u := range []*InputUse{
		attrs.Child("source").Child("address").Child("socketAddress").Child("portValue"),
		req.Child("time"), http.Child("id"), http.Child("body"), http.Child("rawBody"),
		headers.Child("x-request-id"), headers.Child("traceparent"),
		// The JSON-RPC id, which a client makes unique per request.
		use.Child("mcp").Child("id"), use.Child("parsed_body").Child("id"),
	} {
		if u != nil {
			return false
		}
	}
	return !attrs.Whole() && !req.Whole() && !http.Whole() && !headers.Whole()
}

// decisionCache remembers the decisions of one snapshot, keyed by an
// encoding of the whole (pruned) input the policy saw, which the evaluator
// computes. It is used only for pure policies, for which the same input
// yields the same decision. Keys are compared in full.
type decisionCache struct {
	shards   [cacheShards]cacheShard
	perShard int
	counts   *cacheCounts // the engine's, over all its snapshots
}

// cacheCounts count decision cache lookups.
type cacheCounts struct {
	hits, misses atomic.Uint64
}

const cacheShards = 32

type cacheShard struct {
	mu sync.RWMutex
	m  map[string]any
}

func newDecisionCache(size int, counts *cacheCounts) *decisionCache {
	c := &decisionCache{perShard: max(size/cacheShards, 1), counts: counts}
	for i := range c.shards {
		c.shards[i].m = make(map[string]any)
	}
	return c
}

func (c *decisionCache) shard(key []byte) *cacheShard {
	return &c.shards[maphash.Bytes(cacheSeed, key)%cacheShards]
}

var cacheSeed = maphash.MakeSeed()

func (c *decisionCache) get(key []byte) (any, bool) {
	s := c.shard(key)
	s.mu.RLock()
	v, ok := s.m[string(key)]
	s.mu.RUnlock()
	if ok {
		c.counts.hits.Add(1)
	} else {
		c.counts.misses.Add(1)
	}
	return v, ok
}

func (c *decisionCache) put(key []byte, v any) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[string(key)]; ok {
		return
	}
	if len(s.m) >= c.perShard {
		for k := range s.m { // map iteration order is random: evict any
			delete(s.m, k)
			break
		}
	}
	s.m[string(key)] = v
}

// CacheStats counts an engine's decision cache lookups, over all the
// snapshots it activated.
type CacheStats struct {
	Enabled      bool // the active snapshot remembers decisions
	Hits, Misses uint64
}
