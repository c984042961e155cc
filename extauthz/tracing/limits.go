package tracing

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpauthz/mcpauthz/quotas"
)

// Limiter is a quotas.Limiter that traces each Take in a span,
// "mcpauthz.limits", saying how many limits and quotas were taken, whether
// they admitted the request, whether the shared state was out of reach
// (fallback) and, on a refusal, the wait asked for. Limit keys, which name
// tenants and users, are left out.
type Limiter struct {
	next   quotas.Limiter
	tracer trace.Tracer
}

var _ quotas.Limiter = (*Limiter)(nil)

// NewLimiter returns next traced with tp (nil: not traced).
func NewLimiter(next quotas.Limiter, tp trace.TracerProvider) *Limiter {
	return &Limiter{next: next, tracer: tracer(tp)}
}

// Take takes req with the limiter it wraps, in a span.
func (l *Limiter) Take(ctx context.Context, req quotas.Request) (quotas.Result, error) {
	if l.tracer == nil {
		return l.next.Take(ctx, req)
	}
	ctx, span := l.tracer.Start(ctx, LimitsSpan)
	defer span.End()
	res, err := l.next.Take(ctx, req)
	if !span.IsRecording() {
		return res, err
	}
	attrs := make([]attribute.KeyValue, 0, 5)
	attrs = append(attrs, keyLimits.Int(len(req.Limits)), keyQuotas.Int(len(req.Quotas)))
	if err != nil {
		span.SetAttributes(attrs...)
		fault(span, err)
		return res, err
	}
	attrs = append(attrs, keyAllowed.Bool(res.Allowed), keyFallback.Bool(res.Fallback))
	if !res.Allowed {
		attrs = append(attrs, retryAfter(res.RetryAfter))
	}
	span.SetAttributes(attrs...)
	return res, err
}

// Leaser is a quotas.Leaser that traces each Acquire in a span,
// "mcpauthz.leases", saying how many leases were asked for, whether they
// admitted the request and, on a refusal, the wait asked for; and each
// Release in a span, "mcpauthz.leases.release". Lease keys are left out.
type Leaser struct {
	next   quotas.Leaser
	tracer trace.Tracer
}

var _ quotas.Leaser = (*Leaser)(nil)

// NewLeaser returns next traced with tp (nil: not traced).
func NewLeaser(next quotas.Leaser, tp trace.TracerProvider) *Leaser {
	return &Leaser{next: next, tracer: tracer(tp)}
}

// Acquire acquires leases with the leaser it wraps, in a span.
func (l *Leaser) Acquire(ctx context.Context, id string, leases []quotas.Lease) (quotas.LeaseResult, error) {
	if l.tracer == nil {
		return l.next.Acquire(ctx, id, leases)
	}
	ctx, span := l.tracer.Start(ctx, LeasesSpan)
	defer span.End()
	res, err := l.next.Acquire(ctx, id, leases)
	if !span.IsRecording() {
		return res, err
	}
	span.SetAttributes(keyLeases.Int(len(leases)))
	switch {
	case err != nil:
		fault(span, err)
	case res.Allowed:
		span.SetAttributes(keyAllowed.Bool(true))
	default:
		span.SetAttributes(keyAllowed.Bool(false), retryAfter(res.RetryAfter))
	}
	return res, err
}

// Release releases the id's leases on keys with the leaser it wraps, in a
// span.
func (l *Leaser) Release(ctx context.Context, id string, keys []string) error {
	if l.tracer == nil {
		return l.next.Release(ctx, id, keys)
	}
	ctx, span := l.tracer.Start(ctx, ReleaseSpan)
	defer span.End()
	err := l.next.Release(ctx, id, keys)
	if span.IsRecording() {
		span.SetAttributes(keyLeases.Int(len(keys)))
		if err != nil {
			fault(span, err)
		}
	}
	return err
}

func retryAfter(d time.Duration) attribute.KeyValue {
	return keyRetryAfter.Int64(d.Milliseconds())
}
