package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
)

// tools are the tools every principal may call under the default bundle:
// those its data declares read-only (any other counts as destructive and
// needs a recent authentication).
var tools = []string{"echo", "whoami"}

// requestMix makes n variants of the template, an MCP tools/call POST as
// Envoy sends it: request i carries the headers cred(i) returns (its
// credential) and calls one of the tools, with its own request id,
// JSON-RPC id, MCP session and arguments.
func requestMix(template []byte, n int, cred func(i int) map[string]string) ([]*authv3.CheckRequest, error) {
	variant, err := variants(template)
	if err != nil {
		return nil, err
	}
	out := make([]*authv3.CheckRequest, n)
	for i := range out {
		out[i] = variant(i, cred(i))
	}
	return out, nil
}

// variants returns a function making the i-th variant of the template
// with the given credential headers.
func variants(template []byte) (func(i int, cred map[string]string) *authv3.CheckRequest, error) {
	var base authv3.CheckRequest
	if err := protojson.Unmarshal(template, &base); err != nil {
		return nil, fmt.Errorf("the check request template: %w", err)
	}
	delete(base.Attributes.Request.Http.Headers, "x-role") // the RBAC bundle's; the default bundle reads credentials
	return func(i int, cred map[string]string) *authv3.CheckRequest {
		cr := proto.Clone(&base).(*authv3.CheckRequest)
		h := cr.Attributes.Request.Http
		id := fmt.Sprintf("%08x-5e6f-4a8b-9c0d-%012x", i*7919, i)
		h.Id = id
		h.Headers["x-request-id"] = id
		h.Headers["mcp-session-id"] = fmt.Sprintf("sess-%d", i%16)
		for k, v := range cred {
			h.Headers[k] = v
		}
		h.Body = fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{"query":"report %d","limit":%d}}}`,
			i+1, tools[i%len(tools)], i, 10+i%5)
		return cr
	}, nil
}

// apiKeyHeaders sends a key as x-api-key or, every other principal, as a
// bearer token: the sidecar accepts both.
func apiKeyHeaders(principal int, key string) map[string]string {
	if principal%2 == 0 {
		return map[string]string{"x-api-key": key}
	}
	return map[string]string{"authorization": "Bearer " + key}
}

// sessionHeaders sends the session cookie, and the signed cache cookie
// when there is one, in one Cookie header as a browser does.
func sessionHeaders(session, cache string) map[string]string {
	c := credentials.DefaultSessionCookie + "=" + session
	if cache != "" {
		c += "; " + cache
	}
	return map[string]string{"cookie": c}
}

// cacheCookie returns the signed session cache cookie an allow sets
// ("__Host-mcpauthz_sc=…", without its attributes), or "".
func cacheCookie(resp *authv3.CheckResponse) string {
	for _, h := range resp.GetOkResponse().GetResponseHeadersToAdd() {
		if strings.EqualFold(h.GetHeader().GetKey(), "set-cookie") {
			c, _, _ := strings.Cut(h.GetHeader().GetValue(), ";")
			if strings.HasPrefix(c, credentials.DefaultSessionCacheCookie+"=") {
				return c
			}
		}
	}
	return ""
}

// allowAll waits for the server at addr to allow every request of the
// mix and returns its answers. A server may deny at first (a JWT issuer
// whose keys are still loading answers 503), so the mix is sent again
// until wait runs out; then the first denial is the error.
func allowAll(addr string, mix []*authv3.CheckRequest, wait time.Duration) ([]*authv3.CheckResponse, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	deadline := time.Now().Add(wait)
	for {
		resps, err := checkAll(client, mix)
		if err == nil {
			return resps, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func checkAll(client authv3.AuthorizationClient, mix []*authv3.CheckRequest) ([]*authv3.CheckResponse, error) {
	resps := make([]*authv3.CheckResponse, len(mix))
	for i, cr := range mix {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := client.Check(ctx, cr)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("request %d of the mix: %w", i, err)
		}
		if resp.GetStatus().GetCode() != int32(codes.OK) {
			return nil, fmt.Errorf("request %d of the mix is denied: %s %s", i,
				resp.GetDeniedResponse().GetStatus().GetCode(), resp.GetDeniedResponse().GetBody())
		}
		resps[i] = resp
	}
	return resps, nil
}
