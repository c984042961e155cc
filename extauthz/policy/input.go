package policy

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"iter"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/mcp"
)

// Terms shared by every input document. Terms are never modified once
// built, so sharing them across concurrent evaluations is safe.
var (
	termTrue  = ast.BooleanTerm(true)
	termFalse = ast.BooleanTerm(false)
	termNull  = ast.NullTerm()

	// version is OPA-Envoy's input.version for the v3 API.
	termVersion = ast.ObjectTerm(
		ast.Item(ast.StringTerm("encoding"), ast.StringTerm("protojson")),
		ast.Item(ast.StringTerm("ext_authz"), ast.StringTerm("v3")),
	)
	termEmptyArray = ast.ArrayTerm()
)

// keys interns the member names the input uses, and common header names.
var keys = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	for _, k := range []string{
		// input
		"attributes", "parsed_path", "parsed_query", "parsed_body", "truncated_body",
		"version", "identity", "mcp", "client_ip",
		// attributes (protojson names)
		"source", "destination", "request", "contextExtensions", "metadataContext",
		"routeMetadataContext", "tlsSession", "sni", "filterMetadata",
		"address", "socketAddress", "portValue", "principal", "certificate", "service", "labels",
		"time", "http", "id", "method", "headers", "path", "host", "scheme", "fragment",
		"size", "protocol", "body", "rawBody",
		// identity
		"authenticated", "subject", "user_id", "tenant", "org_role", "roles", "permissions",
		"scopes", "claims", "session", "auth_time", "age_seconds", "auth_age_seconds", "api_key", "name", "tier", "time_zone",
		"allowed_tools",
		// mcp
		"tool", "uri", "prompt", "protocol_version", "session_id", "is_notification",
		"is_response", "batch",
		// decision
		"allowed", "reason", "http_status", "body", "dynamic_metadata", "response_headers_to_add",
		"request_headers_to_remove", "query_parameters_to_set", "query_parameters_to_remove",
		"challenge", "error", "error_description", "scope", "max_age", "limits", "quotas",
		"rate_limit_headers", "concurrency",
		// headers
		":authority", ":method", ":path", ":scheme", "accept", "accept-encoding",
		"authorization", "content-length", "content-type", "cookie", "host", "user-agent",
		"x-api-key", "x-forwarded-for", "x-forwarded-proto", "x-request-id", "x-envoy-expected-rq-timeout-ms",
		"x-envoy-internal", "x-real-ip", "traceparent", "tracestate", "origin", "referer",
		"mcp-method", "mcp-name", "mcp-protocol-version", "mcp-session-id", "last-event-id",
		// common values
		"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "http", "https",
		"HTTP/1.1", "HTTP/2", "HTTP/3", "application/json", "jwt", "none", "session",
		"tools/call", "tools/list", "initialize", "ping", "2.0",
	} {
		m[k] = ast.StringTerm(k)
	}
	return m
}()

// builder makes the terms of one input document. It allocates terms in
// slabs so a document costs a few allocations rather than one per term.
//
// In key mode (key != nil) it builds no terms: it appends a compact
// encoding of the same document to *key, for the decision cache. Every
// value and member name the document would hold is appended, as
// self-delimiting tokens — a number the policy only compares with
// constants as its class among them (builder.integer) — so equal keys mean
// documents the policy cannot tell apart; the converse need not hold
// (member order, for one, shows in the key), which costs only a cache miss.
type builder struct {
	slab []ast.Term
	key  *[]byte
}

// keyed is what a builder in key mode returns for a value it appended.
var keyed = &ast.Term{Value: ast.Null{}}

func (b *builder) term(v ast.Value) *ast.Term {
	if b.key != nil {
		b.encode(v)
		return keyed
	}
	if len(b.slab) == cap(b.slab) {
		b.slab = make([]ast.Term, 0, 32)
	}
	b.slab = append(b.slab, ast.Term{Value: v})
	return &b.slab[len(b.slab)-1]
}

func (b *builder) str(s string) *ast.Term {
	if b.key != nil {
		b.token('s', s)
		return keyed
	}
	if t, ok := keys[s]; ok {
		return t
	}
	return b.term(ast.String(s))
}

