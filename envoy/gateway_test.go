package envoy

import (
	"bytes"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Addresses of the requests' journey.
const (
	clientAddr = "203.0.113.7" // the downstream client
	envoyAddr  = "172.18.0.5"  // Envoy, as the authorizer sees it
)

// gateway is what a configuration makes Envoy do with a request, as far as
// these tests need it: the route the request takes, and the check its
// ext_authz filter sends. It models the routing and check settings the
// shipped files use, and fails the test on others it meets rather than
// guess what Envoy would do.
type gateway struct {
	t         *testing.T
	cfg       *config
	hcm       *hcmv3.HttpConnectionManager
	authz     *extauthzv3.ExtAuthz
	authzName string
	clusters  map[string]*clusterv3.Cluster
}

func newGateway(t *testing.T, file string) *gateway {
	t.Helper()
	cfg, err := loadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, cfg: cfg, clusters: map[string]*clusterv3.Cluster{}}
	for _, c := range cfg.bootstrap.GetStaticResources().GetClusters() {
		g.clusters[c.GetName()] = c
	}
	for _, tc := range cfg.typed {
		if hcm, ok := tc.msg.(*hcmv3.HttpConnectionManager); ok {
			if g.hcm != nil {
				t.Fatalf("%s: more than one HTTP connection manager", file)
			}
			g.hcm = hcm
		}
	}
	if g.hcm == nil {
		t.Fatalf("%s: no HTTP connection manager", file)
	}
	for _, f := range g.hcm.GetHttpFilters() {
		var ea extauthzv3.ExtAuthz
		if f.GetTypedConfig().MessageIs(&ea) {
			if err := f.GetTypedConfig().UnmarshalTo(&ea); err != nil {
				t.Fatal(err)
			}
			g.authz, g.authzName = &ea, f.GetName()
		}
	}
	if g.authz == nil {
		t.Fatalf("%s: no ext_authz filter", file)
	}
	return g
}

// port is the port of a cluster's only endpoint.
func (g *gateway) port(cluster string) uint32 {
	g.t.Helper()
	var ports []uint32
	for _, le := range g.clusters[cluster].GetLoadAssignment().GetEndpoints() {
		for _, e := range le.GetLbEndpoints() {
			ports = append(ports, e.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue())
		}
	}
	if len(ports) != 1 {
		g.t.Fatalf("cluster %q has %d endpoints, want one", cluster, len(ports))
	}
	return ports[0]
}

// request is a request as the client sends it.
type request struct {
	method, host, path string
	headers            map[string]string
	body               string
	// metadata is the dynamic metadata filters before ext_authz set, by
	// namespace.
	metadata map[string]map[string]any
}

// routing is where a request goes.
type routing struct {
	route      string            // the route's name
	checked    bool              // ext_authz asks the authorizer
	extensions map[string]string // the check's context extensions
	cluster    string
	path       string   // the path sent upstream
	removed    []string // request headers the route removes
}

// route matches a request to its virtual host and route and merges the
// ext_authz per-route settings, most specific last.
func (g *gateway) route(r request) routing {
	t := g.t
	t.Helper()
	rc := g.hcm.GetRouteConfig()
	host := g.host(r)
	vh := virtualHost(rc.GetVirtualHosts(), host)
	if vh == nil {
		t.Fatalf("no virtual host for %q", host)
	}
	path, _, _ := strings.Cut(r.path, "?")
	var route *routev3.Route
	for _, rt := range vh.GetRoutes() {
		if g.matches(rt.GetMatch(), r.method, path, r.headers) {
			route = rt
			break
		}
	}
	if route == nil {
		t.Fatalf("no route for %s %s on %s", r.method, r.path, vh.GetName())
	}
	out := routing{route: route.GetName(), checked: true, extensions: map[string]string{}, path: path,
		removed: route.GetRequestHeadersToRemove()}
	for _, pf := range []map[string]*anypb.Any{rc.GetTypedPerFilterConfig(), vh.GetTypedPerFilterConfig(), route.GetTypedPerFilterConfig()} {
		a, ok := pf[g.authzName]
		if !ok {
			continue
		}
		var per extauthzv3.ExtAuthzPerRoute
		if err := a.UnmarshalTo(&per); err != nil {
			t.Fatalf("%s: %v", g.authzName, err)
		}
		out.checked = !per.GetDisabled()
		maps.Copy(out.extensions, per.GetCheckSettings().GetContextExtensions())
	}
	action := route.GetRoute()
	if action == nil {
		t.Fatalf("route %s: only routes to clusters are understood here", route.GetName())
	}
	out.cluster = action.GetCluster()
	if rw := action.GetRegexRewrite(); rw != nil {
		out.path = regexp.MustCompile(rw.GetPattern().GetRegex()).ReplaceAllLiteralString(path, rw.GetSubstitution())
	}
	if action.GetPrefixRewrite() != "" {
		t.Fatalf("route %s: prefix_rewrite is not understood here", route.GetName())
	}
	return out
}

