package envoy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The shipped configurations.
const (
	grpcConfig = "envoy.yaml"
	httpConfig = "envoy-http.yaml"
)

func TestShippedConfigs(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{grpcConfig, httpConfig} {
		if !slices.Contains(files, want) {
			t.Fatalf("%s is missing (found %v)", want, files)
		}
	}
	for _, name := range files {
		t.Run("ok/"+name, func(t *testing.T) {
			if _, err := loadFile(name); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// fault is a mistake injected into a shipped configuration: an edit of its
// text or of its decoded document.
type fault struct {
	name string
	file string
	text func(t *testing.T, s string) string
	doc  func(t *testing.T, doc any)
	want string // in the error
}

func TestConfigFaults(t *testing.T) {
	faults := []fault{
		{name: "fail/paths not normalized", file: grpcConfig,
			doc: editTyped("HttpConnectionManager", func(m map[string]any) { delete(m, "normalize_path") }), want: "normalize_path must be true"},
		{name: "fail/slashes not merged", file: httpConfig,
			doc: editTyped("HttpConnectionManager", func(m map[string]any) { m["merge_slashes"] = false }), want: "merge_slashes must be true"},
		{name: "fail/escaped slashes passed through", file: grpcConfig,
			doc:  editTyped("HttpConnectionManager", func(m map[string]any) { m["path_with_escaped_slashes_action"] = "KEEP_UNCHANGED" }),
			want: "path_with_escaped_slashes_action must be REJECT_REQUEST"},
		{name: "fail/typo in a field name", file: grpcConfig,
			text: replace("allow_partial_message: false", "allow_partial_mesage: false"), want: `unknown field "allow_partial_mesage"`},
		{name: "fail/typo in a field of a typed_config", file: grpcConfig,
			text: replace("stat_prefix: mcp", "stat_prefx: mcp"), want: `unknown field "stat_prefx"`},
		{name: "fail/typo in a bootstrap field", file: httpConfig,
			text: replace("static_resources:", "static_resource:"), want: `unknown field "static_resource"`},
		{name: "fail/typo in an enum value", file: grpcConfig,
			text: replace("codec_type: AUTO", "codec_type: AUTOMATIC"), want: "AUTOMATIC"},
		{name: "fail/duplicate key", file: grpcConfig,
			text: duplicateLine("use_remote_address: true"), want: "already defined"},
		{name: "fail/port out of range", file: grpcConfig,
			text: replace("port_value: 10000", "port_value: 100000"), want: "PortValue"},
		{name: "fail/negative ext_authz timeout", file: grpcConfig,
			doc: editTyped("ExtAuthz", func(m map[string]any) { child(m, "grpc_service")["timeout"] = "-0.25s" }), want: "timeout -250ms"},
		{name: "fail/ext_authz timeout inside the decision budget", file: grpcConfig,
			doc: editTyped("ExtAuthz", func(m map[string]any) { child(m, "grpc_service")["timeout"] = "0.05s" }), want: "timeout 50ms"},
		{name: "fail/ext_authz without a timeout", file: grpcConfig,
			doc: editTyped("ExtAuthz", func(m map[string]any) { delete(child(m, "grpc_service"), "timeout") }), want: "no timeout"},
		{name: "fail/zero max_request_bytes", file: grpcConfig,
			text: replace("max_request_bytes: 1048576", "max_request_bytes: 0"), want: "MaxRequestBytes"},
		{name: "fail/body larger than mcpauthz reads", file: grpcConfig,
			text: replace("max_request_bytes: 1048576", "max_request_bytes: 4194304"), want: "grpc.max_recv_msg_bytes"},
		{name: "fail/partial bodies allowed", file: grpcConfig,
			text: replace("allow_partial_message: false", "allow_partial_message: true"), want: "allow_partial_message"},
		{name: "fail/no body", file: grpcConfig,
			doc: editTyped("ExtAuthz", func(m map[string]any) { delete(m, "with_request_body") }), want: "with_request_body"},
		{name: "fail/failure_mode_allow", file: grpcConfig,
			text: replace("failure_mode_allow: false", "failure_mode_allow: true"), want: "failure_mode_allow"},
		{name: "fail/empty ext_authz cluster", file: grpcConfig,
			doc: editTyped("ExtAuthz", func(m map[string]any) { child(m, "grpc_service", "envoy_grpc")["cluster_name"] = "" }), want: "ClusterName"},
		{name: "fail/ext_authz without a service", file: grpcConfig,
			doc: editTyped("ExtAuthz", func(m map[string]any) { delete(m, "grpc_service") }), want: "no grpc_service or http_service"},
		{name: "fail/dangling ext_authz and access log cluster", file: grpcConfig,
			doc: removeCluster("mcpauthz"), want: `names the cluster "mcpauthz", which is not defined`},
		{name: "fail/dangling route cluster", file: grpcConfig,
			doc: editNamed("org_mcp", func(m map[string]any) { child(m, "route")["cluster"] = "mcp-server" }), want: `names the cluster "mcp-server"`},
		{name: "fail/unknown typed_config type", file: grpcConfig,
			doc: editTyped("ExtAuthz", func(m map[string]any) {
				m["@type"] = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuth"
			}), want: "ext_authz.v3.ExtAuth"},
		{name: "fail/per-route config for no filter", file: grpcConfig,
			doc: editNamed("protected_resource_metadata", func(m map[string]any) {
				pf := child(m, "typed_per_filter_config")
				pf["envoy.filters.http.extauthz"] = pf[extAuthzFilter]
				delete(pf, extAuthzFilter)
			}), want: `configures "envoy.filters.http.extauthz", which is no filter of the chain`},
		{name: "fail/router not last", file: grpcConfig,
			doc: editTyped("HttpConnectionManager", func(m map[string]any) { slices.Reverse(m["http_filters"].([]any)) }), want: "the last HTTP filter must be the router"},
		{name: "fail/ext_authz off by default", file: grpcConfig,
			doc: editNamed(extAuthzFilter, func(m map[string]any) { m["disabled"] = true }), want: "ext_authz must be on"},
		{name: "fail/gRPC cluster without HTTP/2", file: grpcConfig,
			doc: editNamed("mcpauthz", func(m map[string]any) { delete(m, "typed_extension_protocol_options") }), want: "does not speak HTTP/2"},
		{name: "fail/deprecated field", file: grpcConfig,
			doc: editNamed("mcp_server", func(m map[string]any) { m["http2_protocol_options"] = map[string]any{} }), want: "deprecated"},
		{name: "fail/load_assignment names another cluster", file: grpcConfig,
			doc: editNamed("mcp_server", func(m map[string]any) { child(m, "load_assignment")["cluster_name"] = "mcp" }), want: "is not the cluster's name"},

		{name: "fail/empty http_service cluster", file: httpConfig,
			doc: editTyped("ExtAuthz", func(m map[string]any) { child(m, "http_service", "server_uri")["cluster"] = "" }), want: "Cluster"},
		{name: "fail/dangling http_service cluster", file: httpConfig,
			doc: removeCluster("mcpauthz_http"), want: `names the cluster "mcpauthz_http", which is not defined`},
		{name: "fail/http_service without path_prefix", file: httpConfig,
			doc: editTyped("ExtAuthz", func(m map[string]any) { delete(child(m, "http_service"), "path_prefix") }), want: "path_prefix"},
		{name: "fail/metadata for an HTTP service", file: httpConfig,
			doc: editTyped("ExtAuthz", func(m map[string]any) {
				m["metadata_context_namespaces"] = []any{"envoy.filters.http.jwt_authn"}
			}), want: "never sent metadata"},
		{name: "fail/context extensions for an HTTP service", file: httpConfig,
			doc: editWhere("the virtual host", func(m map[string]any) bool { return m["domains"] != nil }, func(m map[string]any) {
				m["typed_per_filter_config"] = map[string]any{extAuthzFilter: map[string]any{
					"@type":          "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
					"check_settings": map[string]any{"context_extensions": map[string]any{"tenant": "acme"}},
				}}
			}), want: "never sent context extensions"},
		{name: "fail/body larger than forward-auth reads", file: httpConfig,
			text: replace("max_request_bytes: 1048576", "max_request_bytes: 2097152"), want: "http.max_body_bytes"},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			data, err := os.ReadFile(f.file)
			if err != nil {
				t.Fatal(err)
			}
			var loadErr error
			if f.text != nil {
				_, loadErr = load([]byte(f.text(t, string(data))))
			} else {
				doc, err := decodeYAML(data)
				if err != nil {
					t.Fatal(err)
				}
				f.doc(t, doc)
				_, loadErr = fromDoc(doc)
			}
			if loadErr == nil {
				t.Fatal("the faulty configuration was accepted")
			}
			if !strings.Contains(loadErr.Error(), f.want) {
				t.Fatalf("refused for another reason than %q: %v", f.want, loadErr)
			}
		})
	}
}

// replace edits the first occurrence of old.
func replace(old, new string) func(*testing.T, string) string {
	return func(t *testing.T, s string) string {
		t.Helper()
		if !strings.Contains(s, old) {
			t.Fatalf("%q is not in the file", old)
		}
		return strings.Replace(s, old, new, 1)
	}
}

// duplicateLine repeats the first line holding text.
func duplicateLine(text string) func(*testing.T, string) string {
	return func(t *testing.T, s string) string {
		t.Helper()
		lines := strings.SplitAfter(s, "\n")
		for i, l := range lines {
			if strings.Contains(l, text) {
				return strings.Join(slices.Insert(lines, i, l), "")
			}
		}
		t.Fatalf("%q is not in the file", text)
		return ""
	}
}

// eachMap calls fn for every mapping in doc.
func eachMap(doc any, fn func(map[string]any)) {
	switch v := doc.(type) {
	case map[string]any:
		fn(v)
		for _, e := range v {
			eachMap(e, fn)
		}
	case []any:
		for _, e := range v {
			eachMap(e, fn)
		}
	}
}

// editTyped edits every typed config of the named type.
func editTyped(typeName string, edit func(map[string]any)) func(*testing.T, any) {
	return editWhere(typeName, func(m map[string]any) bool {
		url, _ := m["@type"].(string)
		return strings.HasSuffix(url, "."+typeName)
	}, edit)
}

// editNamed edits every mapping with the name.
func editNamed(name string, edit func(map[string]any)) func(*testing.T, any) {
	return editWhere(name, func(m map[string]any) bool { return m["name"] == name }, edit)
}

func editWhere(what string, match func(map[string]any) bool, edit func(map[string]any)) func(*testing.T, any) {
	return func(t *testing.T, doc any) {
		t.Helper()
		n := 0
		eachMap(doc, func(m map[string]any) {
			if match(m) {
				edit(m)
				n++
			}
		})
		if n == 0 {
			t.Fatalf("%s is not in the file", what)
		}
	}
}

// removeCluster deletes a cluster definition.
func removeCluster(name string) func(*testing.T, any) {
	return func(t *testing.T, doc any) {
		t.Helper()
		sr := child(doc.(map[string]any), "static_resources")
		clusters := sr["clusters"].([]any)
		i := slices.IndexFunc(clusters, func(c any) bool { return c.(map[string]any)["name"] == name })
		if i < 0 {
			t.Fatalf("no cluster %q", name)
		}
		sr["clusters"] = slices.Delete(clusters, i, i+1)
	}
}

// child returns the mapping at the keys under m.
func child(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		m = m[k].(map[string]any)
	}
	return m
}
