package identity

import (
	"context"
	"errors"
	"net/netip"
	"regexp"
	"slices"
	"time"

	"github.com/mcpauthz/mcpauthz/identity/token"
)

// NewAPIKey describes a key to create.
type NewAPIKey struct {
	Name         string
	Scopes       []string
	AllowedTools []string
	Tier         Tier      // empty: the organization's; never above it
	IPAllowlist  []string  // addresses or CIDR prefixes; empty allows any
	ExpiresAt    time.Time // zero: never
}

// DefaultKeyGrace is how long a rotated key stays valid unless told.
const DefaultKeyGrace = 24 * time.Hour

var (
	scopeRE = regexp.MustCompile(`^[a-z][a-z0-9_.-]*(:[a-z0-9_.*-]+)*$`)
	toolRE  = regexp.MustCompile(`^[A-Za-z0-9_./-]{1,128}$`)
)

// validate checks the request and returns the cleaned key attributes.
func (in NewAPIKey) validate(now time.Time) (NewAPIKey, error) {
	name, err := cleanName("name", in.Name, true)
	if err != nil {
		return in, err
	}
	in.Name = name
	if len(in.Scopes) > 64 || len(in.AllowedTools) > 256 || len(in.IPAllowlist) > 64 {
		return in, invalid("key", "too many scopes, tools or addresses", nil)
	}
	for _, sc := range in.Scopes {
		if !scopeRE.MatchString(sc) || len(sc) > 128 {
			return in, invalid("scopes", "not a scope: "+sc, nil)
		}
	}
	for _, t := range in.AllowedTools {
		if !toolRE.MatchString(t) {
			return in, invalid("allowed_tools", "not a tool name", nil)
		}
	}
	allow := make([]string, 0, len(in.IPAllowlist))
	for _, a := range in.IPAllowlist {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			addr, aerr := netip.ParseAddr(a)
			if aerr != nil {
				return in, invalid("ip_allowlist", "not an address or CIDR prefix: "+a, err)
			}
			p = netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen())
		}
		allow = append(allow, p.Masked().String())
	}
	in.IPAllowlist = allow
	if !in.ExpiresAt.IsZero() && !in.ExpiresAt.After(now) {
		return in, invalid("expires_at", "in the past", nil)
	}
	if in.Tier != "" && !in.Tier.Valid() {
		return in, invalid("tier", "not a tier", nil)
	}
	in.Scopes, in.AllowedTools = slices.Clone(in.Scopes), slices.Clone(in.AllowedTools)
	return in, nil
}

// CreateAPIKey creates a key for an organization (owners, admins and
// members). It returns the key and its secret, shown once and stored only
// as a digest.
func (s *Service) CreateAPIKey(ctx context.Context, actorID, orgID string, in NewAPIKey, m Meta) (*APIKey, string, error) {
	now := s.now()
	in, err := in.validate(now)
	if err != nil {
		return nil, "", err
	}
	var k *APIKey
	var secret string
	err = s.store.Tx(ctx, func(tx Tx) error {
		if _, err := atLeast(ctx, tx, orgID, actorID, RoleMember); err != nil {
			return err
		}
		o, err := tx.OrgByID(ctx, orgID)
		if err != nil {
			return err
		}
		if in.Tier == "" {
			in.Tier = o.Tier
		}
		if tierRank(in.Tier) > tierRank(o.Tier) {
			return invalid("tier", "above the organization's", nil)
		}
		k, secret, err = s.newKey(ctx, tx, orgID, actorID, in, now)
		if err != nil {
			return err
		}
		return s.record(ctx, tx, AuditEvent{Action: "api_key.create", OrgID: orgID, ActorID: actorID,
			Details: map[string]any{"key_id": k.ID, "tier": string(k.Tier)}}, m)
	})
	if err != nil {
		return nil, "", err
	}
	s.announce(ctx, sidecarNews{keys: []*APIKey{k}})
	return k, secret, nil
}

func (s *Service) newKey(ctx context.Context, tx Tx, orgID, actorID string, in NewAPIKey, now time.Time) (*APIKey, string, error) {
	secret, err := token.New(token.KindAPIKey, s.random)
	if err != nil {
		return nil, "", err
	}
	id, err := s.newID()
	if err != nil {
		return nil, "", err
	}
	d := token.DigestOf(secret)
	k := &APIKey{ID: id, OrgID: orgID, CreatedBy: actorID, Name: in.Name, TokenDigest: d[:], Hint: token.Hint(secret),
		Scopes: in.Scopes, AllowedTools: in.AllowedTools, Tier: in.Tier, IPAllowlist: in.IPAllowlist,
		CreatedAt: now, ExpiresAt: in.ExpiresAt}
	if err := tx.CreateAPIKey(ctx, k); err != nil {
		return nil, "", err
	}
	return k, secret, nil
}

