package httpapi

import (
	"log/slog"
	"net/http"
)

// access says what a route needs from its caller.
type access int

const (
	public  access = iota // anyone
	session               // a session, by cookie or bearer token
)

// route is one endpoint. The OpenAPI document describes exactly these
// (a test holds the two together).
type route struct {
	method, path string
	access       access
	serve        func(h *Handler, w http.ResponseWriter, r *http.Request, c *caller) error
}

var routes = []route{
	{"GET", "/healthz", public, (*Handler).health},
	{"GET", "/openapi.json", public, (*Handler).document},
	{"GET", "/.well-known/jwks.json", public, (*Handler).jwks},

	{"GET", "/v1/consents", public, (*Handler).consentTerms},
	{"POST", "/v1/users", public, (*Handler).createUser},
	{"GET", "/v1/me", session, (*Handler).me},
	{"GET", "/v1/me/export", session, (*Handler).exportMe},
	{"DELETE", "/v1/me", session, (*Handler).deleteMe},

	{"POST", "/v1/sessions", public, (*Handler).createSession},
	{"GET", "/v1/sessions", session, (*Handler).listSessions},
	{"DELETE", "/v1/sessions", session, (*Handler).revokeAllSessions},
	{"DELETE", "/v1/sessions/{id}", session, (*Handler).revokeSession},
	{"POST", "/v1/sessions/reauth", session, (*Handler).reauth},
	{"PUT", "/v1/sessions/current/org", session, (*Handler).setActiveOrg},

	{"POST", "/v1/token", public, (*Handler).exchangeToken},

	{"POST", "/v1/orgs", session, (*Handler).createOrg},
	{"GET", "/v1/orgs", session, (*Handler).listOrgs},
	{"GET", "/v1/orgs/{org}", session, (*Handler).getOrg},
	{"PATCH", "/v1/orgs/{org}", session, (*Handler).renameOrg},
	{"DELETE", "/v1/orgs/{org}", session, (*Handler).deleteOrg},
	{"GET", "/v1/orgs/{org}/members", session, (*Handler).listMembers},
	{"PUT", "/v1/orgs/{org}/members/{user}", session, (*Handler).setMemberRole},
	{"DELETE", "/v1/orgs/{org}/members/{user}", session, (*Handler).removeMember},
	{"POST", "/v1/orgs/{org}/invitations", session, (*Handler).invite},
	{"GET", "/v1/orgs/{org}/invitations", session, (*Handler).listInvitations},
	{"DELETE", "/v1/orgs/{org}/invitations/{id}", session, (*Handler).revokeInvitation},
	{"POST", "/v1/invitations/accept", session, (*Handler).acceptInvitation},

	{"POST", "/v1/orgs/{org}/api-keys", session, (*Handler).createAPIKey},
	{"GET", "/v1/orgs/{org}/api-keys", session, (*Handler).listAPIKeys},
	{"POST", "/v1/orgs/{org}/api-keys/{id}/rotate", session, (*Handler).rotateAPIKey},
	{"DELETE", "/v1/orgs/{org}/api-keys/{id}", session, (*Handler).revokeAPIKey},

	{"GET", "/v1/audit", session, (*Handler).auditLog},

	{"GET", "/v1/admin/users", session, (*Handler).adminUsers},
	{"PUT", "/v1/admin/users/{user}/ban", session, (*Handler).ban},
	{"DELETE", "/v1/admin/users/{user}/ban", session, (*Handler).unban},
	{"PUT", "/v1/admin/users/{user}/platform-roles", session, (*Handler).setPlatformRoles},
	{"POST", "/v1/admin/users/{user}/revoke-credentials", session, (*Handler).adminRevoke},
	{"PUT", "/v1/admin/orgs/{org}/tier", session, (*Handler).setOrgTier},
}

// endpoint wraps a route: it authenticates the caller the route needs and
// turns a returned error into the API's error response.
func (h *Handler) endpoint(rt route) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := &startedWriter{ResponseWriter: rw}
		var c *caller
		if rt.access == session {
			var err error
			if c, err = h.authenticate(r); err != nil {
				h.fail(w, r, err)
				return
			}
		}
		err := rt.serve(h, w, r, c)
		switch {
		case err == nil:
		case w.started:
			// Most often the client went away mid-body.
			h.log.LogAttrs(r.Context(), slog.LevelDebug, "identity API response cut short",
				slog.String("route", r.Pattern), slog.Any("error", err))
		default:
			h.fail(w, r, err)
		}
	})
}

func (h *Handler) health(w http.ResponseWriter, _ *http.Request, _ *caller) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *Handler) document(w http.ResponseWriter, _ *http.Request, _ *caller) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, err := w.Write(h.openAPI)
	return err
}