// integer makes the term of the number x, read as use says. In key mode,
// when the policy only compares x with constants (use.Cuts), it appends the
// class of x among them instead: numbers of one class get one decision, so
// a session's decisions stay cached while its age grows. The analysis
// looks for cuts only on the members bundles lists as ordinal input; on
// any other, Cuts is nil and the value itself is keyed.
func (b *builder) integer(use *bundles.InputUse, x int64) *ast.Term {
	if b.key == nil {
		return b.term(ast.Number(strconv.FormatInt(x, 10)))
	}
	cuts := use.Cuts()
	if cuts == nil {
		b.token('n', strconv.FormatInt(x, 10))
		return keyed
	}
	below, equal := cuts.Class(x)
	class := uint64(below) << 1
	if equal {
		class |= 1
	}
	*b.key = binary.AppendUvarint(append(*b.key, 'o'), class)
	return keyed
}

// token appends a tag and a length-prefixed string to the key.
func (b *builder) token(tag byte, s string) {
	k := append(*b.key, tag)
	k = binary.AppendUvarint(k, uint64(len(s)))
	*b.key = append(k, s...)
}

// encode appends a value built in key mode: scalars in full; arrays and
// objects by their end, their elements having been appended before.
func (b *builder) encode(v ast.Value) {
	switch v := v.(type) {
	case ast.String:
		b.token('s', string(v))
	case ast.Number:
		b.token('n', string(v))
	case *ast.Array:
		b.token(']', strconv.Itoa(v.Len()))
	default:
		b.token('c', v.String())
	}
}

// constant appends one of the shared terms.
func (b *builder) constant(t *ast.Term) {
	var c byte
	switch t {
	case termTrue:
		c = 't'
	case termFalse:
		c = 'f'
	case termNull:
		c = 'z'
	case termVersion:
		c = 'v'
	case anonymous:
		c = 'a'
	case termEmptyArray:
		c = 'e'
	default:
		b.encode(t.Value)
		return
	}
	*b.key = append(*b.key, '=', c)
}

// array finishes an array of n elements already built into terms.
func (b *builder) array(terms []*ast.Term) *ast.Term {
	if b.key != nil {
		b.token(']', strconv.Itoa(len(terms)))
		return keyed
	}
	return b.term(ast.NewArray(terms...))
}

// members yields a map's entries: in key mode in sorted order, so equal
// maps give equal keys; otherwise in map order, without sorting.
func members[V any](b *builder, m map[string]V) iter.Seq2[string, V] {
	if b.key == nil {
		return maps.All(m)
	}
	return func(yield func(string, V) bool) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !yield(k, m[k]) {
				return
			}
		}
	}
}

func boolTerm(v bool) *ast.Term {
	if v {
		return termTrue
	}
	return termFalse
}

// object collects members for one object; members whose value is nil are
// left out, and so are members the policy does not read.
type object struct {
	b   *builder
	obj ast.Object
	use *bundles.InputUse
}

// object starts an object of at most capacity members. Sizing it to the
// members the policy reads matters: an oversized object costs allocations.
func (b *builder) object(use *bundles.InputUse, capacity int) object {
	if b.key != nil {
		*b.key = append(*b.key, '{')
		return object{b: b, use: use}
	}
	if !use.Whole() {
		capacity = min(capacity, len(use.Keys()))
	}
	return object{b: b, obj: ast.NewObjectWithCapacity(capacity), use: use}
}

func (o *object) wants(k string) *bundles.InputUse { return o.use.Child(k) }

// setStr adds a non-empty string member if the policy reads it.
func (o *object) setStr(k, v string) {
	if v == "" || o.use.Child(k) == nil {
		return
	}
	if o.b.key != nil {
		o.b.token('s', v)
		o.b.token('k', k)
		return
	}
	o.obj.Insert(o.b.str(k), o.b.str(v))
}

// set adds a member if the policy reads it and v is not nil. (In key mode
// a value computed for a member the policy does not read stays in the key
// without its name: more than the document holds, which is harmless.)
func (o *object) set(k string, v *ast.Term) {
	if v == nil || o.use.Child(k) == nil {
		return
	}
	if o.b.key != nil {
		if v != keyed {
			o.b.constant(v)
		}
		o.b.token('k', k)
		return
	}
	o.obj.Insert(o.b.str(k), v)
}

