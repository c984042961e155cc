package forwardauth

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/internal/clientip"
)

// Headers a trusted proxy uses to describe the original request. Names are
// in http.CanonicalHeaderKey form.
const (
	originalMethodHeader  = "X-Original-Method"  // nginx convention
	originalURIHeader     = "X-Original-Uri"     // nginx convention (X-Original-URI)
	forwardedMethodHeader = "X-Forwarded-Method" // Traefik forwardAuth
	forwardedURIHeader    = "X-Forwarded-Uri"    // Traefik forwardAuth
	forwardedHostHeader   = "X-Forwarded-Host"
	forwardedProtoHeader  = "X-Forwarded-Proto"
	requestIDHeader       = "X-Request-Id"
)

// hopByHop names the headers that describe one connection, not the request;
// proxies do not pass them upstream, so policies do not see them. Headers
// named in Connection are kept: dropping them would let a client hide a
// header (say x-mcpauthz-user) from the policy while the upstream gets it.
var hopByHop = map[string]bool{
	"connection":        true,
	"keep-alive":        true,
	"proxy-connection":  true,
	"te":                true,
	"trailer":           true,
	"transfer-encoding": true,
	"upgrade":           true,
}

// reconstruct describes the original request behind a forward-auth call.
// Only a peer inside TrustedProxies may describe it with forwarded headers;
// from any other peer the call's own request line, Host and connection
// describe it. The error wraps extauthz.ErrBadRequest; its text names
// headers, never their values.
func (h *Handler) reconstruct(r *http.Request) (*extauthz.Request, error) {
	peer, port := parsePeer(r.RemoteAddr)
	req := &extauthz.Request{
		ID:        r.Header.Get(requestIDHeader),
		Time:      h.now(),
		Method:    r.Method,
		Host:      r.Host,
		Scheme:    "http",
		Protocol:  r.Proto,
		Size:      r.ContentLength,
		Transport: "forward-auth",
		// No forward-auth proxy rewrites the query on the auth server's
		// say-so.
		FixedQuery: true,
	}
	if r.TLS != nil {
		req.Scheme = "https"
	}
	if peer.IsValid() {
		req.Source.Address, req.Source.Port = peer.String(), uint32(port)
		req.ClientIP = req.Source.Address
	}
	target := h.requestTarget(r)
	if h.isTrusted(peer) {
		if err := h.forwarded(r.Header, req, &target); err != nil {
			return nil, err
		}
		if ip, ok := h.clients.Forwarded(r.Header); ok {
			req.ClientIP = ip.String()
		}
	}
	req.Path, req.Fragment = splitTarget(target)

	req.Headers = headerMap(r.Header)
	req.Headers[":method"] = req.Method
	req.Headers[":path"] = req.Path
	req.Headers[":authority"] = req.Host
	req.Headers[":scheme"] = req.Scheme
	body, truncated, err := readBody(r.Body, h.maxBody)
	if err != nil {
		return nil, fmt.Errorf("%w: reading the body: %w", extauthz.ErrBadRequest, err)
	}
	req.Body = body
	req.BodyTruncated = truncated
	// Envoy sends a body that is not UTF-8 as bytes (pack_as_bytes); say
	// so, and the policy sees it as rawBody, as it would from Envoy.
	req.RawBody = !utf8.ValidString(body)
	return req, nil
}

// requestTarget is the call's own request target, as received, with
// PathPrefix removed: Envoy's HTTP ext_authz service prepends its
// path_prefix to the original path.
func (h *Handler) requestTarget(r *http.Request) string {
	// RequestURI is the target exactly as the request line carried it;
	// URL.RequestURI() re-escapes it. It is empty only for requests not
	// read by a server.
	target := r.RequestURI
	if target == "" && r.URL != nil {
		target = r.URL.RequestURI()
	}
	target = originForm(target)
	if h.prefix != "" && strings.HasPrefix(target, h.prefix) {
		target = target[len(h.prefix):]
	}
	return target
}

// forwarded applies what a trusted proxy says about the original request:
// method and target from the nginx (X-Original-*) or the Traefik
// (X-Forwarded-Method/-Uri) headers, host and scheme from X-Forwarded-Host
// and X-Forwarded-Proto. What is absent keeps the call's own value.
func (h *Handler) forwarded(hdr http.Header, req *extauthz.Request, target *string) error {
	method, ok, err := oneOf(hdr, originalMethodHeader, forwardedMethodHeader)
	if err != nil {
		return err
	}
	if ok {
		if !isToken(method) {
			return fmt.Errorf("%w: the forwarded method is not an HTTP token", extauthz.ErrBadRequest)
		}
		req.Method = method
	}

	uri, ok, err := oneOf(hdr, originalURIHeader, forwardedURIHeader)
	if err != nil {
		return err
	}
	if ok {
		*target = originForm(uri)
	}

	host, ok, err := single(hdr, forwardedHostHeader)
	if err != nil {
		return err
	}
	if ok {
		// A list means a proxy appended to a value someone else sent:
		// which entry names the host the client asked for is a guess.
		if strings.ContainsRune(host, ',') {
			return fmt.Errorf("%w: %s holds several hosts", extauthz.ErrBadRequest, forwardedHostHeader)
		}
		req.Host = host
	}

	// Chained proxies append their own hop's scheme; the first entry is
	// the one the client used. A value that is not a scheme is ignored.
	if v := hdr.Get(forwardedProtoHeader); v != "" {
		first, _, _ := strings.Cut(v, ",")
		if s := strings.ToLower(strings.TrimSpace(first)); isScheme(s) {
			req.Scheme = s
		}
	}
	return nil
}