// host is the request's authority as Envoy routes on it.
func (g *gateway) host(r request) string {
	if g.hcm.GetStripAnyHostPort() {
		if h, _, ok := strings.Cut(r.host, ":"); ok {
			return h
		}
	}
	return r.host
}

// virtualHost picks the virtual host as Envoy does: an exact domain, then
// the longest suffix wildcard, then the longest prefix wildcard, then "*".
func virtualHost(vhs []*routev3.VirtualHost, host string) *routev3.VirtualHost {
	host = strings.ToLower(host)
	var best *routev3.VirtualHost
	bestRank, bestLen := 0, -1
	for _, vh := range vhs {
		for _, d := range vh.GetDomains() {
			d = strings.ToLower(d)
			rank, n := 0, len(d)
			switch {
			case d == host:
				rank = 4
			case d == "*":
				rank = 1
			case strings.HasPrefix(d, "*") && strings.HasSuffix(host, d[1:]) && len(host) > len(d)-1:
				rank = 3
			case strings.HasSuffix(d, "*") && strings.HasPrefix(host, d[:len(d)-1]) && len(host) > len(d)-1:
				rank = 2
			}
			if rank > bestRank || rank == bestRank && rank > 0 && n > bestLen {
				best, bestRank, bestLen = vh, rank, n
			}
		}
	}
	return best
}

func (g *gateway) matches(m *routev3.RouteMatch, method, path string, headers map[string]string) bool {
	t := g.t
	t.Helper()
	if m.GetCaseSensitive() != nil && !m.GetCaseSensitive().GetValue() || len(m.GetQueryParameters()) > 0 || m.GetRuntimeFraction() != nil {
		t.Fatalf("route match %v is not understood here", m)
	}
	var ok bool
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		ok = strings.HasPrefix(path, p.Prefix)
	case *routev3.RouteMatch_Path:
		ok = path == p.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		ok = path == p.PathSeparatedPrefix || strings.HasPrefix(path, p.PathSeparatedPrefix+"/")
	case *routev3.RouteMatch_SafeRegex:
		ok = fullMatch(t, p.SafeRegex.GetRegex(), path)
	default:
		t.Fatalf("route match %T is not understood here", p)
	}
	for _, hm := range m.GetHeaders() {
		value, present := headers[hm.GetName()]
		if hm.GetName() == ":method" {
			value, present = method, true
		}
		var hok bool
		switch {
		case hm.GetStringMatch() != nil:
			hok = present && stringMatches(t, hm.GetStringMatch(), value)
		case hm.GetPresentMatch():
			hok = present
		default:
			t.Fatalf("header match %v is not understood here", hm)
		}
		ok = ok && hok != hm.GetInvertMatch()
	}
	return ok
}

func fullMatch(t *testing.T, re, s string) bool {
	t.Helper()
	r, err := regexp.Compile("^(?:" + re + ")$")
	if err != nil {
		t.Fatalf("regex %q: %v", re, err)
	}
	return r.MatchString(s)
}

