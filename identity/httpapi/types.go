package httpapi

import (
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

// The API's resources as JSON. Times are RFC 3339; a time not set is left
// out. Secrets and their digests never appear.

type userJSON struct {
	ID            string    `json:"id"`
	Email         string    `json:"email"`
	DisplayName   string    `json:"display_name"`
	PlatformRoles []string  `json:"platform_roles"`
	Status        string    `json:"status"`
	BanReason     string    `json:"ban_reason,omitempty"`
	BannedUntil   time.Time `json:"banned_until,omitzero"`
	CreatedAt     time.Time `json:"created_at"`
}

func userOf(u *identity.User) userJSON {
	roles := u.PlatformRoles
	if roles == nil {
		roles = []string{}
	}
	out := userJSON{ID: u.ID, Email: u.Email, DisplayName: u.DisplayName, PlatformRoles: roles,
		Status: string(u.Status), CreatedAt: u.CreatedAt}
	if u.Status == identity.UserBanned {
		out.BanReason, out.BannedUntil = u.BanReason, u.BannedUntil
	}
	return out
}

type sessionJSON struct {
	ID            string    `json:"id"`
	ActiveOrgID   string    `json:"active_org_id,omitempty"`
	AuthTime      time.Time `json:"auth_time"`
	CreatedAt     time.Time `json:"created_at"`
	LastSeenAt    time.Time `json:"last_seen_at"`
	IdleExpiresAt time.Time `json:"idle_expires_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	IP            string    `json:"ip,omitempty"`
	UserAgent     string    `json:"user_agent,omitempty"`
	Current       bool      `json:"current"`
}

func sessionOf(s *identity.Session, current string) sessionJSON {
	return sessionJSON{ID: s.ID, ActiveOrgID: s.ActiveOrgID, AuthTime: s.AuthTime, CreatedAt: s.CreatedAt,
		LastSeenAt: s.LastSeenAt, IdleExpiresAt: s.IdleExpires, ExpiresAt: s.ExpiresAt, IP: s.IP,
		UserAgent: s.UserAgent, Current: s.ID == current}
}

type orgJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Tier      string    `json:"tier"`
	TimeZone  string    `json:"time_zone"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Role      string    `json:"role"` // the caller's
}

func orgOf(o *identity.Org, r identity.Role) orgJSON {
	return orgJSON{ID: o.ID, Name: o.Name, Tier: string(o.Tier), TimeZone: o.TimeZone,
		CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt, Role: string(r)}
}

type memberJSON struct {
	OrgID     string    `json:"org_id"`
	UserID    string    `json:"user_id"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

func memberOf(m *identity.Membership) memberJSON {
	return memberJSON{OrgID: m.OrgID, UserID: m.UserID, Role: string(m.Role), CreatedAt: m.CreatedAt}
}

type invitationJSON struct {
	ID         string    `json:"id"`
	OrgID      string    `json:"org_id"`
	Email      string    `json:"email"`
	Role       string    `json:"role"`
	InvitedBy  string    `json:"invited_by"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	AcceptedAt time.Time `json:"accepted_at,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	Status     string    `json:"status"` // open, accepted, revoked, expired
}

func invitationOf(inv *identity.Invitation, now time.Time) invitationJSON {
	status := "open"
	switch {
	case !inv.AcceptedAt.IsZero():
		status = "accepted"
	case !inv.RevokedAt.IsZero():
		status = "revoked"
	case !now.Before(inv.ExpiresAt):
		status = "expired"
	}
	return invitationJSON{ID: inv.ID, OrgID: inv.OrgID, Email: inv.Email, Role: string(inv.Role),
		InvitedBy: inv.InvitedBy, CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt,
		AcceptedAt: inv.AcceptedAt, RevokedAt: inv.RevokedAt, Status: status}
}

type apiKeyJSON struct {
	ID           string    `json:"id"`
	OrgID        string    `json:"org_id"`
	CreatedBy    string    `json:"created_by"`
	Name         string    `json:"name"`
	Hint         string    `json:"hint"`
	Scopes       []string  `json:"scopes"`
	AllowedTools []string  `json:"allowed_tools"`
	Tier         string    `json:"tier"`
	IPAllowlist  []string  `json:"ip_allowlist"`
	CreatedAt    time.Time `json:"created_at"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
	RevokedAt    time.Time `json:"revoked_at,omitzero"`
	LastUsedAt   time.Time `json:"last_used_at,omitzero"`
	ReplacedBy   string    `json:"replaced_by,omitempty"`
	GraceUntil   time.Time `json:"grace_until,omitzero"`
}

func apiKeyOf(k *identity.APIKey) apiKeyJSON {
	return apiKeyJSON{ID: k.ID, OrgID: k.OrgID, CreatedBy: k.CreatedBy, Name: k.Name, Hint: k.Hint,
		Scopes: orEmpty(k.Scopes), AllowedTools: orEmpty(k.AllowedTools), Tier: string(k.Tier),
		IPAllowlist: orEmpty(k.IPAllowlist), CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt,
		RevokedAt: k.RevokedAt, LastUsedAt: k.LastUsedAt, ReplacedBy: k.ReplacedBy, GraceUntil: k.GraceUntil}
}

// orEmpty makes a nil list an empty one, so lists are always arrays.
func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// list converts each item.
func list[T, J any](items []T, conv func(*T) J) []J {
	out := make([]J, len(items))
	for i := range items {
		out[i] = conv(&items[i])
	}
	return out
}
