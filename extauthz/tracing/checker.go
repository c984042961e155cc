package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpauthz/mcpauthz/extauthz"
)

// Decider decides requests; *extauthz.Authorizer is one.
type Decider interface {
	Check(ctx context.Context, req *extauthz.Request) (extauthz.Decision, error)
}

// Checker is a Decider that traces each decision in a server span,
// "mcpauthz.check", whose parent is the trace context the request carries
// (traceparent and tracestate; a new trace without one).
type Checker struct {
	next   Decider
	tracer trace.Tracer
	prop   propagation.TraceContext
}

var _ Decider = (*Checker)(nil)

// NewChecker returns next traced with tp (nil: not traced).
func NewChecker(next Decider, tp trace.TracerProvider) *Checker {
	return &Checker{next: next, tracer: tracer(tp)}
}

// Check decides req with the Decider it wraps, in a span. The span says
// the decision's id, whether it allowed, the status and reason of a
// denial, the transport and the HTTP method; its status is an error when
// the decision came from a fault.
func (c *Checker) Check(ctx context.Context, req *extauthz.Request) (d extauthz.Decision, err error) {
	if c.tracer == nil {
		return c.next.Check(ctx, req)
	}
	// The headers are lower case, as the propagator asks them; it only
	// reads them.
	ctx = c.prop.Extract(ctx, propagation.MapCarrier(req.Headers))
	ctx, span := c.tracer.Start(ctx, CheckSpan, trace.WithSpanKind(trace.SpanKindServer))
	decided := false
	defer func() {
		if !decided {
			// The Decider panicked; the transport turns that into a denial.
			span.SetStatus(codes.Error, "panic while deciding")
		}
		span.End()
	}()
	d, err = c.next.Check(ctx, req)
	decided = true
	if !span.IsRecording() {
		return d, err
	}
	attrs := make([]attribute.KeyValue, 0, 6)
	attrs = append(attrs, keyDecisionID.String(d.DecisionID), keyAllowed.Bool(d.Allowed))
	if d.Reason != "" {
		attrs = append(attrs, keyReason.String(d.Reason))
	}
	if !d.Allowed {
		attrs = append(attrs, keyStatus.Int(d.Status))
	}
	if req.Transport != "" {
		attrs = append(attrs, keyTransport.String(req.Transport))
	}
	if req.Method != "" {
		attrs = append(attrs, keyHTTPMethod.String(req.Method))
	}
	span.SetAttributes(attrs...)
	if err != nil {
		fault(span, err)
	}
	return d, err
}
