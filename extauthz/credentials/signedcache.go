package credentials

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

// Signed session cache defaults.
const (
	DefaultSessionCacheCookie = "__Host-mcpauthz_sc"
	DefaultSessionCacheMaxAge = time.Minute
	MinSessionCacheKeyBytes   = 32
)

// SignedSessionCache is a cookie the sidecar hands the client beside its session
// cookie: the verified session, HMAC-signed with a key the sidecars share,
// so any replica can take it without a lookup for its short max age. It is
// bound to the session token (the MAC covers the token's digest), refused
// once a revocation event names its session, user, membership or
// organization, and refused altogether for cookies issued before events
// may have been missed.
type SignedSessionCache struct {
	key    []byte
	cookie string
	maxAge time.Duration
	// revoked remembers, for one max age, what events revoked: a cookie
	// issued before is refused.
	revoked *memo[string, time.Time]
	purged  atomic.Int64 // unix nanoseconds of the last purge
}

// signedPayload is what the cookie carries.
type signedPayload struct {
	Session  string   `json:"s"`
	User     string   `json:"u"`
	Tenant   string   `json:"t,omitempty"`
	Tier     string   `json:"tr,omitempty"`
	TimeZone string   `json:"tz,omitempty"`
	OrgRole  string   `json:"r,omitempty"`
	Platform []string `json:"p,omitempty"`
	AuthTime int64    `json:"a"`
	Expires  int64    `json:"x"` // the session's absolute expiry
	Issued   int64    `json:"i"` // unix nanoseconds
}

// NewSignedSessionCache returns the cache cookie named cookie, valid for
// maxAge (at most 5 minutes, and never longer than reads are trusted),
// signed with key (at least MinSessionCacheKeyBytes, the same on every
// sidecar).
func NewSignedSessionCache(key []byte, cookie string, maxAge time.Duration) (*SignedSessionCache, error) {
	switch {
	case len(key) < MinSessionCacheKeyBytes:
		return nil, fmt.Errorf("the session cache key must be at least %d bytes", MinSessionCacheKeyBytes)
	case (&http.Cookie{Name: cookie, Value: "v"}).Valid() != nil:
		return nil, fmt.Errorf("%q is not a cookie name", cookie)
	case maxAge < time.Second || maxAge > 5*time.Minute:
		return nil, fmt.Errorf("the session cache max age must be from 1s to 5m")
	}
	return &SignedSessionCache{key: key, cookie: cookie, maxAge: maxAge, revoked: newMemo[string, time.Time](100_000)}, nil
}

// WithSignedSessionCache hands clients a signed cache of their verified
// session and takes it back for its max age.
func WithSignedSessionCache(c *SignedSessionCache) SessionOption {
	return func(v *SessionVerifier) { v.signed = c }
}

func (c *SignedSessionCache) mac(d token.Digest, payload string) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("mcpauthz-session-cache-v1|"))
	m.Write(d[:])
	m.Write([]byte("|"))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// identity returns the identity the cookie value vouches for, if it is
// genuine, for this session token, younger than trust, issued after the
// last purge and not revoked since.
func (c *SignedSessionCache) identity(value string, d token.Digest, now time.Time, trust time.Duration) (extauthz.Identity, bool) {
	payload, sig, ok := strings.Cut(value, ".")
	if !ok {
		return extauthz.Identity{}, false
	}
	// The MAC is compared as issued, in its one canonical spelling:
	// decoding it would also take line breaks and other trailing bits,
	// giving one cookie several values.
	want := base64.RawURLEncoding.EncodeToString(c.mac(d, payload))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return extauthz.Identity{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return extauthz.Identity{}, false
	}
	var p signedPayload
	if json.Unmarshal(raw, &p) != nil {
		return extauthz.Identity{}, false
	}
	issued := time.Unix(0, p.Issued)
	age := now.Sub(issued)
	switch {
	case age < 0 || age >= min(c.maxAge, trust):
		return extauthz.Identity{}, false
	case p.Issued <= c.purged.Load():
		return extauthz.Identity{}, false
	case !now.Before(time.Unix(p.Expires, 0)):
		return extauthz.Identity{}, false
	}
	for _, k := range []string{"s:" + p.Session, "u:" + p.User, "m:" + p.Tenant + "/" + p.User, "o:" + p.Tenant} {
		if at, ok := c.revoked.get(k, now, c.maxAge); ok && !issued.After(at) {
			return extauthz.Identity{}, false
		}
	}
	id := extauthz.Identity{
		Authenticated: true, Method: extauthz.MethodSession, Subject: p.User, UserID: p.User,
		Tenant: p.Tenant, Tier: p.Tier, TimeZone: p.TimeZone, OrgRole: p.OrgRole, Roles: append(platformRoles(p.Platform), nonEmpty(p.OrgRole)...),
		Session: &extauthz.SessionInfo{ID: p.Session, AuthTime: time.Unix(p.AuthTime, 0)},
	}
	return id, true
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// issue returns the Set-Cookie value vouching for the verified session.
func (c *SignedSessionCache) issue(d token.Digest, s *identity.Session, u *identity.User, id *extauthz.Identity, role identity.Role, now time.Time) string {
	raw, _ := json.Marshal(signedPayload{
		Session: s.ID, User: u.ID, Tenant: id.Tenant, Tier: id.Tier, TimeZone: id.TimeZone, OrgRole: string(role), Platform: u.PlatformRoles,
		AuthTime: s.AuthTime.Unix(), Expires: s.ExpiresAt.Unix(), Issued: now.UnixNano(),
	})
	payload := base64.RawURLEncoding.EncodeToString(raw)
	value := payload + "." + base64.RawURLEncoding.EncodeToString(c.mac(d, payload))
	return (&http.Cookie{Name: c.cookie, Value: value, Path: "/", MaxAge: int(c.maxAge / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}).String()
}

// evict remembers what an event revokes, for one max age.
func (c *SignedSessionCache) evict(ev identity.Event, now time.Time) {
	var keys []string
	for _, sid := range ev.SessionIDs {
		keys = append(keys, "s:"+sid)
	}
	switch ev.Kind {
	case identity.EventUserBanned, identity.EventUserDeleted, identity.EventUserChanged:
		keys = append(keys, "u:"+ev.UserID)
	case identity.EventMemberRemoved, identity.EventMemberChanged:
		keys = append(keys, "m:"+ev.OrgID+"/"+ev.UserID)
	case identity.EventOrgDeleted, identity.EventOrgChanged:
		keys = append(keys, "o:"+ev.OrgID)
	}
	gen := c.revoked.generation()
	for _, k := range keys {
		c.revoked.put(k, now, gen, now, now.Add(c.maxAge))
	}
}

// purge refuses every cookie issued until now.
func (c *SignedSessionCache) purge(now time.Time) { c.purged.Store(now.UnixNano()) }
