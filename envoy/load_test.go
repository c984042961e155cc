package envoy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"

	// The extensions the configurations name in typed_config: importing a
	// package registers its types, so that an Any naming one resolves. A
	// configuration using another extension needs its package here.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/forwardauth"
)

// What the configurations must fit on mcpauthz's side.
const (
	// maxRecvMsgBytes is mcpauthz's default grpc.max_recv_msg_bytes: the
	// largest CheckRequest it reads. The body and the headers must fit.
	maxRecvMsgBytes = 4 << 20
	// defaultMaxRequestHeadersKB is Envoy's limit on a request's headers
	// unless max_request_headers_kb says otherwise.
	defaultMaxRequestHeadersKB = 60
	// maxAuthzTimeout bounds how long a request may wait for mcpauthz.
	maxAuthzTimeout = time.Second
)

// The filter names the checks rely on.
const (
	extAuthzFilter = "envoy.filters.http.ext_authz"
	routerFilter   = "envoy.filters.http.router"
)

// config is one configuration file as Envoy reads it.
type config struct {
	bootstrap *bootstrapv3.Bootstrap
	typed     []typedConfig // every typed_config and other Any, unpacked
}

// typedConfig is an Any found in the configuration, unpacked.
type typedConfig struct {
	path string
	msg  proto.Message
}

// loadFile reads and validates a configuration file.
func loadFile(name string) (*config, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return load(data)
}

// load reads a bootstrap written in YAML and validates it.
func load(data []byte) (*config, error) {
	doc, err := decodeYAML(data)
	if err != nil {
		return nil, err
	}
	return fromDoc(doc)
}

// decodeYAML decodes YAML into the values encoding/json writes. Duplicate
// keys are errors, as they are to Envoy.
func decodeYAML(data []byte) (any, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	if err := checkKeys(doc, ""); err != nil {
		return nil, err
	}
	return doc, nil
}

// checkKeys makes sure every mapping has string keys: JSON has no others.
func checkKeys(v any, path string) error {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if err := checkKeys(e, path+"."+k); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range v {
			if err := checkKeys(e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case map[any]any:
		return fmt.Errorf("yaml: %s: a mapping key is not a string", path)
	}
	return nil
}

// fromDoc turns a decoded document into a Bootstrap (unknown fields and
// unknown Any types are errors) and validates it.
func fromDoc(doc any) (*config, error) {
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(data, b); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	c := &config{bootstrap: b}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// validator is what one validation found.
type validator struct {
	errs  []error
	refs  []clusterRef
	grpc  []clusterRef // clusters named by Envoy gRPC services
	typed []typedConfig
}

// clusterRef is a cluster named somewhere in the configuration.
type clusterRef struct {
	path, name string
}

func (v *validator) fail(path, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

// validate checks the bootstrap the way Envoy would refuse it and the way
// the docs promise it behaves: every message's own rules (including every
// unpacked Any's), no deprecated field or value, every cluster named
// exists, filter chains end in the router, and every ext_authz filter
// fails closed with the whole body.
func (c *config) validate() error {
	v := &validator{}
	if err := c.bootstrap.ValidateAll(); err != nil {
		v.fail("bootstrap", "%v", err)
	}
	v.message("bootstrap", c.bootstrap.ProtoReflect())
	c.typed = v.typed
	v.clusters(c.bootstrap)
	for _, tc := range v.typed {
		if hcm, ok := tc.msg.(*hcmv3.HttpConnectionManager); ok {
			v.connectionManager(tc.path, hcm)
		}
	}
	return errors.Join(v.errs...)
}

// message validates m and what it holds, unpacking Any values.
func (v *validator) message(path string, m protoreflect.Message) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		v.any(path, a)
		return
	}
	v.references(path, m.Interface())
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		if opts, ok := fd.Options().(*descriptorpb.FieldOptions); ok && opts.GetDeprecated() {
			v.fail(p, "the field is deprecated")
		}
		switch {
		case fd.IsList():
			l := val.List()
			for i := range l.Len() {
				v.value(fmt.Sprintf("%s[%s]", p, elementName(l.Get(i), fd, i)), fd, l.Get(i))
			}
		case fd.IsMap():
			val.Map().Range(func(k protoreflect.MapKey, e protoreflect.Value) bool {
				v.value(fmt.Sprintf("%s[%s]", p, k.String()), fd.MapValue(), e)
				return true
			})
		default:
			v.value(p, fd, val)
		}
		return true
	})
}

