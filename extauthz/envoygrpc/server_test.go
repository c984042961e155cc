package envoygrpc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/policy"
	"github.com/mcpauthz/mcpauthz/policies"
)

// fakeChecker returns a scripted decision and records the request; with
// panicWith it panics instead.
type fakeChecker struct {
	d         extauthz.Decision
	panicWith any
	got       *extauthz.Request
}

func (f *fakeChecker) Check(_ context.Context, req *extauthz.Request) (extauthz.Decision, error) {
	f.got = req
	if f.panicWith != nil {
		panic(f.panicWith)
	}
	return f.d, nil
}

var discard = slog.New(slog.DiscardHandler)

// envoyCheckRequest is a CheckRequest as Envoy's ext_authz filter builds it
// with with_request_body, per-route context extensions and metadata context.
func envoyCheckRequest() *authv3.CheckRequest {
	md, _ := structpb.NewStruct(map[string]any{"sub": "user-1", "scopes": []any{"a", "b"}})
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{
			Address:   &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "10.1.2.3", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51000}}}},
			Principal: "spiffe://cluster.local/ns/a/sa/client",
		},
		Destination: &authv3.AttributeContext_Peer{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "10.9.9.9", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}}}},
		},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: "rid-1", Method: "POST", Path: "/mcp?x=1", Host: "mcp.example.com", Scheme: "https", Protocol: "HTTP/2",
				Headers: map[string]string{
					":authority": "mcp.example.com", ":method": "POST", ":path": "/mcp?x=1", ":scheme": "https",
					"content-type": "application/json", "x-request-id": "rid-1", "x-envoy-auth-partial-body": "false",
				},
				Body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`,
				Size: 70,
			},
		},
		ContextExtensions: map[string]string{"tenant": "acme"},
		MetadataContext:   &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.filters.http.jwt_authn": md}},
		TlsSession:        &authv3.AttributeContext_TLSSession{Sni: "mcp.example.com"},
	}}
}

func TestToRequest(t *testing.T) {
	req, err := toRequest(envoyCheckRequest())
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "POST" || req.Path != "/mcp?x=1" || req.Host != "mcp.example.com" || req.Scheme != "https" ||
		req.Protocol != "HTTP/2" || req.ID != "rid-1" || req.Size != 70 || req.Transport != "envoy-grpc" {
		t.Fatalf("request line %+v", req)
	}
	if req.Headers["content-type"] != "application/json" || req.Headers[":authority"] != "mcp.example.com" {
		t.Fatalf("headers %v", req.Headers)
	}
	if req.Body == "" || req.RawBody || req.Truncated() {
		t.Fatalf("body %q raw %v truncated %v", req.Body, req.RawBody, req.Truncated())
	}
	if req.Source.Address != "10.1.2.3" || req.Source.Port != 51000 || req.Source.Principal == "" || req.ClientIP != "10.1.2.3" {
		t.Fatalf("source %+v client %q", req.Source, req.ClientIP)
	}
	if req.Destination.Port != 8080 || req.ContextExtensions["tenant"] != "acme" || req.TLSSessionSNI != "mcp.example.com" {
		t.Fatalf("destination %+v ext %v sni %q", req.Destination, req.ContextExtensions, req.TLSSessionSNI)
	}
	jwt, _ := req.MetadataContext["envoy.filters.http.jwt_authn"].(map[string]any)
	if jwt["sub"] != "user-1" {
		t.Fatalf("metadata %v", req.MetadataContext)
	}
	if !req.Time.Equal(time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)) {
		t.Fatalf("time %v", req.Time)
	}
}

func TestToRequestVariants(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*authv3.AttributeContext_HttpRequest)
		check func(*testing.T, *extauthz.Request)
	}{
		{"ok/raw body (pack_as_bytes)", func(h *authv3.AttributeContext_HttpRequest) { h.Body, h.RawBody = "", []byte{0, 1, 2} },
			func(t *testing.T, r *extauthz.Request) {
				if r.Body != "\x00\x01\x02" || !r.RawBody {
					t.Fatalf("body %q raw %v", r.Body, r.RawBody)
				}
			}},
		{"ok/partial body", func(h *authv3.AttributeContext_HttpRequest) { h.Headers["x-envoy-auth-partial-body"] = "true" },
			func(t *testing.T, r *extauthz.Request) {
				if !r.Truncated() {
					t.Fatal("partial body not noticed")
				}
			}},
		{"ok/header map (encode_raw_headers)", func(h *authv3.AttributeContext_HttpRequest) {
			h.Headers = nil
			h.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
				{Key: "X-Multi", RawValue: []byte("a")}, {Key: "x-multi", RawValue: []byte("b")}, {Key: "content-type", Value: "application/json"},
			}}
		}, func(t *testing.T, r *extauthz.Request) {
			if r.Headers["x-multi"] != "a,b" || r.Headers["content-type"] != "application/json" {
				t.Fatalf("headers %v", r.Headers)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cr := envoyCheckRequest()
			tt.edit(cr.Attributes.Request.Http)
			req, err := toRequest(cr)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, req)
		})
	}
}

func TestCheckResponses(t *testing.T) {
	tests := []struct {
		name  string
		cr    *authv3.CheckRequest
		fake  *fakeChecker
		check func(*testing.T, *authv3.CheckResponse)
	}{
		{
			name: "ok/allow maps every OkHttpResponse field",
			cr:   envoyCheckRequest(),
			fake: &fakeChecker{d: extauthz.Decision{
				Allowed:                 true,
				Headers:                 []extauthz.Header{{Name: "x-mcpauthz-user", Value: "u1"}, {Name: "x-multi", Value: "1"}, {Name: "x-multi", Value: "2"}},
				RequestHeadersToRemove:  []string{"x-mcpauthz-admin"},
				ResponseHeadersToAdd:    []extauthz.Header{{Name: "x-resp", Value: "r"}},
				QueryParametersToSet:    []extauthz.Header{{Name: "a", Value: "b"}},
				QueryParametersToRemove: []string{"token"},
				DynamicMetadata:         map[string]any{"decision_id": "d1"},
			}},
			check: func(t *testing.T, resp *authv3.CheckResponse) {
				if resp.GetStatus().GetCode() != int32(codes.OK) {
					t.Fatalf("status %v", resp.GetStatus())
				}
				ok := resp.GetOkResponse()
				hs := ok.GetHeaders()
				if len(hs) != 3 || hs[0].GetHeader().GetKey() != "x-mcpauthz-user" || hs[0].GetHeader().GetValue() != "u1" {
					t.Fatalf("headers %v", hs)
				}
				// Identity headers must overwrite a client's copy; Envoy's
				// default for an unset action is to append.
				if hs[0].GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD || hs[0].GetAppend() != nil {
					t.Fatalf("first value must overwrite: %v", hs[0])
				}
				if hs[1].GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD || hs[2].GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
					t.Fatalf("repeated name: %v %v", hs[1], hs[2])
				}
				if !slices.Equal(ok.GetHeadersToRemove(), []string{"x-mcpauthz-admin"}) || len(ok.GetResponseHeadersToAdd()) != 1 ||
					ok.GetQueryParametersToSet()[0].GetKey() != "a" || !slices.Equal(ok.GetQueryParametersToRemove(), []string{"token"}) {
					t.Fatalf("ok response %v", ok)
				}
				if resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue() != "d1" {
					t.Fatalf("dynamic metadata %v", resp.GetDynamicMetadata())
				}
			},
		},
		{
			name: "ok/deny maps status, headers, body",
			cr:   envoyCheckRequest(),
			fake: &fakeChecker{d: extauthz.Decision{Status: 429, Reason: "rate", Headers: []extauthz.Header{{Name: "retry-after", Value: "3"}}, Body: "slow down"}},
			check: func(t *testing.T, resp *authv3.CheckResponse) {
				if resp.GetStatus().GetCode() != int32(codes.PermissionDenied) || resp.GetErrorResponse() != nil {
					t.Fatalf("status %v error response %v", resp.GetStatus(), resp.GetErrorResponse())
				}
				den := resp.GetDeniedResponse()
				if den.GetStatus().GetCode() != typev3.StatusCode_TooManyRequests || den.GetBody() != "slow down" ||
					den.GetHeaders()[0].GetHeader().GetKey() != "retry-after" {
					t.Fatalf("denied %v", den)
				}
			},
		},
		{
			name: "fail/unknown status becomes 403",
			cr:   envoyCheckRequest(),
			fake: &fakeChecker{d: extauthz.Decision{Status: 299}},
			check: func(t *testing.T, resp *authv3.CheckResponse) {
				if resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_Forbidden {
					t.Fatalf("denied %v", resp.GetDeniedResponse())
				}
			},
		},
		{
			name: "fail/no HTTP attributes is a 400 denial",
			cr:   &authv3.CheckRequest{},
			fake: &fakeChecker{d: extauthz.Decision{Allowed: true}},
			check: func(t *testing.T, resp *authv3.CheckResponse) {
				if resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_BadRequest {
					t.Fatalf("response %v", resp)
				}
			},
		},
		{
			name: "fail/panic is a 500 denial, not an error",
			cr:   envoyCheckRequest(),
			fake: &fakeChecker{d: extauthz.Decision{Allowed: true}, panicWith: "boom"},
			check: func(t *testing.T, resp *authv3.CheckResponse) {
				if resp.GetStatus().GetCode() == int32(codes.OK) || resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_InternalServerError {
					t.Fatalf("response %v", resp)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := NewService(tt.fake, discard).Check(context.Background(), tt.cr)
			if err != nil {
				t.Fatalf("Check returned a gRPC error (failure_mode_allow could allow): %v", err)
			}
			tt.check(t, resp)
		})
	}
}

// TestPanicLogLeavesOutTheValue: a panic value may carry a credential; the
// log names its type and stack only, unless it is a runtime error.
func TestPanicLogLeavesOutTheValue(t *testing.T) {
	for _, c := range []struct {
		value any
		want  string // in the log
	}{
		{"cannot verify Bearer secret-bearer-token", "panic_type=string"},
		{errors.New("session secret-session-cookie"), "panic_type=*errors.errorString"},
		{runtimeError(), "index out of range"},
	} {
		var log bytes.Buffer
		s := NewService(&fakeChecker{panicWith: c.value}, slog.New(slog.NewTextHandler(&log, nil)))
		resp, err := s.Check(context.Background(), envoyCheckRequest())
		if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_InternalServerError {
			t.Fatalf("%v: %v %v", c.value, resp, err)
		}
		if strings.Contains(log.String(), "secret-") || !strings.Contains(log.String(), c.want) {
			t.Errorf("%v: log %s", c.value, log.String())
		}
	}
}

// runtimeError returns the runtime error an out-of-range index raises.
func runtimeError() (err any) {
	defer func() { err = recover() }()
	var xs []int
	i := 1
	_ = xs[i]
	return nil
}

// startListener runs the real stack — embedded policy, Authorizer,
// Service, Listener — on a loopback port.
func startListener(t *testing.T) (*grpc.ClientConn, context.CancelFunc, chan error) {
	t.Helper()
	engine, err := bundles.NewEngine(bundles.DefaultDecisionPath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundles.LoadFS(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Activate(context.Background(), b, "embedded"); err != nil {
		t.Fatal(err)
	}
	ids, _ := extauthz.NewDecisionIDs(rand.Reader)
	authz := extauthz.NewAuthorizer(policy.NewEvaluator(engine), ids.Next)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(lis, NewService(authz, discard), Config{ShutdownTimeout: 2 * time.Second}, discard)
	l.SetServing(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); cancel() })
	return conn, cancel, done
}

func TestListener(t *testing.T) {
	conn, cancel, done := startListener(t)
	ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	client := authv3.NewAuthorizationClient(conn)

	// The embedded policy admits no anonymous MCP call: 401 with a
	// challenge and a JSON-RPC error for the request's id.
	denied := envoyCheckRequest()
	denied.Attributes.Request.Http.Body = `{"jsonrpc":"2.0","id":"x9","method":"tools/call","params":{"name":"echo"}}`
	resp, err := client.Check(ctx, denied)
	if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_Unauthorized {
		t.Fatalf("anonymous call: %v %v", resp, err)
	}
	var reply map[string]any
	if err := json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &reply); err != nil || reply["id"] != "x9" {
		t.Fatalf("denial body %q", resp.GetDeniedResponse().GetBody())
	}

	for _, svc := range []string{"", "envoy.service.auth.v3.Authorization"} {
		h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %q: %v %v", svc, h, err)
		}
	}

	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rr, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range rr.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if !slices.Contains(names, "envoy.service.auth.v3.Authorization") || !slices.Contains(names, "grpc.health.v1.Health") {
		t.Fatalf("reflection lists %v", names)
	}
	stream.CloseSend()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("graceful shutdown did not finish")
	}
}

func TestMaxMessageSize(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(lis, NewService(&fakeChecker{d: extauthz.Decision{Allowed: true}}, discard), Config{MaxRecvMsgBytes: 1024}, discard)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cr := envoyCheckRequest()
	cr.Attributes.Request.Http.Body = string(make([]byte, 4096))
	_, err = authv3.NewAuthorizationClient(conn).Check(ctx, cr)
	if err == nil {
		t.Fatal("an oversized CheckRequest was accepted")
	}
}
