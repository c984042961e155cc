package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/tracing"
)

func TestTracingConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*TracingConfig)
		err  string // "" for valid
	}{
		{"ok/off by default", func(*TracingConfig) {}, ""},
		{"ok/grpc host:port", func(c *TracingConfig) { c.Endpoint = "otel-collector:4317" }, ""},
		{"ok/grpc insecure", func(c *TracingConfig) { c.Endpoint, c.Insecure = "127.0.0.1:4317", true }, ""},
		{"ok/grpc URL", func(c *TracingConfig) { c.Endpoint = "https://otel.example.com:4317" }, ""},
		{"ok/http URL with path", func(c *TracingConfig) {
			c.Endpoint, c.Protocol = "https://otel.example.com/otlp/v1/traces", "http"
		}, ""},
		{"ok/http plaintext URL", func(c *TracingConfig) {
			c.Endpoint, c.Protocol, c.Insecure = "http://otel-collector:4318", "http", true
		}, ""},
		{"ok/sample nothing new", func(c *TracingConfig) { c.SampleRatio = 0 }, ""},
		{"fail/protocol", func(c *TracingConfig) { c.Protocol = "zipkin" }, "tracing.protocol"},
		{"fail/ratio above 1", func(c *TracingConfig) { c.SampleRatio = 1.5 }, "tracing.sample_ratio"},
		{"fail/negative ratio", func(c *TracingConfig) { c.SampleRatio = -0.1 }, "tracing.sample_ratio"},
		{"fail/NaN ratio", func(c *TracingConfig) { c.SampleRatio = math.NaN() }, "tracing.sample_ratio"},
		{"fail/no service name", func(c *TracingConfig) { c.ServiceName = "" }, "tracing.service_name"},
		{"fail/no port", func(c *TracingConfig) { c.Endpoint = "otel-collector" }, "tracing.endpoint"},
		{"fail/bad port", func(c *TracingConfig) { c.Endpoint = "otel-collector:http" }, "tracing.endpoint"},
		{"fail/other scheme", func(c *TracingConfig) { c.Endpoint = "ftp://otel-collector:4317" }, "tracing.endpoint"},
		{"fail/https with insecure", func(c *TracingConfig) { c.Endpoint, c.Insecure = "https://otel.example.com", true }, "tracing.endpoint"},
		{"fail/grpc URL with a path", func(c *TracingConfig) { c.Endpoint = "https://otel.example.com/v1/traces" }, "tracing.endpoint"},
		{"fail/credentials in the URL", func(c *TracingConfig) {
			c.Endpoint, c.Protocol = "https://user:hunter2@otel.example.com", "http"
		}, "tracing.endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tracingDefaults()
			tc.set(&c)
			err := c.validate()
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("validate: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("validate = %v; want an error about %s", err, tc.err)
			case err != nil && strings.Contains(err.Error(), "hunter2"):
				t.Fatalf("the error quotes the password: %v", err)
			}
		})
	}
}

