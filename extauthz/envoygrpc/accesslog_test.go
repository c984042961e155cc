package envoygrpc_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/envoygrpc"
)

// released is one Release call.
type released struct {
	ID   string
	Keys []string
}

// fakeReleaser records releases and fails those of the ids in fail.
type fakeReleaser struct {
	fail map[string]bool

	mu         sync.Mutex
	got        []released
	noDeadline bool
}

func (f *fakeReleaser) Release(ctx context.Context, id string, keys []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		f.noDeadline = true
	}
	f.got = append(f.got, released{id, keys})
	if f.fail[id] {
		return errors.New("redis: connection refused")
	}
	return nil
}

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// leaseMetadata is the ext_authz filter's dynamic metadata namespace as
// Envoy stores it after an allowed check that took a lease: the
// CheckResponse's dynamic_metadata plus the ext_authz_duration Envoy adds.
func leaseMetadata(lease any) *structpb.Struct {
	m := map[string]any{"decision_id": "dec-1", "ext_authz_duration": 3}
	if lease != nil {
		m[envoygrpc.LeaseMetadataKey] = lease
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err)
	}
	return s
}

// lease is the metadata of a lease with id on keys.
func lease(id string, keys ...string) map[string]any {
	ks := make([]any, len(keys))
	for i, k := range keys {
		ks[i] = k
	}
	return map[string]any{"id": id, "keys": ks}
}

// httpEntry is an HTTP access log entry as Envoy's gRPC access logger
// builds it at the end of a request, with filter metadata md.
func httpEntry(typ accesslogv3.AccessLogType, md map[string]*structpb.Struct) *accesslogv3.HTTPAccessLogEntry {
	common := &accesslogv3.AccessLogCommon{
		SampleRate: 1,
		DownstreamRemoteAddress: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "10.1.2.3", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51000}}}},
		StartTime:                  timestamppb.New(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)),
		TimeToLastDownstreamTxByte: durationpb.New(95 * time.Second),
		UpstreamCluster:            "mcp_server",
		AccessLogType:              typ,
	}
	if md != nil {
		common.Metadata = &corev3.Metadata{FilterMetadata: md}
	}
	return &accesslogv3.HTTPAccessLogEntry{
		CommonProperties: common,
		ProtocolVersion:  accesslogv3.HTTPAccessLogEntry_HTTP2,
		Request: &accesslogv3.HTTPRequestProperties{
			RequestMethod: corev3.RequestMethod_POST,
			Scheme:        "https",
			Authority:     "mcp.example.com",
			Path:          "/mcp",
			RequestId:     "6f1c1d1e-0c2a-4f6e-9a55-7d7e0f3a9b10",
		},
		Response: &accesslogv3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200), ResponseCodeDetails: "via_upstream"},
	}
}

// ended is a DownstreamEnd entry carrying the ext_authz metadata md.
func ended(md *structpb.Struct) *accesslogv3.HTTPAccessLogEntry {
	return httpEntry(accesslogv3.AccessLogType_DownstreamEnd, map[string]*structpb.Struct{envoygrpc.ExtAuthzMetadataNamespace: md})
}

// httpLogs is a StreamAccessLogsMessage of HTTP entries; Envoy sends the
// identifier on the first message of a stream only.
func httpLogs(first bool, entries ...*accesslogv3.HTTPAccessLogEntry) *alsv3.StreamAccessLogsMessage {
	m := &alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
		HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: entries},
	}}
	if first {
		m.Identifier = &alsv3.StreamAccessLogsMessage_Identifier{
			Node:    &corev3.Node{Id: "envoy-1", Cluster: "mcp-gateway"},
			LogName: "mcpauthz_leases",
		}
	}
	return m
}

// startAccessLog serves the access log service on an in-memory listener
// and returns a client.
func startAccessLog(t *testing.T, r envoygrpc.Releaser, log *slog.Logger) alsv3.AccessLogServiceClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	s := grpc.NewServer()
	envoygrpc.RegisterAccessLog(s, r, log)
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		s.Stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return alsv3.NewAccessLogServiceClient(conn)
}