func stringMatches(t *testing.T, m *matcherv3.StringMatcher, s string) bool {
	t.Helper()
	if m.GetIgnoreCase() {
		s = strings.ToLower(s)
	}
	fold := func(p string) string {
		if m.GetIgnoreCase() {
			return strings.ToLower(p)
		}
		return p
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return s == fold(p.Exact)
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(s, fold(p.Prefix))
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(s, fold(p.Suffix))
	case *matcherv3.StringMatcher_Contains:
		return strings.Contains(s, fold(p.Contains))
	case *matcherv3.StringMatcher_SafeRegex:
		return fullMatch(t, p.SafeRegex.GetRegex(), s)
	}
	t.Fatalf("string match %v is not understood here", m)
	return false
}

func listMatches(t *testing.T, l *matcherv3.ListStringMatcher, s string) bool {
	t.Helper()
	return slices.ContainsFunc(l.GetPatterns(), func(m *matcherv3.StringMatcher) bool { return stringMatches(t, m, s) })
}

// downstream is the request's headers as the connection manager hands them
// to its filters: names lower-cased, the pseudo-headers set, and the
// x-forwarded-* and x-request-id headers of an edge proxy.
func (g *gateway) downstream(r request) map[string]string {
	h := map[string]string{}
	for k, v := range r.headers {
		h[strings.ToLower(k)] = v
	}
	h[":authority"] = g.host(r)
	h[":method"] = r.method
	h[":path"] = r.path
	h[":scheme"] = "http"
	h["x-forwarded-proto"] = "http"
	if g.hcm.GetUseRemoteAddress().GetValue() {
		if xff := h["x-forwarded-for"]; xff != "" {
			h["x-forwarded-for"] = xff + "," + clientAddr
		} else {
			h["x-forwarded-for"] = clientAddr
		}
		if !g.hcm.GetPreserveExternalRequestId() {
			delete(h, "x-request-id") // an external request gets a fresh one
		}
	}
	if _, ok := h["x-request-id"]; !ok {
		h["x-request-id"] = "5e2f6a63-1c0b-4f8e-9d1e-0a2b3c4d5e6f"
	}
	if r.body != "" {
		h["content-length"] = strconv.Itoa(len(r.body))
	}
	return h
}

// body is what with_request_body lets through: the body, whether it was
// cut, and Envoy's own answer (413) when it refuses it.
func (g *gateway) body(r request) (body string, partial bool, status int) {
	wb := g.authz.GetWithRequestBody()
	if wb == nil {
		return "", false, 0
	}
	limit := int(wb.GetMaxRequestBytes())
	if len(r.body) <= limit {
		return r.body, false, 0
	}
	if !wb.GetAllowPartialMessage() {
		return "", false, http.StatusRequestEntityTooLarge
	}
	return r.body[:limit], true, 0
}

