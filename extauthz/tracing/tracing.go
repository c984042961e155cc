// Package tracing traces decisions with OpenTelemetry, as decorators of the
// decision core's collaborators, so the core itself knows nothing of it.
//
// Checker wraps the Authorizer: one server span, "mcpauthz.check", per
// decision, continuing the W3C trace context (traceparent, tracestate) of
// the request the proxy describes. IdentityVerifier, PolicyEvaluator,
// Limiter and Leaser wrap what the Authorizer consults, and each call
// becomes a child span of the decision's: "mcpauthz.credentials",
// "mcpauthz.policy", "mcpauthz.limits", "mcpauthz.leases" and
// "mcpauthz.leases.release". The Authorizer passes its Check context to
// them, so the spans nest.
//
// Spans carry what a decision is known by — its id, the answer, the status
// and reason of a denial, how the caller was identified, the MCP method and
// tool, the policy revision, how many limits were taken — and never a
// credential, a token, a header value or a body (traceparent and tracestate
// only make the parent).
// The error of a fault is the status description of the span it happened
// in; a credential that does not verify is not a fault, and its reason is
// left out.
//
// Every wrapper takes the trace.TracerProvider to trace with; with nil or
// OpenTelemetry's no-op provider it only calls through.
package tracing

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope of the spans.
const ScopeName = "github.com/mcpauthz/mcpauthz/extauthz/tracing"

// Span names.
const (
	CheckSpan       = "mcpauthz.check"
	CredentialsSpan = "mcpauthz.credentials"
	PolicySpan      = "mcpauthz.policy"
	LimitsSpan      = "mcpauthz.limits"
	LeasesSpan      = "mcpauthz.leases"
	ReleaseSpan     = "mcpauthz.leases.release"
)

// Attribute keys. The MCP ones follow OpenTelemetry's MCP semantic
// conventions.
const (
	keyDecisionID = attribute.Key("mcpauthz.decision_id")
	keyAllowed    = attribute.Key("mcpauthz.allowed")
	keyReason     = attribute.Key("mcpauthz.reason")
	// keyStatus is the HTTP status the proxy answers a denial with.
	keyStatus     = attribute.Key("mcpauthz.status_code")
	keyTransport  = attribute.Key("mcpauthz.transport")
	keyHTTPMethod = attribute.Key("http.request.method")

	keyCredentialMethod = attribute.Key("mcpauthz.credential.method")
	keyCredentialResult = attribute.Key("mcpauthz.credential.result")

	keyPolicyPath     = attribute.Key("mcpauthz.policy.path")
	keyPolicyRevision = attribute.Key("mcpauthz.policy.revision")
	keyMCPMethod      = attribute.Key("mcp.method.name")
	keyMCPTool        = attribute.Key("gen_ai.tool.name")
	keyMCPPrompt      = attribute.Key("gen_ai.prompt.name")
	keyMCPMessages    = attribute.Key("mcpauthz.mcp.messages")

	keyLimits     = attribute.Key("mcpauthz.limits.count")
	keyQuotas     = attribute.Key("mcpauthz.quotas.count")
	keyLeases     = attribute.Key("mcpauthz.leases.count")
	keyFallback   = attribute.Key("mcpauthz.limits.fallback")
	keyRetryAfter = attribute.Key("mcpauthz.retry_after_ms")
)

// Credential results (mcpauthz.credential.result).
const (
	ResultAnonymous = "anonymous"
	ResultVerified  = "verified"
	ResultInvalid   = "invalid"
	ResultError     = "error"
)

// tracer returns the tracer of tp, or nil when tp is nil or the no-op
// provider: its spans are never recorded, so the wrappers only call
// through, without even reading the trace context.
func tracer(tp trace.TracerProvider) trace.Tracer {
	if _, off := tp.(noop.TracerProvider); off || tp == nil {
		return nil
	}
	return tp.Tracer(ScopeName)
}

// fault marks span as failed by err.
func fault(span trace.Span, err error) {
	span.SetStatus(codes.Error, err.Error())
}
