package envoygrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/policy"
)

// resultLog is a DecisionLogger that keeps the last policy result.
type resultLog struct {
	mu     sync.Mutex
	result extauthz.Document
}

func (l *resultLog) LogDecision(ev extauthz.DecisionEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.result = ev.Result
}

// echoInputPolicy returns the OPA-Envoy part of its input: everything but
// our extensions.
const echoInputPolicy = `package mcpauthz.authz

decision := {"allowed": true, "input": object.remove(input, ["identity", "mcp", "client_ip"])}
`

// ourInput runs cr through the real service, authorizer, evaluator and
// engine, and returns the input the policy saw, as JSON.
func ourInput(t *testing.T, cr *authv3.CheckRequest) any {
	t.Helper()
	b, err := bundles.LoadFS(fstest.MapFS{"authz.rego": &fstest.MapFile{Data: []byte(echoInputPolicy)}})
	if err != nil {
		t.Fatal(err)
	}
	engine, err := bundles.NewEngine(bundles.DefaultDecisionPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Activate(context.Background(), b, "compat"); err != nil {
		t.Fatal(err)
	}
	log := &resultLog{}
	a := extauthz.NewAuthorizer(policy.NewEvaluator(engine), func() string { return "d-1" },
		extauthz.WithDecisionLogger(log), extauthz.WithTimeout(5*time.Second))
	resp, err := NewService(a, discard).Check(context.Background(), cr)
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("Check: %v, %v", resp, err)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	data, _ := log.result.AppendJSON(nil, nil)
	return decodeNumbers(t, data).(map[string]any)["input"]
}

// decodeNumbers decodes JSON keeping numbers as written, as OPA-Envoy's
// util.UnmarshalJSON does.
func decodeNumbers(t *testing.T, data []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("invalid JSON %s: %v", data, err)
	}
	return v
}

// opaEnvoyInput is the input OPA-Envoy (internal/envoyauth.RequestToInput)
// builds for cr: the protojson encoding of the CheckRequest, and the path,
// query and body parsed as it parses them.
func opaEnvoyInput(t *testing.T, cr *authv3.CheckRequest) map[string]any {
	t.Helper()
	data, err := protojson.Marshal(cr)
	if err != nil {
		t.Fatal(err)
	}
	in := decodeNumbers(t, data).(map[string]any)
	in["version"] = map[string]any{"encoding": "protojson", "ext_authz": "v3"}

	h := cr.GetAttributes().GetRequest().GetHttp()
	u, err := url.Parse(h.GetPath())
	if err != nil {
		t.Fatal(err)
	}
	var parsedPath []any
	for _, s := range strings.Split(strings.TrimLeft(u.Path, "/"), "/") {
		parsedPath = append(parsedPath, s)
	}
	in["parsed_path"] = parsedPath
	in["parsed_query"] = urlValues(u.Query())

	body := h.GetBody()
	if body == "" {
		body = string(h.GetRawBody())
	}
	var parsedBody any
	truncated := false
	ct := h.GetHeaders()["content-type"]
	if (strings.Contains(ct, "application/json") || strings.Contains(ct, "application/x-www-form-urlencoded")) && body != "" {
		if cl, err := strconv.ParseInt(h.GetHeaders()["content-length"], 10, 64); err == nil && cl > int64(len(body)) {
			truncated = true
		} else if strings.Contains(ct, "application/json") {
			parsedBody = decodeNumbers(t, []byte(body))
		} else {
			q, err := url.ParseQuery(body)
			if err != nil {
				t.Fatal(err)
			}
			parsedBody = urlValues(q)
		}
	}
	in["parsed_body"] = parsedBody
	in["truncated_body"] = truncated
	return in
}

func urlValues(v url.Values) map[string]any {
	out := map[string]any{}
	for k, vs := range v {
		l := make([]any, len(vs))
		for i := range vs {
			l[i] = vs[i]
		}
		out[k] = l
	}
	return out
}

