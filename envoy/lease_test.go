package envoy

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"testing/fstest"
	"time"

	accesslogcfgv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	grpcalsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mcpauthz/mcpauthz/extauthz/envoygrpc"
)

// streamPolicy lets one request at a time hold the organization's slot.
const streamPolicy = `package mcpauthz.authz

decision := {"allowed": true, "concurrency": [{"name": "streams", "key": "tenant:acme:streams", "limit": 1, "ttl": "1h"}]}
`

// leaseLogger is the configuration's access logger that hands leases back
// to mcpauthz.
type leaseLogger struct {
	filter *accesslogcfgv3.AccessLogFilter
	config *grpcalsv3.HttpGrpcAccessLogConfig
}

func (g *gateway) leaseLogger(t *testing.T) leaseLogger {
	t.Helper()
	var found []leaseLogger
	for _, al := range g.hcm.GetAccessLog() {
		var c grpcalsv3.HttpGrpcAccessLogConfig
		if al.GetTypedConfig().MessageIs(&c) {
			if err := al.GetTypedConfig().UnmarshalTo(&c); err != nil {
				t.Fatal(err)
			}
			found = append(found, leaseLogger{al.GetFilter(), &c})
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d gRPC access loggers, want the one that releases leases", len(found))
	}
	return found[0]
}

// logs reports whether the logger writes an entry for a request with this
// dynamic metadata: without a filter, or when its metadata filter matches.
// A present_match matches a primitive value only.
func (l leaseLogger) logs(t *testing.T, md *corev3.Metadata) bool {
	t.Helper()
	if l.filter == nil {
		return true
	}
	mf := l.filter.GetMetadataFilter()
	m := mf.GetMatcher()
	if mf == nil || !m.GetValue().GetPresentMatch() || m.GetInvert() {
		t.Fatalf("access log filter %v is not understood here", l.filter)
	}
	ns, ok := md.GetFilterMetadata()[m.GetFilter()]
	if !ok {
		return mf.GetMatchIfKeyNotFound() == nil || mf.GetMatchIfKeyNotFound().GetValue()
	}
	v := structpb.NewStructValue(ns)
	for _, seg := range m.GetPath() {
		v, ok = v.GetStructValue().GetFields()[seg.GetKey()]
		if !ok {
			return mf.GetMatchIfKeyNotFound() == nil || mf.GetMatchIfKeyNotFound().GetValue()
		}
	}
	switch v.GetKind().(type) {
	case *structpb.Value_StringValue, *structpb.Value_NumberValue, *structpb.Value_BoolValue:
		return true
	}
	return false
}

// TestLeasesReleased: a concurrency slot taken by an allowed request is
// given back when Envoy's gRPC access logger, as configured, reports the
// request finished to mcpauthz's gRPC listener — so the next request gets
// it; requests holding nothing are not logged there.
func TestLeasesReleased(t *testing.T) {
	s := newSidecar(t, grpcConfig, fstest.MapFS{"authz.rego": &fstest.MapFile{Data: []byte(streamPolicy)}})
	ll := s.gw.leaseLogger(t)
	if got := ll.config.GetCommonConfig().GetGrpcService().GetEnvoyGrpc().GetClusterName(); got != s.gw.authz.GetGrpcService().GetEnvoyGrpc().GetClusterName() {
		t.Fatalf("leases go to cluster %q, not to mcpauthz's ext_authz listener", got)
	}
	if s.gw.authzName != envoygrpc.ExtAuthzMetadataNamespace {
		t.Fatalf("the ext_authz filter is named %q: its dynamic metadata is where mcpauthz looks for leases only under %q",
			s.gw.authzName, envoygrpc.ExtAuthzMetadataNamespace)
	}

	// What Envoy does with a request: check it, keep the response's dynamic
	// metadata under the filter's name, log it when it ends.
	check := func() (allowed bool, md *corev3.Metadata) {
		r := mcpCall("localhost:10000", "/mcp", "echo", nil)
		cr, _ := s.gw.checkRequest(r, s.gw.route(r))
		resp, err := envoygrpc.NewService(s.authz, slog.New(slog.DiscardHandler)).Check(context.Background(), cr)
		if err != nil {
			t.Fatal(err)
		}
		md = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
		if dm := resp.GetDynamicMetadata(); dm != nil {
			md.FilterMetadata[s.gw.authzName] = dm
		}
		return resp.GetOkResponse() != nil, md
	}
	first, md := check()
	if !first || !ll.logs(t, md) {
		t.Fatalf("allowed %v, logged %v: the first request takes the slot and is logged", first, ll.logs(t, md))
	}
	second, md2 := check()
	if second {
		t.Fatal("a second request got the only slot")
	}
	if ll.logs(t, md2) {
		t.Error("a request holding no slot is logged to mcpauthz")
	}

	client := startAccessLog(t, s)
	stream, err := client.StreamAccessLogs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	err = stream.Send(&alsv3.StreamAccessLogsMessage{
		Identifier: &alsv3.StreamAccessLogsMessage_Identifier{
			Node:    &corev3.Node{Id: s.gw.cfg.bootstrap.GetNode().GetId()},
			LogName: ll.config.GetCommonConfig().GetLogName(),
		},
		LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
			LogEntry: []*accesslogv3.HTTPAccessLogEntry{{
				CommonProperties: &accesslogv3.AccessLogCommon{AccessLogType: accesslogv3.AccessLogType_DownstreamEnd, Metadata: md},
			}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	if third, _ := check(); !third {
		t.Fatal("the slot was not given back")
	}
}

// startAccessLog serves mcpauthz's access log service, releasing into the
// sidecar's leases, on an in-memory listener.
func startAccessLog(t *testing.T, s *sidecar) alsv3.AccessLogServiceClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	envoygrpc.RegisterAccessLog(srv, s.leases, slog.New(slog.DiscardHandler), envoygrpc.WithReleaseTimeout(5*time.Second))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return alsv3.NewAccessLogServiceClient(conn)
}
