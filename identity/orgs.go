package identity

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/mcpauthz/mcpauthz/identity/password"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

// InvitationTTL is how long an invitation can be accepted.
const InvitationTTL = 7 * 24 * time.Hour

// role returns the actor's role in the organization, or ErrForbidden when
// not a member; a missing organization looks the same, so its existence is
// not revealed.
func role(ctx context.Context, tx Tx, orgID, userID string) (Role, error) {
	m, err := tx.Membership(ctx, orgID, userID)
	if errors.Is(err, ErrNotFound) {
		return "", ErrForbidden
	}
	if err != nil {
		return "", err
	}
	return m.Role, nil
}

// mayGrant reports whether a member with role mine may give someone role
// r, by a role change or an invitation alike: owners any role, admins
// member and viewer only.
func mayGrant(mine, r Role) bool {
	return mine == RoleOwner || rank(r) < rank(RoleAdmin)
}

// atLeast checks the actor's role.
func atLeast(ctx context.Context, tx Tx, orgID, userID string, min Role) (Role, error) {
	r, err := role(ctx, tx, orgID, userID)
	if err != nil {
		return "", err
	}
	if rank(r) < rank(min) {
		return "", ErrForbidden
	}
	return r, nil
}

// CreateOrg creates an organization on the free tier with the user as its
// owner.
func (s *Service) CreateOrg(ctx context.Context, userID, name, timeZone string, m Meta) (*Org, error) {
	name, err := cleanName("name", name, true)
	if err != nil {
		return nil, err
	}
	if timeZone == "" {
		timeZone = "UTC"
	}
	if _, err := time.LoadLocation(timeZone); err != nil || strings.EqualFold(timeZone, "local") {
		return nil, invalid("time_zone", "not an IANA time zone", err)
	}
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	now := s.now()
	o := &Org{ID: id, Name: name, Tier: TierFree, TimeZone: timeZone, CreatedBy: userID, CreatedAt: now, UpdatedAt: now}
	err = s.store.Tx(ctx, func(tx Tx) error {
		n, err := tx.CountOrgsCreatedBy(ctx, userID)
		if err != nil {
			return err
		}
		if n >= s.cfg.MaxOrgsByUser {
			return ErrLimit
		}
		if err := tx.CreateOrg(ctx, o); err != nil {
			return err
		}
		if err := tx.AddMember(ctx, &Membership{OrgID: o.ID, UserID: userID, Role: RoleOwner, CreatedAt: now}); err != nil {
			return err
		}
		return s.record(ctx, tx, AuditEvent{Action: "org.create", OrgID: o.ID, ActorID: userID}, m)
	})
	if err != nil {
		return nil, err
	}
	return o, nil
}

// RenameOrg renames an organization (owners and admins).
func (s *Service) RenameOrg(ctx context.Context, userID, orgID, name string, m Meta) error {
	name, err := cleanName("name", name, true)
	if err != nil {
		return err
	}
	return s.store.Tx(ctx, func(tx Tx) error {
		if _, err := atLeast(ctx, tx, orgID, userID, RoleAdmin); err != nil {
			return err
		}
		o, err := tx.OrgByID(ctx, orgID)
		if err != nil {
			return err
		}
		o.Name, o.UpdatedAt = name, s.now()
		if err := tx.UpdateOrg(ctx, o); err != nil {
			return err
		}
		return s.record(ctx, tx, AuditEvent{Action: "org.rename", OrgID: orgID, ActorID: userID}, m)
	})
}

// DeleteOrg deletes an organization with its memberships, invitations and
// keys (owners, with a fresh session).
func (s *Service) DeleteOrg(ctx context.Context, sess *Session, orgID string, m Meta) error {
	if !s.Fresh(sess) {
		return ErrFreshAuthRequired
	}
	var keys []Revoked
	err := s.store.Tx(ctx, func(tx Tx) error {
		if _, err := atLeast(ctx, tx, orgID, sess.UserID, RoleOwner); err != nil {
			return err
		}
		// Locked, so no key is added between listing the keys (to drop
		// them from the cache) and deleting them.
		if err := lockOrg(ctx, tx, orgID); err != nil {
			return err
		}
		ks, err := tx.APIKeys(ctx, orgID)
		if err != nil {
			return err
		}
		for _, k := range ks {
			keys = append(keys, Revoked{ID: k.ID, Digest: k.TokenDigest})
		}
		if err := tx.DeleteOrg(ctx, orgID); err != nil {
			return err
		}
		return s.record(ctx, tx, AuditEvent{Action: "org.delete", OrgID: orgID, ActorID: sess.UserID}, m)
	})
	if err != nil {
		return err
	}
	s.announce(ctx, sidecarNews{dropKeys: keys,
		events: []Event{{Kind: EventOrgDeleted, OrgID: orgID, KeyIDs: idsOf(keys)}}})
	return nil
}

