package httpapi

import (
	"net/http"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

type createKeyRequest struct {
	Name         string    `json:"name"`
	Scopes       []string  `json:"scopes"`
	AllowedTools []string  `json:"allowed_tools"`
	Tier         string    `json:"tier"`
	IPAllowlist  []string  `json:"ip_allowlist"`
	ExpiresAt    time.Time `json:"expires_at"`
}

type createdKeyJSON struct {
	APIKey apiKeyJSON `json:"api_key"`
	// Secret is shown once; only its digest is kept.
	Secret string `json:"secret"`
}

func (h *Handler) createAPIKey(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in createKeyRequest
	if err := h.decode(w, r, &in, false); err != nil {
		return err
	}
	k, secret, err := h.svc.CreateAPIKey(r.Context(), c.user.ID, r.PathValue("org"), identity.NewAPIKey{
		Name: in.Name, Scopes: in.Scopes, AllowedTools: in.AllowedTools, Tier: identity.Tier(in.Tier),
		IPAllowlist: in.IPAllowlist, ExpiresAt: in.ExpiresAt,
	}, h.meta(r))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, createdKeyJSON{APIKey: apiKeyOf(k), Secret: secret})
}

type apiKeysJSON struct {
	APIKeys []apiKeyJSON `json:"api_keys"`
}

func (h *Handler) listAPIKeys(w http.ResponseWriter, r *http.Request, c *caller) error {
	ks, err := h.svc.APIKeys(r.Context(), c.user.ID, r.PathValue("org"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiKeysJSON{APIKeys: list(ks, apiKeyOf)})
}

type rotateRequest struct {
	// GraceSeconds is how long the old key stays valid (default: a day).
	GraceSeconds int64 `json:"grace_seconds"`
}

// maxGrace bounds how long a rotated key may stay valid.
const maxGrace = 30 * 24 * time.Hour

func (h *Handler) rotateAPIKey(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in rotateRequest
	if err := h.decode(w, r, &in, true); err != nil {
		return err
	}
	if in.GraceSeconds < 0 || in.GraceSeconds > int64(maxGrace/time.Second) {
		return badRequest("grace_seconds", "grace_seconds: must be between 0 and 2592000 (30 days)")
	}
	grace := time.Duration(in.GraceSeconds) * time.Second
	k, secret, err := h.svc.RotateAPIKey(r.Context(), c.user.ID, r.PathValue("org"), r.PathValue("id"), grace, h.meta(r))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, createdKeyJSON{APIKey: apiKeyOf(k), Secret: secret})
}

func (h *Handler) revokeAPIKey(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := h.svc.RevokeAPIKey(r.Context(), c.user.ID, r.PathValue("org"), r.PathValue("id"), h.meta(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
