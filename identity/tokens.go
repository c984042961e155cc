package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpauthz/mcpauthz/identity/token"
)

// TokenConfig configures the JWTs the service issues in exchange for a
// session or an API key.
type TokenConfig struct {
	Issuer string
	// Audience is the MCP resource the tokens are for; a token is issued
	// for one audience and must not be accepted by any other.
	Audience      string
	TTL           time.Duration // default 5 minutes
	Alg           token.Alg     // default ES256
	SigningPeriod time.Duration // how long one key signs; default 30 days
	// PublishAhead is how long a new key is published before it signs,
	// so every replica has loaded it, and every verifier can fetch it,
	// before a token it signed arrives (default 10 minutes). Rotate must
	// run more often than this.
	PublishAhead time.Duration
	// KEK encrypts signing keys at rest (32 bytes).
	KEK []byte
}

// DefaultPublishAhead is how long a new signing key is published before
// it signs, unless told.
const DefaultPublishAhead = 10 * time.Minute

func (c TokenConfig) withDefaults() TokenConfig {
	if c.TTL == 0 {
		c.TTL = 5 * time.Minute
	}
	if c.Alg == "" {
		c.Alg = token.DefaultAlg
	}
	if c.SigningPeriod == 0 {
		c.SigningPeriod = token.DefaultSigningPeriod
	}
	if c.PublishAhead == 0 {
		c.PublishAhead = DefaultPublishAhead
	}
	return c
}

func (c TokenConfig) validate() error {
	switch {
	case c.Issuer == "" || c.Audience == "":
		return errors.New("tokens: issuer and audience are required")
	case len(c.KEK) != token.KEKSize:
		return fmt.Errorf("tokens: the key-encryption key must be %d bytes", token.KEKSize)
	case c.TTL <= 0 || c.TTL > time.Hour:
		return errors.New("tokens: lifetime must be between 0 and 1 hour")
	case c.SigningPeriod <= 2*c.TTL+c.PublishAhead:
		return errors.New("tokens: the signing period must be longer than two token lifetimes and the publishing lead")
	case c.PublishAhead < 0:
		return errors.New("tokens: the publishing lead must not be negative")
	}
	return nil
}

// Tokens issues JWTs and publishes the keys that verify them. Keys are
// stored sealed with the KEK; rotation keeps the previous key published
// for one token lifetime, so tokens it signed verify until they expire.
type Tokens struct {
	svc *Service
	cfg TokenConfig

	rotating sync.Mutex // serializes Rotate
	keys     atomic.Pointer[token.KeySet]
}

// NewTokens returns the token issuer of svc.
func NewTokens(svc *Service, cfg TokenConfig) (*Tokens, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Tokens{svc: svc, cfg: cfg}, nil
}

