// Package mcp understands the Model Context Protocol as it crosses HTTP: it
// decodes request bodies as strict JSON, validates them as JSON-RPC 2.0 MCP
// messages against the transport's Mcp-* headers, extracts what authorization
// keys on (method, tool, prompt, resource URI, id), and renders the JSON-RPC
// error replies a refused client receives.
//
// The package depends on the standard library only.
package mcp
