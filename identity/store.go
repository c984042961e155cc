package identity

import (
	"context"
	"errors"
	"time"
)

// Errors a Store returns.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique value (an email, a membership) already exists.
	ErrConflict = errors.New("already exists")
)

// Revoked is a session or API key that a revocation or deletion ended:
// its id, for events and the audit log, and the SHA-256 digest of its
// token, by which caches hold it.
type Revoked struct {
	ID     string
	Digest []byte
}

// Store is the persistence the identity service needs: identity/postgres in
// production, identity/sqlite embedded. Tenant data is addressed by
// organization and id together, so one organization's rows cannot be read
// or changed through another's. Lookups by token digest are the exception:
// the token is the capability.
type Store interface {
	// Tx runs fn in one transaction: every change fn makes, its audit
	// event included, commits or rolls back together.
	Tx(ctx context.Context, fn func(Tx) error) error
	// Queries outside a transaction, each statement on its own.
	Tx
	Close() error
}

// Tx is what can be done in (or outside) a transaction.
type Tx interface {
	Users
	Orgs
	Invitations
	Sessions
	APIKeys
	SigningKeys
	Audit
}

// Users stores users and their consents.
type Users interface {
	CreateUser(ctx context.Context, u *User) error // ErrConflict for a taken email
	UserByID(ctx context.Context, id string) (*User, error)
	UserByEmail(ctx context.Context, email string) (*User, error)
	// UserForUpdate returns the user and, in a transaction, holds its row
	// until the transaction ends: UpdateUser writes every field, so a
	// change that reads the user to write it back must read it so.
	UserForUpdate(ctx context.Context, id string) (*User, error)
	UpdateUser(ctx context.Context, u *User) error
	// RecordLoginFailure counts a failed login atomically, so parallel
	// guesses cannot all read the same count, and returns the new count.
	RecordLoginFailure(ctx context.Context, userID string, at time.Time) (int, error)
	// RecordLoginSuccess clears the failure count and replaces the
	// password hash oldHash with newHash if it is still the stored one. It
	// writes nothing else: a ban or role change made meanwhile stays.
	RecordLoginSuccess(ctx context.Context, userID, oldHash, newHash string, at time.Time) error
	// ListUsers returns users whose email contains query (all if empty),
	// ordered by id, after the cursor id.
	ListUsers(ctx context.Context, query, after string, limit int) ([]User, error)
	// DeleteUser removes the user with its consents, memberships and
	// sessions.
	DeleteUser(ctx context.Context, id string) error
	SetConsents(ctx context.Context, userID string, cs []Consent) error
	Consents(ctx context.Context, userID string) ([]Consent, error)
}

// Orgs stores organizations and memberships.
type Orgs interface {
	CreateOrg(ctx context.Context, o *Org) error
	OrgByID(ctx context.Context, id string) (*Org, error)
	UpdateOrg(ctx context.Context, o *Org) error
	// DeleteOrg removes the organization with its memberships,
	// invitations and API keys. A caller that must know the keys (to drop
	// them from caches) locks the organization (LockOrg) and lists them
	// first, in the same transaction: no key can be added meanwhile.
	DeleteOrg(ctx context.Context, id string) error
	CountOrgsCreatedBy(ctx context.Context, userID string) (int, error)
	// LockOrg holds the organization's row until the transaction ends, so
	// checks such as "the last owner stays" cannot race.
	LockOrg(ctx context.Context, orgID string) error

	AddMember(ctx context.Context, m *Membership) error // ErrConflict if a member already
	Membership(ctx context.Context, orgID, userID string) (*Membership, error)
	SetMemberRole(ctx context.Context, orgID, userID string, r Role) error
	RemoveMember(ctx context.Context, orgID, userID string) error
	Members(ctx context.Context, orgID string) ([]Membership, error)
	CountOwners(ctx context.Context, orgID string) (int, error)
	MembershipsOfUser(ctx context.Context, userID string) ([]Membership, error)
}

// Invitations stores invitations to organizations.
type Invitations interface {
	CreateInvitation(ctx context.Context, inv *Invitation) error
	InvitationByDigest(ctx context.Context, digest []byte) (*Invitation, error)
	Invitations(ctx context.Context, orgID string) ([]Invitation, error)
	// CloseInvitation records that the invitation was accepted or revoked
	// (exactly one of the times is set).
	CloseInvitation(ctx context.Context, orgID, id string, acceptedAt, revokedAt time.Time) error
}

