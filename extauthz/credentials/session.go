package credentials

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/redisfeed"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

// DefaultSessionCookie is the identity service's session cookie.
const DefaultSessionCookie = "__Host-mcpauthz_session"

// SessionStore is where sessions and the people behind them are read: the
// identity store, the source of truth.
type SessionStore interface {
	SessionByDigest(ctx context.Context, digest []byte) (*identity.Session, error)
	UserByID(ctx context.Context, id string) (*identity.User, error)
	Membership(ctx context.Context, orgID, userID string) (*identity.Membership, error)
	OrgByID(ctx context.Context, id string) (*identity.Org, error)
}

// SessionFeed is the identity service's write-through of sessions, read
// before the store (redisfeed.Feed). A session read from the store is
// written back, so the records of sessions in use are renewed (a put
// never replaces a revocation).
type SessionFeed interface {
	Session(ctx context.Context, digest []byte) (*identity.Session, error)
	PutSession(ctx context.Context, s *identity.Session) error
}

// SessionVerifier verifies the identity service's session cookie: the
// session by the SHA-256 of its token, from memory, the feed or the store;
// its idle and absolute expiry; its user, who must not be banned; and the
// user's role in the session's active organization, which is the tenant.
// A removed membership leaves the session without a tenant at once.
type SessionVerifier struct {
	store  SessionStore
	feed   SessionFeed
	usage  UseRecorder
	fresh  Freshness
	cookie string
	now    func() time.Time
	log    *slog.Logger

	signed   *SignedSessionCache // nil: none
	sessions *memo[token.Digest, identity.Session]
	users    *memo[string, identity.User]
	members  *memo[memberKey, identity.Role] // "" for not a member
	plans    *memo[string, orgPlan]          // by organization

	lookups lookups
}

type memberKey struct{ org, user string }

var _ Verifier = (*SessionVerifier)(nil)

// SessionOption configures a SessionVerifier.
type SessionOption func(*SessionVerifier)

// WithSessionFeed reads sessions from the feed before the store.
func WithSessionFeed(f SessionFeed) SessionOption { return func(v *SessionVerifier) { v.feed = f } }

// WithSessionUsage records each use of a session.
func WithSessionUsage(u UseRecorder) SessionOption {
	return func(v *SessionVerifier) { v.usage = u }
}

// WithSessionCookie sets the cookie's name (default DefaultSessionCookie).
func WithSessionCookie(name string) SessionOption {
	return func(v *SessionVerifier) { v.cookie = name }
}

// WithSessionClock sets the clock (default time.Now).
func WithSessionClock(now func() time.Time) SessionOption {
	return func(v *SessionVerifier) { v.now = now }
}

// WithSessionLogger sets the logger (default: discard).
func WithSessionLogger(l *slog.Logger) SessionOption { return func(v *SessionVerifier) { v.log = l } }

// WithSessionCacheSize bounds the sessions, users and memberships kept in
// memory (default 100,000 each).
func WithSessionCacheSize(n int) SessionOption {
	return func(v *SessionVerifier) {
		v.sessions = newMemo[token.Digest, identity.Session](n)
		v.users = newMemo[string, identity.User](n)
		v.members = newMemo[memberKey, identity.Role](n)
		v.plans = newMemo[string, orgPlan](n)
	}
}

// NewSessionVerifier returns a verifier reading sessions from store; fresh
// says how long a read may be trusted from memory.
func NewSessionVerifier(store SessionStore, fresh Freshness, opts ...SessionOption) *SessionVerifier {
	v := &SessionVerifier{
		store: store, fresh: fresh, feed: noFeed{}, usage: noUsage{},
		cookie: DefaultSessionCookie,
		now:    time.Now,
		log:    slog.New(slog.DiscardHandler),
	}
	WithSessionCacheSize(100_000)(v)
	for _, o := range opts {
		o(v)
	}
	return v
}