// len returns the number of members, or -1 in key mode.
func (o *object) len() int {
	if o.b.key != nil {
		return -1
	}
	return o.obj.Len()
}

func (b *builder) done(o object) *ast.Term {
	if b.key != nil {
		*b.key = append(*b.key, '}')
		return keyed
	}
	return b.term(o.obj)
}

// buildInput returns the input document for in, holding the parts use reads.
func buildInput(in *extauthz.PolicyInput, use *bundles.InputUse, now time.Time) *ast.Term {
	var b builder
	return b.input(in, use, now)
}

// inputKey appends to key the decision cache key of the input document for
// in: equal keys mean documents the policy cannot tell apart.
func inputKey(key []byte, in *extauthz.PolicyInput, use *bundles.InputUse, now time.Time) []byte {
	b := builder{key: &key}
	b.input(in, use, now)
	return key
}

func (b *builder) input(in *extauthz.PolicyInput, use *bundles.InputUse, now time.Time) *ast.Term {
	req := in.Request
	o := b.object(use, 9)
	if u := o.wants("attributes"); u != nil {
		o.set("attributes", b.attributes(req, u))
	}
	if o.wants("parsed_path") != nil {
		o.set("parsed_path", b.parsedPath(req.Path))
	}
	if o.wants("parsed_query") != nil {
		o.set("parsed_query", b.parsedQuery(req.Path))
	}
	truncated := req.Truncated()
	if u := o.wants("parsed_body"); u != nil {
		o.set("parsed_body", b.parsedBody(in, truncated, u))
	}
	if o.wants("truncated_body") != nil {
		o.set("truncated_body", boolTerm(truncated))
	}
	if o.wants("version") != nil {
		o.set("version", termVersion)
	}
	if u := o.wants("identity"); u != nil {
		o.set("identity", b.identity(in.Identity, now, u))
	}
	if u := o.wants("mcp"); u != nil && in.Message != nil {
		o.set("mcp", b.mcp(in.MCP, in.Message, u))
	}
	o.setStr("client_ip", req.ClientIP)
	return b.done(o)
}

// attributes renders the request the way OPA-Envoy renders Envoy's
// AttributeContext: protojson field names, only set fields.
func (b *builder) attributes(req *extauthz.Request, use *bundles.InputUse) *ast.Term {
	o := b.object(use, 7)
	if u := o.wants("source"); u != nil {
		o.set("source", b.peer(&req.Source, u))
	}
	if u := o.wants("destination"); u != nil {
		o.set("destination", b.peer(&req.Destination, u))
	}
	if u := o.wants("request"); u != nil {
		r := b.object(u, 2)
		if !req.Time.IsZero() && r.wants("time") != nil {
			r.set("time", b.str(protoTimestamp(req.Time)))
		}
		if hu := r.wants("http"); hu != nil {
			r.set("http", b.http(req, hu))
		}
		o.set("request", b.done(r))
	}
	if len(req.ContextExtensions) > 0 && o.wants("contextExtensions") != nil {
		o.set("contextExtensions", b.stringMap(req.ContextExtensions, o.wants("contextExtensions")))
	}
	if req.MetadataContext != nil && o.wants("metadataContext") != nil {
		o.set("metadataContext", b.metadata(req.MetadataContext, o.wants("metadataContext")))
	}
	if req.RouteMetadataContext != nil && o.wants("routeMetadataContext") != nil {
		o.set("routeMetadataContext", b.metadata(req.RouteMetadataContext, o.wants("routeMetadataContext")))
	}
	if (req.TLSSession || req.TLSSessionSNI != "") && o.wants("tlsSession") != nil {
		t := b.object(o.wants("tlsSession"), 1)
		t.setStr("sni", req.TLSSessionSNI)
		o.set("tlsSession", b.done(t))
	}
	return b.done(o)
}

