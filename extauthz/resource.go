package extauthz

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/mcpauthz/mcpauthz/mcp"
)

// MetadataCacheControl is the Cache-Control of the protected resource
// metadata: it changes only with the configuration.
const MetadataCacheControl = "public, max-age=3600"

// ProtectedResource is the OAuth 2.0 protected resource the sidecar guards
// (RFC 9728), as the MCP authorization specification asks an MCP server to
// describe itself: a metadata document served at the resource's well-known
// paths, and the metadata URL that every challenge points clients to. It
// is immutable.
type ProtectedResource struct {
	url   string
	paths []string
	body  string
}

// NewProtectedResource validates a protected resource's metadata and
// renders it for serving. md.Resource is the URL clients use for the MCP
// endpoint ("https://mcp.example.com/mcp"); AuthorizationServers,
// ScopesSupported, ResourceName and ResourceDocumentation are published as
// given. BearerMethodsSupported defaults to ["header"], the only place the
// sidecar takes a bearer token from. The error wraps
// mcp.ErrInvalidResourceMetadata.
func NewProtectedResource(md mcp.ResourceMetadata) (*ProtectedResource, error) {
	if len(md.BearerMethodsSupported) == 0 {
		md.BearerMethodsSupported = []string{"header"}
	}
	if err := md.Validate(); err != nil {
		return nil, fmt.Errorf("protected resource: %w", err)
	}
	mdURL, err := mcp.ResourceMetadataURL(md.Resource)
	if err != nil {
		return nil, fmt.Errorf("protected resource: %w", err)
	}
	paths, err := mcp.ResourceMetadataPaths(md.Resource)
	if err != nil {
		return nil, fmt.Errorf("protected resource: %w", err)
	}
	body, err := json.Marshal(&md)
	if err != nil {
		return nil, fmt.Errorf("protected resource: %w", err)
	}
	return &ProtectedResource{url: mdURL, paths: paths, body: string(body)}, nil
}

// WithProtectedResource makes the Authorizer the protected resource's
// front: it answers GET and HEAD requests for the metadata paths itself,
// before any credential check, and every challenge it sends carries the
// metadata URL (resource_metadata). A nil p leaves the option off.
func WithProtectedResource(p *ProtectedResource) Option {
	return func(a *Authorizer) { a.resource = p }
}

// MetadataURL returns the URL of the metadata, which challenges name in
// resource_metadata ("" for a nil p).
func (p *ProtectedResource) MetadataURL() string {
	if p == nil {
		return ""
	}
	return p.url
}

// Paths returns the paths the metadata is served at: the path-inserted
// well-known path of the resource and, for a resource with a path, the
// bare well-known path too.
func (p *ProtectedResource) Paths() []string {
	if p == nil {
		return nil
	}
	return slices.Clone(p.paths)
}

// Metadata returns the metadata document (JSON).
func (p *ProtectedResource) Metadata() string {
	if p == nil {
		return ""
	}
	return p.body
}

// Serve answers a request for the metadata: for a GET or HEAD of one of
// the metadata paths (any query is ignored; the host is not checked) it
// returns the direct response and true. The response is a denial with
// status 200, the form in which a proxy sends the authorizer's own answer
// instead of forwarding the request (Envoy's denied_response); it is
// public, cacheable and readable across origins, for browser-based clients.
func (p *ProtectedResource) Serve(method, path string) (Decision, bool) {
	if p == nil || method != http.MethodGet && method != http.MethodHead {
		return Decision{}, false
	}
	path, _, _ = strings.Cut(path, "?")
	if !slices.Contains(p.paths, path) {
		return Decision{}, false
	}
	d := Decision{
		Status: http.StatusOK,
		Reason: ReasonResourceMetadata,
		Headers: []Header{
			{"content-type", "application/json"},
			{"cache-control", MetadataCacheControl},
			{"access-control-allow-origin", "*"},
		},
	}
	if method == http.MethodGet {
		d.Body = p.body
	}
	return d, true
}

// invalidCredential is the challenge for a request whose credential did
// not verify. It is shared: never modify it.
var invalidCredential = mcp.Challenge{
	Error:            mcp.ChallengeInvalidToken,
	ErrorDescription: "The credential is invalid, expired or revoked",
}

const wwwAuthenticate = "www-authenticate"

// challenge adds the WWW-Authenticate header to a denial that asks the
// client for (other) credentials: one whose decision carries a Challenge,
// and every 401, which gets a bare Bearer challenge unless the policy sent
// a WWW-Authenticate header of its own. The protected resource's metadata
// URL is added to it. A challenge that cannot be rendered, or one next to
// the policy's own header, is a policy result error.
func (a *Authorizer) challenge(d *Decision) error {
	hasHeader := HasHeader(d.Headers, wwwAuthenticate)
	switch {
	case d.Challenge == nil && (d.Status != http.StatusUnauthorized || hasHeader):
		return nil
	case d.Challenge != nil && hasHeader:
		return fmt.Errorf("%w: both a challenge and a WWW-Authenticate header", ErrPolicyResult)
	}
	var c mcp.Challenge
	if d.Challenge != nil {
		c = *d.Challenge // the policy's decision may be shared: copy it
	}
	c.ResourceMetadata = a.resource.MetadataURL()
	v, err := c.Header()
	if err != nil {
		return fmt.Errorf("%w: challenge: %w", ErrPolicyResult, err)
	}
	d.Headers = append(d.Headers, Header{wwwAuthenticate, v})
	return nil
}
