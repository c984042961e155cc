// Package forwardauth serves decisions over HTTP forward-auth: Envoy's HTTP
// ext_authz service, nginx auth_request and Traefik forwardAuth. It
// reconstructs the original request from the auth call into an
// extauthz.Request, and writes the Decision back as the status, headers and
// body those proxies understand: 200 allows, anything else denies.
//
// Forwarded headers (X-Forwarded-*, X-Original-*, X-Real-IP) describe the
// original request only when the call comes from a peer inside
// Config.TrustedProxies. Such a proxy must set or remove each of them on
// every call, since a value it lets through from the client is believed:
// nginx passes the client's headers to auth_request unless told otherwise.
//
// A denial is sent with its status, except 5xx: Envoy's HTTP ext_authz
// takes any 5xx answer for a failure to reach the service, which
// failure_mode_allow turns into an allow. A 5xx denial is therefore sent as
// 403, with the decided status in the X-Mcpauthz-Status header. nginx
// auth_request passes on only 401 and 403 and turns anything else into 500;
// its configuration can map other statuses with error_page.
//
// With Config.ProtectedResource the listener is also the MCP server's
// OAuth 2.0 protected resource metadata endpoint (RFC 9728): a GET or HEAD
// of /.well-known/oauth-protected-resource, or its path-inserted form for
// the resource, sent to the listener itself is answered with the metadata
// (200, application/json), not decided. nginx and Traefik deployments route
// those paths to mcpauthz as an ordinary upstream, not through the auth
// check: a check's 2xx would be an allow, so a check for them is refused.
// Envoy's HTTP ext_authz service needs a path_prefix (PathPrefix) so its
// checks are never taken for such a request.
package forwardauth

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/internal/clientip"
)

// DefaultMaxBodyBytes bounds the body passed to the checker unless
// configured.
const DefaultMaxBodyBytes = 1 << 20

// headersToRemoveHeader lists, on an allow, the request headers Envoy's
// HTTP ext_authz filter removes before the request goes upstream.
const headersToRemoveHeader = "X-Envoy-Auth-Headers-To-Remove"

// Checker decides requests; *extauthz.Authorizer is one.
type Checker interface {
	Check(ctx context.Context, req *extauthz.Request) (extauthz.Decision, error)
}

// Config configures a Handler.
type Config struct {
	// PathPrefix is removed from the front of the call's path: Envoy's HTTP
	// ext_authz service prepends its path_prefix to the original path.
	PathPrefix string
	// TrustedProxies are the peers whose forwarded headers describe the
	// original request. Headers from any other peer never do.
	TrustedProxies []netip.Prefix
	// MaxBodyBytes bounds the body passed to the checker (default
	// DefaultMaxBodyBytes); a longer body is cut there and marked truncated.
	MaxBodyBytes int64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// DecisionIDHeader names the response header that carries the decision
	// id on every answer, for the proxy's access log (default
	// extauthz.DefaultIdentityHeaders.DecisionID; "-" for none).
	DecisionIDHeader string
	// ProtectedResource, when set, is served at its metadata paths (GET
	// and HEAD, 200, JSON) to callers that request them from this listener
	// directly; nil serves nothing.
	ProtectedResource *extauthz.ProtectedResource
}

// Handler answers forward-auth calls. It implements http.Handler.
type Handler struct {
	checker Checker
	prefix  string
	clients clientip.Resolver // resolves client addresses behind TrustedProxies
	maxBody int64
	now     func() time.Time
	log     *slog.Logger
	idName  string // header carrying the decision id, or ""
	// resource is served at its metadata paths, or nil.
	resource *extauthz.ProtectedResource
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns a Handler deciding with checker.
func NewHandler(checker Checker, cfg Config, log *slog.Logger) *Handler {
	h := &Handler{
		checker: checker,
		prefix:  cfg.PathPrefix,
		clients: clientip.New(cfg.TrustedProxies),
		maxBody: cfg.MaxBodyBytes,
		now:     cfg.Now,
		log:     log,
		idName:  cfg.DecisionIDHeader,

		resource: cfg.ProtectedResource,
	}
	switch h.idName {
	case "":
		h.idName = extauthz.DefaultIdentityHeaders.DecisionID
	case "-":
		h.idName = ""
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h
}

// ServeHTTP answers one forward-auth call. Faults, malformed calls and
// panics become denials; no answer but an allowed decision, or the
// protected resource metadata asked for directly, is a 2xx.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.serveMetadata(w, r) {
		return
	}
	d := h.decide(r)
	h.write(w, &d)
}