func (v *validator) value(path string, fd protoreflect.FieldDescriptor, val protoreflect.Value) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		v.message(path, val.Message())
	case protoreflect.EnumKind:
		ev := fd.Enum().Values().ByNumber(val.Enum())
		if ev == nil {
			v.fail(path, "%d is no value of %s", val.Enum(), fd.Enum().FullName())
		} else if opts, ok := ev.Options().(*descriptorpb.EnumValueOptions); ok && opts.GetDeprecated() {
			v.fail(path, "the value %s is deprecated", ev.Name())
		}
	}
}

// elementName names a list element by its name field, if it has one.
func elementName(e protoreflect.Value, fd protoreflect.FieldDescriptor, i int) string {
	if fd.Kind() == protoreflect.MessageKind {
		if nf := fd.Message().Fields().ByName("name"); nf != nil && nf.Kind() == protoreflect.StringKind {
			if name := e.Message().Get(nf).String(); name != "" {
				return name
			}
		}
	}
	return fmt.Sprint(i)
}

// any unpacks a typed config, validates it and walks it.
func (v *validator) any(path string, a *anypb.Any) {
	inner, err := a.UnmarshalNew()
	if err != nil {
		v.fail(path, "%s: %v (not a type Envoy knows, or its package is not imported by this test)", a.GetTypeUrl(), err)
		return
	}
	if val, ok := inner.(interface{ ValidateAll() error }); ok {
		if err := val.ValidateAll(); err != nil {
			v.fail(path, "%v", err)
		}
	}
	path += "<" + string(inner.ProtoReflect().Descriptor().Name()) + ">"
	v.typed = append(v.typed, typedConfig{path, inner})
	v.message(path, inner.ProtoReflect())
}

// references records the clusters a message names.
func (v *validator) references(path string, m proto.Message) {
	switch m := m.(type) {
	case *corev3.GrpcService:
		if g := m.GetEnvoyGrpc(); g != nil {
			ref := clusterRef{path + ".envoy_grpc.cluster_name", g.GetClusterName()}
			v.refs = append(v.refs, ref)
			v.grpc = append(v.grpc, ref)
		}
	case *corev3.HttpUri:
		v.refs = append(v.refs, clusterRef{path + ".cluster", m.GetCluster()})
	case *routev3.RouteAction:
		switch s := m.GetClusterSpecifier().(type) {
		case *routev3.RouteAction_Cluster:
			v.refs = append(v.refs, clusterRef{path + ".cluster", s.Cluster})
		case *routev3.RouteAction_WeightedClusters:
			for _, wc := range s.WeightedClusters.GetClusters() {
				v.refs = append(v.refs, clusterRef{path + ".weighted_clusters", wc.GetName()})
			}
		default:
			v.fail(path, "the upstream cluster is chosen at run time (%T), so it cannot be checked", s)
		}
		for _, mp := range m.GetRequestMirrorPolicies() {
			v.refs = append(v.refs, clusterRef{path + ".request_mirror_policies", mp.GetCluster()})
		}
	}
}

