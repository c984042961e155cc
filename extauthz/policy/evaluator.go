// Package policy evaluates mcpauthz decisions with the embedded OPA: it
// builds the policy input as an OPA AST value straight from the request
// (OPA-Envoy's input shape plus identity and MCP), evaluates the active
// bundle, and maps the result to a Decision the way OPA-Envoy maps it.
package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz"
)

// Evaluator is the extauthz.PolicyEvaluator backed by a bundles.Engine.
type Evaluator struct {
	engine    *bundles.Engine
	now       func() time.Time
	fullInput bool
	shadow    *Shadow
}

var _ extauthz.PolicyEvaluator = (*Evaluator)(nil)

// Option configures an Evaluator.
type Option func(*Evaluator)

// WithClock sets the clock policies see as time.now_ns (default time.Now).
func WithClock(now func() time.Time) Option { return func(e *Evaluator) { e.now = now } }

// WithFullInput builds the whole input document for every decision instead
// of only the parts the active policy reads.
func WithFullInput(full bool) Option { return func(e *Evaluator) { e.fullInput = full } }

// WithShadow evaluates every decision with the shadow's candidate bundle
// too, in the background, counting and logging the decisions it would
// change. The shadow's Run must be running.
func WithShadow(s *Shadow) Option { return func(e *Evaluator) { e.shadow = s } }

// NewEvaluator returns an evaluator for the engine's active bundle.
func NewEvaluator(engine *bundles.Engine, opts ...Option) *Evaluator {
	e := &Evaluator{engine: engine, now: time.Now}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Evaluate decides one request (or one message of a batch).
func (e *Evaluator) Evaluate(ctx context.Context, in *extauthz.PolicyInput) (extauthz.PolicyResult, error) {
	now := e.now()
	res, r, err := e.evaluate(ctx, in, now)
	if e.shadow != nil && res.Revision != "" { // a bundle was active
		e.shadow.offer(in, now, r, err == nil && res.Decision.Allowed, res.Revision)
	}
	return res, err
}

// evaluate decides in at now; it returns the policy's raw result too, empty
// when there is none.
func (e *Evaluator) evaluate(ctx context.Context, in *extauthz.PolicyInput, now time.Time) (extauthz.PolicyResult, result, error) {
	res := extauthz.PolicyResult{Path: e.engine.Path()}
	snap := e.engine.Active()
	if snap == nil {
		return res, result{}, bundles.ErrNoBundle
	}
	res.Revision = snap.Revision
	use := snap.InputUse()
	if e.fullInput {
		use = bundles.AllInput
	}
	if in.Record {
		res.Input = &inputDoc{in: *in, now: now}
	}

	var key *[]byte
	if snap.Cacheable() {
		key = keyBuffers.Get().(*[]byte)
		defer keyBuffers.Put(key)
		*key = inputKey((*key)[:0], in, use, now)
		if v, ok := snap.Cached(*key); ok {
			c := v.(*cached)
			if in.Record {
				res.Result = c.result
			}
			res.Decision = c.decision
			return res, c.result, nil
		}
	}

	t, err := snap.Eval(ctx, buildInput(in, use, now), now)
	switch {
	case errors.Is(err, bundles.ErrUndefined):
		return res, result{}, fmt.Errorf("%w at %s", extauthz.ErrPolicyUndefined, res.Path)
	case err != nil:
		return res, result{}, err
	}
	r := result{term: t}
	if in.Record {
		res.Result = r
	}
	res.Decision, err = decision(t.Value)
	if err == nil && key != nil {
		snap.Remember(*key, &cached{result: compact(t), decision: clip(res.Decision)})
	}
	if err != nil {
		return res, result{}, err
	}
	return res, r, nil
}

// cached is a remembered decision. It is shared by every request with the
// same key, so neither part may be modified.
type cached struct {
	result   result
	decision extauthz.Decision
}

// keyBuffers pools the buffers cache keys are built in.
var keyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// clip makes a shared decision safe to append to: every append reallocates.
func clip(d extauthz.Decision) extauthz.Decision {
	d.Headers = slices.Clip(d.Headers)
	d.ResponseHeadersToAdd = slices.Clip(d.ResponseHeadersToAdd)
	d.RequestHeadersToRemove = slices.Clip(d.RequestHeadersToRemove)
	d.QueryParametersToSet = slices.Clip(d.QueryParametersToSet)
	d.QueryParametersToRemove = slices.Clip(d.QueryParametersToRemove)
	return d
}
