package bundles

import (
	"context"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// ruleCache is the evaluator's cache of rule results for one evaluation
// (topdown.VirtualCache). OPA's default is a trie of hash maps, sized for
// large policies; a decision touches a handful of rules, so a flat list
// searched linearly costs less, and instances are pooled so an evaluation
// allocates nothing for it.
type ruleCache struct {
	frames  []int // start index in entries of each pushed frame
	entries []cacheEntry
	terms   []*ast.Term // backing store for the refs of entries
	cancel  ctxCancel   // the evaluation's cancellation, pooled with it
}

type cacheEntry struct {
	start, end int // the entry's ref is terms[start:end]
	hash       int // the ref's hash, compared before the ref
	value      *ast.Term
	undefined  bool
}

var _ topdown.VirtualCache = (*ruleCache)(nil)

var ruleCaches = sync.Pool{New: func() any { return &ruleCache{} }}

func getRuleCache() *ruleCache {
	c := ruleCaches.Get().(*ruleCache)
	c.frames = append(c.frames, 0)
	return c
}

func putRuleCache(c *ruleCache) {
	clear(c.entries)
	clear(c.terms)
	c.cancel = ctxCancel{}
	c.frames, c.entries, c.terms = c.frames[:0], c.entries[:0], c.terms[:0]
	ruleCaches.Put(c)
}

func (c *ruleCache) Push() { c.frames = append(c.frames, len(c.entries)) }

func (c *ruleCache) Pop() {
	start := c.frames[len(c.frames)-1]
	c.frames = c.frames[:len(c.frames)-1]
	if start < len(c.entries) {
		clear(c.entries[start:])
		c.entries = c.entries[:start]
	}
}

// find returns the index of ref's entry in the current frame, or -1. A
// function's results are cached under refs holding its arguments, often
// objects, so refs are told apart by hash before they are compared.
func (c *ruleCache) find(ref ast.Ref, hash int) int {
	for i := len(c.entries) - 1; i >= c.frames[len(c.frames)-1]; i-- {
		e := &c.entries[i]
		if e.hash == hash && e.end-e.start == len(ref) && ast.Ref(c.terms[e.start:e.end]).Equal(ref) {
			return i
		}
	}
	return -1
}

// Get returns the cached value of ref in the current frame: (v, false)
// when cached, (nil, true) when cached as undefined, (nil, false) when not
// cached.
func (c *ruleCache) Get(ref ast.Ref) (*ast.Term, bool) {
	i := c.find(ref, ref.Hash())
	if i < 0 {
		return nil, false
	}
	if c.entries[i].undefined {
		return nil, true
	}
	return c.entries[i].value, false
}

// Put caches value (nil for undefined) for ref in the current frame. The
// ref's terms are copied: callers reuse the slice.
func (c *ruleCache) Put(ref ast.Ref, value *ast.Term) {
	hash := ref.Hash()
	if i := c.find(ref, hash); i >= 0 {
		e := &c.entries[i]
		if value != nil {
			e.value, e.undefined = value, false
		} else {
			e.value, e.undefined = nil, true
		}
		return
	}
	start := len(c.terms)
	c.terms = append(c.terms, ref...)
	c.entries = append(c.entries, cacheEntry{start: start, end: len(c.terms), hash: hash, value: value, undefined: value == nil})
}

// Keys returns the refs with values cached in the current frame.
func (c *ruleCache) Keys() []ast.Ref {
	var keys []ast.Ref
	for i := c.frames[len(c.frames)-1]; i < len(c.entries); i++ {
		e := &c.entries[i]
		if e.value != nil {
			keys = append(keys, append(ast.Ref(nil), c.terms[e.start:e.end]...))
		}
	}
	return keys
}

// ctxCancel tells the evaluator to stop once the context is done. It
// polls ctx.Err, every few steps, rather than waiting on ctx.Done: no
// goroutine or callback per evaluation, and no timer armed by asking for
// Done.
type ctxCancel struct {
	ctx   context.Context
	polls uint32
	done  bool
}

var _ topdown.Cancel = (*ctxCancel)(nil)

// pollEvery is how many evaluation steps pass between looks at the context.
const pollEvery = 16

func (c *ctxCancel) Cancel() { c.done = true }

func (c *ctxCancel) Cancelled() bool {
	if c.done {
		return true
	}
	c.polls++
	if c.polls%pollEvery == 0 && c.ctx.Err() != nil {
		c.done = true
	}
	return c.done
}