// SetRole changes a member's role. Owners may grant or take any role;
// admins only member and viewer roles, of members below admin. The last
// owner cannot be demoted.
func (s *Service) SetRole(ctx context.Context, actorID, orgID, userID string, r Role, m Meta) error {
	if !r.Valid() {
		return invalid("role", "not a role", nil)
	}
	err := s.store.Tx(ctx, func(tx Tx) error {
		if err := lockOrg(ctx, tx, orgID); err != nil {
			return err
		}
		mine, err := atLeast(ctx, tx, orgID, actorID, RoleAdmin)
		if err != nil {
			return err
		}
		target, err := tx.Membership(ctx, orgID, userID)
		if err != nil {
			return err
		}
		if !mayGrant(mine, r) || (mine != RoleOwner && rank(target.Role) >= rank(RoleAdmin)) {
			return ErrForbidden
		}
		if target.Role == RoleOwner && r != RoleOwner {
			if err := keepAnOwner(ctx, tx, orgID); err != nil {
				return err
			}
		}
		if err := tx.SetMemberRole(ctx, orgID, userID, r); err != nil {
			return err
		}
		return s.record(ctx, tx, AuditEvent{Action: "member.role", OrgID: orgID, ActorID: actorID,
			TargetType: "user", TargetID: userID, Details: map[string]any{"from": string(target.Role), "to": string(r)}}, m)
	})
	if err != nil {
		return err
	}
	s.publish(ctx, Event{Kind: EventMemberChanged, OrgID: orgID, UserID: userID})
	return nil
}

// lockOrg locks the organization for the transaction; a missing one is
// ErrForbidden, like one the actor is not in.
func lockOrg(ctx context.Context, tx Tx, orgID string) error {
	err := tx.LockOrg(ctx, orgID)
	if errors.Is(err, ErrNotFound) {
		return ErrForbidden
	}
	return err
}

// keepAnOwner fails when the organization has a single owner; the caller
// holds the organization's lock.
func keepAnOwner(ctx context.Context, tx Tx, orgID string) error {
	n, err := tx.CountOwners(ctx, orgID)
	if err != nil {
		return err
	}
	if n <= 1 {
		return ErrLastOwner
	}
	return nil
}

// RemoveMember removes a member. Anyone may leave; owners may remove
// anyone, admins members below admin. The last owner cannot leave.
func (s *Service) RemoveMember(ctx context.Context, actorID, orgID, userID string, m Meta) error {
	err := s.store.Tx(ctx, func(tx Tx) error {
		if err := lockOrg(ctx, tx, orgID); err != nil {
			return err
		}
		mine, err := role(ctx, tx, orgID, actorID)
		if err != nil {
			return err
		}
		target, err := tx.Membership(ctx, orgID, userID)
		if err != nil {
			return err
		}
		if actorID != userID && !(mine == RoleOwner || (mine == RoleAdmin && rank(target.Role) < rank(RoleAdmin))) {
			return ErrForbidden
		}
		if target.Role == RoleOwner {
			if err := keepAnOwner(ctx, tx, orgID); err != nil {
				return err
			}
		}
		if err := tx.RemoveMember(ctx, orgID, userID); err != nil {
			return err
		}
		return s.record(ctx, tx, AuditEvent{Action: "member.remove", OrgID: orgID, ActorID: actorID,
			TargetType: "user", TargetID: userID}, m)
	})
	if err != nil {
		return err
	}
	s.publish(ctx, Event{Kind: EventMemberRemoved, OrgID: orgID, UserID: userID})
	return nil
}

// Members lists an organization's members (any member may).
func (s *Service) Members(ctx context.Context, actorID, orgID string) ([]Membership, error) {
	if _, err := atLeast(ctx, s.store, orgID, actorID, RoleViewer); err != nil {
		return nil, err
	}
	return s.store.Members(ctx, orgID)
}

