package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TracingConfig exports a trace of every decision over OTLP (package
// extauthz/tracing says what the spans hold). Tracing is off until
// endpoint is set. The exporter also reads the standard
// OTEL_EXPORTER_OTLP_* variables for what is not set here: headers (a
// backend's API key belongs in OTEL_EXPORTER_OTLP_HEADERS, not in this
// file), certificate, compression, timeout.
type TracingConfig struct {
	// Endpoint is the OTLP receiver: host:port, or an http:// or https://
	// URL. With protocol http a URL's path is where spans are posted
	// (default /v1/traces); with grpc a URL has no path.
	Endpoint string `yaml:"endpoint"`
	// Protocol is grpc (OTLP/gRPC, port 4317 by convention) or http
	// (OTLP/HTTP with protobuf, 4318).
	Protocol string `yaml:"protocol"`
	// Insecure sends spans to a host:port endpoint without TLS. An
	// http:// URL never uses TLS; an https:// one always does.
	Insecure bool `yaml:"insecure"`
	// SampleRatio is the fraction of new traces sampled, in [0, 1]. A
	// request whose traceparent says whether it is sampled is traced
	// accordingly.
	SampleRatio float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name of the spans.
	ServiceName string `yaml:"service_name"`
}

// Tracing protocols.
const (
	tracingGRPC = "grpc"
	tracingHTTP = "http"
)

func tracingDefaults() TracingConfig {
	return TracingConfig{Protocol: tracingGRPC, SampleRatio: 1, ServiceName: "mcpauthz"}
}

func (c TracingConfig) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Protocol != tracingGRPC && c.Protocol != tracingHTTP {
		bad("tracing.protocol: %q is neither grpc nor http", c.Protocol)
	}
	if !(c.SampleRatio >= 0 && c.SampleRatio <= 1) {
		bad("tracing.sample_ratio: %g is outside [0, 1]", c.SampleRatio)
	}
	if c.ServiceName == "" {
		bad("tracing.service_name: must not be empty")
	}
	if c.Endpoint != "" {
		if _, err := c.target(); err != nil {
			bad("tracing.endpoint: %v", err)
		}
	}
	return errors.Join(errs...)
}

// otlpTarget is where spans go.
type otlpTarget struct {
	host     string // host:port
	path     string // the URL path, for OTLP/HTTP
	insecure bool
}

// target parses the endpoint. Its errors do not quote it: a URL may carry
// a password.
func (c TracingConfig) target() (otlpTarget, error) {
	t := otlpTarget{path: "/v1/traces", insecure: c.Insecure}
	if !hasScheme(c.Endpoint) {
		host, port, err := net.SplitHostPort(c.Endpoint)
		if err != nil || host == "" {
			return t, errors.New("neither host:port nor an http(s) URL")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return t, errors.New("invalid port")
		}
		t.host = c.Endpoint
		return t, nil
	}
	u, err := url.Parse(c.Endpoint)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return t, errors.New("not a valid URL")
	case u.User != nil:
		return t, errors.New("the URL carries credentials; send them in OTEL_EXPORTER_OTLP_HEADERS")
	case u.RawQuery != "" || u.Fragment != "":
		return t, errors.New("the URL has a query or a fragment")
	case u.Scheme == "https" && c.Insecure:
		return t, errors.New("an https URL with insecure: use http:// for an endpoint without TLS")
	case u.Scheme != "http" && u.Scheme != "https":
		return t, errors.New("the URL is neither http nor https")
	}
	t.host, t.insecure = u.Host, u.Scheme == "http"
	if u.Path != "" && u.Path != "/" {
		if c.Protocol == tracingGRPC {
			return t, errors.New("an OTLP/gRPC endpoint has no path")
		}
		t.path = u.Path
	}
	return t, nil
}

func hasScheme(endpoint string) bool {
	scheme, _, ok := strings.Cut(endpoint, "://")
	return ok && scheme != ""
}

// provider returns the tracer provider the decisions are traced with, and
// the function that flushes and stops it, bounded by its context. Without
// an endpoint it is OpenTelemetry's no-op provider. Spans are exported in
// batches, off the decision path: a full queue drops spans, never delays a
// decision.
func (c TracingConfig) provider(ctx context.Context, log *slog.Logger) (trace.TracerProvider, func(context.Context) error, error) {
	if c.Endpoint == "" {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	t, err := c.target()
	if err != nil {
		return nil, nil, fmt.Errorf("tracing.endpoint: %w", err)
	}
	exp, err := c.exporter(ctx, t)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(semconv.ServiceName(c.ServiceName), semconv.ServiceVersion(version)),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: resource: %w", err)
	}
	// The SDK reports failed exports only to OpenTelemetry's process-wide
	// error handler, which otherwise prints them with the standard log
	// package, unstructured and once per failed batch.
	otel.SetErrorHandler(newExportErrors(log, time.Now))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		// A remote parent's sampled flag comes from the client: it decides
		// neither way (a client could force every request of its own into
		// the exporter, or keep them out); the ratio does.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SampleRatio),
			sdktrace.WithRemoteParentSampled(sdktrace.TraceIDRatioBased(c.SampleRatio)),
			sdktrace.WithRemoteParentNotSampled(sdktrace.TraceIDRatioBased(c.SampleRatio)))),
	)
	return tp, tp.Shutdown, nil
}

// tracingShutdownTimeout bounds sending the spans still queued when the
// sidecar stops.
const tracingShutdownTimeout = 5 * time.Second

// tracingCloser stops tracing as one of the sidecar's closers: the spans
// still queued are sent, within tracingShutdownTimeout.
func tracingCloser(stop func(context.Context) error, log *slog.Logger) io.Closer {
	return closerFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
		defer cancel()
		if err := stop(ctx); err != nil {
			log.Warn("tracing: spans still queued at shutdown were lost", slog.Any("error", err))
		}
	})
}

func (c TracingConfig) exporter(ctx context.Context, t otlpTarget) (sdktrace.SpanExporter, error) {
	if c.Protocol == tracingHTTP {
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(t.host), otlptracehttp.WithURLPath(t.path)}
		if t.insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		return otlptracehttp.New(ctx, opts...)
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(t.host)}
	if t.insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	return otlptracegrpc.New(ctx, opts...)
}

// exportErrorInterval is the least time between two logged tracing errors.
const exportErrorInterval = time.Minute

// exportErrors logs OpenTelemetry's errors — spans that could not be
// exported, mostly — at most once per exportErrorInterval, saying how
// many were not logged since: an unreachable collector fails every batch.
type exportErrors struct {
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	next    time.Time
	skipped int
}

func newExportErrors(log *slog.Logger, now func() time.Time) *exportErrors {
	return &exportErrors{log: log, now: now}
}

// Handle logs err unless an error was logged less than
// exportErrorInterval ago.
func (h *exportErrors) Handle(err error) {
	h.mu.Lock()
	now := h.now()
	if now.Before(h.next) {
		h.skipped++
		h.mu.Unlock()
		return
	}
	skipped := h.skipped
	h.next, h.skipped = now.Add(exportErrorInterval), 0
	h.mu.Unlock()
	h.log.Warn("tracing failed; spans may be lost", slog.Any("error", err), slog.Int("errors_not_logged", skipped))
}
