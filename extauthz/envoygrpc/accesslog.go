package envoygrpc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mcpauthz/mcpauthz/extauthz"
)

// Where a concurrent-request lease travels: the authorizer puts it in the
// CheckResponse's dynamic metadata, which Envoy's ext_authz filter stores
// under ExtAuthzMetadataNamespace and its gRPC access logger sends back in
// common_properties.metadata when the request ends:
//
//	filter_metadata["envoy.filters.http.ext_authz"]["mcpauthz_lease"] =
//	    {"id": "<lease id>", "keys": ["<key>", ...]}
const (
	ExtAuthzMetadataNamespace = "envoy.filters.http.ext_authz"
	LeaseMetadataKey          = extauthz.LeaseMetadataKey
)

// DefaultReleaseTimeout bounds one release.
const DefaultReleaseTimeout = time.Second

// Releaser gives back the leases a finished request held;
// quotas.Leaser is one.
type Releaser interface {
	Release(ctx context.Context, id string, keys []string) error
}

// AccessLogService implements envoy.service.accesslog.v3.AccessLogService:
// Envoy streams an entry per finished request, and the leases the request
// held are released, rather than held until they expire.
type AccessLogService struct {
	alsv3.UnimplementedAccessLogServiceServer
	releaser Releaser
	log      *slog.Logger
	timeout  time.Duration
}

// AccessLogOption configures an AccessLogService.
type AccessLogOption func(*AccessLogService)

// WithReleaseTimeout bounds each release (default DefaultReleaseTimeout).
func WithReleaseTimeout(d time.Duration) AccessLogOption {
	return func(s *AccessLogService) { s.timeout = d }
}

// NewAccessLogService returns the service releasing through r; a nil log
// discards.
func NewAccessLogService(r Releaser, log *slog.Logger, opts ...AccessLogOption) *AccessLogService {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &AccessLogService{releaser: r, log: log, timeout: DefaultReleaseTimeout}
	for _, o := range opts {
		o(s)
	}
	return s
}

// RegisterAccessLog registers the access log service releasing through r
// on s.
func RegisterAccessLog(s grpc.ServiceRegistrar, r Releaser, log *slog.Logger, opts ...AccessLogOption) {
	alsv3.RegisterAccessLogServiceServer(s, NewAccessLogService(r, log, opts...))
}

// StreamAccessLogs releases the lease of every finished HTTP request on
// the stream. One bad entry or failed release is logged and skipped, never
// the end of the stream: a lease not released still expires.
func (s *AccessLogService) StreamAccessLogs(stream grpc.ClientStreamingServer[alsv3.StreamAccessLogsMessage, alsv3.StreamAccessLogsResponse]) error {
	ctx := stream.Context()
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&alsv3.StreamAccessLogsResponse{})
		}
		if err != nil {
			return err
		}
		for _, e := range msg.GetHttpLogs().GetLogEntry() {
			s.releaseEntry(ctx, e.GetCommonProperties())
		}
	}
}

// releaseEntry releases the lease an entry carries, if it carries one and
// reports the end of the downstream request.
func (s *AccessLogService) releaseEntry(ctx context.Context, c *accesslogv3.AccessLogCommon) {
	switch c.GetAccessLogType() {
	case accesslogv3.AccessLogType_NotSet, accesslogv3.AccessLogType_DownstreamEnd:
	default:
		// Periodic and upstream entries come while the request goes on.
		return
	}
	v, ok := c.GetMetadata().GetFilterMetadata()[ExtAuthzMetadataNamespace].GetFields()[LeaseMetadataKey]
	if !ok {
		return
	}
	id, keys, ok := parseLease(v)
	if !ok {
		s.log.LogAttrs(ctx, slog.LevelWarn, "malformed lease in an access log entry; not released",
			slog.String("lease_id", id))
		return
	}
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.releaser.Release(rctx, id, keys); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "releasing a lease failed; it will expire",
			slog.String("lease_id", id), slog.Any("keys", keys), slog.Any("error", err))
	}
}

// parseLease reads {"id": string, "keys": [string, ...]}. It returns the
// id whenever it is a string, for the log.
func parseLease(v *structpb.Value) (id string, keys []string, ok bool) {
	f := v.GetStructValue().GetFields()
	idv, ok := f["id"].GetKind().(*structpb.Value_StringValue)
	if !ok || idv.StringValue == "" {
		return "", nil, false
	}
	list, ok := f["keys"].GetKind().(*structpb.Value_ListValue)
	if !ok {
		return idv.StringValue, nil, false
	}
	keys = make([]string, 0, len(list.ListValue.GetValues()))
	for _, k := range list.ListValue.GetValues() {
		s, ok := k.GetKind().(*structpb.Value_StringValue)
		if !ok || s.StringValue == "" {
			return idv.StringValue, nil, false
		}
		keys = append(keys, s.StringValue)
	}
	return idv.StringValue, keys, true
}
