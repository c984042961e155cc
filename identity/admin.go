package identity

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/mcpauthz/mcpauthz/identity/password"
)

// Platform roles.
const (
	PlatformAdmin      = "admin"
	PlatformSuperAdmin = "super-admin"
)

// admin checks that the session's user is a platform admin (super-admins
// are admins) with a fresh session, and returns the user.
func (s *Service) admin(ctx context.Context, sess *Session, super bool) (*User, error) {
	u, err := s.store.UserByID(ctx, sess.UserID)
	if err != nil {
		return nil, err
	}
	if !isPlatformAdmin(u, super) {
		return nil, ErrForbidden
	}
	if !s.Fresh(sess) {
		return nil, ErrFreshAuthRequired
	}
	return u, nil
}

// isPlatformAdmin reports whether u is a platform admin (super-admins
// are), or with super, a super-admin.
func isPlatformAdmin(u *User, super bool) bool {
	return slices.Contains(u.PlatformRoles, PlatformSuperAdmin) || (!super && slices.Contains(u.PlatformRoles, PlatformAdmin))
}

// outranks reports whether u is a super-admin and admin is not: a plain
// admin may not ban, unban or revoke the credentials of a super-admin.
func outranks(u, admin *User) bool {
	return isPlatformAdmin(u, true) && !isPlatformAdmin(admin, true)
}

// AdminUsers lists users whose email contains query, after the cursor id.
func (s *Service) AdminUsers(ctx context.Context, sess *Session, query, after string, limit int) ([]User, error) {
	if _, err := s.admin(ctx, sess, false); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	users, err := s.store.ListUsers(ctx, strings.ToLower(query), after, limit)
	for i := range users {
		users[i].PasswordHash = ""
	}
	return users, err
}

// Ban suspends a user until until (zero: until unbanned) and revokes their
// sessions and API keys at once. Admins cannot ban themselves or a
// super-admin.
func (s *Service) Ban(ctx context.Context, sess *Session, userID, reason string, until time.Time, m Meta) error {
	admin, err := s.admin(ctx, sess, false)
	if err != nil {
		return err
	}
	reason = strings.TrimSpace(reason)
	switch {
	case userID == admin.ID:
		return invalid("user_id", "cannot ban yourself", nil)
	case reason == "" || len(reason) > 500:
		return invalid("reason", "required, at most 500 bytes", nil)
	case !until.IsZero() && !until.After(s.now()):
		return invalid("until", "in the past", nil)
	}
	var sessions, keys []Revoked
	err = s.store.Tx(ctx, func(tx Tx) error {
		u, err := tx.UserForUpdate(ctx, userID)
		if err != nil {
			return err
		}
		if outranks(u, admin) {
			return ErrForbidden
		}
		now := s.now()
		u.Status, u.BanReason, u.BannedUntil, u.UpdatedAt = UserBanned, reason, until, now
		if err := tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		if sessions, keys, err = revokeCredentials(ctx, tx, userID, now); err != nil {
			return err
		}
		details := map[string]any{"sessions": len(sessions), "keys": len(keys)}
		if !until.IsZero() {
			details["until"] = until.UTC().Format(time.RFC3339)
		}
		return s.record(ctx, tx, AuditEvent{Action: "admin.ban", ActorID: admin.ID, TargetType: "user", TargetID: userID,
			Details: details}, m)
	})
	if err != nil {
		return err
	}
	s.announce(ctx, sidecarNews{dropSessions: sessions, dropKeys: keys,
		events: []Event{{Kind: EventUserBanned, UserID: userID, SessionIDs: idsOf(sessions), KeyIDs: idsOf(keys)}}})
	return nil
}

// Unban lifts a ban.
func (s *Service) Unban(ctx context.Context, sess *Session, userID string, m Meta) error {
	admin, err := s.admin(ctx, sess, false)
	if err != nil {
		return err
	}
	return s.store.Tx(ctx, func(tx Tx) error {
		u, err := tx.UserForUpdate(ctx, userID)
		if err != nil {
			return err
		}
		if outranks(u, admin) {
			return ErrForbidden
		}
		u.Status, u.BanReason, u.BannedUntil, u.UpdatedAt = UserActive, "", time.Time{}, s.now()
		if err := tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		return s.record(ctx, tx, AuditEvent{Action: "admin.unban", ActorID: admin.ID, TargetType: "user", TargetID: userID}, m)
	})
}

// SetPlatformRoles sets a user's platform roles (super-admins only).
func (s *Service) SetPlatformRoles(ctx context.Context, sess *Session, userID string, roles []string, m Meta) error {
	admin, err := s.admin(ctx, sess, true)
	if err != nil {
		return err
	}
	for _, r := range roles {
		if r != PlatformAdmin && r != PlatformSuperAdmin {
			return invalid("roles", "not a platform role: "+r, nil)
		}
	}
	roles = slices.Compact(slices.Sorted(slices.Values(roles)))
	if userID == admin.ID && !slices.Contains(roles, PlatformSuperAdmin) {
		return invalid("roles", "a super-admin cannot demote themselves", nil)
	}
	err = s.store.Tx(ctx, func(tx Tx) error {
		u, err := tx.UserForUpdate(ctx, userID)
		if err != nil {
			return err
		}
		from := u.PlatformRoles
		u.PlatformRoles, u.UpdatedAt = roles, s.now()
		if err := tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		return s.record(ctx, tx, AuditEvent{Action: "admin.platform_roles", ActorID: admin.ID, TargetType: "user", TargetID: userID,
			Details: map[string]any{"from": strings.Join(from, ","), "to": strings.Join(roles, ",")}}, m)
	})
	if err != nil {
		return err
	}
	// A demoted admin must not keep the role in a sidecar's cache.
	s.publish(ctx, Event{Kind: EventUserChanged, UserID: userID})
	return nil
}

