package httpapi

import (
	"errors"
	"net/http"

	"github.com/mcpauthz/mcpauthz/identity"
)

// limit takes one attempt from lim for the caller's address.
func (h *Handler) limit(r *http.Request, lim *limiter, code string) error {
	if ok, wait := lim.allow(h.clients.ClientIP(r), h.now()); !ok {
		return tooMany(code, wait)
	}
	return nil
}

type consentTermsJSON struct {
	Required map[string]string `json:"required"`
	Optional []string          `json:"optional"`
}

func (h *Handler) consentTerms(w http.ResponseWriter, _ *http.Request, _ *caller) error {
	req, opt := h.svc.ConsentTerms()
	return writeJSON(w, http.StatusOK, consentTermsJSON{Required: req, Optional: orEmpty(opt)})
}

type consentJSON struct {
	Kind    string `json:"kind"`
	Version string `json:"version"`
	Granted bool   `json:"granted"`
}

type signUpRequest struct {
	Email       string        `json:"email"`
	Password    string        `json:"password"`
	DisplayName string        `json:"display_name"`
	Consents    []consentJSON `json:"consents"`
}

func (h *Handler) createUser(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if err := h.limit(r, h.signUp, "rate_limited"); err != nil {
		return err
	}
	var in signUpRequest
	if err := h.decode(w, r, &in, false); err != nil {
		return err
	}
	su := identity.SignUp{Email: in.Email, Password: in.Password, DisplayName: in.DisplayName}
	for _, c := range in.Consents {
		su.Consents = append(su.Consents, identity.Consent{Kind: c.Kind, Version: c.Version, Granted: c.Granted})
	}
	u, err := h.svc.SignUp(r.Context(), su, h.meta(r))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, userOf(u))
}

type meJSON struct {
	User    userJSON    `json:"user"`
	Session sessionJSON `json:"session"`
}

func (h *Handler) me(w http.ResponseWriter, _ *http.Request, c *caller) error {
	return writeJSON(w, http.StatusOK, meJSON{User: userOf(c.user), Session: sessionOf(c.sess, c.sess.ID)})
}

func (h *Handler) exportMe(w http.ResponseWriter, r *http.Request, c *caller) error {
	exp, err := h.svc.ExportUserData(r.Context(), c.sess, h.meta(r))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Disposition", `attachment; filename="mcpauthz-export.json"`)
	return writeJSON(w, http.StatusOK, exp)
}

func (h *Handler) deleteMe(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := h.svc.DeleteAccount(r.Context(), c.sess, h.meta(r)); err != nil {
		return err
	}
	h.clearSessionCookie(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type loginJSON struct {
	Token   string      `json:"token"`
	Session sessionJSON `json:"session"`
	User    userJSON    `json:"user"`
}

func (h *Handler) createSession(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if err := h.limit(r, h.login, "rate_limited"); err != nil {
		return err
	}
	var in loginRequest
	if err := h.decode(w, r, &in, false); err != nil {
		return err
	}
	l, err := h.svc.Login(r.Context(), in.Email, in.Password, h.meta(r))
	var locked *identity.LockedError
	if errors.As(err, &locked) {
		// Only an account can be locked: saying so would tell whoever
		// guesses that the email has one. The lock is in the audit log.
		return identity.ErrInvalidCredentials
	}
	if err != nil {
		return err
	}
	h.setSessionCookie(w, l.Token, l.Session.ExpiresAt)
	return writeJSON(w, http.StatusCreated, loginJSON{Token: l.Token, Session: sessionOf(l.Session, l.Session.ID), User: userOf(l.User)})
}

type sessionsJSON struct {
	Sessions []sessionJSON `json:"sessions"`
}

func (h *Handler) listSessions(w http.ResponseWriter, r *http.Request, c *caller) error {
	ss, err := h.svc.Sessions(r.Context(), c.user.ID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, sessionsJSON{Sessions: list(ss, func(s *identity.Session) sessionJSON {
		return sessionOf(s, c.sess.ID)
	})})
}

// revokeSession ends one of the caller's sessions; "current" names the
// one making the call (logout).
func (h *Handler) revokeSession(w http.ResponseWriter, r *http.Request, c *caller) error {
	id := r.PathValue("id")
	if id == "current" {
		id = c.sess.ID
	}
	if err := h.svc.RevokeSession(r.Context(), c.user.ID, id, h.meta(r)); err != nil {
		return err
	}
	if id == c.sess.ID {
		h.clearSessionCookie(w)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type revokedJSON struct {
	Revoked int `json:"revoked"`
}

func (h *Handler) revokeAllSessions(w http.ResponseWriter, r *http.Request, c *caller) error {
	ids, err := h.svc.RevokeAllSessions(r.Context(), c.user.ID, h.meta(r))
	if err != nil {
		return err
	}
	h.clearSessionCookie(w)
	return writeJSON(w, http.StatusOK, revokedJSON{Revoked: len(ids)})
}

type reauthRequest struct {
	Password string `json:"password"`
}

func (h *Handler) reauth(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := h.limit(r, h.login, "rate_limited"); err != nil {
		return err
	}
	var in reauthRequest
	if err := h.decode(w, r, &in, false); err != nil {
		return err
	}
	if err := h.svc.Reauth(r.Context(), c.sess, in.Password, h.meta(r)); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, sessionOf(c.sess, c.sess.ID))
}

type activeOrgRequest struct {
	OrgID string `json:"org_id"`
}

func (h *Handler) setActiveOrg(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in activeOrgRequest
	if err := h.decode(w, r, &in, false); err != nil {
		return err
	}
	if err := h.svc.SetActiveOrg(r.Context(), c.sess, in.OrgID); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, sessionOf(c.sess, c.sess.ID))
}
