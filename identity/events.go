package identity

import "context"

// EventKind names a revocation event.
type EventKind string

// Revocation events: each tells sidecars to drop what they cached about a
// credential or a person. They carry ids, never token values.
const (
	EventSessionsRevoked EventKind = "sessions.revoked"
	EventAPIKeysRevoked  EventKind = "api_keys.revoked"
	EventUserBanned      EventKind = "user.banned"
	EventUserDeleted     EventKind = "user.deleted"
	EventMemberRemoved   EventKind = "member.removed"
	EventMemberChanged   EventKind = "member.changed"
	EventOrgDeleted      EventKind = "org.deleted"
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
