package extauthz

import (
	"mime"
	"strconv"
	"strings"
	"time"
)

// Request is one HTTP request to authorize, as a proxy describes it. The
// adapters fill it from Envoy's CheckRequest or from a forward-auth call; the
// field set mirrors Envoy's AttributeContext so policies written for
// OPA-Envoy see the same input whichever way the request arrived.
type Request struct {
	ID       string    // the proxy's request id (Envoy's x-request-id)
	Time     time.Time // when the proxy received the request; zero if unknown
	Method   string
	Scheme   string
	Host     string
	Path     string // path and query, as received (not normalized)
	Fragment string
	Protocol string // "HTTP/1.1", "HTTP/2", …

	// Headers holds the request headers with lower-case names. Repeated
	// headers are joined with "," as Envoy does.
	Headers map[string]string

	Body string
	// RawBody records that the proxy sent the body as bytes (Envoy's
	// pack_as_bytes) rather than as a string.
	RawBody bool
	// BodyTruncated records that the proxy sent only part of the body.
	BodyTruncated bool
	// Size is the request's body size as the proxy saw it, or -1.
	Size int64

	Source      Peer
	Destination Peer
	// ClientIP is the client address resolved from trusted proxy hops only.
	ClientIP string

	// ContextExtensions are the per-route key/values the proxy attaches.
	ContextExtensions map[string]string
	// MetadataContext holds filter metadata by namespace, as JSON values
	// (map[string]any, []any, string, float64, bool, nil).
	MetadataContext      map[string]any
	RouteMetadataContext map[string]any

	// TLSSession records that the proxy reported a TLS session, and
	// TLSSessionSNI the SNI the client sent in it.
	TLSSession    bool
	TLSSessionSNI string

	// Transport names the adapter the request came from ("envoy-grpc",
	// "forward-auth"). It is not part of the policy input.
	Transport string
	// FixedQuery says the transport cannot rewrite the query upstream
	// (forward-auth): an allow that would rewrite it is refused.
	FixedQuery bool
}

// Peer is one end of the connection as the proxy reports it.
type Peer struct {
	Address     string
	Port        uint32
	PipePath    string // a Unix domain socket peer's path (Address is then empty)
	PipeMode    uint32
	Principal   string
	Certificate string
	Service     string
	Labels      map[string]string
}

// Header returns the value of a header (name must be lower case).
func (r *Request) Header(name string) (string, bool) {
	v, ok := r.Headers[name]
	return v, ok
}

// MediaType returns the request's content type without parameters, lower
// case, or "" when there is none or it does not parse.
func (r *Request) MediaType() string {
	ct, ok := r.Headers["content-type"]
	if !ok {
		return ""
	}
	// Fast path for the common exact values; mime.ParseMediaType allocates.
	switch ct {
	case "application/json", "application/x-www-form-urlencoded":
		return ct
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	return mt
}

// IsJSON reports whether the body is declared as JSON (application/json or
// a +json suffix type).
func (r *Request) IsJSON() bool {
	mt := r.MediaType()
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// PartialBodyHeader is set by Envoy when it sent only part of the body
// (allow_partial_message). It can only make a request look less complete.
const PartialBodyHeader = "x-envoy-auth-partial-body"

// Truncated reports whether the proxy passed on less body than the request
// carries: the adapter or Envoy's PartialBodyHeader said so, or
// Content-Length exceeds the bytes received.
func (r *Request) Truncated() bool {
	if r.BodyTruncated || r.Headers[PartialBodyHeader] == "true" {
		return true
	}
	if cl, ok := r.Headers["content-length"]; ok {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err == nil && n > int64(len(r.Body)) {
			return true
		}
	}
	return false
}
