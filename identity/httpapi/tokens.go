package httpapi

import (
	"net/http"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

type tokenRequest struct {
	// OrgID picks the organization of a session's token (default: the
	// session's active one). A key's token is always for its own.
	OrgID string `json:"org_id"`
}

type tokenJSON struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	ExpiresIn   int64     `json:"expires_in"`
	ExpiresAt   time.Time `json:"expires_at"`
}

var errTwoCredentials = badRequest("", "send one credential: a session (cookie or Authorization) or an x-api-key header")

// exchangeToken issues a short-lived JWT for the session or API key the
// call carries.
func (h *Handler) exchangeToken(w http.ResponseWriter, r *http.Request, _ *caller) error {
	var in tokenRequest
	if err := h.decode(w, r, &in, true); err != nil {
		return err
	}
	issued, err := h.issue(r, in.OrgID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, tokenJSON{AccessToken: issued.Token, TokenType: "Bearer",
		ExpiresIn: int64(issued.ExpiresAt.Sub(h.now()) / time.Second), ExpiresAt: issued.ExpiresAt})
}

func (h *Handler) issue(r *http.Request, orgID string) (*identity.Issued, error) {
	keys := r.Header.Values("X-Api-Key")
	tok, hasBearer, ok := bearer(r)
	_, hasCookie := h.sessionCookie(r)
	switch {
	case len(keys) > 0 && (hasBearer || hasCookie), len(keys) > 1:
		return nil, errTwoCredentials
	case len(keys) == 1:
		return h.issueForKey(r, keys[0], orgID)
	case hasBearer && !ok:
		return nil, identity.ErrUnauthenticated
	case hasBearer:
		if kind, _ := token.Parse(tok); kind == token.KindAPIKey {
			return h.issueForKey(r, tok, orgID)
		}
	}
	c, err := h.authenticate(r)
	if err != nil {
		return nil, err
	}
	return h.tokens.ForSession(r.Context(), c.sess, orgID)
}

func (h *Handler) issueForKey(r *http.Request, secret, orgID string) (*identity.Issued, error) {
	ip := ""
	if a := h.clients.ClientIP(r); a.IsValid() {
		ip = a.String()
	}
	k, err := h.svc.AuthenticateAPIKey(r.Context(), secret, ip)
	if err != nil {
		return nil, err
	}
	if orgID != "" && orgID != k.OrgID {
		return nil, identity.ErrForbidden
	}
	return h.tokens.ForAPIKey(r.Context(), k)
}

func (h *Handler) jwks(w http.ResponseWriter, _ *http.Request, _ *caller) error {
	doc, err := h.tokens.JWKS()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	// A new key is published minutes before it signs, so a cached copy
	// is refreshed in time; a retired key stays published until the
	// tokens it signed expire.
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, err = w.Write(doc)
	return err
}
