package mcp

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// WellKnownResourceMetadata is the well-known path of OAuth 2.0 Protected
// Resource Metadata (RFC 9728, section 3).
const WellKnownResourceMetadata = "/.well-known/oauth-protected-resource"

// ErrInvalidResourceMetadata is returned for protected resource metadata
// that must not be published.
var ErrInvalidResourceMetadata = errors.New("mcp: invalid protected resource metadata")

// ResourceMetadata is an OAuth 2.0 Protected Resource Metadata document
// (RFC 9728, section 2), which an MCP server publishes so clients find the
// authorization servers that issue its tokens. It encodes to JSON with
// encoding/json; empty optional fields are left out.
type ResourceMetadata struct {
	// Resource is the resource identifier: the URL clients use for the MCP
	// endpoint, such as "https://mcp.example.com/mcp".
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers,omitempty"`
	JWKSURI                string   `json:"jwks_uri,omitempty"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported,omitempty"`
	ResourceName           string   `json:"resource_name,omitempty"`
	ResourceDocumentation  string   `json:"resource_documentation,omitempty"`
}

// Validate checks the document before it is published: Resource is a
// resource identifier (see ResourceMetadataURL); authorization servers and
// jwks_uri are https URLs (http only on a loopback host, for development)
// without query or fragment; resource_documentation is an http(s) URL;
// scopes are scope tokens; bearer methods are "header", "body" or "query",
// each once; the name holds no control characters. The error wraps
// ErrInvalidResourceMetadata.
func (m *ResourceMetadata) Validate() error {
	if _, err := parseResource(m.Resource); err != nil {
		return err
	}
	for _, as := range m.AuthorizationServers {
		if err := checkURL(as, true); err != nil {
			return fmt.Errorf("%w: authorization server %q: %v", ErrInvalidResourceMetadata, as, err)
		}
	}
	if m.JWKSURI != "" {
		if err := checkURL(m.JWKSURI, true); err != nil {
			return fmt.Errorf("%w: jwks_uri: %v", ErrInvalidResourceMetadata, err)
		}
	}
	if m.ResourceDocumentation != "" {
		if err := checkURL(m.ResourceDocumentation, false); err != nil {
			return fmt.Errorf("%w: resource_documentation: %v", ErrInvalidResourceMetadata, err)
		}
	}
	for _, s := range m.ScopesSupported {
		if !isScopeToken(s) {
			return fmt.Errorf("%w: scope %q is not a scope token", ErrInvalidResourceMetadata, s)
		}
	}
	seen := map[string]bool{}
	for _, bm := range m.BearerMethodsSupported {
		if bm != "header" && bm != "body" && bm != "query" || seen[bm] {
			return fmt.Errorf("%w: bearer method %q is unknown or repeated", ErrInvalidResourceMetadata, bm)
		}
		seen[bm] = true
	}
	if !utf8.ValidString(m.ResourceName) || strings.ContainsFunc(m.ResourceName, unicode.IsControl) {
		return fmt.Errorf("%w: resource_name holds control characters or invalid UTF-8", ErrInvalidResourceMetadata)
	}
	return nil
}

// ResourceMetadataURL returns the URL of a resource's metadata (RFC 9728,
// section 3.1): the well-known path inserted between the host and the
// path, so "https://host/mcp" has its metadata at
// "https://host/.well-known/oauth-protected-resource/mcp", and "https://host"
// or "https://host/" at "https://host/.well-known/oauth-protected-resource".
// A trailing slash of a longer path is kept: it is part of the identifier.
//
// The resource must be an absolute https URL (http only on a loopback host,
// for development) without user information, query or fragment, written in
// printable ASCII; the error wraps ErrInvalidResourceMetadata.
func ResourceMetadataURL(resource string) (string, error) {
	u, err := parseResource(resource)
	if err != nil {
		return "", err
	}
	return u.Scheme + "://" + u.Host + WellKnownResourceMetadata + resourcePath(u), nil
}

// ResourceMetadataPaths returns the paths a resource's metadata is served
// at: the path-inserted form ResourceMetadataURL names and, for a resource
// with a path, the bare well-known path too, which clients of the MCP
// authorization specification try when the first is not found.
func ResourceMetadataPaths(resource string) ([]string, error) {
	u, err := parseResource(resource)
	if err != nil {
		return nil, err
	}
	if p := resourcePath(u); p != "" {
		return []string{WellKnownResourceMetadata + p, WellKnownResourceMetadata}, nil
	}
	return []string{WellKnownResourceMetadata}, nil
}

// resourcePath is the path of a resource identifier as written, or "" for
// the root.
func resourcePath(u *url.URL) string {
	if p := u.EscapedPath(); p != "/" {
		return p
	}
	return ""
}

func parseResource(resource string) (*url.URL, error) {
	if !isScopeToken(resource) {
		return nil, fmt.Errorf("%w: resource %q is not printable ASCII without spaces, quotes or backslashes", ErrInvalidResourceMetadata, resource)
	}
	if strings.ContainsAny(resource, "?#") {
		return nil, fmt.Errorf("%w: resource %q has a query or fragment", ErrInvalidResourceMetadata, resource)
	}
	if err := checkURL(resource, true); err != nil {
		return nil, fmt.Errorf("%w: resource %q: %v", ErrInvalidResourceMetadata, resource, err)
	}
	return url.Parse(resource)
}

// checkURL checks an absolute http(s) URL with a host and no user
// information. A strict URL must also be https (http only on a loopback
// host) and have no query or fragment.
func checkURL(s string, strict bool) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return errors.New("not an http(s) URL")
	case u.Opaque != "" || u.Hostname() == "":
		return errors.New("not an absolute URL with a host")
	case u.User != nil:
		return errors.New("has user information")
	case !strict:
		return nil
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return errors.New("not https (http is accepted on loopback hosts only)")
	case u.RawQuery != "" || u.ForceQuery || strings.Contains(s, "#"):
		return errors.New("has a query or fragment")
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
