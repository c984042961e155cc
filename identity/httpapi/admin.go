package httpapi

import (
	"net/http"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

type usersJSON struct {
	Users []userJSON `json:"users"`
	// NextAfter is the cursor of the next page; absent on the last.
	NextAfter string `json:"next_after,omitempty"`
}

// adminPage is the default and largest page of users.
const adminPage = 100

func (h *Handler) adminUsers(w http.ResponseWriter, r *http.Request, c *caller) error {
	q := r.URL.Query()
	limit, err := intParam(q, "limit", 1, adminPage)
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = adminPage
	}
	us, err := h.svc.AdminUsers(r.Context(), c.sess, q.Get("q"), q.Get("after"), int(limit))
	if err != nil {
		return err
	}
	out := usersJSON{Users: list(us, userOf)}
	if len(us) == int(limit) {
		out.NextAfter = us[len(us)-1].ID
	}
	return writeJSON(w, http.StatusOK, out)
}

type banRequest struct {
	Reason string    `json:"reason"`
	Until  time.Time `json:"until"` // absent: until unbanned
}

func (h *Handler) ban(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in banRequest
	if err := h.decode(w, r, &in, false); err != nil {
		return err
	}
	if err := h.svc.Ban(r.Context(), c.sess, r.PathValue("user"), in.Reason, in.Until, h.meta(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) unban(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := h.svc.Unban(r.Context(), c.sess, r.PathValue("user"), h.meta(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type platformRolesRequest struct {
	Roles []string `json:"roles"`
}

func (h *Handler) setPlatformRoles(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in platformRolesRequest
	if err := h.decode(w, r, &in, false); err != nil {
		return err
	}
	if in.Roles == nil {
		return badRequest("roles", "roles: required (an empty array removes every role)")
	}
	if err := h.svc.SetPlatformRoles(r.Context(), c.sess, r.PathValue("user"), in.Roles, h.meta(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) adminRevoke(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := h.svc.AdminRevokeAll(r.Context(), c.sess, r.PathValue("user"), h.meta(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type tierRequest struct {
	Tier string `json:"tier"`
}

func (h *Handler) setOrgTier(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in tierRequest
	if err := h.decode(w, r, &in, false); err != nil {
		return err
	}
	if err := h.svc.SetOrgTier(r.Context(), c.sess, r.PathValue("org"), identity.Tier(in.Tier), h.meta(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