// Verify implements Verifier.
func (v *SessionVerifier) Verify(ctx context.Context, req *extauthz.Request) (extauthz.Identity, error) {
	tok, cache, err := v.sessionToken(req)
	if err != nil {
		return extauthz.Identity{}, err
	}
	if kind, err := token.Parse(tok); err != nil || kind != token.KindSession {
		return extauthz.Identity{}, fmt.Errorf("%w: not a well-formed session token", extauthz.ErrInvalidCredential)
	}
	d := token.DigestOf(tok)
	if cache != "" {
		now := v.now()
		if id, ok := v.signed.identity(cache, d, now, v.fresh.MaxAge()); ok {
			v.usage.Record(id.Session.ID, now)
			return id, nil
		}
	}
	sess, err := v.session(ctx, d)
	if err != nil {
		return extauthz.Identity{}, err
	}
	now := v.now()
	if !sess.Active(now) {
		return extauthz.Identity{}, fmt.Errorf("%w: session expired or revoked", extauthz.ErrInvalidCredential)
	}
	v.usage.Record(sess.ID, now)
	u, err := v.user(ctx, sess.UserID)
	if err != nil {
		return extauthz.Identity{}, err
	}
	if u.Banned(now) {
		return extauthz.Identity{}, fmt.Errorf("%w: the account is suspended", extauthz.ErrInvalidCredential)
	}
	id := extauthz.Identity{
		Authenticated: true,
		Method:        extauthz.MethodSession,
		Subject:       u.ID,
		UserID:        u.ID,
		Roles:         platformRoles(u.PlatformRoles),
		Session:       &extauthz.SessionInfo{ID: sess.ID, AuthTime: sess.AuthTime},
	}
	var role identity.Role
	if sess.ActiveOrgID != "" {
		if role, err = v.role(ctx, sess.ActiveOrgID, u.ID); err != nil {
			return extauthz.Identity{}, err
		}
		if role != "" {
			id.Tenant, id.OrgRole = sess.ActiveOrgID, string(role)
			id.Roles = append(id.Roles, string(role))
			plan, err := v.plan(ctx, sess.ActiveOrgID)
			if err != nil {
				return extauthz.Identity{}, err
			}
			id.Tier, id.TimeZone = string(plan.tier), plan.timeZone
		}
	}
	if v.signed != nil {
		id.SetCookie = v.signed.issue(d, sess, u, &id, role, now)
	}
	return id, nil
}

// platformRoles names platform roles apart from organization roles, which
// share words ("admin"): "platform:admin", "platform:super-admin".
func platformRoles(rs []string) []string {
	out := make([]string, 0, len(rs)+1)
	for _, r := range rs {
		out = append(out, "platform:"+r)
	}
	return out
}

// sessionToken returns the session cookie's value, and the signed cache
// cookie's if there is one; ErrNotMine without a session cookie. Every
// cookie is read on its own, so a malformed neighbour does not hide it;
// two cookies of the name (one tossed in by a sibling domain, say) are
// refused rather than guessed between.
func (v *SessionVerifier) sessionToken(req *extauthz.Request) (tok, cache string, err error) {
	header, ok := req.Header("cookie")
	if !ok {
		return "", "", ErrNotMine
	}
	n, caches := 0, 0
	for _, crumb := range cookieCrumbs(header) {
		name, value, _ := strings.Cut(crumb, "=")
		value = strings.Trim(strings.TrimSpace(value), `"`)
		switch name = strings.TrimSpace(name); {
		case name == v.cookie:
			n++
			tok = value
		case v.signed != nil && name == v.signed.cookie:
			caches++
			cache = value
		}
	}
	if caches != 1 {
		cache = "" // two copies: neither is taken, the session is looked up
	}
	switch n {
	case 0:
		return "", "", ErrNotMine
	case 1:
		return tok, cache, nil
	}
	return "", "", fmt.Errorf("%w: two session cookies", extauthz.ErrInvalidCredential)
}

// cookieCrumbs splits a Cookie header into its name=value pairs: on ";",
// and on "," too, which a proxy joining several Cookie headers uses
// (Envoy does). A cookie value cannot hold either, quoted or not (RFC
// 6265 §4.1.1), so no quote can make the split hide a cookie.
func cookieCrumbs(h string) []string {
	return strings.FieldsFunc(h, func(r rune) bool { return r == ';' || r == ',' })
}

