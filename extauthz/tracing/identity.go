package tracing

import (
	"cmp"
	"context"
	"errors"

	"go.opentelemetry.io/otel/trace"

	"github.com/mcpauthz/mcpauthz/extauthz"
)

// IdentityVerifier is an extauthz.IdentityVerifier that traces each
// verification in a span, "mcpauthz.credentials", saying how the caller
// was identified (mcpauthz.credential.method: none, session, jwt, api_key)
// and the result (mcpauthz.credential.result: anonymous, verified, invalid,
// error). It also names the method on the span it was called under — the
// decision's — so that span says how the caller was identified.
type IdentityVerifier struct {
	next   extauthz.IdentityVerifier
	tracer trace.Tracer
}

var _ extauthz.IdentityVerifier = (*IdentityVerifier)(nil)

// NewIdentityVerifier returns next traced with tp (nil: not traced).
func NewIdentityVerifier(next extauthz.IdentityVerifier, tp trace.TracerProvider) *IdentityVerifier {
	return &IdentityVerifier{next: next, tracer: tracer(tp)}
}

// Verify verifies req's credential with the verifier it wraps, in a span.
func (v *IdentityVerifier) Verify(ctx context.Context, req *extauthz.Request) (extauthz.Identity, error) {
	if v.tracer == nil {
		return v.next.Verify(ctx, req)
	}
	parent := trace.SpanFromContext(ctx)
	ctx, span := v.tracer.Start(ctx, CredentialsSpan)
	defer span.End()
	id, err := v.next.Verify(ctx, req)
	if !span.IsRecording() {
		return id, err
	}
	switch {
	case err == nil:
		result := ResultVerified
		if id.IsAnonymous() {
			result = ResultAnonymous
		}
		method := keyCredentialMethod.String(cmp.Or(id.Method, extauthz.MethodNone))
		span.SetAttributes(method, keyCredentialResult.String(result))
		parent.SetAttributes(method)
	case errors.Is(err, extauthz.ErrInvalidCredential):
		// Not a fault; the reason may quote the credential's claims.
		span.SetAttributes(keyCredentialResult.String(ResultInvalid))
	default:
		span.SetAttributes(keyCredentialResult.String(ResultError))
		fault(span, err)
	}
	return id, err
}
