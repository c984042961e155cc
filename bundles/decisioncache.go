package bundles

import (
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
	} {
		if u != nil {
			return false
		}
	}
	return !attrs.Whole() && !req.Whole() && !http.Whole() && !headers.Whole()
}

// decisionCache remembers the decisions of one snapshot, keyed by the
// whole (pruned) input the policy saw. It is used only for pure policies,
// for which the same input yields the same decision. Lookups compare inputs
// in full: a hash match alone never returns a decision.
type decisionCache struct {
	shards   [cacheShards]cacheShard
	perShard int
	hits     atomic.Uint64
	misses   atomic.Uint64
}

const (
	cacheShards = 32
	// maxBucket bounds the inputs kept per hash, so crafted collisions
	// cannot make a lookup scan far.
	maxBucket = 4
)

type cacheShard struct {
	mu sync.RWMutex
	m  map[int][]decisionEntry
	n  int
}

type decisionEntry struct {
	input, result *ast.Term
}

func newDecisionCache(size int) *decisionCache {
	c := &decisionCache{perShard: max(size/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[int][]decisionEntry)
	}
	return c
}

func (c *decisionCache) shard(h int) *cacheShard {
	return &c.shards[uint(h)%cacheShards]
}

func (c *decisionCache) get(input *ast.Term) *ast.Term {
	h := input.Hash()
	s := c.shard(h)
	s.mu.RLock()
	for _, e := range s.m[h] {
		if e.input.Equal(input) {
			s.mu.RUnlock()
			c.hits.Add(1)
			return e.result
		}
	}
	s.mu.RUnlock()
	c.misses.Add(1)
	return nil
}

func (c *decisionCache) put(input, result *ast.Term) {
	h := input.Hash()
	s := c.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	bucket := s.m[h]
	for _, e := range bucket {
		if e.input.Equal(input) {
			return
		}
	}
	if len(bucket) >= maxBucket {
		bucket[0] = decisionEntry{input, result}
		return
	}
	if s.n >= c.perShard {
		// Evict an arbitrary bucket: map iteration order is random.
		for k, b := range s.m {
			s.n -= len(b)
			delete(s.m, k)
			break
		}
	}
	s.m[h] = append(bucket, decisionEntry{input, result})
	s.n++
}

// CacheStats counts decision cache lookups of a snapshot.
type CacheStats struct {
	Enabled      bool
	Hits, Misses uint64
}