// Sessions stores sessions.
type Sessions interface {
	CreateSession(ctx context.Context, s *Session) error
	SessionByDigest(ctx context.Context, digest []byte) (*Session, error)
	Session(ctx context.Context, userID, id string) (*Session, error)
	// SessionsOfUser returns the sessions not revoked and not expired at
	// now, oldest first.
	SessionsOfUser(ctx context.Context, userID string, now time.Time) ([]Session, error)
	// UpdateSession writes a session's org, times and expiries, not its
	// revocation: a session revoked meanwhile stays revoked, and
	// ErrNotFound says so.
	UpdateSession(ctx context.Context, s *Session) error
	RevokeSession(ctx context.Context, userID, id string, at time.Time) error
	// RevokeSessionsOfUser revokes every session of the user not revoked
	// yet and returns them.
	RevokeSessionsOfUser(ctx context.Context, userID string, at time.Time) ([]Revoked, error)
	// TouchSessions records that sessions were used, in one batch: each
	// live session's last use moves forward to its time, and its idle
	// expiry to that time plus idle, never past its absolute expiry. A
	// session revoked or idle-expired at that time is left alone.
	TouchSessions(ctx context.Context, lastSeen map[string]time.Time, idle time.Duration) error
	// DeleteExpiredSessions deletes at most limit sessions that expired
	// or were revoked before before.
	DeleteExpiredSessions(ctx context.Context, before time.Time, limit int) (int, error)
}

// APIKeys stores API keys.
type APIKeys interface {
	CreateAPIKey(ctx context.Context, k *APIKey) error
	APIKeyByDigest(ctx context.Context, digest []byte) (*APIKey, error)
	APIKey(ctx context.Context, orgID, id string) (*APIKey, error)
	APIKeys(ctx context.Context, orgID string) ([]APIKey, error)
	RevokeAPIKey(ctx context.Context, orgID, id string, at time.Time) error
	// ReplaceAPIKey marks a key rotated: it stays valid until graceUntil.
	ReplaceAPIKey(ctx context.Context, orgID, id, replacedBy string, graceUntil time.Time) error
	// APIKeysOfUser returns the keys the user created, in every
	// organization, oldest first.
	APIKeysOfUser(ctx context.Context, userID string) ([]APIKey, error)
	// RevokeAPIKeysOfUser revokes the keys the user created that are not
	// revoked yet, in every organization, and returns them.
	RevokeAPIKeysOfUser(ctx context.Context, userID string, at time.Time) ([]Revoked, error)
	// DeleteAPIKeysOfUser deletes the keys the user created, in every
	// organization, and returns them.
	DeleteAPIKeysOfUser(ctx context.Context, userID string) ([]Revoked, error)
	// TouchAPIKeys records last use times in one batch.
	TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error
}

// SigningKeys stores the JWT signing keys.
type SigningKeys interface {
	SaveSigningKey(ctx context.Context, k *StoredSigningKey) error
	SigningKeys(ctx context.Context) ([]StoredSigningKey, error)
	DeleteSigningKey(ctx context.Context, id string) error
	// LockSigningKeys holds the signing keys until the transaction ends,
	// so replicas rotating at once take turns: the second sees the key
	// the first added.
	LockSigningKeys(ctx context.Context) error
}

// Audit stores the audit log.
type Audit interface {
	// AppendAudit appends e: it takes the chain's head under a lock, sets
	// e.Seq and e.PrevHash, sets e.Hash = link(e) and stores the event.
	AppendAudit(ctx context.Context, e *AuditEvent, link func(*AuditEvent) []byte) error
	AuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
	// EraseAuditPII clears the personal fields of the events whose actor
	// or target is the user.
	EraseAuditPII(ctx context.Context, userID string, at time.Time) (int, error)
}

// AuditFilter selects audit events, in sequence order.
type AuditFilter struct {
	OrgID    string // empty: every organization
	ActorID  string
	Action   string
	Since    time.Time
	Until    time.Time
	AfterSeq int64 // cursor
	Limit    int
}