// AdminRevokeAll revokes every session and API key of a user.
func (s *Service) AdminRevokeAll(ctx context.Context, sess *Session, userID string, m Meta) error {
	admin, err := s.admin(ctx, sess, false)
	if err != nil {
		return err
	}
	var sessions, keys []Revoked
	err = s.store.Tx(ctx, func(tx Tx) error {
		u, err := tx.UserByID(ctx, userID)
		if err != nil {
			return err
		}
		if outranks(u, admin) {
			return ErrForbidden
		}
		if sessions, keys, err = revokeCredentials(ctx, tx, userID, s.now()); err != nil {
			return err
		}
		return s.record(ctx, tx, AuditEvent{Action: "admin.revoke_all", ActorID: admin.ID, TargetType: "user", TargetID: userID,
			Details: map[string]any{"sessions": len(sessions), "keys": len(keys)}}, m)
	})
	if err != nil {
		return err
	}
	n := sidecarNews{dropSessions: sessions, dropKeys: keys}
	if len(sessions) > 0 {
		n.events = append(n.events, Event{Kind: EventSessionsRevoked, UserID: userID, SessionIDs: idsOf(sessions)})
	}
	if len(keys) > 0 {
		n.events = append(n.events, Event{Kind: EventAPIKeysRevoked, UserID: userID, KeyIDs: idsOf(keys)})
	}
	s.announce(ctx, n)
	return nil
}

// revokeCredentials revokes every session and API key of a user and
// returns them.
func revokeCredentials(ctx context.Context, tx Tx, userID string, at time.Time) (sessions, keys []Revoked, err error) {
	if sessions, err = tx.RevokeSessionsOfUser(ctx, userID, at); err != nil {
		return nil, nil, err
	}
	if keys, err = tx.RevokeAPIKeysOfUser(ctx, userID, at); err != nil {
		return nil, nil, err
	}
	return sessions, keys, nil
}

// BootstrapAdmin makes the user with the email a super-admin, on the
// operator's authority rather than a session's: it is how the first
// platform admin comes to be (`mcpauthz dev` does it for its own). The
// audit event has no actor.
func (s *Service) BootstrapAdmin(ctx context.Context, email string, m Meta) (*User, error) {
	email, err := password.NormalizeEmail(email)
	if err != nil {
		return nil, invalid("email", "not a valid email address", err)
	}
	var u *User
	err = s.store.Tx(ctx, func(tx Tx) error {
		found, err := tx.UserByEmail(ctx, email)
		if err != nil {
			return err
		}
		if u, err = tx.UserForUpdate(ctx, found.ID); err != nil {
			return err
		}
		from := u.PlatformRoles
		u.PlatformRoles, u.UpdatedAt = []string{PlatformAdmin, PlatformSuperAdmin}, s.now()
		if err := tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		return s.record(ctx, tx, AuditEvent{Action: "admin.bootstrap", TargetType: "user", TargetID: u.ID,
			Details: map[string]any{"from": strings.Join(from, ","), "to": strings.Join(u.PlatformRoles, ",")}}, m)
	})
	if err != nil {
		return nil, err
	}
	u.PasswordHash = ""
	return u, nil
}

// SetOrgTier changes an organization's plan (platform admins, fresh
// session). API keys keep the tier they were created with; a key's tier
// is never above its organization's when it is created, and readers take
// the lower of the two.
func (s *Service) SetOrgTier(ctx context.Context, sess *Session, orgID string, tier Tier, m Meta) error {
	admin, err := s.admin(ctx, sess, false)
	if err != nil {
		return err
	}
	if !tier.Valid() {
		return invalid("tier", "not a tier", nil)
	}
	err = s.store.Tx(ctx, func(tx Tx) error {
		if err := tx.LockOrg(ctx, orgID); err != nil {
			return err
		}
		o, err := tx.OrgByID(ctx, orgID)
		if err != nil {
			return err
		}
		from := o.Tier
		o.Tier, o.UpdatedAt = tier, s.now()
		if err := tx.UpdateOrg(ctx, o); err != nil {
			return err
		}
		return s.record(ctx, tx, AuditEvent{Action: "admin.org_tier", OrgID: orgID, ActorID: admin.ID, TargetType: "org", TargetID: orgID,
			Details: map[string]any{"from": string(from), "to": string(tier)}}, m)
	})
	if err != nil {
		return err
	}
	s.publish(ctx, Event{Kind: EventOrgChanged, OrgID: orgID})
	return nil
}
