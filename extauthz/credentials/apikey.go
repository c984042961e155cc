package credentials

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unique"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/redisfeed"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

// KeyStore is where API keys and what they belong to are read: the
// identity store, the source of truth.
type KeyStore interface {
	APIKeyByDigest(ctx context.Context, digest []byte) (*identity.APIKey, error)
	OrgByID(ctx context.Context, id string) (*identity.Org, error)
	Membership(ctx context.Context, orgID, userID string) (*identity.Membership, error)
}

// KeyFeed is the identity service's write-through of API keys, read
// before the store (redisfeed.Feed). ErrMiss sends the lookup on to the
// store; ErrRevoked refuses the key. A key read from the store is written
// back, so the records of keys in use are renewed (a put never replaces
// a revocation).
type KeyFeed interface {
	APIKey(ctx context.Context, digest []byte) (*identity.APIKey, error)
	PutAPIKey(ctx context.Context, k *identity.APIKey) error
}

// UseRecorder notes that a key or a session was used: for a key its
// last_used_at, for a session what keeps it from idling out
// (identity.Usage batches the writes).
type UseRecorder interface {
	Record(id string, at time.Time)
}

// APIKeyVerifier verifies API keys sent as `x-api-key` or as
// `Authorization: Bearer mcpk_…`: the checksum first, so garbage costs no
// lookup; then the key by the SHA-256 of the secret, from memory, the feed
// or the store; then its expiry, revocation, rotation grace and IP
// allowlist against the client address resolved from trusted hops.
type APIKeyVerifier struct {
	store KeyStore
	feed  KeyFeed
	usage UseRecorder
	fresh Freshness
	now   func() time.Time
	log   *slog.Logger
	keys  *memo[token.Digest, *keyGrant]

	lookups lookups
}

// keyGrant is a key with what it is granted in its organization: the
// tier it may use and its creator's role there. The memory holds one per
// key in use, up to the cache size: only what verification reads is kept,
// and the strings keys share (organization, creator, tier, zone, role,
// scopes) are interned.
type keyGrant struct {
	key     identity.APIKey
	subject string // "key:" and the key's id
	tier    identity.Tier
	zone    string        // the organization's time zone
	role    identity.Role // "" when the creator is no longer a member
}

func newKeyGrant(k *identity.APIKey, org *identity.Org) *keyGrant {
	c := *k
	c.TokenDigest, c.Hint, c.CreatedAt, c.LastUsedAt = nil, "", time.Time{}, time.Time{}
	c.OrgID, c.CreatedBy, c.Tier = intern(c.OrgID), intern(c.CreatedBy), intern(c.Tier)
	c.Scopes, c.AllowedTools, c.IPAllowlist = internAll(c.Scopes), internAll(c.AllowedTools), internAll(c.IPAllowlist)
	return &keyGrant{key: c, subject: "key:" + c.ID, tier: intern(identity.LowerTier(k.Tier, org.Tier)), zone: intern(org.TimeZone)}
}

// intern returns the one copy of s the process keeps.
func intern[S ~string](s S) S { return unique.Make(s).Value() }

func internAll(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = intern(s)
	}
	return out
}

var _ Verifier = (*APIKeyVerifier)(nil)

// KeyOption configures an APIKeyVerifier.
type KeyOption func(*APIKeyVerifier)

// WithKeyFeed reads keys from the feed before the store.
func WithKeyFeed(f KeyFeed) KeyOption { return func(v *APIKeyVerifier) { v.feed = f } }

// WithKeyUsage records each use of a key.
func WithKeyUsage(u UseRecorder) KeyOption { return func(v *APIKeyVerifier) { v.usage = u } }

// WithKeyClock sets the clock (default time.Now).
func WithKeyClock(now func() time.Time) KeyOption { return func(v *APIKeyVerifier) { v.now = now } }

// WithKeyLogger sets the logger (default: discard).
func WithKeyLogger(l *slog.Logger) KeyOption { return func(v *APIKeyVerifier) { v.log = l } }

// WithKeyCacheSize bounds the keys kept in memory (default 100,000).
func WithKeyCacheSize(n int) KeyOption {
	return func(v *APIKeyVerifier) { v.keys = newMemo[token.Digest, *keyGrant](n) }
}