func (b *builder) peer(p *extauthz.Peer, use *bundles.InputUse) *ast.Term {
	o := b.object(use, 5)
	if u := o.wants("address"); u != nil {
		// Envoy's Address is a socket address or a pipe (Unix socket).
		var kind, field, value, num string
		var n uint32
		switch {
		case p.Address != "":
			kind, field, value, num, n = "socketAddress", "address", p.Address, "portValue", p.Port
		case p.PipePath != "":
			kind, field, value, num, n = "pipe", "path", p.PipePath, "mode", p.PipeMode
		}
		if kind != "" {
			inner := b.object(u.Child(kind), 2)
			inner.setStr(field, value)
			if n != 0 && inner.wants(num) != nil {
				inner.set(num, b.term(ast.Number(strconv.FormatUint(uint64(n), 10))))
			}
			a := b.object(u, 1)
			a.set(kind, b.done(inner))
			o.set("address", b.done(a))
		}
	}
	o.setStr("principal", p.Principal)
	o.setStr("certificate", p.Certificate)
	o.setStr("service", p.Service)
	if len(p.Labels) > 0 && o.wants("labels") != nil {
		o.set("labels", b.stringMap(p.Labels, o.wants("labels")))
	}
	if o.len() == 0 {
		return nil
	}
	return b.done(o)
}

func (b *builder) http(req *extauthz.Request, use *bundles.InputUse) *ast.Term {
	o := b.object(use, 11)
	o.setStr("id", req.ID)
	o.setStr("method", req.Method)
	if u := o.wants("headers"); u != nil {
		o.set("headers", b.headers(req.Headers, u))
	}
	o.setStr("path", req.Path)
	o.setStr("host", req.Host)
	o.setStr("scheme", req.Scheme)
	o.setStr("fragment", req.Fragment)
	if req.Size != 0 && o.wants("size") != nil {
		o.set("size", b.str(strconv.FormatInt(req.Size, 10))) // int64 is a string in protojson
	}
	o.setStr("protocol", req.Protocol)
	if len(req.Body) > 0 {
		if req.RawBody {
			if o.wants("rawBody") != nil {
				o.set("rawBody", b.str(base64.StdEncoding.EncodeToString([]byte(req.Body))))
			}
		} else if o.wants("body") != nil {
			o.set("body", b.str(req.Body))
		}
	}
	return b.done(o)
}

// headers renders the header map; when the policy reads only some headers
// by name, only those are built.
func (b *builder) headers(h map[string]string, use *bundles.InputUse) *ast.Term {
	if !use.Whole() {
		names := use.Keys()
		o := b.object(use, len(names))
		for _, name := range names {
			if v, ok := h[name]; ok {
				o.set(name, b.str(v))
			}
		}
		return b.done(o)
	}
	o := b.object(use, len(h))
	for name, v := range members(b, h) {
		o.set(name, b.str(v))
	}
	return b.done(o)
}

func (b *builder) stringMap(m map[string]string, use *bundles.InputUse) *ast.Term {
	o := b.object(use, len(m))
	for k, v := range members(b, m) {
		if o.wants(k) != nil {
			o.set(k, b.str(v))
		}
	}
	return b.done(o)
}

func (b *builder) metadata(m map[string]any, use *bundles.InputUse) *ast.Term {
	o := b.object(use, 1)
	if len(m) > 0 && o.wants("filterMetadata") != nil {
		fm := b.object(use.Child("filterMetadata"), len(m))
		for ns, v := range members(b, m) {
			if u := fm.wants(ns); u != nil {
				fm.set(ns, b.anyValue(v, u))
			}
		}
		o.set("filterMetadata", b.done(fm))
	}
	return b.done(o)
}

// anyValue converts a JSON value held in Go types.
func (b *builder) anyValue(v any, use *bundles.InputUse) *ast.Term {
	switch v := v.(type) {
	case nil:
		return termNull
	case bool:
		return boolTerm(v)
	case string:
		return b.str(v)
	case float64:
		return b.term(ast.Number(formatFloat(v)))
	case int:
		return b.term(ast.Number(strconv.Itoa(v)))
	case int64:
		return b.term(ast.Number(strconv.FormatInt(v, 10)))
	case []any:
		terms := make([]*ast.Term, len(v))
		for i := range v {
			terms[i] = b.anyValue(v[i], bundles.AllInput)
		}
		return b.array(terms)
	case []string:
		return b.strings(v)
	case map[string]any:
		o := b.object(use, len(v))
		for k, x := range members(b, v) {
			if u := o.wants(k); u != nil {
				o.set(k, b.anyValue(x, u))
			}
		}
		return b.done(o)
	case map[string]string:
		return b.stringMap(v, use)
	}
	return termNull
}