// clusters checks the cluster definitions and that every cluster named
// exists; those Envoy gRPC services call must speak HTTP/2.
func (v *validator) clusters(b *bootstrapv3.Bootstrap) {
	defined := map[string]bool{}
	http2 := map[string]bool{}
	for _, c := range b.GetStaticResources().GetClusters() {
		path := "bootstrap.static_resources.clusters[" + c.GetName() + "]"
		if defined[c.GetName()] {
			v.fail(path, "the cluster is defined twice")
		}
		defined[c.GetName()] = true
		if la := c.GetLoadAssignment(); la != nil && la.GetClusterName() != c.GetName() {
			v.fail(path+".load_assignment.cluster_name", "%q is not the cluster's name", la.GetClusterName())
		}
		if a := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; a != nil {
			var opts upstreamhttpv3.HttpProtocolOptions
			if a.UnmarshalTo(&opts) == nil && opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil {
				http2[c.GetName()] = true
			}
		}
	}
	for _, r := range v.refs {
		switch {
		case r.name == "":
			v.fail(r.path, "no cluster is named")
		case !defined[r.name]:
			v.fail(r.path, "names the cluster %q, which is not defined", r.name)
		}
	}
	for _, r := range v.grpc {
		if defined[r.name] && !http2[r.name] {
			v.fail(r.path, "the gRPC cluster %q does not speak HTTP/2 (explicit_http_config.http2_protocol_options)", r.name)
		}
	}
}

// connectionManager checks an HTTP filter chain and its routes.
func (v *validator) connectionManager(path string, hcm *hcmv3.HttpConnectionManager) {
	// The path the authorizer decides on must be the path the upstream
	// gets: normalized (RFC 3986 dot segments), slashes merged, and an
	// escaped slash refused rather than passed through.
	if !hcm.GetNormalizePath().GetValue() {
		v.fail(path, "normalize_path must be true")
	}
	if !hcm.GetMergeSlashes() {
		v.fail(path, "merge_slashes must be true")
	}
	if hcm.GetPathWithEscapedSlashesAction() != hcmv3.HttpConnectionManager_REJECT_REQUEST {
		v.fail(path, "path_with_escaped_slashes_action must be REJECT_REQUEST")
	}
	filters := hcm.GetHttpFilters()
	names := map[string]bool{}
	authzNames := map[string]bool{}
	for i, f := range filters {
		p := fmt.Sprintf("%s.http_filters[%s]", path, f.GetName())
		if names[f.GetName()] {
			v.fail(p, "two filters have this name")
		}
		names[f.GetName()] = true
		last := i == len(filters)-1
		var router routerv3.Router
		isRouter := f.GetTypedConfig().MessageIs(&router)
		switch {
		case last && !isRouter:
			v.fail(p, "the last HTTP filter must be the router")
		case !last && isRouter:
			v.fail(p, "the router must be the last HTTP filter")
		}
		var ea extauthzv3.ExtAuthz
		if f.GetTypedConfig().MessageIs(&ea) {
			authzNames[f.GetName()] = true
			if f.GetDisabled() || f.GetIsOptional() {
				v.fail(p, "ext_authz must be on for every route unless a route turns it off")
			}
			if err := f.GetTypedConfig().UnmarshalTo(&ea); err == nil {
				v.extAuthz(path, p, hcm, &ea)
			}
		}
	}
	rc := hcm.GetRouteConfig()
	for _, pf := range perFilterConfigs(path, rc) {
		if !names[pf.filter] {
			v.fail(pf.path, "configures %q, which is no filter of the chain", pf.filter)
		}
		var per extauthzv3.ExtAuthzPerRoute
		var wrapped routev3.FilterConfig
		if authzNames[pf.filter] && !pf.config.MessageIs(&per) && !pf.config.MessageIs(&wrapped) {
			v.fail(pf.path, "the ext_authz filter takes an ExtAuthzPerRoute, not %s", pf.config.GetTypeUrl())
		}
	}
}

// perFilterConfig is a typed_per_filter_config entry of a route
// configuration, a virtual host or a route.
type perFilterConfig struct {
	path, filter string
	config       *anypb.Any
}

