package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpauthz/mcpauthz/extauthz"
)

// PolicyEvaluator is an extauthz.PolicyEvaluator that traces each
// evaluation in a span, "mcpauthz.policy", saying the decision path, the
// bundle revision, the MCP method and tool (or prompt) of the message
// decided, the answer and what it asks the limiter to take. The MCP method
// and tool of a request's first message are also named on the span the
// evaluation was called under — the decision's.
type PolicyEvaluator struct {
	next   extauthz.PolicyEvaluator
	tracer trace.Tracer
}

var _ extauthz.PolicyEvaluator = (*PolicyEvaluator)(nil)

// NewPolicyEvaluator returns next traced with tp (nil: not traced).
func NewPolicyEvaluator(next extauthz.PolicyEvaluator, tp trace.TracerProvider) *PolicyEvaluator {
	return &PolicyEvaluator{next: next, tracer: tracer(tp)}
}

// Evaluate evaluates in with the evaluator it wraps, in a span.
func (p *PolicyEvaluator) Evaluate(ctx context.Context, in *extauthz.PolicyInput) (extauthz.PolicyResult, error) {
	if p.tracer == nil {
		return p.next.Evaluate(ctx, in)
	}
	parent := trace.SpanFromContext(ctx)
	ctx, span := p.tracer.Start(ctx, PolicySpan)
	defer span.End()
	r, err := p.next.Evaluate(ctx, in)
	if !span.IsRecording() {
		return r, err
	}
	attrs := make([]attribute.KeyValue, 0, 10)
	if r.Path != "" {
		attrs = append(attrs, keyPolicyPath.String(r.Path))
	}
	if r.Revision != "" {
		attrs = append(attrs, keyPolicyRevision.String(r.Revision))
	}
	if m := in.Message; m != nil {
		named := mcpAttrs(m.Method, m.Tool, m.Prompt)
		attrs = append(attrs, named...)
		if req := in.MCP; req != nil && len(req.Messages) > 0 && m == &req.Messages[0] {
			if req.Batch {
				named = append(named, keyMCPMessages.Int(len(req.Messages)))
			}
			parent.SetAttributes(named...)
		}
	}
	if err != nil {
		span.SetAttributes(attrs...)
		fault(span, err)
		return r, err
	}
	d := &r.Decision
	attrs = append(attrs, keyAllowed.Bool(d.Allowed))
	if d.Reason != "" {
		attrs = append(attrs, keyReason.String(d.Reason))
	}
	if !d.Allowed {
		attrs = append(attrs, keyStatus.Int(d.Status))
	}
	if n := len(d.Take.Limits); n > 0 {
		attrs = append(attrs, keyLimits.Int(n))
	}
	if n := len(d.Take.Quotas); n > 0 {
		attrs = append(attrs, keyQuotas.Int(n))
	}
	if n := len(d.Leases); n > 0 {
		attrs = append(attrs, keyLeases.Int(n))
	}
	span.SetAttributes(attrs...)
	return r, err
}

// mcpAttrs are the attributes naming an MCP message: its method and the
// tool or prompt it names (never its arguments or the resource URI).
func mcpAttrs(method, tool, prompt string) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 3)
	attrs = append(attrs, keyMCPMethod.String(method))
	if tool != "" {
		attrs = append(attrs, keyMCPTool.String(tool))
	}
	if prompt != "" {
		attrs = append(attrs, keyMCPPrompt.String(prompt))
	}
	return attrs
}