// formatFloat writes a number as encoding/json and protojson do: plain
// decimal unless very small or very large, so integers stay integers.
func formatFloat(f float64) string {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	s := strconv.FormatFloat(f, format, -1, 64)
	if format == 'e' {
		// e-07 → e-7, as encoding/json writes it.
		if n := len(s); n >= 4 && s[n-4] == 'e' && s[n-3] == '-' && s[n-2] == '0' {
			s = s[:n-2] + s[n-1:]
		}
	}
	return s
}

func (b *builder) strings(ss []string) *ast.Term {
	if len(ss) == 0 {
		return termEmptyArray
	}
	if b.key != nil {
		for _, s := range ss {
			b.str(s)
		}
		b.token(']', strconv.Itoa(len(ss)))
		return keyed
	}
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = b.str(s)
	}
	return b.term(ast.NewArray(terms...))
}

// parsedPath splits the path on "/" after dropping leading slashes, then
// percent-decodes each segment. Splitting before decoding keeps an encoded
// slash ("%2F") inside its segment, as the upstream's router sees it.
func (b *builder) parsedPath(raw string) *ast.Term {
	p, _, _ := strings.Cut(raw, "#")
	p, _, _ = strings.Cut(p, "?")
	p = strings.TrimLeft(p, "/")
	n := strings.Count(p, "/") + 1
	terms := make([]*ast.Term, 0, n)
	for seg := range strings.SplitSeq(p, "/") {
		if strings.IndexByte(seg, '%') >= 0 {
			if dec, err := url.PathUnescape(seg); err == nil {
				seg = dec
			}
		}
		terms = append(terms, b.str(seg))
	}
	return b.array(terms)
}

func (b *builder) parsedQuery(raw string) *ast.Term {
	p, _, _ := strings.Cut(raw, "#")
	_, q, _ := strings.Cut(p, "?")
	values, _ := url.ParseQuery(q) // like url.Query: malformed pairs are dropped
	o := b.object(bundles.AllInput, len(values))
	for k, vs := range members(b, values) {
		o.set(k, b.strings(vs))
	}
	return b.done(o)
}

func (b *builder) parsedBody(in *extauthz.PolicyInput, truncated bool, use *bundles.InputUse) *ast.Term {
	if truncated {
		return termNull
	}
	if in.Body != nil {
		return b.json(in.Body, use)
	}
	req := in.Request
	if len(req.Body) > 0 && req.MediaType() == "application/x-www-form-urlencoded" {
		values, err := url.ParseQuery(req.Body)
		if err == nil {
			o := b.object(use, len(values))
			for k, vs := range members(b, values) {
				if o.wants(k) != nil {
					o.set(k, b.strings(vs))
				}
			}
			return b.done(o)
		}
	}
	return termNull
}

// json converts a strictly decoded JSON value, keeping only the members the
// policy reads.
func (b *builder) json(v *mcp.Value, use *bundles.InputUse) *ast.Term {
	switch v.Kind {
	case mcp.Bool:
		return boolTerm(v.Text == "true")
	case mcp.Number:
		return b.term(ast.Number(v.Text))
	case mcp.String:
		return b.str(v.Text)
	case mcp.Array:
		terms := make([]*ast.Term, len(v.Items))
		for i := range v.Items {
			terms[i] = b.json(&v.Items[i], bundles.AllInput)
		}
		return b.array(terms)
	case mcp.Object:
		if use.Whole() {
			o := b.object(use, len(v.Members))
			for i := range v.Members {
				o.set(v.Members[i].Key, b.json(&v.Members[i].Value, use))
			}
			return b.done(o)
		}
		names := use.Keys()
		o := b.object(use, len(names))
		for _, name := range names {
			if m, ok := v.Get(name); ok {
				o.set(name, b.json(m, use.Child(name)))
			}
		}
		return b.done(o)
	}
	return termNull
}

