package identity

import (
	"context"
	"time"
)

// Export is everything the service holds about a person (GDPR Art. 15 and
// 20), in a form that can be given to them. Secrets and their digests are
// left out.
type Export struct {
	ExportedAt  time.Time         `json:"exported_at"`
	User        ExportUser        `json:"user"`
	Consents    []Consent         `json:"consents"`
	Memberships []Membership      `json:"memberships"`
	Sessions    []ExportSession   `json:"sessions"`
	APIKeys     []ExportAPIKey    `json:"api_keys"`
	Audit       []ExportAuditItem `json:"audit_events"`
}

// ExportUser is the account, without its password hash.
type ExportUser struct {
	ID            string     `json:"id"`
	Email         string     `json:"email"`
	DisplayName   string     `json:"display_name"`
	PlatformRoles []string   `json:"platform_roles"`
	Status        UserStatus `json:"status"`
	CreatedAt     time.Time  `json:"created_at"`
}

// ExportSession is a session, without its token digest.
type ExportSession struct {
	ID         string    `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
}

// ExportAPIKey is a key the person created, by its hint.
type ExportAPIKey struct {
	ID        string    `json:"id"`
	OrgID     string    `json:"org_id"`
	Name      string    `json:"name"`
	Hint      string    `json:"hint"`
	CreatedAt time.Time `json:"created_at"`
}

// ExportAuditItem is an audit event the person acted in.
type ExportAuditItem struct {
	At     time.Time      `json:"at"`
	Action string         `json:"action"`
	OrgID  string         `json:"org_id,omitempty"`
	IP     string         `json:"ip,omitempty"`
	Agent  string         `json:"user_agent,omitempty"`
	Detail map[string]any `json:"details,omitempty"`
}

// ExportUserData returns everything held about the session's user, and
// records that it was exported.
func (s *Service) ExportUserData(ctx context.Context, sess *Session, m Meta) (*Export, error) {
	u, err := s.store.UserByID(ctx, sess.UserID)
	if err != nil {
		return nil, err
	}
	x := &Export{ExportedAt: s.now(), User: ExportUser{ID: u.ID, Email: u.Email, DisplayName: u.DisplayName,
		PlatformRoles: u.PlatformRoles, Status: u.Status, CreatedAt: u.CreatedAt}}
	if x.Consents, err = s.store.Consents(ctx, u.ID); err != nil {
		return nil, err
	}
	if x.Memberships, err = s.store.MembershipsOfUser(ctx, u.ID); err != nil {
		return nil, err
	}
	sessions, err := s.store.SessionsOfUser(ctx, u.ID, s.now())
	if err != nil {
		return nil, err
	}
	for _, ss := range sessions {
		x.Sessions = append(x.Sessions, ExportSession{ID: ss.ID, CreatedAt: ss.CreatedAt, LastSeenAt: ss.LastSeenAt, IP: ss.IP, UserAgent: ss.UserAgent})
	}
	// Every key they created, in organizations they have left too.
	keys, err := s.store.APIKeysOfUser(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		x.APIKeys = append(x.APIKeys, ExportAPIKey{ID: k.ID, OrgID: k.OrgID, Name: k.Name, Hint: k.Hint, CreatedAt: k.CreatedAt})
	}
	err = eachAuditEvent(ctx, s.store, AuditFilter{ActorID: u.ID}, func(e *AuditEvent) error {
		x.Audit = append(x.Audit, ExportAuditItem{At: e.At, Action: e.Action, OrgID: e.OrgID, IP: e.IP, Agent: e.UserAgent, Detail: e.Details})
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = s.store.Tx(ctx, func(tx Tx) error {
		return s.record(ctx, tx, AuditEvent{Action: "gdpr.export", ActorID: u.ID}, m)
	})
	return x, err
}

// DeleteAccount erases the session's user (GDPR Art. 17): the API keys they
// created are deleted, their sessions, memberships and consents deleted
// with the account, and the personal data of their audit events erased;
// the events stay, pseudonymous, and the chain still verifies. A user who
// is the last owner of an organization must hand it over or delete it
// first. The session must be fresh.
func (s *Service) DeleteAccount(ctx context.Context, sess *Session, m Meta) error {
	if !s.Fresh(sess) {
		return ErrFreshAuthRequired
	}
	userID := sess.UserID
	var sessions, keys []Revoked
	err := s.store.Tx(ctx, func(tx Tx) error {
		mems, err := tx.MembershipsOfUser(ctx, userID)
		if err != nil {
			return err
		}
		for _, mem := range mems {
			if mem.Role != RoleOwner {
				continue
			}
			if err := tx.LockOrg(ctx, mem.OrgID); err != nil {
				return err
			}
			if err := keepAnOwner(ctx, tx, mem.OrgID); err != nil {
				return err
			}
		}
		now := s.now()
		if sessions, err = tx.RevokeSessionsOfUser(ctx, userID, now); err != nil {
			return err
		}
		if keys, err = tx.DeleteAPIKeysOfUser(ctx, userID); err != nil {
			return err
		}
		if err := tx.DeleteUser(ctx, userID); err != nil {
			return err
		}
		if err := s.record(ctx, tx, AuditEvent{Action: "gdpr.delete", ActorID: userID, TargetType: "user", TargetID: userID,
			Details: map[string]any{"keys_deleted": len(keys)}}, m); err != nil {
			return err
		}
		// Last, so the deletion's own event is erased too.
		_, err = tx.EraseAuditPII(ctx, userID, now)
		return err
	})
	if err != nil {
		return err
	}
	s.announce(ctx, sidecarNews{dropSessions: sessions, dropKeys: keys,
		events: []Event{{Kind: EventUserDeleted, UserID: userID, SessionIDs: idsOf(sessions), KeyIDs: idsOf(keys)}}})
	return nil
}