func TestTracingOffByDefault(t *testing.T) {
	tp, shutdown, err := tracingDefaults().provider(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tp.(noop.TracerProvider); !ok {
		t.Fatalf("provider %T; want the no-op provider", tp)
	}
	if _, span := tp.Tracer("t").Start(context.Background(), "s"); span.IsRecording() {
		t.Error("the default provider records spans")
	}
	if err := shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

// otlpReceiver is an OTLP/HTTP receiver keeping the spans posted to
// /v1/traces.
type otlpReceiver struct {
	mu    sync.Mutex
	reqs  []*coltracepb.ExportTraceServiceRequest
	paths []string
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	msg := &coltracepb.ExportTraceServiceRequest{}
	if err == nil {
		err = proto.Unmarshal(body, msg)
	}
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/x-protobuf" || err != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.reqs, r.paths = append(r.reqs, msg), append(r.paths, req.URL.Path)
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// decider allows everything.
type decider struct{}

func (decider) Check(context.Context, *extauthz.Request) (extauthz.Decision, error) {
	return extauthz.Decision{Allowed: true, DecisionID: "d-1"}, nil
}

func TestTracingExportsOverHTTP(t *testing.T) {
	rcv := &otlpReceiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()

	c := tracingDefaults()
	c.Endpoint, c.Protocol, c.ServiceName = srv.URL, tracingHTTP, "mcpauthz-test"
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	tp, shutdown, err := c.provider(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req := &extauthz.Request{Method: "GET", Path: "/", Headers: map[string]string{
		"traceparent":   "00-" + traceID + "-00f067aa0ba902b7-01",
		"authorization": "Bearer secret-token",
	}}
	if _, err := tracing.NewChecker(decider{}, tp).Check(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.reqs) == 0 {
		t.Fatal("no spans were exported")
	}
	if rcv.paths[0] != "/v1/traces" {
		t.Errorf("posted to %s; want /v1/traces", rcv.paths[0])
	}
	var found bool
	for _, msg := range rcv.reqs {
		for _, rs := range msg.GetResourceSpans() {
			attrs := map[string]string{}
			for _, kv := range rs.GetResource().GetAttributes() {
				attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
			}
			if attrs["service.name"] != "mcpauthz-test" || attrs["service.version"] != version {
				t.Errorf("resource %v; want service.name mcpauthz-test and service.version %s", attrs, version)
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					if s.GetName() == tracing.CheckSpan && bytes.Equal(s.GetTraceId(), mustHex(t, traceID)) {
						found = true
					}
				}
			}
		}
		raw, _ := proto.Marshal(msg)
		if bytes.Contains(raw, []byte("secret-token")) {
			t.Error("the export carries the Authorization header")
		}
	}
	if !found {
		t.Error("no check span in the request's trace was exported")
	}
}

// grpcReceiver is an OTLP/gRPC receiver counting the spans exported.
type grpcReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	names []string
}

func (r *grpcReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.names = append(r.names, s.GetName())
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func TestTracingExportsOverGRPC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rcv := &grpcReceiver{}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, rcv)
	go srv.Serve(lis)
	defer srv.Stop()

	c := tracingDefaults()
	c.Endpoint, c.Insecure = lis.Addr().String(), true
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	tp, shutdown, err := c.provider(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tracing.NewChecker(decider{}, tp).Check(context.Background(), &extauthz.Request{Method: "GET", Path: "/"}); err != nil {
		t.Fatal(err)
	}
	// The sidecar stops tracing as one of its closers.
	tracingCloser(shutdown, slog.New(slog.DiscardHandler)).Close()
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.names) != 1 || rcv.names[0] != tracing.CheckSpan {
		t.Errorf("exported %v; want one %s span", rcv.names, tracing.CheckSpan)
	}
}

func TestTracingExportErrorsRateLimited(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	h := newExportErrors(slog.New(slog.NewTextHandler(&buf, nil)), func() time.Time { return now })
	for range 5 {
		h.Handle(errors.New("connection refused"))
		now = now.Add(time.Second)
	}
	now = now.Add(exportErrorInterval)
	h.Handle(errors.New("connection refused"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "errors_not_logged=4") {
		t.Errorf("logged:\n%s\nwant two lines, the second counting 4 not logged", buf.String())
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTracingThroughTheSidecar: a Check that carries a traceparent is one
// trace in the collector: the check span, child of the caller's span, with
// the credential verification, policy evaluation and limits under it.
func TestTracingThroughTheSidecar(t *testing.T) {
	rcv := &otlpReceiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"authz.rego": limitedPolicy})
	cfg := loopback(Defaults())
	cfg.Policy.Bundle = dir
	cfg.Tracing.Endpoint, cfg.Tracing.Protocol = srv.URL, tracingHTTP
	s, stop := startSidecar(t, cfg, io.Discard)
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	resp, err := dial(t, s.grpc.Addr().String()).Check(context.Background(),
		checkRequest("search", map[string]string{"traceparent": "00-" + traceID + "-" + parentID + "-01"}))
	if err != nil || resp.GetStatus().GetCode() != 0 {
		t.Fatalf("check: %v %v", resp, err)
	}
	if err := stop(); err != nil { // flushes the exporter
		t.Fatal(err)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	spans := map[string][]byte{} // name → parent span id
	var checkID []byte
	for _, msg := range rcv.reqs {
		for _, rs := range msg.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					if !bytes.Equal(sp.GetTraceId(), mustHex(t, traceID)) {
						continue
					}
					spans[sp.GetName()] = sp.GetParentSpanId()
					if sp.GetName() == tracing.CheckSpan {
						checkID = sp.GetSpanId()
					}
				}
			}
		}
	}
	if !bytes.Equal(spans[tracing.CheckSpan], mustHex(t, parentID)) {
		t.Fatalf("spans %v: no check span under the caller's", spans)
	}
	for _, name := range []string{tracing.CredentialsSpan, tracing.PolicySpan, tracing.LimitsSpan} {
		if parent, ok := spans[name]; !ok || !bytes.Equal(parent, checkID) {
			t.Errorf("span %s: present %v, under the check span %v", name, ok, bytes.Equal(parent, checkID))
		}
	}
}
