package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

// caller is the authenticated session behind a call.
type caller struct {
	sess *identity.Session
	user *identity.User
}

// authenticate finds the caller's session: the bearer token if the call
// has an Authorization header, else the session cookie. Tokens are never
// taken from the query string.
func (h *Handler) authenticate(r *http.Request) (*caller, error) {
	tok, ok := h.sessionToken(r)
	if !ok {
		return nil, identity.ErrUnauthenticated
	}
	sess, u, err := h.svc.Authenticate(r.Context(), tok)
	if err != nil {
		return nil, err
	}
	return &caller{sess: sess, user: u}, nil
}

// sessionToken returns the session token the call carries. Two copies of
// the cookie (one tossed in by a sibling domain, say) are refused rather
// than guessed between.
func (h *Handler) sessionToken(r *http.Request) (string, bool) {
	if tok, present, ok := bearer(r); present {
		return tok, ok
	}
	tok, n := h.sessionCookie(r)
	return tok, n && tok != ""
}

// sessionCookie returns the session cookie's value; ok is false when the
// call has none, or more than one.
func (h *Handler) sessionCookie(r *http.Request) (tok string, ok bool) {
	cs := r.CookiesNamed(h.cfg.CookieName)
	if len(cs) != 1 {
		return "", false
	}
	return cs[0].Value, true
}

// bearer returns the token of a single "Authorization: Bearer" header.
// present says whether the call has an Authorization header at all.
func bearer(r *http.Request) (tok string, present, ok bool) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return "", false, false
	}
	if len(vals) > 1 {
		return "", true, false
	}
	scheme, tok, found := strings.Cut(vals[0], " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", true, false
	}
	tok = strings.TrimSpace(tok)
	return tok, true, tok != ""
}

// meta describes the call for the audit log.
func (h *Handler) meta(r *http.Request) identity.Meta {
	m := identity.Meta{UserAgent: r.UserAgent()}
	if ip := h.clients.ClientIP(r); ip.IsValid() {
		m.IP = ip.String()
	}
	return m
}

// setSessionCookie hands the browser the session token: Secure, HttpOnly,
// SameSite=Lax, expiring with the session.
func (h *Handler) setSessionCookie(w http.ResponseWriter, tok string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: h.cfg.CookieName, Value: tok, Path: "/", Domain: h.cfg.CookieDomain,
		Expires: expires.UTC(), MaxAge: max(1, int(expires.Sub(h.now())/time.Second)),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

// clearSessionCookie tells the browser to drop the cookie.
func (h *Handler) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: h.cfg.CookieName, Value: "", Path: "/", Domain: h.cfg.CookieDomain, MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}
