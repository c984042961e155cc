// Package mcp understands the Model Context Protocol as it crosses HTTP: it
// decodes request bodies as strict JSON, validates them as JSON-RPC 2.0 MCP
// messages against the transport's Mcp-* headers, extracts what authorization
// keys on (method, tool, prompt, resource URI, id), and renders what a
// refused or discovering client receives: JSON-RPC error replies, Bearer
// challenges for WWW-Authenticate (RFC 6750, with RFC 9728's
// resource_metadata and RFC 9470's step-up parameters) and OAuth 2.0
// Protected Resource Metadata (RFC 9728) with its well-known paths.
//
// The package depends on the standard library only.
package mcp