func perFilterConfigs(hcmPath string, rc *routev3.RouteConfiguration) []perFilterConfig {
	var out []perFilterConfig
	add := func(path string, m map[string]*anypb.Any) {
		for _, k := range sortedKeys(m) {
			out = append(out, perFilterConfig{path + ".typed_per_filter_config[" + k + "]", k, m[k]})
		}
	}
	rp := hcmPath + ".route_config"
	add(rp, rc.GetTypedPerFilterConfig())
	for _, vh := range rc.GetVirtualHosts() {
		vp := rp + ".virtual_hosts[" + vh.GetName() + "]"
		add(vp, vh.GetTypedPerFilterConfig())
		for _, r := range vh.GetRoutes() {
			add(vp+".routes["+r.GetName()+"]", r.GetTypedPerFilterConfig())
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// extAuthz checks what the docs promise of an ext_authz filter: it fails
// closed, sends the whole body (which mcpauthz must be able to read), waits
// long enough for a decision and not forever, and uses no setting its
// service ignores.
func (v *validator) extAuthz(hcmPath, path string, hcm *hcmv3.HttpConnectionManager, ea *extauthzv3.ExtAuthz) {
	if ea.GetFailureModeAllow() {
		v.fail(path+".failure_mode_allow", "must be false: an unreachable authorizer would allow everything")
	}
	body := ea.GetWithRequestBody()
	switch {
	case body == nil:
		v.fail(path+".with_request_body", "must be set: MCP requests are decided on their body")
	case body.GetAllowPartialMessage():
		v.fail(path+".with_request_body.allow_partial_message", "must be false: a cut body is refused, so Envoy should answer 413 itself")
	}
	var timeout time.Duration
	switch s := ea.GetServices().(type) {
	case *extauthzv3.ExtAuthz_GrpcService:
		if s.GrpcService.GetTimeout() == nil {
			v.fail(path+".grpc_service", "no timeout: set one (Envoy's default is 200 ms)")
			return
		}
		timeout = s.GrpcService.GetTimeout().AsDuration()
		if ea.GetTransportApiVersion() != corev3.ApiVersion_V3 {
			v.fail(path+".transport_api_version", "must be V3")
		}
		headersKB := hcm.GetMaxRequestHeadersKb().GetValue()
		if headersKB == 0 {
			headersKB = defaultMaxRequestHeadersKB
		}
		if limit := uint64(maxRecvMsgBytes) - uint64(headersKB+4)<<10; uint64(body.GetMaxRequestBytes()) > limit {
			v.fail(path+".with_request_body.max_request_bytes", "%d with %d KiB of headers does not fit mcpauthz's grpc.max_recv_msg_bytes (%d); at most %d",
				body.GetMaxRequestBytes(), headersKB, maxRecvMsgBytes, limit)
		}
	case *extauthzv3.ExtAuthz_HttpService:
		timeout = s.HttpService.GetServerUri().GetTimeout().AsDuration()
		if !strings.HasPrefix(s.HttpService.GetPathPrefix(), "/") {
			v.fail(path+".http_service.path_prefix", "must be set (mcpauthz's http.path_prefix), so that a check is never taken for a request to the listener itself")
		}
		if body.GetMaxRequestBytes() > forwardauth.DefaultMaxBodyBytes {
			v.fail(path+".with_request_body.max_request_bytes", "%d is more than mcpauthz's http.max_body_bytes (%d) reads whole",
				body.GetMaxRequestBytes(), forwardauth.DefaultMaxBodyBytes)
		}
		if len(ea.GetMetadataContextNamespaces()) > 0 {
			v.fail(path+".metadata_context_namespaces", "an HTTP service is never sent metadata")
		}
		for _, pf := range perFilterConfigs(hcmPath, hcm.GetRouteConfig()) {
			var per extauthzv3.ExtAuthzPerRoute
			if pf.config.UnmarshalTo(&per) == nil && len(per.GetCheckSettings().GetContextExtensions()) > 0 {
				v.fail(pf.path, "an HTTP service is never sent context extensions")
			}
		}
	default:
		v.fail(path, "no grpc_service or http_service")
		return
	}
	if timeout <= extauthz.DefaultTimeout || timeout > maxAuthzTimeout {
		v.fail(path, "the timeout %v must be longer than mcpauthz's decision budget (%v) and at most %v", timeout, extauthz.DefaultTimeout, maxAuthzTimeout)
	}
}
