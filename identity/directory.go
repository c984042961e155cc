package identity

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"
)

// OrgRole is an organization and the role a user holds in it.
type OrgRole struct {
	Org
	Role Role
}

// OrgsOf lists the organizations the user belongs to, in the order they
// joined.
func (s *Service) OrgsOf(ctx context.Context, userID string) ([]OrgRole, error) {
	ms, err := s.store.MembershipsOfUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]OrgRole, 0, len(ms))
	for _, m := range ms {
		o, err := s.store.OrgByID(ctx, m.OrgID)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, OrgRole{Org: *o, Role: m.Role})
	}
	return out, nil
}

// Org returns an organization to one of its members. To anyone else it is
// ErrForbidden, whether or not it exists.
func (s *Service) Org(ctx context.Context, actorID, orgID string) (*OrgRole, error) {
	r, err := role(ctx, s.store, orgID, actorID)
	if err != nil {
		return nil, err
	}
	o, err := s.store.OrgByID(ctx, orgID)
	if err != nil {
		return nil, err
	}
	return &OrgRole{Org: *o, Role: r}, nil
}

// Invitations lists an organization's invitations, open and closed
// (owners and admins).
func (s *Service) Invitations(ctx context.Context, actorID, orgID string) ([]Invitation, error) {
	if _, err := atLeast(ctx, s.store, orgID, actorID, RoleAdmin); err != nil {
		return nil, err
	}
	return s.store.Invitations(ctx, orgID)
}

// SetActiveOrg makes orgID the session's active organization, the one its
// tokens are issued for; the user must be a member. An empty orgID clears
// it.
func (s *Service) SetActiveOrg(ctx context.Context, sess *Session, orgID string) error {
	if orgID != "" {
		if _, err := role(ctx, s.store, orgID, sess.UserID); err != nil {
			return err
		}
	}
	next := *sess
	next.ActiveOrgID = orgID
	if err := s.store.UpdateSession(ctx, &next); errors.Is(err, ErrNotFound) {
		return ErrUnauthenticated // revoked since it was read
	} else if err != nil {
		return err
	}
	s.announce(ctx, sidecarNews{sessions: []*Session{&next},
		events: []Event{{Kind: EventSessionChanged, UserID: next.UserID, SessionIDs: []string{next.ID}}}})
	*sess = next
	return nil
}

// ConsentTerms returns the consents a sign-up must grant, by kind with
// their current versions, and the optional kinds.
func (s *Service) ConsentTerms() (required map[string]string, optional []string) {
	return maps.Clone(s.cfg.RequiredConsents), slices.Clone(s.cfg.OptionalConsents)
}

// FreshWindow is how recent a password must be for the actions that need
// a fresh session.
func (s *Service) FreshWindow() time.Duration { return s.cfg.FreshAuth }
