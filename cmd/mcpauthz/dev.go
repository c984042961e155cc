package main

import (
	"fmt"
	"io"
	"strings"
)

// devDefaults is the configuration of `mcpauthz dev`: loopback listeners,
// the embedded bundle, readable logs and decisions printed to stdout.
func devDefaults() Config {
	cfg := Defaults()
	cfg.GRPC.Addr = "127.0.0.1:9191"
	cfg.HTTP.Addr = "127.0.0.1:9192"
	cfg.Log.Format = "text"
	cfg.DecisionLog.Output = "stdout"
	return cfg
}

const devBanner = `mcpauthz dev — the ext_authz sidecar with the embedded policy (revision {{revision}})

  Envoy ext_authz gRPC   {{grpc}}
  HTTP forward-auth      {{http}}

Ask it for a decision as Envoy would (grpcurl: go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3):

  # allowed: the embedded policy lets anyone call the "echo" tool
  grpcurl -plaintext -d '{"attributes":{"request":{"http":{"method":"POST","path":"/mcp","headers":{"content-type":"application/json"},"body":"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}"}}}}' {{grpc}} envoy.service.auth.v3.Authorization/Check

  # denied (403 with a JSON-RPC error): any other tool
  grpcurl -plaintext -d '{"attributes":{"request":{"http":{"method":"POST","path":"/mcp","headers":{"content-type":"application/json"},"body":"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"delete_files\"}}"}}}}' {{grpc}} envoy.service.auth.v3.Authorization/Check

Or over HTTP forward-auth:

  curl -i -X POST http://{{http}}/mcp -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}'

Decisions are logged below as JSON lines. Ctrl-C stops.
`

func printDevBanner(w io.Writer, s *sidecar) {
	fmt.Fprint(w, strings.NewReplacer(
		"{{grpc}}", s.grpc.Addr().String(),
		"{{http}}", httpAddr(s),
		"{{revision}}", s.engine.Status().Revision,
	).Replace(devBanner))
}