// NewAPIKeyVerifier returns a verifier reading keys from store; fresh says
// how long a key read may be trusted from memory.
func NewAPIKeyVerifier(store KeyStore, fresh Freshness, opts ...KeyOption) *APIKeyVerifier {
	v := &APIKeyVerifier{
		store: store, fresh: fresh,
		feed: noFeed{}, usage: noUsage{},
		now:  time.Now,
		log:  slog.New(slog.DiscardHandler),
		keys: newMemo[token.Digest, *keyGrant](100_000),
	}
	for _, o := range opts {
		o(v)
	}
	return v
}

// Verify implements Verifier.
func (v *APIKeyVerifier) Verify(ctx context.Context, req *extauthz.Request) (extauthz.Identity, error) {
	secret, err := apiKeySecret(req)
	if err != nil {
		return extauthz.Identity{}, err
	}
	if kind, err := token.Parse(secret); err != nil || kind != token.KindAPIKey {
		return extauthz.Identity{}, fmt.Errorf("%w: not a well-formed API key", extauthz.ErrInvalidCredential)
	}
	d := token.DigestOf(secret)
	g, err := v.grant(ctx, d)
	if err != nil {
		return extauthz.Identity{}, err
	}
	now := v.now()
	if !g.key.Usable(now) {
		return extauthz.Identity{}, fmt.Errorf("%w: API key expired, revoked or rotated out", extauthz.ErrInvalidCredential)
	}
	if !g.key.AllowsIP(req.ClientIP) {
		return extauthz.Identity{}, fmt.Errorf("%w: API key used from outside its allowlist", extauthz.ErrInvalidCredential)
	}
	v.usage.Record(g.key.ID, now)
	id := extauthz.Identity{
		Authenticated: true,
		Method:        extauthz.MethodAPIKey,
		Subject:       g.subject,
		UserID:        g.key.CreatedBy,
		Tenant:        g.key.OrgID,
		Tier:          string(g.tier),
		TimeZone:      g.zone,
		OrgRole:       string(g.role),
		Scopes:        g.key.Scopes,
		APIKey: &extauthz.APIKeyInfo{ID: g.key.ID, Name: g.key.Name, Tier: string(g.tier),
			AllowedTools: g.key.AllowedTools},
	}
	if g.role != "" {
		id.Roles = []string{string(g.role)}
	}
	return id, nil
}

// apiKeySecret returns the key the request carries: x-api-key, or a
// Bearer token with the API key prefix, not both.
func apiKeySecret(req *extauthz.Request) (string, error) {
	header, inHeader := req.Header("x-api-key")
	tok, _, ok := Bearer(req)
	inBearer := ok && strings.HasPrefix(tok, token.KindAPIKey.Prefix())
	switch {
	case inHeader && inBearer:
		return "", fmt.Errorf("%w: two API keys", extauthz.ErrInvalidCredential)
	case inBearer:
		return tok, nil
	case inHeader:
		return strings.TrimSpace(header), nil
	}
	return "", ErrNotMine
}

// grant returns the key with the digest and what it is granted, from
// memory, the feed or the store.
func (v *APIKeyVerifier) grant(ctx context.Context, d token.Digest) (*keyGrant, error) {
	now := v.now()
	if g, ok := v.keys.get(d, now, v.fresh.MaxAge()); ok {
		v.lookups.memory.Add(1)
		return g, nil
	}
	gen := v.keys.generation()
	k, err := v.lookup(ctx, d)
	if err != nil {
		return nil, err
	}
	// The digest is the lookup key; comparing it again, in constant time,
	// keeps a store that matched loosely from granting another key.
	if len(k.TokenDigest) != len(d) || !token.Equal(token.Digest(k.TokenDigest), d) {
		return nil, fmt.Errorf("%w: unknown API key", extauthz.ErrInvalidCredential)
	}
	org, err := v.store.OrgByID(ctx, k.OrgID)
	if errors.Is(err, identity.ErrNotFound) {
		return nil, fmt.Errorf("%w: the API key's organization is gone", extauthz.ErrInvalidCredential)
	}
	if err != nil {
		return nil, fmt.Errorf("API key organization: %w", err)
	}
	g := newKeyGrant(k, org)
	m, err := v.store.Membership(ctx, k.OrgID, k.CreatedBy)
	switch {
	case err == nil:
		g.role = intern(m.Role)
	case !errors.Is(err, identity.ErrNotFound):
		return nil, fmt.Errorf("API key creator's membership: %w", err)
	}
	v.keys.put(d, g, gen, now, keyExpiry(k, now))
	return g, nil
}