// send streams msgs as Envoy does and closes the stream, which returns
// once the server has handled every message.
func send(t *testing.T, c alsv3.AccessLogServiceClient, msgs []*alsv3.StreamAccessLogsMessage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := c.StreamAccessLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatalf("the stream ended with %v", err)
	}
}

func TestStreamAccessLogs(t *testing.T) {
	other := map[string]*structpb.Struct{"envoy.filters.http.rbac": leaseMetadata(lease("l-x", "tenant:acme:streams"))}
	tests := []struct {
		name  string
		msgs  []*alsv3.StreamAccessLogsMessage
		fail  map[string]bool
		want  []released
		warns int
	}{
		{
			name: "ok/one finished request",
			msgs: []*alsv3.StreamAccessLogsMessage{httpLogs(true, ended(leaseMetadata(lease("l-1", "tenant:acme:streams", "user:u-1:streams"))))},
			want: []released{{"l-1", []string{"tenant:acme:streams", "user:u-1:streams"}}},
		},
		{
			name: "ok/entries across messages, in order",
			msgs: []*alsv3.StreamAccessLogsMessage{
				httpLogs(true, ended(leaseMetadata(lease("l-1", "tenant:acme:streams"))), ended(leaseMetadata(lease("l-2", "tenant:globex:streams")))),
				httpLogs(false, ended(leaseMetadata(lease("l-3", "tenant:acme:streams")))),
			},
			want: []released{{"l-1", []string{"tenant:acme:streams"}}, {"l-2", []string{"tenant:globex:streams"}}, {"l-3", []string{"tenant:acme:streams"}}},
		},
		{
			name: "ok/entries without a lease are ignored",
			msgs: []*alsv3.StreamAccessLogsMessage{httpLogs(true,
				httpEntry(accesslogv3.AccessLogType_DownstreamEnd, nil),
				ended(leaseMetadata(nil)),
				httpEntry(accesslogv3.AccessLogType_DownstreamEnd, other),
				ended(leaseMetadata(lease("l-1", "tenant:acme:streams"))),
			)},
			want: []released{{"l-1", []string{"tenant:acme:streams"}}},
		},
		{
			name: "ok/periodic and upstream entries do not end the request",
			msgs: []*alsv3.StreamAccessLogsMessage{httpLogs(true,
				httpEntry(accesslogv3.AccessLogType_DownstreamPeriodic, map[string]*structpb.Struct{envoygrpc.ExtAuthzMetadataNamespace: leaseMetadata(lease("l-1", "k"))}),
				httpEntry(accesslogv3.AccessLogType_UpstreamEnd, map[string]*structpb.Struct{envoygrpc.ExtAuthzMetadataNamespace: leaseMetadata(lease("l-1", "k"))}),
				httpEntry(accesslogv3.AccessLogType_NotSet, map[string]*structpb.Struct{envoygrpc.ExtAuthzMetadataNamespace: leaseMetadata(lease("l-2", "k"))}),
				ended(leaseMetadata(lease("l-1", "k"))),
			)},
			want: []released{{"l-2", []string{"k"}}, {"l-1", []string{"k"}}},
		},
		{
			name: "ok/tcp entries are ignored",
			msgs: []*alsv3.StreamAccessLogsMessage{{LogEntries: &alsv3.StreamAccessLogsMessage_TcpLogs{TcpLogs: &alsv3.StreamAccessLogsMessage_TCPAccessLogEntries{
				LogEntry: []*accesslogv3.TCPAccessLogEntry{{CommonProperties: &accesslogv3.AccessLogCommon{
					AccessLogType: accesslogv3.AccessLogType_TcpConnectionEnd,
					Metadata:      &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{envoygrpc.ExtAuthzMetadataNamespace: leaseMetadata(lease("l-1", "k"))}},
				}}},
			}}}},
		},
		{
			name: "ok/a failed release does not end the stream",
			msgs: []*alsv3.StreamAccessLogsMessage{
				httpLogs(true, ended(leaseMetadata(lease("l-bad", "k"))), ended(leaseMetadata(lease("l-1", "k")))),
				httpLogs(false, ended(leaseMetadata(lease("l-2", "k")))),
			},
			fail:  map[string]bool{"l-bad": true},
			want:  []released{{"l-bad", []string{"k"}}, {"l-1", []string{"k"}}, {"l-2", []string{"k"}}},
			warns: 1,
		},
		{
			name: "fail/malformed leases are logged and skipped",
			msgs: []*alsv3.StreamAccessLogsMessage{httpLogs(true,
				ended(leaseMetadata("l-1")),
				ended(leaseMetadata(map[string]any{"id": 7.0, "keys": []any{"k"}})),
				ended(leaseMetadata(map[string]any{"id": "", "keys": []any{"k"}})),
				ended(leaseMetadata(map[string]any{"id": "l-2"})),
				ended(leaseMetadata(map[string]any{"id": "l-3", "keys": "k"})),
				ended(leaseMetadata(map[string]any{"id": "l-4", "keys": []any{"k", 1.0}})),
				ended(leaseMetadata(map[string]any{"id": "l-5", "keys": []any{""}})),
				ended(leaseMetadata(lease("l-6", "k"))),
			)},
			want:  []released{{"l-6", []string{"k"}}},
			warns: 7,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &fakeReleaser{fail: tt.fail}
			var logs syncBuffer
			c := startAccessLog(t, r, slog.New(slog.NewTextHandler(&logs, nil)))
			send(t, c, tt.msgs)
			r.mu.Lock()
			defer r.mu.Unlock()
			if !reflect.DeepEqual(r.got, tt.want) {
				t.Fatalf("released %+v, want %+v", r.got, tt.want)
			}
			if r.noDeadline {
				t.Error("a release without a deadline")
			}
			if n := strings.Count(logs.String(), "level=WARN"); n != tt.warns {
				t.Errorf("%d warnings, want %d:\n%s", n, tt.warns, logs.String())
			}
		})
	}
}

