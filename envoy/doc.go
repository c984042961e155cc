// Package envoy holds the Envoy configurations that put mcpauthz in front of
// an MCP server: envoy.yaml (ext_authz over gRPC, the sidecar pattern) and
// envoy-http.yaml (Envoy's HTTP ext_authz service against mcpauthz's
// forward-auth listener). The package has no code of its own; its tests
// read each file as Envoy reads it, validate it against Envoy's own protos,
// and drive the real authorizer with the checks these settings make Envoy
// send.
package envoy
