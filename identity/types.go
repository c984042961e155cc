package identity

import (
	"net/netip"
	"slices"
	"time"
)

// Role is a member's role in an organization.
type Role string

// Organization roles, most powerful first.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
	RoleViewer Role = "viewer"
)

// Valid reports whether r is one of the organization roles.
func (r Role) Valid() bool { return rank(r) > 0 }

// rank orders roles, viewer lowest: an actor may act on roles at most its
// own. It is 0 for anything else.
func rank(r Role) int {
	return slices.Index([]Role{RoleViewer, RoleMember, RoleAdmin, RoleOwner}, r) + 1
}

// Tier is an organization's plan, which drives its default quotas.
type Tier string

// The tiers.
const (
	TierFree       Tier = "free"
	TierPro        Tier = "pro"
	TierEnterprise Tier = "enterprise"
)

// Valid reports whether t is a tier.
func (t Tier) Valid() bool { return tierRank(t) > 0 }

// LowerTier is the lower of a key's tier and its organization's: a key
// never outranks its organization, even after a downgrade. An empty key
// tier is the organization's; an unknown tier counts as free.
func LowerTier(key, org Tier) Tier {
	order := []Tier{TierFree, TierPro, TierEnterprise}
	r := func(t Tier) int { return max(tierRank(t)-1, 0) }
	if key == "" || r(org) < r(key) {
		return order[r(org)]
	}
	return order[r(key)]
}

// tierRank orders tiers, free lowest; it is 0 for anything else.
func tierRank(t Tier) int {
	return slices.Index([]Tier{TierFree, TierPro, TierEnterprise}, t) + 1
}

// UserStatus is whether a user may sign in.
type UserStatus string

// User statuses.
const (
	UserActive UserStatus = "active"
	UserBanned UserStatus = "banned"
)

// User is a person who signs in. Email is normalized and unique.
type User struct {
	ID            string
	Email         string
	PasswordHash  string
	DisplayName   string
	PlatformRoles []string // "admin", "super-admin"
	Status        UserStatus
	BanReason     string
	BannedUntil   time.Time // zero: until unbanned
	FailedLogins  int
	LastFailedAt  time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Banned reports whether the user is banned at t.
func (u *User) Banned(t time.Time) bool {
	return u.Status == UserBanned && (u.BannedUntil.IsZero() || t.Before(u.BannedUntil))
}

// Consent records what a user agreed to, in which version, and when.
type Consent struct {
	Kind    string // "privacy_policy", "terms", "marketing", "analytics"
	Version string
	Granted bool
	At      time.Time
}

// Org is an organization: the tenant everything else belongs to.
type Org struct {
	ID        string
	Name      string
	Tier      Tier
	TimeZone  string // IANA name; quotas reset on its calendar
	CreatedBy string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Membership is a user's role in an organization.
type Membership struct {
	OrgID     string
	UserID    string
	Role      Role
	CreatedAt time.Time
}

// Invitation asks someone, by email, to join an organization. Only the
// SHA-256 digest of its token is stored.
type Invitation struct {
	ID          string
	OrgID       string
	Email       string
	Role        Role
	TokenDigest []byte
	InvitedBy   string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	AcceptedAt  time.Time
	RevokedAt   time.Time
}

// Session is a signed-in browser or client. Only the SHA-256 digest of its
// token is stored.
type Session struct {
	ID          string
	UserID      string
	TokenDigest []byte
	ActiveOrgID string
	AuthTime    time.Time // last password authentication: drives freshness
	CreatedAt   time.Time
	LastSeenAt  time.Time
	IdleExpires time.Time
	ExpiresAt   time.Time // absolute
	RevokedAt   time.Time
	IP          string
	UserAgent   string
}

// Active reports whether the session can be used at t.
func (s *Session) Active(t time.Time) bool {
	return s.RevokedAt.IsZero() && t.Before(s.ExpiresAt) && t.Before(s.IdleExpires)
}

// APIKey is an organization's key for programmatic access. Only the
// SHA-256 digest of the key is stored; Hint is what listings show.
type APIKey struct {
	ID           string
	OrgID        string
	CreatedBy    string
	Name         string
	TokenDigest  []byte
	Hint         string
	Scopes       []string
	AllowedTools []string
	Tier         Tier
	IPAllowlist  []string // CIDR prefixes; empty allows any address
	CreatedAt    time.Time
	ExpiresAt    time.Time // zero: never
	RevokedAt    time.Time
	LastUsedAt   time.Time
	// A rotated key stays valid until GraceUntil, then ReplacedBy takes over.
	ReplacedBy string
	GraceUntil time.Time
}

// Usable reports whether the key authenticates at t.
func (k *APIKey) Usable(t time.Time) bool {
	switch {
	case !k.RevokedAt.IsZero() && !t.Before(k.RevokedAt):
		return false
	case !k.ExpiresAt.IsZero() && !t.Before(k.ExpiresAt):
		return false
	case k.ReplacedBy != "" && !k.GraceUntil.IsZero() && !t.Before(k.GraceUntil):
		return false
	}
	return true
}

// AllowsIP reports whether the key may be used from ip: any address when
// the allowlist is empty, else one inside a listed prefix.
func (k *APIKey) AllowsIP(ip string) bool {
	if len(k.IPAllowlist) == 0 {
		return true
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, s := range k.IPAllowlist {
		if p, err := netip.ParsePrefix(s); err == nil && p.Contains(addr) {
			return true
		}
	}
	return false
}

// StoredSigningKey is a JWT signing key as stored: its private part sealed
// with the service's key-encryption key.
type StoredSigningKey struct {
	ID        string // kid
	Alg       string
	Sealed    []byte
	CreatedAt time.Time
	NotAfter  time.Time
}

// AuditEvent is one entry of the append-only, hash-chained audit log.
//
// Personal data (ActorID, TargetID, IP, UserAgent) sits outside the chain:
// the chain covers ActorRef and TargetRef, keyed hashes of the actor and
// target, and PIIDigest, a digest of the personal fields. Erasing a user
// (GDPR Art. 17) clears the personal fields, sets PIIErasedAt and leaves
// the chain verifiable. Details must hold no personal data.
type AuditEvent struct {
	Seq         int64
	ID          string
	At          time.Time
	Action      string
	OrgID       string
	ActorID     string
	ActorRef    string
	TargetType  string
	TargetID    string
	TargetRef   string
	IP          string
	UserAgent   string
	Details     map[string]any
	PIIDigest   []byte
	PIIErasedAt time.Time
	PrevHash    []byte
	Hash        []byte
}