// Invite creates an invitation to join an organization with a role at
// most the inviter's (owners and admins). It returns the invitation and
// its token, shown once.
func (s *Service) Invite(ctx context.Context, actorID, orgID, email string, r Role, m Meta) (*Invitation, string, error) {
	email, err := password.NormalizeEmail(email)
	if err != nil {
		return nil, "", invalid("email", "not a valid email address", err)
	}
	if !r.Valid() {
		return nil, "", invalid("role", "not a role", nil)
	}
	tok, err := token.New(token.KindInvitation, s.random)
	if err != nil {
		return nil, "", err
	}
	id, err := s.newID()
	if err != nil {
		return nil, "", err
	}
	now := s.now()
	d := token.DigestOf(tok)
	inv := &Invitation{ID: id, OrgID: orgID, Email: email, Role: r, TokenDigest: d[:], InvitedBy: actorID,
		CreatedAt: now, ExpiresAt: now.Add(InvitationTTL)}
	err = s.store.Tx(ctx, func(tx Tx) error {
		mine, err := atLeast(ctx, tx, orgID, actorID, RoleAdmin)
		if err != nil {
			return err
		}
		if !mayGrant(mine, r) {
			return ErrForbidden
		}
		if err := tx.CreateInvitation(ctx, inv); err != nil {
			return err
		}
		return s.record(ctx, tx, AuditEvent{Action: "invitation.create", OrgID: orgID, ActorID: actorID,
			Details: map[string]any{"invitation_id": id, "role": string(r)}}, m)
	})
	if err != nil {
		return nil, "", err
	}
	return inv, tok, nil
}

// AcceptInvitation adds the user to the invitation's organization. The
// invitation must be open, unexpired and addressed to the user's email.
func (s *Service) AcceptInvitation(ctx context.Context, userID, tok string, m Meta) (*Membership, error) {
	if kind, err := token.Parse(tok); err != nil || kind != token.KindInvitation {
		return nil, invalid("token", "not an invitation", err)
	}
	d := token.DigestOf(tok)
	now := s.now()
	var mem *Membership
	err := s.store.Tx(ctx, func(tx Tx) error {
		inv, err := tx.InvitationByDigest(ctx, d[:])
		if errors.Is(err, ErrNotFound) {
			return invalid("token", "unknown invitation", nil)
		}
		if err != nil {
			return err
		}
		if !inv.AcceptedAt.IsZero() || !inv.RevokedAt.IsZero() || !now.Before(inv.ExpiresAt) {
			return invalid("token", "the invitation is no longer valid", nil)
		}
		u, err := tx.UserByID(ctx, userID)
		if err != nil {
			return err
		}
		if u.Email != inv.Email {
			return ErrForbidden
		}
		mem = &Membership{OrgID: inv.OrgID, UserID: userID, Role: inv.Role, CreatedAt: now}
		if err := tx.AddMember(ctx, mem); err != nil {
			if errors.Is(err, ErrConflict) {
				return invalid("token", "already a member", err)
			}
			return err
		}
		if err := tx.CloseInvitation(ctx, inv.OrgID, inv.ID, now, time.Time{}); err != nil {
			return err
		}
		return s.record(ctx, tx, AuditEvent{Action: "invitation.accept", OrgID: inv.OrgID, ActorID: userID,
			Details: map[string]any{"invitation_id": inv.ID, "role": string(inv.Role)}}, m)
	})
	if err != nil {
		return nil, err
	}
	return mem, nil
}

// RevokeInvitation closes an open invitation (owners and admins).
func (s *Service) RevokeInvitation(ctx context.Context, actorID, orgID, invitationID string, m Meta) error {
	return s.store.Tx(ctx, func(tx Tx) error {
		if _, err := atLeast(ctx, tx, orgID, actorID, RoleAdmin); err != nil {
			return err
		}
		if err := tx.CloseInvitation(ctx, orgID, invitationID, time.Time{}, s.now()); err != nil {
			return err
		}
		return s.record(ctx, tx, AuditEvent{Action: "invitation.revoke", OrgID: orgID, ActorID: actorID,
			Details: map[string]any{"invitation_id": invitationID}}, m)
	})
}