func (h *Handler) decide(r *http.Request) (d extauthz.Decision) {
	ctx := r.Context()
	defer func() {
		if p := recover(); p != nil {
			h.log.LogAttrs(ctx, slog.LevelError, "panic while deciding a request; denied", extauthz.PanicAttrs(p)...)
			d = extauthz.Deny(http.StatusInternalServerError, extauthz.ReasonInternal)
		}
	}()
	req, err := h.reconstruct(r)
	if err != nil {
		h.log.LogAttrs(ctx, slog.LevelInfo, "forward-auth call cannot be authorized; denied",
			slog.String("peer", r.RemoteAddr), slog.Any("error", err))
		return extauthz.Deny(http.StatusBadRequest, extauthz.ReasonBadRequest)
	}
	d, _ = h.checker.Check(ctx, req) // the decision is the answer; faults are logged by the checker
	return d
}

// write renders a decision. On allow, the decision's headers go on the 200
// for the proxy to copy upstream (nginx auth_request_set, Envoy
// allowed_upstream_headers, Traefik authResponseHeaders). A denial keeps
// its status unless that is a 2xx, which these proxies would take as an
// allow.
func (h *Handler) write(w http.ResponseWriter, d *extauthz.Decision) {
	hdr := w.Header()
	if h.idName != "" && d.DecisionID != "" {
		hdr.Set(h.idName, d.DecisionID)
	}
	if d.Allowed {
		h.setHeaders(hdr, d.Headers, false)
		h.setHeaders(hdr, d.ResponseHeadersToAdd, true)
		if names := h.validNames(d.RequestHeadersToRemove); len(names) > 0 {
			hdr.Set(headersToRemoveHeader, strings.Join(names, ","))
		}
		hdr.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		return
	}
	status := denyStatus(d.Status)
	hdr.Set(statusHeader, strconv.Itoa(d.Status))
	body := d.Body
	if status == http.StatusNotModified {
		body = "" // a 304 has no body
	}
	h.setHeaders(hdr, d.Headers, false)
	if body != "" {
		if hdr.Get("Content-Type") == "" {
			hdr.Set("Content-Type", "text/plain; charset=utf-8")
		}
		hdr.Set("Content-Length", strconv.Itoa(len(body)))
	}
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body) // a failed write means the proxy is gone
}

// statusHeader carries a denial's decided status, which the response's own
// status may not show.
const statusHeader = "X-Mcpauthz-Status"

// denyStatus is the status a denial is sent with: 3xx and 4xx as decided;
// 5xx, which a proxy may read as "authorizer unreachable" and let through,
// and anything else (0, 1xx, 2xx, out of range) as 403.
func denyStatus(status int) int {
	if status < 300 || status > 499 {
		return http.StatusForbidden
	}
	return status
}

// setHeaders puts decision headers on the response: the first value of a
// name replaces what is there and further values are added (add: every
// value is added). Headers that would corrupt the response are dropped.
func (h *Handler) setHeaders(hdr http.Header, hs []extauthz.Header, add bool) {
	for i, kv := range hs {
		if !h.validHeader(kv.Name) {
			continue
		}
		if strings.ContainsAny(kv.Value, "\r\n\x00") {
			h.log.Warn("decision header value is not a valid header value; dropped", slog.String("header", kv.Name))
			continue
		}
		if add || extauthz.HasHeader(hs[:i], kv.Name) {
			hdr.Add(kv.Name, kv.Value)
		} else {
			hdr.Set(kv.Name, kv.Value)
		}
	}
}

func (h *Handler) validNames(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if h.validHeader(n) {
			out = append(out, strings.ToLower(n))
		}
	}
	return out
}

// validHeader reports whether a decision may set the named header: it is
// a token and not one that frames the response or the connection.
func (h *Handler) validHeader(name string) bool {
	lower := strings.ToLower(name)
	if !isToken(name) || hopByHop[lower] || lower == "content-length" {
		h.log.Warn("decision header name cannot be sent; dropped", slog.String("header", name))
		return false
	}
	return true
}