// AuthenticateAPIKey returns the key a secret stands for, if it is usable
// from clientIP. Malformed, unknown, revoked, expired and rotated-out keys,
// and addresses outside the key's allowlist, are ErrUnauthenticated.
func (s *Service) AuthenticateAPIKey(ctx context.Context, secret, clientIP string) (*APIKey, error) {
	if kind, err := token.Parse(secret); err != nil || kind != token.KindAPIKey {
		return nil, ErrUnauthenticated
	}
	d := token.DigestOf(secret)
	k, err := s.store.APIKeyByDigest(ctx, d[:])
	if errors.Is(err, ErrNotFound) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	now := s.now()
	if !k.Usable(now) || !k.AllowsIP(clientIP) {
		return nil, ErrUnauthenticated
	}
	s.usage.Record(k.ID, now)
	return k, nil
}

// APIKeys lists an organization's keys (any member); listings show the
// hint, never the secret or its digest.
func (s *Service) APIKeys(ctx context.Context, actorID, orgID string) ([]APIKey, error) {
	if _, err := atLeast(ctx, s.store, orgID, actorID, RoleViewer); err != nil {
		return nil, err
	}
	keys, err := s.store.APIKeys(ctx, orgID)
	for i := range keys {
		keys[i].TokenDigest = nil
	}
	return keys, err
}

// managedKey returns a key the actor may manage: owners and admins manage
// every key of the organization, members their own.
func managedKey(ctx context.Context, tx Tx, orgID, actorID, keyID string) (*APIKey, error) {
	r, err := atLeast(ctx, tx, orgID, actorID, RoleMember)
	if err != nil {
		return nil, err
	}
	k, err := tx.APIKey(ctx, orgID, keyID)
	if err != nil {
		return nil, err
	}
	if rank(r) < rank(RoleAdmin) && k.CreatedBy != actorID {
		return nil, ErrForbidden
	}
	return k, nil
}

// RotateAPIKey issues a new key with the same attributes; the old one
// stays valid for grace (DefaultKeyGrace when zero), then stops.
func (s *Service) RotateAPIKey(ctx context.Context, actorID, orgID, keyID string, grace time.Duration, m Meta) (*APIKey, string, error) {
	if grace == 0 {
		grace = DefaultKeyGrace
	}
	if grace < 0 || grace > 30*24*time.Hour {
		return nil, "", invalid("grace", "must be between 0 and 30 days", nil)
	}
	now := s.now()
	var k, old *APIKey
	var secret string
	err := s.store.Tx(ctx, func(tx Tx) error {
		var err error
		if old, err = managedKey(ctx, tx, orgID, actorID, keyID); err != nil {
			return err
		}
		if !old.Usable(now) || old.ReplacedBy != "" {
			return invalid("key", "revoked, expired or already rotated", nil)
		}
		k, secret, err = s.newKey(ctx, tx, orgID, actorID, NewAPIKey{Name: old.Name, Scopes: old.Scopes,
			AllowedTools: old.AllowedTools, Tier: old.Tier, IPAllowlist: old.IPAllowlist, ExpiresAt: old.ExpiresAt}, now)
		if err != nil {
			return err
		}
		if err := tx.ReplaceAPIKey(ctx, orgID, keyID, k.ID, now.Add(grace)); err != nil {
			return err
		}
		old.ReplacedBy, old.GraceUntil = k.ID, now.Add(grace)
		return s.record(ctx, tx, AuditEvent{Action: "api_key.rotate", OrgID: orgID, ActorID: actorID,
			Details: map[string]any{"key_id": keyID, "new_key_id": k.ID}}, m)
	})
	if err != nil {
		return nil, "", err
	}
	// The old key's record now ends at its grace; the new one starts.
	s.announce(ctx, sidecarNews{keys: []*APIKey{old, k}})
	return k, secret, nil
}

// RevokeAPIKey revokes a key at once.
func (s *Service) RevokeAPIKey(ctx context.Context, actorID, orgID, keyID string, m Meta) error {
	var k *APIKey
	err := s.store.Tx(ctx, func(tx Tx) error {
		var err error
		if k, err = managedKey(ctx, tx, orgID, actorID, keyID); err != nil {
			return err
		}
		if err := tx.RevokeAPIKey(ctx, orgID, keyID, s.now()); err != nil {
			return err
		}
		return s.record(ctx, tx, AuditEvent{Action: "api_key.revoke", OrgID: orgID, ActorID: actorID,
			Details: map[string]any{"key_id": keyID}}, m)
	})
	if err != nil {
		return err
	}
	s.announce(ctx, sidecarNews{dropKeys: []Revoked{{ID: k.ID, Digest: k.TokenDigest}},
		events: []Event{{Kind: EventAPIKeysRevoked, OrgID: orgID, KeyIDs: []string{keyID}}}})
	return nil
}