// session returns the session with the digest, from memory, the feed or
// the store. A session that looks idle-expired is read from the store
// again: memory and the feed may predate uses that moved its idle expiry
// on, which only the store has.
func (v *SessionVerifier) session(ctx context.Context, d token.Digest) (*identity.Session, error) {
	now := v.now()
	s, fromStore, err := v.lookupSession(ctx, d, now)
	if err != nil || fromStore || !idledOut(s, now) {
		return s, err
	}
	gen := v.sessions.generation()
	if s, err = v.storeSession(ctx, d); err != nil {
		return nil, err
	}
	v.writeBack(ctx, s, now)
	v.sessions.put(d, *s, gen, now, s.ExpiresAt)
	return s, nil
}

// writeBack renews the feed's record of a live session read from the
// store.
func (v *SessionVerifier) writeBack(ctx context.Context, s *identity.Session, now time.Time) {
	if !s.Active(now) {
		return
	}
	if err := v.feed.PutSession(ctx, s); err != nil {
		v.log.LogAttrs(ctx, slog.LevelDebug, "writing a session back to the feed failed", slog.Any("error", err))
	}
}

// idledOut reports whether the session's only fault at now is its idle
// expiry.
func idledOut(s *identity.Session, now time.Time) bool {
	return s.RevokedAt.IsZero() && now.Before(s.ExpiresAt) && !now.Before(s.IdleExpires)
}

func (v *SessionVerifier) lookupSession(ctx context.Context, d token.Digest, now time.Time) (_ *identity.Session, fromStore bool, _ error) {
	if s, ok := v.sessions.get(d, now, v.fresh.MaxAge()); ok {
		v.lookups.memory.Add(1)
		return &s, false, nil
	}
	gen := v.sessions.generation()
	s, err := v.feed.Session(ctx, d[:])
	switch {
	case err == nil:
		v.lookups.feed.Add(1)
	case errors.Is(err, redisfeed.ErrRevoked):
		v.lookups.feed.Add(1)
		return nil, false, fmt.Errorf("%w: session revoked", extauthz.ErrInvalidCredential)
	default:
		if !errors.Is(err, redisfeed.ErrMiss) {
			v.lookups.feedErrors.Add(1)
			v.log.LogAttrs(ctx, slog.LevelWarn, "session feed failed; reading the store", slog.Any("error", err))
		}
		if s, err = v.storeSession(ctx, d); err != nil {
			return nil, false, err
		}
		fromStore = true
		v.writeBack(ctx, s, now)
	}
	v.sessions.put(d, *s, gen, now, s.ExpiresAt)
	return s, fromStore, nil
}

// storeSession reads the session from the store.
func (v *SessionVerifier) storeSession(ctx context.Context, d token.Digest) (*identity.Session, error) {
	s, err := v.store.SessionByDigest(ctx, d[:])
	if errors.Is(err, identity.ErrNotFound) {
		v.lookups.store.Add(1)
		return nil, fmt.Errorf("%w: unknown session", extauthz.ErrInvalidCredential)
	}
	if err != nil {
		v.lookups.storeErrors.Add(1)
		return nil, fmt.Errorf("session store: %w", err)
	}
	v.lookups.store.Add(1)
	if len(s.TokenDigest) != len(d) || !token.Equal(token.Digest(s.TokenDigest), d) {
		return nil, fmt.Errorf("%w: unknown session", extauthz.ErrInvalidCredential)
	}
	return s, nil
}

