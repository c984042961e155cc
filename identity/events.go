package identity

import (
	"context"
	"log/slog"
	"time"
)

// EventKind names a revocation event.
type EventKind string

// Revocation events: each tells sidecars to drop what they cached about a
// credential or a person. They carry ids, never token values.
const (
	EventSessionsRevoked EventKind = "sessions.revoked"
	EventAPIKeysRevoked  EventKind = "api_keys.revoked"
	EventUserBanned      EventKind = "user.banned"
	EventUserDeleted     EventKind = "user.deleted"
	// EventUserChanged: the user's platform roles changed; sidecars read
	// the user again.
	EventUserChanged   EventKind = "user.changed"
	EventMemberRemoved EventKind = "member.removed"
	EventMemberChanged EventKind = "member.changed"
	EventOrgDeleted    EventKind = "org.deleted"
	// EventOrgChanged: the organization's tier changed; sidecars read it
	// again.
	EventOrgChanged EventKind = "org.changed"
	// EventSessionChanged: the sessions' active organization or
	// authentication time changed; sidecars read them again.
	EventSessionChanged EventKind = "session.changed"
)

// Event is one revocation, as published to sidecars.
type Event struct {
	Kind       EventKind `json:"kind"`
	UserID     string    `json:"user_id,omitempty"`
	OrgID      string    `json:"org_id,omitempty"`
	SessionIDs []string  `json:"session_ids,omitempty"`
	KeyIDs     []string  `json:"key_ids,omitempty"`
}

// EventPublisher sends revocation events to the sidecars.
type EventPublisher interface {
	Publish(ctx context.Context, ev Event) error
}

// NopEvents publishes nothing.
type NopEvents struct{}

// Publish does nothing.
func (NopEvents) Publish(context.Context, Event) error { return nil }

// Cache holds copies of sessions and API keys where sidecars read them,
// keyed by the SHA-256 digest of their token (identity/redisfeed). The
// service writes through it after each change commits: it puts what was
// created or changed and drops what was revoked or deleted, before it
// publishes the matching events, so a sidecar that evicts on an event
// cannot read the old record back.
type Cache interface {
	PutSession(ctx context.Context, s *Session) error
	PutAPIKey(ctx context.Context, k *APIKey) error
	// DropSessions and DropAPIKeys remove the records of these token
	// digests for good: a revoked token never becomes valid again.
	DropSessions(ctx context.Context, digests [][]byte) error
	DropAPIKeys(ctx context.Context, digests [][]byte) error
}

// NopCache caches nothing.
type NopCache struct{}

// PutSession does nothing.
func (NopCache) PutSession(context.Context, *Session) error { return nil }

// PutAPIKey does nothing.
func (NopCache) PutAPIKey(context.Context, *APIKey) error { return nil }

// DropSessions does nothing.
func (NopCache) DropSessions(context.Context, [][]byte) error { return nil }

// DropAPIKeys does nothing.
func (NopCache) DropAPIKeys(context.Context, [][]byte) error { return nil }

// sidecarNews is what the sidecars must learn of one committed change.
type sidecarNews struct {
	dropSessions, dropKeys []Revoked
	sessions               []*Session
	keys                   []*APIKey
	events                 []Event
}

// announceTimeout bounds telling the sidecars about one change.
const announceTimeout = 5 * time.Second

// announce tells the sidecars about a change after its transaction
// committed: it drops the cached records of what ended, puts those of what
// was created or changed, then publishes the events. Drops come before
// events, so a sidecar that evicts on an event and reads the cache again
// does not find the old record.
//
// Failures are logged, not returned: the change is done. A record not
// dropped stays usable until its TTL (so at error level); an event not
// published leaves sidecars their own cache expiry.
//
// A caller that goes away once its change is done (a client closing the
// connection after logging out) must not stop this: it runs on a context
// of its own.
func (s *Service) announce(ctx context.Context, n sidecarNews) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), announceTimeout)
	defer cancel()
	if len(n.dropSessions) > 0 {
		s.cacheDone(ctx, "drop sessions", n.dropSessions, s.cache.DropSessions(ctx, digests(n.dropSessions)))
	}
	if len(n.dropKeys) > 0 {
		s.cacheDone(ctx, "drop api keys", n.dropKeys, s.cache.DropAPIKeys(ctx, digests(n.dropKeys)))
	}
	for _, sess := range n.sessions {
		s.cacheDone(ctx, "put session", []Revoked{{ID: sess.ID}}, s.cache.PutSession(ctx, sess))
	}
	for _, k := range n.keys {
		s.cacheDone(ctx, "put api key", []Revoked{{ID: k.ID}}, s.cache.PutAPIKey(ctx, k))
	}
	for _, ev := range n.events {
		if err := s.events.Publish(ctx, ev); err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "publishing a revocation event failed; sidecars will notice at their cache expiry",
				slog.String("kind", string(ev.Kind)), slog.Any("error", err))
		}
	}
}

// cacheDone logs a failed cache write by the ids it concerned, never by
// token or digest.
func (s *Service) cacheDone(ctx context.Context, op string, of []Revoked, err error) {
	if err == nil {
		return
	}
	s.log.LogAttrs(ctx, slog.LevelError, "writing through the credential cache failed; sidecars may use a stale record until it expires",
		slog.String("op", op), slog.Any("ids", idsOf(of)), slog.Any("error", err))
}

// digests returns the token digests of rs.
func digests(rs []Revoked) [][]byte {
	out := make([][]byte, len(rs))
	for i, r := range rs {
		out[i] = r.Digest
	}
	return out
}

// idsOf returns the ids of rs.
func idsOf(rs []Revoked) []string {
	if len(rs) == 0 {
		return nil
	}
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}