// oneOf returns the value of whichever of two equivalent headers is set.
// When both are set they must agree: otherwise one of them came from the
// client through a proxy that sets only the other.
func oneOf(hdr http.Header, nginx, traefik string) (string, bool, error) {
	a, aok, err := single(hdr, nginx)
	if err != nil {
		return "", false, err
	}
	b, bok, err := single(hdr, traefik)
	if err != nil {
		return "", false, err
	}
	switch {
	case aok && bok && a != b:
		return "", false, fmt.Errorf("%w: %s and %s disagree", extauthz.ErrBadRequest, nginx, traefik)
	case aok:
		return a, true, nil
	case bok:
		return b, true, nil
	}
	return "", false, nil
}

// single returns a header's value; empty counts as absent, and a header
// sent more than once is ambiguous.
func single(hdr http.Header, name string) (string, bool, error) {
	var v string
	n := 0
	for _, s := range hdr.Values(name) {
		if s != "" {
			v = s
			n++
		}
	}
	switch n {
	case 0:
		return "", false, nil
	case 1:
		return v, true, nil
	}
	return "", false, fmt.Errorf("%w: %s is repeated", extauthz.ErrBadRequest, name)
}

// isTrusted reports whether a is inside Config.TrustedProxies.
func (h *Handler) isTrusted(a netip.Addr) bool { return h.clients.Trusted(a) }

// parsePeer parses http.Request.RemoteAddr; see clientip.ParsePeer.
func parsePeer(remote string) (netip.Addr, uint16) { return clientip.ParsePeer(remote) }

// originForm turns an absolute-form target ("http://host/path?q") into its
// path and query, as the upstream will route it.
func originForm(target string) string {
	for _, scheme := range [...]string{"http://", "https://"} {
		if len(target) >= len(scheme) && strings.EqualFold(target[:len(scheme)], scheme) {
			rest := target[len(scheme):]
			if i := strings.IndexAny(rest, "/?#"); i >= 0 {
				return rest[i:]
			}
			return "/"
		}
	}
	return target
}

// splitTarget separates the fragment (which clients should not send and
// proxies strip) and makes sure the path starts with "/". Nothing else is
// changed: "%2F" and "//" stay as sent.
func splitTarget(target string) (path, fragment string) {
	path, fragment, _ = strings.Cut(target, "#")
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return path, fragment
}

// headerMap returns the headers with lower-case names, repeated values
// joined with "," as Envoy joins them (cookies with "; ", as HTTP/2 joins
// cookie crumbs), without hop-by-hop headers.
func headerMap(hdr http.Header) map[string]string {
	m := make(map[string]string, len(hdr)+4)
	for name, values := range hdr {
		if len(values) == 0 || name == "" || name[0] == ':' {
			continue
		}
		lower := strings.ToLower(name)
		if hopByHop[lower] {
			continue
		}
		sep := ","
		if lower == "cookie" {
			sep = "; "
		}
		v := strings.Join(values, sep)
		if prev, ok := m[lower]; ok { // only in a Header not built by a server
			v = prev + sep + v
		}
		m[lower] = v
	}
	return m
}

// readBody reads at most limit bytes of body, and one more to learn
// whether there is more; the rest is left unread.
func readBody(body io.Reader, limit int64) (string, bool, error) {
	if body == nil || body == http.NoBody {
		return "", false, nil
	}
	n := limit
	if n < math.MaxInt64 {
		n++
	}
	b, err := io.ReadAll(io.LimitReader(body, n))
	if err != nil {
		return "", false, err
	}
	if int64(len(b)) > limit {
		return string(b[:limit]), true, nil
	}
	return string(b), false, nil
}

// isToken reports whether s is an HTTP token (RFC 9110, section 5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// isScheme reports whether s is a URI scheme (RFC 3986, section 3.1).
func isScheme(s string) bool {
	if s == "" || !('a' <= s[0] && s[0] <= 'z' || 'A' <= s[0] && s[0] <= 'Z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '+' || c == '-' || c == '.':
		default:
			return false
		}
	}
	return true
}