// checkRequest is the CheckRequest the gRPC ext_authz filter sends for r
// on rt, or the status Envoy answers with itself.
func (g *gateway) checkRequest(r request, rt routing) (*authv3.CheckRequest, int) {
	t := g.t
	t.Helper()
	if g.authz.GetGrpcService() == nil {
		t.Fatal("not a gRPC ext_authz filter")
	}
	if g.authz.GetAllowedHeaders() != nil || g.authz.GetDisallowedHeaders() != nil || g.authz.GetEncodeRawHeaders() ||
		g.authz.GetIncludeTlsSession() || len(g.authz.GetRouteMetadataContextNamespaces()) > 0 || len(g.authz.GetTypedMetadataContextNamespaces()) > 0 {
		t.Fatal("ext_authz settings not understood here")
	}
	body, partial, status := g.body(r)
	if status != 0 {
		return nil, status
	}
	headers := g.downstream(r)
	if g.authz.GetWithRequestBody() != nil {
		headers["x-envoy-auth-partial-body"] = strconv.FormatBool(partial)
	}
	hr := &authv3.AttributeContext_HttpRequest{
		Id: "7", Method: r.method, Path: r.path, Host: headers[":authority"], Scheme: "http", Protocol: "HTTP/1.1",
		Headers: headers,
	}
	if r.body != "" {
		hr.Size = int64(len(r.body))
	}
	if g.authz.GetWithRequestBody().GetPackAsBytes() {
		hr.RawBody = []byte(body)
	} else {
		hr.Body = body
	}
	md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
	for _, ns := range g.authz.GetMetadataContextNamespaces() {
		if m, ok := r.metadata[ns]; ok {
			s, err := structpb.NewStruct(m)
			if err != nil {
				t.Fatal(err)
			}
			md.FilterMetadata[ns] = s
		}
	}
	var ext map[string]string
	if len(rt.extensions) > 0 {
		ext = rt.extensions
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: socketAddress(clientAddr, 51234)},
		Destination: &authv3.AttributeContext_Peer{Address: socketAddress(envoyAddr, 10000)},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(time.Now()),
			Http: hr,
		},
		ContextExtensions: ext,
		MetadataContext:   md,
	}}, 0
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// httpCheck is the call the HTTP ext_authz filter makes for r, or the
// status Envoy answers with itself: the original method, path_prefix
// before the original path, the allowed headers and the buffered body.
func (g *gateway) httpCheck(r request) (*http.Request, int) {
	t := g.t
	t.Helper()
	svc := g.authz.GetHttpService()
	if svc == nil {
		t.Fatal("not an HTTP ext_authz filter")
	}
	if svc.GetPathOverride() != "" || svc.GetAuthorizationRequest() != nil || g.authz.GetEncodeRawHeaders() {
		t.Fatal("http_service settings not understood here")
	}
	body, _, status := g.body(r)
	if status != 0 {
		return nil, status
	}
	down := g.downstream(r)
	req := httptest.NewRequest(r.method, svc.GetPathPrefix()+r.path, bytes.NewReader([]byte(body)))
	req.RemoteAddr = envoyAddr + ":40000"
	req.Host = down[":authority"]
	for name, value := range down {
		always := name == "authorization" // with Host, Method, Path and Content-Length
		if strings.HasPrefix(name, ":") || name == "content-length" || name == "host" {
			continue
		}
		if !always && !listMatches(t, g.authz.GetAllowedHeaders(), name) || listMatches(t, g.authz.GetDisallowedHeaders(), name) {
			continue
		}
		req.Header.Set(name, value)
	}
	req.ContentLength = int64(len(body))
	return req, 0
}

// httpOutcome is what Envoy makes of the HTTP authorizer's answer.
type httpOutcome struct {
	allowed  bool
	status   int
	upstream http.Header // set on the request sent upstream
	removed  []string    // removed from it
	client   http.Header // added to the response to the client
	body     string      // of a denial
}

// httpAnswer applies authorization_response to the authorizer's answer.
func (g *gateway) httpAnswer(rec *httptest.ResponseRecorder) httpOutcome {
	t := g.t
	t.Helper()
	ar := g.authz.GetHttpService().GetAuthorizationResponse()
	pick := func(l *matcherv3.ListStringMatcher, extra ...string) http.Header {
		out := http.Header{}
		for name, values := range rec.Result().Header {
			lower := strings.ToLower(name)
			if listMatches(t, l, lower) || slices.Contains(extra, lower) {
				out[name] = values
			}
		}
		return out
	}
	if rec.Code == http.StatusOK {
		out := httpOutcome{allowed: true, status: http.StatusOK,
			upstream: pick(ar.GetAllowedUpstreamHeaders()),
			client:   pick(ar.GetAllowedClientHeadersOnSuccess()),
		}
		if v := rec.Result().Header.Get("X-Envoy-Auth-Headers-To-Remove"); v != "" {
			for _, name := range strings.Split(v, ",") {
				out.removed = append(out.removed, strings.TrimSpace(name))
			}
		}
		return out
	}
	client := http.Header(rec.Result().Header.Clone())
	if ar.GetAllowedClientHeaders() != nil {
		client = pick(ar.GetAllowedClientHeaders(), "www-authenticate", "location", "content-length")
	}
	return httpOutcome{status: rec.Code, client: client, body: rec.Body.String()}
}