func (b *builder) mcp(req *mcp.Request, m *mcp.Message, use *bundles.InputUse) *ast.Term {
	o := b.object(use, 10)
	o.setStr("method", m.Method)
	if m.ID != nil && o.wants("id") != nil {
		o.set("id", b.json(m.ID, bundles.AllInput))
	}
	o.setStr("tool", m.Tool)
	o.setStr("uri", m.URI)
	o.setStr("prompt", m.Prompt)
	o.setStr("protocol_version", req.ProtocolVersion)
	o.setStr("session_id", req.SessionID)
	o.set("is_notification", boolTerm(m.Kind == mcp.KindNotification))
	o.set("is_response", boolTerm(m.Kind == mcp.KindResponse))
	if req.Batch {
		o.set("batch", termTrue)
	}
	return b.done(o)
}

// anonymous is input.identity for a request without a credential.
var anonymous = ast.ObjectTerm(
	ast.Item(ast.StringTerm("authenticated"), termFalse),
	ast.Item(ast.StringTerm("method"), ast.StringTerm(extauthz.MethodNone)),
	ast.Item(ast.StringTerm("roles"), termEmptyArray),
	ast.Item(ast.StringTerm("permissions"), termEmptyArray),
	ast.Item(ast.StringTerm("scopes"), termEmptyArray),
)

func (b *builder) identity(id *extauthz.Identity, now time.Time, use *bundles.InputUse) *ast.Term {
	if id == nil || id.IsAnonymous() {
		return anonymous
	}
	o := b.object(use, 14)
	o.set("authenticated", boolTerm(id.Authenticated))
	o.setStr("method", cmp.Or(id.Method, extauthz.MethodNone))
	o.setStr("subject", id.Subject)
	o.setStr("user_id", id.UserID)
	o.setStr("tenant", id.Tenant)
	o.setStr("tier", id.Tier)
	o.setStr("time_zone", id.TimeZone)
	o.setStr("org_role", id.OrgRole)
	if o.wants("roles") != nil {
		o.set("roles", b.strings(id.Roles))
	}
	if o.wants("permissions") != nil {
		o.set("permissions", b.strings(id.Permissions))
	}
	if o.wants("scopes") != nil {
		o.set("scopes", b.strings(id.Scopes))
	}
	if u := o.wants("claims"); u != nil && len(id.Claims) > 0 {
		o.set("claims", b.anyValue(id.Claims, u))
	}
	if u := o.wants("auth_age_seconds"); u != nil {
		if t, ok := id.AuthTime(); ok {
			o.set("auth_age_seconds", b.integer(u, int64(math.Floor(now.Sub(t).Seconds()))))
		}
	}
	if s := id.Session; s != nil && o.wants("session") != nil {
		so := b.object(o.wants("session"), 3)
		so.setStr("id", s.ID)
		if !s.AuthTime.IsZero() {
			if so.wants("auth_time") != nil {
				so.set("auth_time", b.term(ast.Number(strconv.FormatInt(s.AuthTime.Unix(), 10))))
			}
			if u := so.wants("age_seconds"); u != nil {
				so.set("age_seconds", b.integer(u, max(int64(now.Sub(s.AuthTime)/time.Second), 0)))
			}
		}
		o.set("session", b.done(so))
	}
	if k := id.APIKey; k != nil && o.wants("api_key") != nil {
		ko := b.object(o.wants("api_key"), 4)
		ko.setStr("id", k.ID)
		ko.setStr("name", k.Name)
		ko.setStr("tier", k.Tier)
		if ko.wants("allowed_tools") != nil {
			ko.set("allowed_tools", b.strings(k.AllowedTools))
		}
		o.set("api_key", b.done(ko))
	}
	return b.done(o)
}

// protoTimestamp formats t as protojson formats a Timestamp: UTC, "Z", and
// 0, 3, 6 or 9 fractional digits.
func protoTimestamp(t time.Time) string {
	t = t.UTC()
	s := t.Format("2006-01-02T15:04:05")
	ns := t.Nanosecond()
	switch {
	case ns == 0:
	case ns%1_000_000 == 0:
		s += "." + strconv.Itoa(ns/1_000_000 + 1000)[1:]
	case ns%1000 == 0:
		s += "." + strconv.Itoa(ns/1000 + 1_000_000)[1:]
	default:
		s += "." + strconv.Itoa(ns + 1_000_000_000)[1:]
	}
	return s + "Z"
}