func sockPeer(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fullCheckRequest is a CheckRequest with every field Envoy fills set.
func fullCheckRequest(t *testing.T) *authv3.CheckRequest {
	const body = `{"firstname": "Charlie", "lastname": "Opa", "age": 42, "score": 1.50, "tags": ["a"], "x": null}`
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{
			Address:     sockPeer("10.0.0.7", 52344),
			Service:     "frontend",
			Principal:   "spiffe://cluster.local/ns/default/sa/client",
			Certificate: "-----BEGIN%20CERTIFICATE-----%0AMIIB...%0A-----END%20CERTIFICATE-----%0A",
		},
		Destination: &authv3.AttributeContext_Peer{
			Address:   sockPeer("10.0.0.9", 8080),
			Principal: "spiffe://cluster.local/ns/default/sa/mcp",
			Labels:    map[string]string{"app": "mcp", "version": "v2"},
		},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(time.Date(2025, 6, 1, 12, 0, 0, 351477000, time.UTC)),
			Http: &authv3.AttributeContext_HttpRequest{
				Id:     "18056253546454398537",
				Method: "POST",
				Headers: map[string]string{
					":authority": "mcp.example.com", ":method": "POST", ":path": "/api/v1/people?lang=en&tag=a&tag=b",
					":scheme": "https", "accept": "*/*", "content-type": "application/json",
					"content-length": strconv.Itoa(len(body)), "user-agent": "curl/8.5.0",
					"authorization": "Bearer eyJhbGciOi", "x-forwarded-proto": "https",
					"x-request-id": "eed3400a-64fc-450b-9315-d30a080f244e", "x-envoy-auth-partial-body": "false",
				},
				Path:     "/api/v1/people?lang=en&tag=a&tag=b",
				Host:     "mcp.example.com",
				Scheme:   "https",
				Size:     int64(len(body)),
				Protocol: "HTTP/2",
				Body:     body,
			},
		},
		ContextExtensions: map[string]string{"tenant": "acme", "route": "people"},
		MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"envoy.filters.http.jwt_authn": mustStruct(t, map[string]any{"payload": map[string]any{
				"sub": "alice", "groups": []any{"admin", "dev"}, "email_verified": true, "nonce": nil,
				"score": 0.75, "level": 3.0, "nested": map[string]any{"deep": []any{1.0, "two", false}},
			}}),
			"istio_authn": mustStruct(t, map[string]any{"request.auth.principal": "cluster.local/alice"}),
		}},
		RouteMetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"mcpauthz": mustStruct(t, map[string]any{"tier": "gold", "tools": []any{"echo"}}),
		}},
		TlsSession: &authv3.AttributeContext_TLSSession{Sni: "mcp.example.com"},
	}}
}

