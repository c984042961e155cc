package extauthz

import (
	"errors"
	"net/http"
	"strings"

	"github.com/mcpauthz/mcpauthz/mcp"
	"github.com/mcpauthz/mcpauthz/quotas"
)

// Header is one HTTP header name/value pair.
type Header struct {
	Name  string
	Value string
}

// HasHeader reports whether hs holds a header named name, in any case.
func HasHeader(hs []Header, name string) bool {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return true
		}
	}
	return false
}

// Decision is the answer for one request. The adapters translate it to the
// wire: an Envoy CheckResponse or a forward-auth HTTP response.
type Decision struct {
	Allowed bool
	// Status is the HTTP status of a denial (0 on allow).
	Status int
	// Reason is a short machine-readable cause, for logs and metrics.
	Reason string

	// Headers are added to the upstream request on allow, or sent to the
	// client with a denial.
	Headers []Header
	// ResponseHeadersToAdd are added to the upstream's response on allow.
	ResponseHeadersToAdd []Header
	// RequestHeadersToRemove are removed from the request before it goes
	// upstream (allow only).
	RequestHeadersToRemove []string
	// QueryParametersToSet and QueryParametersToRemove rewrite the query
	// string before the request goes upstream (allow only).
	QueryParametersToSet    []Header
	QueryParametersToRemove []string

	// Body is the body of a denial.
	Body string
	// Challenge, on a denial, asks the client for (other) credentials: the
	// Authorizer renders it as WWW-Authenticate with the protected
	// resource's metadata URL added. A 401 without one still gets a bare
	// Bearer challenge. It may be shared between decisions: never modify
	// what it points to.
	Challenge *mcp.Challenge
	// DynamicMetadata is attached to the request for other proxy filters and
	// the access log (JSON values).
	DynamicMetadata map[string]any

	// Take is what an allowed request takes from rate limits and quotas:
	// the Authorizer takes it before answering and refuses the request
	// with 429 when a limit does not admit it.
	Take quotas.Request
	// RateLimitHeaders asks for the limits' state (RateLimit, X-RateLimit-*)
	// on the allowed response.
	RateLimitHeaders bool
	// Leases are the concurrency slots an allowed request holds until the
	// proxy reports it finished or their TTL passes.
	Leases []quotas.Lease

	DecisionID string
}

// Reasons for denials the sidecar makes itself, before or instead of the
// policy.
const (
	ReasonBadRequest     = "bad_request"
	ReasonBodyTruncated  = "body_truncated"
	ReasonMCPInvalid     = "mcp_invalid"
	ReasonUnauthorized   = "unauthenticated"
	ReasonPolicyDenied   = "policy_denied"
	ReasonPolicyError    = "policy_error"
	ReasonPolicyUndef    = "policy_undefined"
	ReasonDeadline       = "deadline_exceeded"
	ReasonBackendFailure = "backend_unavailable"
	ReasonRateLimited    = "rate_limited"
	// ReasonLimitInvalid: the policy asked for a limit that cannot be
	// enforced.
	ReasonLimitInvalid = "limit_invalid"
	ReasonInternal     = "internal_error"
	// ReasonResourceMetadata marks the direct response serving the
	// protected resource metadata (status 200).
	ReasonResourceMetadata = "resource_metadata"
)

// Errors the core distinguishes. Adapters and collaborators wrap them.
var (
	// ErrNoCredential: the request carries no credential a verifier recognizes.
	ErrNoCredential = errors.New("no credential")
	// ErrInvalidCredential: the request carries a credential that does not verify.
	ErrInvalidCredential = errors.New("invalid credential")
	// ErrPolicyUndefined: the policy produced no decision for the request.
	ErrPolicyUndefined = errors.New("policy decision undefined")
	// ErrPolicyResult: the policy's decision has the wrong shape.
	ErrPolicyResult = errors.New("invalid policy decision")
	// ErrBadRequest: the request cannot be authorized as sent.
	ErrBadRequest = errors.New("bad request")
)

// Deny returns a denial with the given status and reason.
func Deny(status int, reason string) Decision {
	return Decision{Status: status, Reason: reason}
}

// StatusText is http.StatusText with a fallback for unknown codes.
func StatusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "Error"
}