// Rotate loads the stored keys, adds a key when the signing one nears the
// end of its period, drops keys no token can still need, and stores the
// result. Run it at start and then periodically.
func (t *Tokens) Rotate(ctx context.Context) error {
	t.rotating.Lock()
	defer t.rotating.Unlock()
	now := t.svc.now()
	var next token.KeySet
	err := t.svc.store.Tx(ctx, func(tx Tx) error {
		// The mutex serializes this process; the lock, replicas.
		if err := tx.LockSigningKeys(ctx); err != nil {
			return err
		}
		stored, err := tx.SigningKeys(ctx)
		if err != nil {
			return err
		}
		var keys []*token.SigningKey
		for _, sk := range stored {
			plain, err := token.Open(sk.Sealed, t.cfg.KEK)
			if err != nil {
				return fmt.Errorf("signing key %s: %w", sk.ID, err)
			}
			k, err := token.UnmarshalPrivate(plain)
			if err != nil {
				return fmt.Errorf("signing key %s: %w", sk.ID, err)
			}
			keys = append(keys, k)
		}
		ks, err := token.NewKeySet(keys...)
		if err != nil {
			return err
		}
		next, err = ks.Rotate(now, t.svc.random, t.cfg.Alg, t.cfg.SigningPeriod, t.cfg.TTL, t.cfg.PublishAhead)
		if err != nil {
			return err
		}
		for _, k := range next.Keys() {
			if _, had := ks.Key(k.ID); had {
				continue
			}
			plain, err := token.MarshalPrivate(k)
			if err != nil {
				return err
			}
			sealed, err := token.Seal(plain, t.cfg.KEK, t.svc.random)
			if err != nil {
				return err
			}
			if err := tx.SaveSigningKey(ctx, &StoredSigningKey{ID: k.ID, Alg: string(k.Alg), Sealed: sealed,
				CreatedAt: k.CreatedAt, NotAfter: k.NotAfter}); err != nil {
				return err
			}
			if err := t.svc.record(ctx, tx, AuditEvent{Action: "signing_key.create", Details: map[string]any{"kid": k.ID, "alg": string(k.Alg)}}, Meta{}); err != nil {
				return err
			}
		}
		for _, k := range ks.Keys() {
			if _, kept := next.Key(k.ID); !kept {
				if err := tx.DeleteSigningKey(ctx, k.ID); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Only keys that are stored sign: other replicas publish them.
	t.keys.Store(&next)
	return nil
}

// JWKS returns the published verification keys.
func (t *Tokens) JWKS() ([]byte, error) { return t.KeySet().JWKS() }

// KeySet returns the current keys, for verifying tokens in process.
func (t *Tokens) KeySet() token.KeySet {
	if ks := t.keys.Load(); ks != nil {
		return *ks
	}
	return token.KeySet{}
}

// Claims are the claims of an issued token.
type Claims struct {
	jwt.RegisteredClaims
	Tenant   string   `json:"tid,omitempty"`
	Roles    []string `json:"roles,omitempty"`
	Scope    string   `json:"scope,omitempty"`
	AuthTime int64    `json:"auth_time,omitempty"`
	// AMR lists how the subject authenticated (RFC 8176): "pwd" for a
	// password session; empty for an API key.
	AMR []string `json:"amr,omitempty"`
	// SessionID is the session a token was issued for (OIDC "sid"), so a
	// verifier can stop the token when the session ends.
	SessionID string `json:"sid,omitempty"`
	// Tier and TimeZone are the organization's plan (for a key, the lower
	// of its own and the organization's) and time zone, so a token's
	// limits and quotas are those of a session or key of the same
	// organization, on the same calendar.
	Tier     string `json:"tier,omitempty"`
	TimeZone string `json:"tz,omitempty"`
}

// Issued is a token and its expiry.
type Issued struct {
	Token     string
	ExpiresAt time.Time
}

// ForSession issues a token for a session's user in its active
// organization (or the given one, which the user must belong to).
func (t *Tokens) ForSession(ctx context.Context, sess *Session, orgID string) (*Issued, error) {
	if orgID == "" {
		orgID = sess.ActiveOrgID
	}
	c := Claims{Tenant: orgID, AMR: []string{"pwd"}, SessionID: sess.ID}
	if orgID != "" {
		r, err := role(ctx, t.svc.store, orgID, sess.UserID)
		if err != nil {
			return nil, err
		}
		org, err := t.svc.store.OrgByID(ctx, orgID)
		if err != nil {
			return nil, err
		}
		c.Roles, c.Tier, c.TimeZone = []string{string(r)}, string(org.Tier), org.TimeZone
	}
	return t.issue(c, sess.UserID, sess.AuthTime)
}

// ErrRestrictedKey refuses a token for a key restricted to addresses or
// tools: the token would not carry the restrictions, and a verifier that
// trusts the token alone would lift them.
var ErrRestrictedKey = errors.New("a key restricted to addresses or tools cannot be exchanged for a token: use the key itself")

// ForAPIKey issues a token for an API key: subject "key:<id>", its
// organization, its creator's role there, and its scopes. Keys with an IP allowlist or allowed
// tools get ErrRestrictedKey.
func (t *Tokens) ForAPIKey(ctx context.Context, k *APIKey) (*Issued, error) {
	if !k.Usable(t.svc.now()) {
		return nil, ErrUnauthenticated
	}
	if len(k.IPAllowlist) > 0 || len(k.AllowedTools) > 0 {
		return nil, ErrRestrictedKey
	}
	scope := strings.Join(slices.Sorted(slices.Values(k.Scopes)), " ")
	// The creator's role bounds what the key's scopes may grant; a creator
	// no longer a member leaves the token no role, and so nothing.
	var roles []string
	switch r, err := role(ctx, t.svc.store, k.OrgID, k.CreatedBy); {
	case err == nil:
		roles = []string{string(r)}
	case !errors.Is(err, ErrForbidden):
		return nil, err
	}
	org, err := t.svc.store.OrgByID(ctx, k.OrgID)
	if err != nil {
		return nil, err
	}
	c := Claims{Tenant: k.OrgID, Roles: roles, Scope: scope, Tier: string(LowerTier(k.Tier, org.Tier)), TimeZone: org.TimeZone}
	return t.issue(c, "key:"+k.ID, time.Time{})
}

// issue signs c, with the registered claims filled in for sub.
func (t *Tokens) issue(c Claims, sub string, authTime time.Time) (*Issued, error) {
	now := t.svc.now()
	signer, err := t.KeySet().Signer(now)
	if err != nil {
		return nil, fmt.Errorf("no signing key (run Rotate): %w", err)
	}
	jti, err := t.svc.newID()
	if err != nil {
		return nil, err
	}
	exp := now.Add(t.cfg.TTL)
	c.RegisteredClaims = jwt.RegisteredClaims{
		Issuer: t.cfg.Issuer, Subject: sub, Audience: jwt.ClaimStrings{t.cfg.Audience},
		ExpiresAt: jwt.NewNumericDate(exp), IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ID: jti,
	}
	if !authTime.IsZero() {
		c.AuthTime = authTime.Unix()
	}
	s, err := signer.Sign(c)
	if err != nil {
		return nil, err
	}
	return &Issued{Token: s, ExpiresAt: exp}, nil
}
