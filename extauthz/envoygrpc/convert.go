package envoygrpc

import (
	"errors"
	"net/http"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mcpauthz/mcpauthz/extauthz"
)

var errNoHTTPRequest = errors.New("check request has no HTTP request attributes")

// toRequest describes an Envoy CheckRequest as an extauthz.Request. Strings
// are shared with the protobuf message, not copied.
func toRequest(cr *authv3.CheckRequest) (*extauthz.Request, error) {
	attrs := cr.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	if h == nil {
		return nil, errNoHTTPRequest
	}
	req := &extauthz.Request{
		ID:                h.GetId(),
		Method:            h.GetMethod(),
		Scheme:            h.GetScheme(),
		Host:              h.GetHost(),
		Path:              h.GetPath(),
		Fragment:          h.GetFragment(),
		Protocol:          h.GetProtocol(),
		Headers:           headers(h),
		Body:              h.GetBody(),
		Size:              h.GetSize(),
		ContextExtensions: attrs.GetContextExtensions(),
		TLSSession:        attrs.GetTlsSession() != nil,
		TLSSessionSNI:     attrs.GetTlsSession().GetSni(),
		Transport:         "envoy-grpc",
	}
	if len(h.GetRawBody()) > 0 {
		req.Body, req.RawBody = string(h.GetRawBody()), true
	}
	if t := attrs.GetRequest().GetTime(); t != nil {
		req.Time = t.AsTime()
	}
	peer(&req.Source, attrs.GetSource())
	peer(&req.Destination, attrs.GetDestination())
	// Envoy reports the downstream address it resolved with its own
	// trusted-hops settings (use_remote_address, xff_num_trusted_hops).
	req.ClientIP = req.Source.Address
	req.MetadataContext = metadata(attrs.GetMetadataContext())
	req.RouteMetadataContext = metadata(attrs.GetRouteMetadataContext())
	return req, nil
}

// headers returns the request headers as a map with lower-case names. Envoy
// sends either the headers map or, with encode_raw_headers, a header list
// whose repeated names are joined with "," here as Envoy joins them.
func headers(h *authv3.AttributeContext_HttpRequest) map[string]string {
	if m := h.GetHeaders(); len(m) > 0 {
		return m
	}
	list := h.GetHeaderMap().GetHeaders()
	m := make(map[string]string, len(list))
	for _, hv := range list {
		name := strings.ToLower(hv.GetKey())
		value := hv.GetValue()
		if raw := hv.GetRawValue(); len(raw) > 0 {
			value = string(raw)
		}
		if prev, ok := m[name]; ok {
			value = prev + "," + value
		}
		m[name] = value
	}
	return m
}

func peer(dst *extauthz.Peer, p *authv3.AttributeContext_Peer) {
	if p == nil {
		return
	}
	sa := p.GetAddress().GetSocketAddress()
	dst.Address = sa.GetAddress()
	dst.Port = sa.GetPortValue()
	if pipe := p.GetAddress().GetPipe(); pipe != nil {
		dst.PipePath, dst.PipeMode = pipe.GetPath(), pipe.GetMode()
	}
	dst.Principal = p.GetPrincipal()
	dst.Certificate = p.GetCertificate()
	dst.Service = p.GetService()
	dst.Labels = p.GetLabels()
}

// noMetadata stands for metadata Envoy sent empty (it always sends the
// field); it is never modified.
var noMetadata = map[string]any{}

func metadata(md *corev3.Metadata) map[string]any {
	if md == nil {
		return nil
	}
	fm := md.GetFilterMetadata()
	if len(fm) == 0 {
		return noMetadata
	}
	out := make(map[string]any, len(fm))
	for ns, s := range fm {
		out[ns] = s.AsMap()
	}
	return out
}

// toResponse renders a Decision as a CheckResponse. A denial is always a
// denied response with a non-OK status, never an error response or a gRPC
// error, so Envoy's failure_mode_allow cannot turn it into an allow. A
// denial with HTTP status 200 is the authorizer answering the request
// itself (the protected resource metadata): Envoy sends it to the client
// as it is, and the request goes no further.
func toResponse(d *extauthz.Decision) *authv3.CheckResponse {
	resp := &authv3.CheckResponse{DynamicMetadata: dynamicMetadata(d.DynamicMetadata)}
	if d.Allowed {
		resp.Status = &rpcstatus.Status{Code: int32(codes.OK)}
		ok := &authv3.OkHttpResponse{
			Headers:                 headerOptions(d.Headers),
			HeadersToRemove:         d.RequestHeadersToRemove,
			ResponseHeadersToAdd:    headerOptions(d.ResponseHeadersToAdd),
			QueryParametersToRemove: d.QueryParametersToRemove,
		}
		for _, q := range d.QueryParametersToSet {
			ok.QueryParametersToSet = append(ok.QueryParametersToSet, &corev3.QueryParameter{Key: q.Name, Value: q.Value})
		}
		resp.HttpResponse = &authv3.CheckResponse_OkResponse{OkResponse: ok}
		return resp
	}
	status := d.Status
	if _, ok := typev3.StatusCode_name[int32(status)]; !ok {
		status = http.StatusForbidden
	}
	resp.Status = &rpcstatus.Status{Code: int32(codes.PermissionDenied), Message: d.Reason}
	resp.HttpResponse = &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
		Headers: headerOptions(d.Headers),
		Body:    d.Body,
	}}
	return resp
}

// headerOptions sets each header with overwrite semantics, so a value a
// client sent under the same name never survives; a repeated name appends
// its further values. The action is explicit: Envoy's default for an unset
// append_action is to append.
func headerOptions(hs []extauthz.Header) []*corev3.HeaderValueOption {
	if len(hs) == 0 {
		return nil
	}
	opts := make([]*corev3.HeaderValueOption, len(hs))
	vals := make([]corev3.HeaderValue, len(hs))
	hvos := make([]corev3.HeaderValueOption, len(hs))
	for i, h := range hs {
		action := corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		// A Set-Cookie is added beside the upstream's own, never over them.
		if extauthz.HasHeader(hs[:i], h.Name) || strings.EqualFold(h.Name, "set-cookie") {
			action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		}
		vals[i].Key, vals[i].Value = h.Name, h.Value
		hvos[i].Header, hvos[i].AppendAction = &vals[i], action
		opts[i] = &hvos[i]
	}
	return opts
}

func dynamicMetadata(m map[string]any) *structpb.Struct {
	if len(m) == 0 {
		return nil
	}
	if id, ok := m["decision_id"].(string); ok && len(m) == 1 {
		return &structpb.Struct{Fields: map[string]*structpb.Value{"decision_id": structpb.NewStringValue(id)}}
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		// Values came from JSON, so this cannot happen; metadata is
		// informational and never decides, so drop it rather than fail.
		return nil
	}
	return s
}