// lookup reads the key from the feed, then the store.
func (v *APIKeyVerifier) lookup(ctx context.Context, d token.Digest) (*identity.APIKey, error) {
	k, err := v.feed.APIKey(ctx, d[:])
	switch {
	case err == nil:
		v.lookups.feed.Add(1)
		k.TokenDigest = d[:] // the record's key is the digest
		return k, nil
	case errors.Is(err, redisfeed.ErrRevoked):
		v.lookups.feed.Add(1)
		return nil, fmt.Errorf("%w: API key revoked", extauthz.ErrInvalidCredential)
	case !errors.Is(err, redisfeed.ErrMiss):
		v.lookups.feedErrors.Add(1)
		v.log.LogAttrs(ctx, slog.LevelWarn, "API key feed failed; reading the store", slog.Any("error", err))
	}
	k, err = v.store.APIKeyByDigest(ctx, d[:])
	if errors.Is(err, identity.ErrNotFound) {
		v.lookups.store.Add(1)
		return nil, fmt.Errorf("%w: unknown API key", extauthz.ErrInvalidCredential)
	}
	if err != nil {
		v.lookups.storeErrors.Add(1)
		return nil, fmt.Errorf("API key store: %w", err)
	}
	v.lookups.store.Add(1)
	if k.Usable(v.now()) {
		if err := v.feed.PutAPIKey(ctx, k); err != nil {
			v.log.LogAttrs(ctx, slog.LevelDebug, "writing an API key back to the feed failed", slog.Any("error", err))
		}
	}
	return k, nil
}

// keyExpiry is how long a key read may be kept at most: until it stops
// being usable, or for long for a key that does not expire (memory
// freshness bounds it further).
func keyExpiry(k *identity.APIKey, now time.Time) time.Time {
	until := now.Add(24 * time.Hour)
	for _, t := range []time.Time{k.ExpiresAt, k.GraceUntil} {
		if !t.IsZero() && t.Before(until) {
			until = t
		}
	}
	return until
}

// Evict drops what a revocation event makes stale: the keys it names, the
// keys of a banned or deleted user, of a deleted organization, and the
// creator roles of a changed membership.
func (v *APIKeyVerifier) Evict(ev identity.Event) {
	v.keys.evict(func(_ token.Digest, g *keyGrant) bool {
		switch ev.Kind {
		case identity.EventUserBanned, identity.EventUserDeleted:
			return g.key.CreatedBy == ev.UserID || slices.Contains(ev.KeyIDs, g.key.ID)
		case identity.EventOrgDeleted, identity.EventOrgChanged:
			return g.key.OrgID == ev.OrgID
		case identity.EventMemberRemoved, identity.EventMemberChanged:
			return g.key.OrgID == ev.OrgID && g.key.CreatedBy == ev.UserID
		}
		return slices.Contains(ev.KeyIDs, g.key.ID)
	})
}

// Purge forgets every key, when events may have been missed.
func (v *APIKeyVerifier) Purge() { v.keys.evict(nil) }

type noFeed struct{}

func (noFeed) APIKey(context.Context, []byte) (*identity.APIKey, error) {
	return nil, redisfeed.ErrMiss
}
func (noFeed) Session(context.Context, []byte) (*identity.Session, error) {
	return nil, redisfeed.ErrMiss
}
func (noFeed) PutAPIKey(context.Context, *identity.APIKey) error   { return nil }
func (noFeed) PutSession(context.Context, *identity.Session) error { return nil }

type noUsage struct{}

func (noUsage) Record(string, time.Time) {}