// user returns the user, from memory or the store.
func (v *SessionVerifier) user(ctx context.Context, id string) (*identity.User, error) {
	now := v.now()
	if u, ok := v.users.get(id, now, v.fresh.MaxAge()); ok {
		return &u, nil
	}
	gen := v.users.generation()
	u, err := v.store.UserByID(ctx, id)
	if errors.Is(err, identity.ErrNotFound) {
		return nil, fmt.Errorf("%w: the session's account is gone", extauthz.ErrInvalidCredential)
	}
	if err != nil {
		return nil, fmt.Errorf("user store: %w", err)
	}
	u.PasswordHash = "" // not kept in memory longer than the read
	v.users.put(id, *u, gen, now, now.Add(24*time.Hour))
	return u, nil
}

// role returns the user's role in the organization, "" when not a member.
func (v *SessionVerifier) role(ctx context.Context, org, user string) (identity.Role, error) {
	k := memberKey{org, user}
	now := v.now()
	if r, ok := v.members.get(k, now, v.fresh.MaxAge()); ok {
		return r, nil
	}
	gen := v.members.generation()
	var r identity.Role
	m, err := v.store.Membership(ctx, org, user)
	switch {
	case err == nil:
		r = m.Role
	case !errors.Is(err, identity.ErrNotFound):
		return "", fmt.Errorf("membership store: %w", err)
	}
	v.members.put(k, r, gen, now, now.Add(24*time.Hour))
	return r, nil
}

// orgPlan is what an identity carries of its organization.
type orgPlan struct {
	tier     identity.Tier
	timeZone string
}

// plan returns the organization's tier and time zone, from memory or the
// store.
func (v *SessionVerifier) plan(ctx context.Context, org string) (orgPlan, error) {
	now := v.now()
	if p, ok := v.plans.get(org, now, v.fresh.MaxAge()); ok {
		return p, nil
	}
	gen := v.plans.generation()
	o, err := v.store.OrgByID(ctx, org)
	if errors.Is(err, identity.ErrNotFound) {
		return orgPlan{tier: identity.TierFree}, nil // deleted meanwhile: the membership goes with it
	}
	if err != nil {
		return orgPlan{}, fmt.Errorf("organization store: %w", err)
	}
	p := orgPlan{tier: o.Tier, timeZone: o.TimeZone}
	v.plans.put(org, p, gen, now, now.Add(24*time.Hour))
	return p, nil
}

// Evict drops what a revocation event makes stale: the sessions it names,
// everything about a banned or deleted user, the memberships of a changed
// member or a deleted organization — and refuses the signed cache cookies
// issued before for any of them.
func (v *SessionVerifier) Evict(ev identity.Event) {
	if v.signed != nil {
		v.signed.evict(ev, v.now())
	}
	switch ev.Kind {
	case identity.EventUserBanned, identity.EventUserDeleted:
		v.users.evict(func(id string, _ identity.User) bool { return id == ev.UserID })
		v.sessions.evict(func(_ token.Digest, s identity.Session) bool { return s.UserID == ev.UserID })
		v.members.evict(func(k memberKey, _ identity.Role) bool { return k.user == ev.UserID })
	case identity.EventUserChanged:
		v.users.evict(func(id string, _ identity.User) bool { return id == ev.UserID })
	case identity.EventMemberRemoved, identity.EventMemberChanged:
		v.members.evict(func(k memberKey, _ identity.Role) bool { return k.org == ev.OrgID && k.user == ev.UserID })
	case identity.EventOrgDeleted:
		v.members.evict(func(k memberKey, _ identity.Role) bool { return k.org == ev.OrgID })
		v.plans.evict(func(org string, _ orgPlan) bool { return org == ev.OrgID })
	case identity.EventOrgChanged:
		v.plans.evict(func(org string, _ orgPlan) bool { return org == ev.OrgID })
	}
	if len(ev.SessionIDs) > 0 {
		v.sessions.evict(func(_ token.Digest, s identity.Session) bool { return slices.Contains(ev.SessionIDs, s.ID) })
	}
}

// Purge forgets everything, when events may have been missed, and refuses
// every signed cache cookie issued until now.
func (v *SessionVerifier) Purge() {
	if v.signed != nil {
		v.signed.purge(v.now())
	}
	v.sessions.evict(nil)
	v.users.evict(nil)
	v.members.evict(nil)
	v.plans.evict(nil)
}