// TestOPAEnvoyCompat: for Envoy CheckRequests, the input a policy sees is
// the input OPA-Envoy would build, field for field and number for number
// (int64 size as a string, uint32 port as a number, timestamps in
// protojson's form), plus our extensions (identity, mcp, client_ip).
func TestOPAEnvoyCompat(t *testing.T) {
	tests := []struct {
		name   string
		modify func(t *testing.T, cr *authv3.CheckRequest)
		// expect adapts OPA-Envoy's input where we differ on purpose.
		expect func(in map[string]any)
	}{
		{"ok/every field set, JSON body", nil, nil},
		{"ok/raw body (pack_as_bytes)", func(t *testing.T, cr *authv3.CheckRequest) {
			h := cr.Attributes.Request.Http
			h.RawBody, h.Body = []byte(h.Body), ""
		}, nil},
		{"ok/MCP tools/call", func(t *testing.T, cr *authv3.CheckRequest) {
			h := cr.Attributes.Request.Http
			h.Body = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"q":"x","limit":10}}}`
			h.Path, h.Headers[":path"] = "/mcp", "/mcp"
			h.Headers["content-length"] = strconv.Itoa(len(h.Body))
			h.Headers["mcp-protocol-version"] = "2025-06-18"
			h.Size = int64(len(h.Body))
		}, nil},
		{"ok/GET, unknown size, fragment, millisecond time", func(t *testing.T, cr *authv3.CheckRequest) {
			h := cr.Attributes.Request.Http
			h.Method, h.Headers[":method"], h.Body, h.Size, h.Fragment = "GET", "GET", "", -1, "section-2"
			delete(h.Headers, "content-type")
			delete(h.Headers, "content-length")
			cr.Attributes.Request.Time = timestamppb.New(time.Date(2025, 6, 1, 12, 0, 0, 5_000_000, time.UTC))
		}, nil},
		{"ok/nanosecond time", func(t *testing.T, cr *authv3.CheckRequest) {
			cr.Attributes.Request.Time = timestamppb.New(time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC))
		}, nil},
		{"ok/whole-second time, no TLS, no principals", func(t *testing.T, cr *authv3.CheckRequest) {
			cr.Attributes.Request.Time = timestamppb.New(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
			cr.Attributes.TlsSession = nil
			cr.Attributes.Source.Principal, cr.Attributes.Destination.Principal, cr.Attributes.Source.Certificate = "", "", ""
		}, nil},
		{"ok/form body", func(t *testing.T, cr *authv3.CheckRequest) {
			h := cr.Attributes.Request.Http
			h.Body = "grant_type=password&scope=a&scope=b+c"
			h.Headers["content-type"] = "application/x-www-form-urlencoded"
			h.Headers["content-length"] = strconv.Itoa(len(h.Body))
		}, nil},
		{"ok/truncated JSON body", func(t *testing.T, cr *authv3.CheckRequest) {
			h := cr.Attributes.Request.Http
			h.Body = h.Body[:20]
			h.Headers["x-envoy-auth-partial-body"] = "true"
		}, nil},
		{"ok/IPv6 peers", func(t *testing.T, cr *authv3.CheckRequest) {
			cr.Attributes.Source.Address = sockPeer("2001:db8::7", 443)
			cr.Attributes.Destination.Address = sockPeer("::1", 65535)
		}, nil},
		// Envoy sends headers as header_map with encode_raw_headers; we
		// present them as OPA-Envoy presents the headers map (repeated
		// names joined with ","), never as headerMap.
		{"ok/headers sent as header_map", func(t *testing.T, cr *authv3.CheckRequest) {
			h := cr.Attributes.Request.Http
			var list []*corev3.HeaderValue
			for _, k := range []string{":authority", ":method", ":path", "content-type", "content-length"} {
				list = append(list, &corev3.HeaderValue{Key: k, RawValue: []byte(h.Headers[k])})
			}
			list = append(list, &corev3.HeaderValue{Key: "x-tag", RawValue: []byte("a")}, &corev3.HeaderValue{Key: "x-tag", RawValue: []byte("b")})
			h.Headers, h.HeaderMap = nil, &corev3.HeaderMap{Headers: list}
		}, func(in map[string]any) {
			h := in["attributes"].(map[string]any)["request"].(map[string]any)["http"].(map[string]any)
			headers := map[string]any{}
			for _, e := range h["headerMap"].(map[string]any)["headers"].([]any) {
				e := e.(map[string]any)
				raw, _ := base64Std(e["rawValue"].(string))
				if prev, ok := headers[e["key"].(string)]; ok {
					raw = prev.(string) + "," + raw
				}
				headers[e["key"].(string)] = raw
			}
			delete(h, "headerMap")
			h["headers"] = headers
			// OPA-Envoy finds no content-type in the headers map and
			// leaves the body unparsed; we parse it.
			in["parsed_body"] = useNumber(h["body"].(string))
		}},
		// typed_filter_metadata holds Any values we do not decode.
		{"ok/typed filter metadata is left out", func(t *testing.T, cr *authv3.CheckRequest) {
			v, err := anypb.New(wrapperspb.String("typed"))
			if err != nil {
				t.Fatal(err)
			}
			cr.Attributes.MetadataContext.TypedFilterMetadata = map[string]*anypb.Any{"envoy.filters.http.typed": v}
		}, func(in map[string]any) {
			delete(in["attributes"].(map[string]any)["metadataContext"].(map[string]any), "typedFilterMetadata")
		}},
		// Metadata numbers are doubles; integers among them (timestamps,
		// counters, ids) must keep their integer form, as protojson
		// writes them.
		{"ok/metadata with large integers", func(t *testing.T, cr *authv3.CheckRequest) {
			cr.Attributes.MetadataContext.FilterMetadata["envoy.filters.http.jwt_authn"] = mustStruct(t, map[string]any{"payload": map[string]any{
				"sub": "alice", "iat": 1748779200.0, "exp": 1748782800.0, "org_id": 1234567.0, "tiny": 0.0000001, "huge": 1e22,
			}})
		}, nil},
		// Envoy always sets metadata_context and route_metadata_context,
		// empty when no namespace is configured, and tls_session without
		// SNI for TLS connections that sent none: OPA-Envoy's input has
		// "metadataContext": {}, "routeMetadataContext": {}, "tlsSession": {}.
		{"ok/empty metadata and TLS session, as Envoy sends them", func(t *testing.T, cr *authv3.CheckRequest) {
			cr.Attributes.MetadataContext = &corev3.Metadata{}
			cr.Attributes.RouteMetadataContext = &corev3.Metadata{}
			cr.Attributes.TlsSession = &authv3.AttributeContext_TLSSession{}
		}, nil},
		// Listeners on Unix domain sockets report pipe addresses.
		{"ok/unix socket peers", func(t *testing.T, cr *authv3.CheckRequest) {
			cr.Attributes.Source.Address = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/var/run/envoy/ingress.sock"}}}
			cr.Attributes.Source.Principal = ""
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cr := fullCheckRequest(t)
			if tt.modify != nil {
				tt.modify(t, cr)
			}
			want := opaEnvoyInput(t, proto.Clone(cr).(*authv3.CheckRequest))
			if tt.expect != nil {
				tt.expect(want)
			}
			got := ourInput(t, cr)
			if !reflect.DeepEqual(got, any(want)) {
				t.Error("the input differs from OPA-Envoy's:")
				diffPaths(t, "", got, want)
			}
		})
	}
}

// diffPaths reports where two decoded JSON values differ.
func diffPaths(t *testing.T, at string, got, want any) {
	t.Helper()
	gm, gok := got.(map[string]any)
	wm, wok := want.(map[string]any)
	if !gok || !wok {
		if !reflect.DeepEqual(got, want) {
			t.Errorf("at %s: got %v, OPA-Envoy %v", at, got, want)
		}
		return
	}
	for k, w := range wm {
		g, ok := gm[k]
		if !ok {
			t.Errorf("at %s/%s: missing; OPA-Envoy has %v", at, k, w)
			continue
		}
		diffPaths(t, at+"/"+k, g, w)
	}
	for k, g := range gm {
		if _, ok := wm[k]; !ok {
			t.Errorf("at %s/%s: %v; OPA-Envoy has nothing", at, k, g)
		}
	}
}

func base64Std(s string) (string, error) {
	var b []byte
	if err := json.Unmarshal([]byte(`"`+s+`"`), &b); err != nil {
		return "", err
	}
	return string(b), nil
}

// useNumber decodes JSON text with json.Number numbers, or returns nil.
func useNumber(s string) any {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var out any
	if dec.Decode(&out) != nil {
		return nil
	}
	return out
}
