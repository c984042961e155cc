package redisfeed

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

// Version is the record format's version; readers refuse any other.
const Version = 1

// DefaultPrefix starts every key and the channel unless WithPrefix says
// otherwise.
const DefaultPrefix = "mcpauthz"

// Errors of the records and the lookups.
var (
	// ErrMiss: no record for the digest; ask the SQL store.
	ErrMiss = errors.New("redisfeed: no cached record")
	// ErrRevoked: the digest's token was revoked or deleted.
	ErrRevoked = errors.New("redisfeed: credential revoked")
	// ErrBadRecord: a record that does not decode under this version.
	ErrBadRecord = errors.New("redisfeed: malformed record")
	// ErrBadDigest: a digest that is not 32 bytes.
	ErrBadDigest = errors.New("redisfeed: a token digest must be 32 bytes")
)

// tombstone marks a revoked or deleted token.
const tombstone = `{"v":1,"revoked":true}`

// SessionKey is the key of the session whose token has this digest.
func SessionKey(prefix string, digest []byte) string {
	return prefix + ":session:" + hex.EncodeToString(digest)
}

// APIKeyKey is the key of the API key whose secret has this digest.
func APIKeyKey(prefix string, digest []byte) string {
	return prefix + ":apikey:" + hex.EncodeToString(digest)
}

// Channel is the pub/sub channel of revocation events.
func Channel(prefix string) string { return prefix + ":identity:events" }

func checkDigest(d []byte) error {
	if len(d) != sha256.Size {
		return ErrBadDigest
	}
	return nil
}

// sessionRecord is a session as stored: what a sidecar needs to decide.
type sessionRecord struct {
	V           int       `json:"v"`
	Revoked     bool      `json:"revoked,omitempty"`
	ID          string    `json:"id,omitempty"`
	UserID      string    `json:"user_id,omitempty"`
	ActiveOrgID string    `json:"active_org_id,omitempty"`
	AuthTime    time.Time `json:"auth_time,omitzero"`
	CreatedAt   time.Time `json:"created_at,omitzero"`
	IdleExpires time.Time `json:"idle_expires_at,omitzero"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
}

// apiKeyRecord is an API key as stored: what a sidecar needs to decide.
type apiKeyRecord struct {
	V            int           `json:"v"`
	Revoked      bool          `json:"revoked,omitempty"`
	ID           string        `json:"id,omitempty"`
	OrgID        string        `json:"org_id,omitempty"`
	CreatedBy    string        `json:"created_by,omitempty"`
	Name         string        `json:"name,omitempty"`
	Scopes       []string      `json:"scopes"`
	AllowedTools []string      `json:"allowed_tools"`
	Tier         identity.Tier `json:"tier,omitempty"`
	IPAllowlist  []string      `json:"ip_allowlist"`
	ExpiresAt    time.Time     `json:"expires_at,omitzero"`
	ReplacedBy   string        `json:"replaced_by,omitempty"`
	GraceUntil   time.Time     `json:"grace_until,omitzero"`
}

// EncodeSession returns the record of a session.
func EncodeSession(s *identity.Session) ([]byte, error) {
	return json.Marshal(sessionRecord{V: Version, ID: s.ID, UserID: s.UserID, ActiveOrgID: s.ActiveOrgID,
		AuthTime: utc(s.AuthTime), CreatedAt: utc(s.CreatedAt), IdleExpires: utc(s.IdleExpires), ExpiresAt: utc(s.ExpiresAt)})
}

// EncodeAPIKey returns the record of an API key.
func EncodeAPIKey(k *identity.APIKey) ([]byte, error) {
	return json.Marshal(apiKeyRecord{V: Version, ID: k.ID, OrgID: k.OrgID, CreatedBy: k.CreatedBy, Name: k.Name,
		Scopes: list(k.Scopes), AllowedTools: list(k.AllowedTools), Tier: k.Tier, IPAllowlist: list(k.IPAllowlist),
		ExpiresAt: utc(k.ExpiresAt), ReplacedBy: k.ReplacedBy, GraceUntil: utc(k.GraceUntil)})
}

// DecodeSession decodes a session record: ErrRevoked for a tombstone,
// ErrBadRecord for anything else that is not a whole session of this
// version. The session has no token digest; the key it was read from
// holds it.
func DecodeSession(b []byte) (*identity.Session, error) {
	var r sessionRecord
	if err := decode(b, &r, &r.V, &r.Revoked); err != nil {
		return nil, err
	}
	if r.ID == "" || r.UserID == "" || r.AuthTime.IsZero() || r.IdleExpires.IsZero() || r.ExpiresAt.IsZero() {
		return nil, fmt.Errorf("%w: session without id, user or times", ErrBadRecord)
	}
	return &identity.Session{ID: r.ID, UserID: r.UserID, ActiveOrgID: r.ActiveOrgID, AuthTime: r.AuthTime,
		CreatedAt: r.CreatedAt, IdleExpires: r.IdleExpires, ExpiresAt: r.ExpiresAt}, nil
}

// DecodeAPIKey decodes an API key record: ErrRevoked for a tombstone,
// ErrBadRecord for anything else that is not a whole key of this version.
// The key has no token digest; the key it was read from holds it.
func DecodeAPIKey(b []byte) (*identity.APIKey, error) {
	var r apiKeyRecord
	if err := decode(b, &r, &r.V, &r.Revoked); err != nil {
		return nil, err
	}
	if r.ID == "" || r.OrgID == "" || !r.Tier.Valid() || (r.ReplacedBy != "") != !r.GraceUntil.IsZero() {
		return nil, fmt.Errorf("%w: key without id, organization or tier, or half rotated", ErrBadRecord)
	}
	return &identity.APIKey{ID: r.ID, OrgID: r.OrgID, CreatedBy: r.CreatedBy, Name: r.Name, Scopes: r.Scopes,
		AllowedTools: r.AllowedTools, Tier: r.Tier, IPAllowlist: r.IPAllowlist, ExpiresAt: r.ExpiresAt,
		ReplacedBy: r.ReplacedBy, GraceUntil: r.GraceUntil}, nil
}

// decode decodes b strictly into dst, whose version and revoked fields
// are v and revoked.
func decode(b []byte, dst any, v *int, revoked *bool) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(dst); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRecord, err)
	}
	if d.More() {
		return fmt.Errorf("%w: data after the record", ErrBadRecord)
	}
	switch {
	case *v != Version:
		return fmt.Errorf("%w: version %d, want %d", ErrBadRecord, *v, Version)
	case *revoked:
		return ErrRevoked
	}
	return nil
}

// DecodeEvent decodes a revocation event as published. Fields it does not
// know are ignored: whatever else an event says, its kind and ids are
// what to evict.
func DecodeEvent(b []byte) (identity.Event, error) {
	var ev identity.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return identity.Event{}, fmt.Errorf("%w: event: %v", ErrBadRecord, err)
	}
	if ev.Kind == "" {
		return identity.Event{}, fmt.Errorf("%w: event without a kind", ErrBadRecord)
	}
	return ev, nil
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// list is ss, or an empty list for nil: the record says [] rather than
// null.
func list(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}
