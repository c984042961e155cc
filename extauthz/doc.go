// Package extauthz is the transport-neutral decision core of the sidecar:
// the Request a proxy describes, the Decision sent back, and the Authorizer
// that makes it. For each request the Authorizer parses an MCP body (package
// mcp), asks the IdentityVerifier who is calling, asks the PolicyEvaluator
// what to do, and fails closed on every error: a fault is a denial, never an
// allow. The adapters (extauthz/envoygrpc, extauthz/forwardauth) translate
// between the wire and these types; this package imports no transport.
//
// # MCP authorization
//
// With WithProtectedResource the Authorizer fronts an OAuth 2.0 protected
// resource as the MCP authorization specification asks an MCP server to:
//
//   - A GET or HEAD of the resource's metadata paths (RFC 9728: the
//     path-inserted /.well-known/oauth-protected-resource/<path> and the
//     bare /.well-known/oauth-protected-resource) is answered before any
//     credential check with the metadata document, as a denial with status
//     200: the proxy sends it to the client as a direct response.
//   - Every 401 carries WWW-Authenticate: Bearer resource_metadata="<URL>",
//     with error="invalid_token" when the request's credential did not
//     verify.
//   - A policy denial may carry a challenge (Decision.Challenge; the policy
//     result's challenge: {error, error_description, scope, max_age}),
//     rendered as WWW-Authenticate on that denial with resource_metadata
//     added: insufficient_scope with the scope needed (403), or RFC 9470's
//     insufficient_user_authentication with max_age for a fresh login (401).
//
// Without the option no metadata is served and challenges carry no
// resource_metadata, but a 401 still says WWW-Authenticate: Bearer. A
// policy that sets its own WWW-Authenticate header on a 401 keeps it.
//
// The wiring builds the resource once at start:
//
//	pr, err := extauthz.NewProtectedResource(mcp.ResourceMetadata{
//		Resource:              "https://mcp.example.com/mcp",
//		AuthorizationServers:  []string{"https://auth.example.com"},
//		ScopesSupported:       []string{"tools:read", "tools:call"},
//		ResourceName:          "Example MCP server",
//		ResourceDocumentation: "https://docs.example.com/mcp",
//	})
//	…
//	a := extauthz.NewAuthorizer(policy, ids, extauthz.WithProtectedResource(pr))
//
// and hands the same pr to forwardauth.Config.ProtectedResource, since a
// forward-auth proxy cannot send an authorizer's 200 as a response.
package extauthz
