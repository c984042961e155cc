package httpapi

import (
	"net/http"

	"github.com/mcpauthz/mcpauthz/identity"
)

type createOrgRequest struct {
	Name     string `json:"name"`
	TimeZone string `json:"time_zone"`
}

func (h *Handler) createOrg(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in createOrgRequest
	if err := h.decode(w, r, &in, false); err != nil {
		return err
	}
	o, err := h.svc.CreateOrg(r.Context(), c.user.ID, in.Name, in.TimeZone, h.meta(r))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, orgOf(o, identity.RoleOwner))
}

type orgsJSON struct {
	Orgs []orgJSON `json:"orgs"`
}

func (h *Handler) listOrgs(w http.ResponseWriter, r *http.Request, c *caller) error {
	os, err := h.svc.OrgsOf(r.Context(), c.user.ID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, orgsJSON{Orgs: list(os, func(o *identity.OrgRole) orgJSON {
		return orgOf(&o.Org, o.Role)
	})})
}

func (h *Handler) getOrg(w http.ResponseWriter, r *http.Request, c *caller) error {
	o, err := h.svc.Org(r.Context(), c.user.ID, r.PathValue("org"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, orgOf(&o.Org, o.Role))
}

type renameOrgRequest struct {
	Name string `json:"name"`
}

func (h *Handler) renameOrg(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in renameOrgRequest
	if err := h.decode(w, r, &in, false); err != nil {
		return err
	}
	orgID := r.PathValue("org")
	if err := h.svc.RenameOrg(r.Context(), c.user.ID, orgID, in.Name, h.meta(r)); err != nil {
		return err
	}
	return h.getOrg(w, r, c)
}

func (h *Handler) deleteOrg(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := h.svc.DeleteOrg(r.Context(), c.sess, r.PathValue("org"), h.meta(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type membersJSON struct {
	Members []memberJSON `json:"members"`
}

func (h *Handler) listMembers(w http.ResponseWriter, r *http.Request, c *caller) error {
	ms, err := h.svc.Members(r.Context(), c.user.ID, r.PathValue("org"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, membersJSON{Members: list(ms, memberOf)})
}

type roleRequest struct {
	Role string `json:"role"`
}

func (h *Handler) setMemberRole(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in roleRequest
	if err := h.decode(w, r, &in, false); err != nil {
		return err
	}
	orgID, userID := r.PathValue("org"), r.PathValue("user")
	if err := h.svc.SetRole(r.Context(), c.user.ID, orgID, userID, identity.Role(in.Role), h.meta(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) removeMember(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := h.svc.RemoveMember(r.Context(), c.user.ID, r.PathValue("org"), r.PathValue("user"), h.meta(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type inviteRequest struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

type invitedJSON struct {
	Invitation invitationJSON `json:"invitation"`
	// Token is shown once: whoever holds it (and signs in with the invited
	// email) can join.
	Token string `json:"token"`
}

func (h *Handler) invite(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in inviteRequest
	if err := h.decode(w, r, &in, false); err != nil {
		return err
	}
	inv, tok, err := h.svc.Invite(r.Context(), c.user.ID, r.PathValue("org"), in.Email, identity.Role(in.Role), h.meta(r))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, invitedJSON{Invitation: invitationOf(inv, h.now()), Token: tok})
}

type invitationsJSON struct {
	Invitations []invitationJSON `json:"invitations"`
}

func (h *Handler) listInvitations(w http.ResponseWriter, r *http.Request, c *caller) error {
	invs, err := h.svc.Invitations(r.Context(), c.user.ID, r.PathValue("org"))
	if err != nil {
		return err
	}
	now := h.now()
	return writeJSON(w, http.StatusOK, invitationsJSON{Invitations: list(invs, func(inv *identity.Invitation) invitationJSON {
		return invitationOf(inv, now)
	})})
}

func (h *Handler) revokeInvitation(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := h.svc.RevokeInvitation(r.Context(), c.user.ID, r.PathValue("org"), r.PathValue("id"), h.meta(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type acceptRequest struct {
	Token string `json:"token"`
}

func (h *Handler) acceptInvitation(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in acceptRequest
	if err := h.decode(w, r, &in, false); err != nil {
		return err
	}
	m, err := h.svc.AcceptInvitation(r.Context(), c.user.ID, in.Token, h.meta(r))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, memberOf(m))
}
