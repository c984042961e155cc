package forwardauth

import (
	"io"
	"log/slog"
	"net/http"
	"strconv"
)

// serveMetadata answers a request for the protected resource metadata sent
// to the listener itself, as nginx or Traefik send it when they route the
// well-known paths to mcpauthz: a GET or HEAD of one of
// extauthz.ProtectedResource.Paths by the call's own request line (as sent:
// PathPrefix is not removed, so a check Envoy prefixed never matches) that
// describes no other request (no X-Original-* or X-Forwarded-Method/-Uri).
// It reports whether it answered.
//
// The Authorizer's own answer to such a request cannot serve here: a
// forward-auth proxy reads any 2xx as an allow, and a denial is never sent
// as one. A forward-auth check for the well-known paths is therefore
// refused (403); route those paths to this listener instead.
func (h *Handler) serveMetadata(w http.ResponseWriter, r *http.Request) bool {
	if h.resource == nil || describesAnother(r.Header) {
		return false
	}
	target := r.RequestURI
	if target == "" && r.URL != nil {
		target = r.URL.RequestURI()
	}
	d, ok := h.resource.Serve(r.Method, originForm(target))
	if !ok {
		return false
	}
	hdr := w.Header()
	h.setHeaders(hdr, d.Headers, false)
	hdr.Set("Content-Length", strconv.Itoa(len(h.resource.Metadata()))) // HEAD too
	h.log.LogAttrs(r.Context(), slog.LevelDebug, "protected resource metadata served", slog.String("path", r.URL.Path))
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, d.Body) // a failed write means the client is gone
	return true
}

// describesAnother reports whether a call carries the headers with which a
// forward-auth proxy describes the request it asks about.
func describesAnother(hdr http.Header) bool {
	for _, name := range [...]string{originalMethodHeader, originalURIHeader, forwardedMethodHeader, forwardedURIHeader} {
		if _, ok := hdr[name]; ok {
			return true
		}
	}
	return false
}