// leaseChecker allows every request with a lease in its metadata.
type leaseChecker struct{ md map[string]any }

func (c leaseChecker) Check(context.Context, *extauthz.Request) (extauthz.Decision, error) {
	return extauthz.Decision{Allowed: true, Status: 200, DynamicMetadata: c.md, DecisionID: "dec-1"}, nil
}

// TestLeaseMetadataRoundTrip: the dynamic metadata of a Decision, as the
// Check service sends it to Envoy, is what the access log service reads
// back: Envoy stores it under the ext_authz namespace unchanged.
func TestLeaseMetadataRoundTrip(t *testing.T) {
	md := map[string]any{
		"decision_id":              "dec-1",
		envoygrpc.LeaseMetadataKey: lease("dec-1", "tenant:acme:streams", "tenant:acme:tool:export"),
	}
	svc := envoygrpc.NewService(leaseChecker{md}, slog.New(slog.DiscardHandler))
	resp, err := svc.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "POST", Path: "/mcp", Host: "mcp.example.com", Protocol: "HTTP/2", Headers: map[string]string{":method": "POST", ":path": "/mcp"},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetDynamicMetadata() == nil {
		t.Fatal("the CheckResponse carries no dynamic metadata")
	}
	r := &fakeReleaser{}
	c := startAccessLog(t, r, nil)
	send(t, c, []*alsv3.StreamAccessLogsMessage{httpLogs(true, ended(resp.GetDynamicMetadata()))})
	r.mu.Lock()
	defer r.mu.Unlock()
	want := []released{{"dec-1", []string{"tenant:acme:streams", "tenant:acme:tool:export"}}}
	if !reflect.DeepEqual(r.got, want) {
		t.Fatalf("released %+v, want %+v", r.got, want)
	}
}
